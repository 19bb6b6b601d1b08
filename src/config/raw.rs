//! The configuration file exactly as written, before any meaning is checked.
//!
//! These types mirror the TOML layout one to one. Fields that later checks
//! may complain about are `Spanned`, so an error can point at the line and
//! column where the operator wrote the value. Unknown keys are not rejected
//! here with `deny_unknown_fields`: serde would stop at the first one, and we
//! want every mistake in one report, so `load` collects them with
//! `serde_ignored` and reports them beside every other error.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    pub domain: Option<Spanned<RawDomain>>,
    #[serde(default)]
    pub records: Vec<RawRecord>,
    #[serde(default)]
    pub zones: Vec<RawZone>,
    #[serde(default)]
    pub services: Vec<RawService>,
    pub geoip: Option<RawGeoip>,
    pub routing: Option<RawRouting>,
    #[serde(default)]
    pub cidr_rules: Vec<RawCidrRule>,
    pub cluster: Option<RawCluster>,
    pub dnssec: Option<Spanned<RawDnssec>>,
}

/// `[dnssec]`.
#[derive(Debug, Deserialize)]
pub struct RawDnssec {
    pub key_file: Option<Spanned<String>>,
    pub algorithm: Option<Spanned<String>>,
    #[serde(default)]
    pub publish: Vec<Spanned<String>>,
    pub validity: Option<Spanned<String>>,
    pub refresh: Option<Spanned<String>>,
    pub dnskey_ttl: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
pub struct RawGeoip {
    pub files: Spanned<Vec<Spanned<String>>>,
    pub watch_interval: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawRouting {
    pub this_zone: Option<Spanned<String>>,
    pub latency_margin: Option<Spanned<f64>>,
    pub latency_margin_ms: Option<Spanned<f64>>,
    pub latency_max_age: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
pub struct RawCidrRule {
    pub networks: Spanned<Vec<Spanned<String>>>,
    pub zones: Spanned<Vec<Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawGeoMap {
    pub default: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub continents: std::collections::BTreeMap<String, Vec<Spanned<String>>>,
    #[serde(default)]
    pub countries: std::collections::BTreeMap<String, Vec<Spanned<String>>>,
    #[serde(default)]
    pub regions: std::collections::BTreeMap<String, Vec<Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawServer {
    pub dns: Option<Vec<Spanned<String>>>,
    pub admin: Option<Spanned<String>>,
    pub udp_payload_max: Option<Spanned<u16>>,
    pub udp_sockets: Option<Spanned<usize>>,
    pub tcp_idle_timeout: Option<Spanned<String>>,
    pub tcp_max_connections: Option<Spanned<usize>>,
    pub tcp_max_connections_per_source: Option<Spanned<usize>>,
    pub state_file: Option<Spanned<String>>,
    pub admin_token: Option<Spanned<String>>,
    pub admin_token_file: Option<Spanned<String>>,
    pub cookie_secret_file: Option<Spanned<String>>,
    pub probe_concurrency: Option<Spanned<usize>>,
    pub cookie_secret: Option<Spanned<String>>,
    pub rrl_responses_per_second: Option<Spanned<u32>>,
    pub rrl_slip: Option<Spanned<u32>>,
    pub tcp_max_queries: Option<Spanned<usize>>,
    pub tcp_read_timeout: Option<Spanned<String>>,
    pub fast_path: Option<Spanned<bool>>,
    pub identity: Option<Spanned<String>>,
    pub nsid: Option<Spanned<bool>>,
    pub id_server: Option<Spanned<bool>>,
    pub probe_metrics: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
pub struct RawDomain {
    pub name: Spanned<String>,
    pub ttl: Option<Spanned<u32>>,
    pub service_ttl: Option<Spanned<u32>>,
    #[serde(default)]
    pub soa: RawSoa,
    #[serde(default)]
    pub nameservers: Vec<RawNameserver>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawSoa {
    pub mname: Option<Spanned<String>>,
    pub rname: Option<Spanned<String>>,
    pub serial: Option<u32>,
    pub refresh: Option<u32>,
    pub retry: Option<u32>,
    pub expire: Option<u32>,
    pub minimum: Option<u32>,
    pub ttl: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub struct RawNameserver {
    pub name: Spanned<String>,
    #[serde(default)]
    pub addresses: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
pub struct RawRecord {
    pub name: Spanned<String>,
    #[serde(rename = "type")]
    pub record_type: Spanned<String>,
    pub ttl: Option<u32>,
    /// One string or a list of strings; a `toml::Value` because an untagged
    /// enum would lose the spans.
    pub data: Spanned<toml::Value>,
}

#[derive(Debug, Deserialize)]
pub struct RawZone {
    pub name: Spanned<String>,
    pub latitude: Spanned<f64>,
    pub longitude: Spanned<f64>,
    pub continent: Option<Spanned<String>>,
    pub country: Option<Spanned<String>>,
    pub region: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
pub struct RawService {
    pub name: Spanned<String>,
    pub policy: Option<Spanned<String>>,
    pub ttl: Option<Spanned<u32>>,
    pub check: Option<RawCheck>,
    pub all_down: Option<Spanned<String>>,
    pub fallback: Option<Vec<Spanned<String>>>,
    pub answers: Option<Spanned<usize>>,
    pub order: Option<Vec<Spanned<String>>>,
    pub geo: Option<RawGeoMap>,
    #[serde(default)]
    pub endpoints: Vec<RawEndpoint>,
}

#[derive(Debug, Deserialize)]
pub struct RawEndpoint {
    pub zone: Spanned<String>,
    pub name: Option<Spanned<String>>,
    #[serde(default)]
    pub addresses: Vec<Spanned<String>>,
    pub min_healthy: Option<Spanned<usize>>,
    pub weight: Option<Spanned<u32>>,
    pub check: Option<RawCheck>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct RawCheck {
    pub kind: Option<Spanned<String>>,
    pub port: Option<Spanned<u16>>,
    pub path: Option<Spanned<String>>,
    pub host: Option<String>,
    pub expect_status: Option<Spanned<String>>,
    pub body_contains: Option<String>,
    pub insecure: Option<bool>,
    pub interval: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub rise: Option<Spanned<u32>>,
    pub fall: Option<Spanned<u32>>,
}

/// `[cluster]`.
#[derive(Debug, Default, Deserialize)]
pub struct RawCluster {
    pub token: Option<Spanned<String>>,
    pub token_file: Option<Spanned<String>>,
    pub pull_interval: Option<Spanned<String>>,
    pub pull_timeout: Option<Spanned<String>>,
    pub stale_after: Option<Spanned<String>>,
    pub quorum: Option<Spanned<usize>>,
    #[serde(default)]
    pub nodes: Vec<RawClusterNode>,
}

/// One of `[[cluster.nodes]]`.
#[derive(Debug, Deserialize)]
pub struct RawClusterNode {
    pub name: Spanned<String>,
    pub zone: Spanned<String>,
    pub admin: Spanned<String>,
}
