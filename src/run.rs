//! x
pub struct Listeners; pub fn run(){}
