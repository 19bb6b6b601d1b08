//! Small configs for unit tests: a domain with two zones `a` (0°, 0°) and
//! `b` (10°, 10°), and one service `www` whose endpoints are given per test,
//! so each test states only what it is about.

use std::sync::Arc;

use crate::config::Config;

/// The domain and its two zones, no services.
pub const TWO_ZONES: &str = r#"
[domain]
name = "gslb.test."
[[domain.nameservers]]
name = "ns1"
addresses = ["192.0.2.53"]
[[zones]]
name = "a"
latitude = 0.0
longitude = 0.0
[[zones]]
name = "b"
latitude = 10.0
longitude = 10.0
"#;

/// `TWO_ZONES` with service `www` (`service` holds its keys, e.g. a
/// policy and check) and one endpoint per zone at the given addresses.
pub fn www(service: &str, a: &[&str], b: &str) -> String {
    let a: Vec<String> = a.iter().map(|ip| format!("\"{ip}\"")).collect();
    format!(
        "{TWO_ZONES}\n[[services]]\nname = \"www\"\n{service}\n[[services.endpoints]]\nzone = \"a\"\naddresses = [{}]\n{}\n[[services.endpoints]]\nzone = \"b\"\naddresses = [\"{b}\"]\n",
        a.join(", "),
        if a.len() > 1 { "min_healthy = 2" } else { "" }
    )
}

/// A checked config from test text (named `test.toml` in messages).
pub fn parse(text: &str) -> Config {
    Config::parse(text, "test.toml".as_ref()).unwrap_or_else(|e| panic!("test config:\n{e}"))
}

/// The same, shared.
pub fn shared(text: &str) -> Arc<Config> {
    Arc::new(parse(text))
}
