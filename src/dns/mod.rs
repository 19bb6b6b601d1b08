//! The DNS side of a node: the domain's lookup table, the pure answer
//! function, and the sockets that carry queries to it.

pub mod answer;
mod batch;
pub mod cookie;
pub mod fast;
pub mod rrl;
pub mod server;
pub mod table;

pub use answer::{Transport, answer};
pub use server::{DnsServer, DnsSockets, TcpLimits};
