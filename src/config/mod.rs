//! Meridian's configuration: what an operator writes, checked before it is used.
//!
//! `load` turns a TOML file into a [`Config`] whose every value has already
//! been checked: names are inside the domain, zones referenced by services
//! exist, addresses parse, nothing is defined twice. Anything wrong is
//! reported all at once with file, line and column (see [`ConfigError`]).
//! A `Config` is immutable once built; a reload builds a new one and only a
//! valid one ever replaces the running config.

pub mod defaults;
mod endpoints;
mod error;
mod node;
mod raw;
mod sections;
mod validate;

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::{Name, RData};

pub use error::{ConfigError, Problem, render_warning};
pub use node::{ClusterNode, ClusterSettings, NodeError};

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from, for messages and reloads.
    pub source: PathBuf,
    pub server: ServerSettings,
    pub domain: Domain,
    /// Static records, every owner inside the domain.
    pub records: Vec<StaticRecord>,
    pub zones: Vec<Zone>,
    pub services: Vec<Arc<Service>>,
    /// Where client locations come from; `None`: no GeoIP, and policies
    /// that need a location fall back to the zones' configured order.
    pub geoip: Option<GeoipSettings>,
    pub routing: RoutingSettings,
    /// Client networks whose zone order is fixed, overriding GeoIP.
    pub cidr_rules: Vec<CidrRule>,
    /// The nodes serving this domain together; empty: this node alone.
    pub cluster: ClusterSettings,
    /// DNSSEC signing; `None`: the domain is served unsigned.
    pub dnssec: Option<DnssecSettings>,
    /// A digest of the file's text, so nodes can tell whether they run the
    /// same config.
    pub digest: String,
    /// What looks like a mistake but is allowed (a name that reads as fully
    /// qualified but is relative, ...), rendered with file and line; `check`
    /// prints them, `serve` logs them, a reload returns them.
    pub warnings: Vec<String>,
    /// Where each service's text was, so the next read of the file can
    /// reuse the services it did not change (`None` from [`Config::parse`]).
    pub(crate) service_index: Option<std::sync::Arc<validate::incremental::ServiceIndex>>,
}

/// This machine's host name, for a node alone with no `identity`.
fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at
    // most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).trim().to_string();
    (!name.is_empty()).then_some(name)
}
/// A digest of config text: 64 bits of SipHash under fixed keys, in hex.
/// Not a defence against forgery (peers are authenticated by token); only
/// a quick way to see that two nodes read the same bytes.
fn digest(text: &str) -> String {
    use std::hash::Hasher;
    let mut hasher =
        siphasher::sip::SipHasher13::new_with_keys(0x6d65_7269_6469_616e, 0x636f_6e66_6967);
    hasher.write(text.as_bytes());
    format!("{:016x}", hasher.finish())
}

/// Why a `MERIDIAN_*` environment variable cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnvError {
    #[error(
        "MERIDIAN_ADMIN_TOKEN is too short; use at least {} random characters, e.g. from `openssl rand -hex 16`",
        defaults::ADMIN_TOKEN_MIN_LEN
    )]
    AdminToken,
    #[error(
        "MERIDIAN_COOKIE_SECRET must be 32 hexadecimal characters (16 bytes); generate one with `openssl rand -hex 16`"
    )]
    CookieSecret,
}

/// The environment variables that override a config's secrets, so a
/// committed file needs none (the listen addresses and node name are
/// flags, with their own variables).
pub const ENV_ADMIN_TOKEN: &str = "MERIDIAN_ADMIN_TOKEN";
pub const ENV_COOKIE_SECRET: &str = "MERIDIAN_COOKIE_SECRET";

#[derive(Debug, Clone, PartialEq)]
pub struct GeoipSettings {
    /// One `.mmdb` with both families, or one per family; relative paths
    /// are relative to the config file.
    pub files: Vec<PathBuf>,
    /// How often the files are checked for replacement.
    pub watch_interval: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RoutingSettings {
    /// The zone this node sits in: its probes' RTTs stand for the latency
    /// from clients GeoIP places in that zone's country.
    pub this_zone: Option<usize>,
    /// Hysteresis of the latency policy: a prefix moves to another zone only
    /// when that zone is faster by this fraction of the current one's RTT...
    pub latency_margin: f64,
    /// ...and by at least this many milliseconds.
    pub latency_margin_ms: f64,
    /// Pushed latency measurements older than this are forgotten.
    pub latency_max_age: Duration,
}

impl Default for RoutingSettings {
    fn default() -> Self {
        RoutingSettings {
            this_zone: None,
            latency_margin: defaults::LATENCY_MARGIN,
            latency_margin_ms: defaults::LATENCY_MARGIN_MS,
            latency_max_age: defaults::LATENCY_MAX_AGE,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CidrRule {
    pub networks: Vec<ipnet::IpNet>,
    /// Zone indices, most preferred first.
    pub zones: Vec<usize>,
}

/// Where and how this node listens.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// DNS addresses; each is served over both UDP and TCP.
    pub dns: Vec<SocketAddr>,
    /// The admin HTTP endpoint, if any.
    pub admin: Option<SocketAddr>,
    /// The largest UDP reply we send to EDNS clients (RFC 6891; 1232 avoids
    /// IP fragmentation on practically every path). Replies are never
    /// fragmented: one larger than the interface allows goes out with TC=1
    /// (`dns::batch::never_fragment`).
    pub udp_payload_max: u16,
    /// UDP sockets per DNS address (SO_REUSEPORT); 0 means one per core.
    pub udp_sockets: usize,
    /// How long an idle TCP connection is kept open.
    pub tcp_idle_timeout: Duration,
    /// Concurrent TCP connections accepted per DNS address.
    pub tcp_max_connections: usize,
    /// Of those, how many one client may hold (an IPv4 address, an IPv6
    /// /64), so one source cannot take every slot with idle connections.
    pub tcp_max_connections_per_source: usize,
    /// Where operator drains are kept across restarts; relative paths are
    /// relative to the config file. `None`: drains live in memory only.
    pub state_file: Option<PathBuf>,
    /// The DNS and admin addresses the file names (`dns` and `admin` may
    /// come from flags or the environment instead), so a reload can tell
    /// whether the file changed them.
    pub file_listen: (Vec<SocketAddr>, Option<SocketAddr>),
    /// Bearer token required for state-changing admin requests. Without
    /// one, those requests are accepted from loopback only.
    pub admin_token: Option<String>,
    /// Probes in flight at once, across all endpoints.
    pub probe_concurrency: usize,
    /// DNS Cookie secret shared by the domain's nodes, so a cookie from one
    /// is valid at all; `None`: a random secret per process.
    pub cookie_secret: Option<[u8; 16]>,
    /// Response rate limiting; `None`: off.
    pub rrl: Option<RrlSettings>,
    /// Queries answered on one TCP connection before it is closed.
    pub tcp_max_queries: usize,
    /// How long a client may take to send the rest of a query it started.
    pub tcp_read_timeout: Duration,
    /// Answer common UDP queries on the fast path (`dns::fast`); off, every
    /// query takes the general path. A switch for operators who suspect it.
    pub fast_path: bool,
    /// `probe_metrics = "zone"`: probe counters and RTT histograms summed
    /// per zone, for domains with too many addresses to export each.
    pub probe_metrics_by_zone: bool,
    /// How this node names itself in NSID and `id.server`: the file's
    /// `identity`, else the cluster node name, else the host name (filled
    /// in by [`Config::for_node`]).
    pub identity: Option<String>,
    /// Answer NSID (RFC 5001) with the identity when a query asks for it.
    pub nsid: bool,
    /// Answer `id.server` and `hostname.bind` (class CH, TXT) with it.
    pub id_server: bool,
}

/// Response rate limiting (UDP only).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RrlSettings {
    /// Responses per second to one client network (IPv4 /24, IPv6 /56).
    pub responses_per_second: u32,
    /// Of the responses over the limit, every `slip`-th is sent truncated
    /// (TC=1) so a real client retries over TCP; the rest are dropped.
    /// 0: drop them all.
    pub slip: u32,
}

/// The DNS domain Meridian is authoritative for.
#[derive(Debug, Clone)]
pub struct Domain {
    /// The apex, fully qualified, as the operator spelled it.
    pub name: Name,
    /// TTL of static records without their own.
    pub ttl: u32,
    /// TTL of service answers without their own; short so failover is quick.
    pub service_ttl: u32,
    pub soa: Soa,
    /// The apex NS set, with glue for names inside the domain.
    pub nameservers: Vec<Nameserver>,
}

#[derive(Debug, Clone)]
pub struct Soa {
    pub mname: Name,
    pub rname: Name,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    /// The negative-caching TTL (RFC 2308).
    pub minimum: u32,
    /// TTL of the SOA record itself.
    pub ttl: u32,
}

impl Soa {
    /// TTL for negative answers: the lesser of the SOA's TTL and its MINIMUM
    /// (RFC 2308 section 5).
    pub fn negative_ttl(&self) -> u32 {
        self.ttl.min(self.minimum)
    }
}

#[derive(Debug, Clone)]
pub struct Nameserver {
    pub name: Name,
    /// Glue; required when the name is inside the domain.
    pub addresses: Vec<IpAddr>,
}

#[derive(Debug, Clone)]
pub struct StaticRecord {
    pub name: Name,
    pub ttl: u32,
    pub data: RData,
}

/// `[dnssec]`: the key that signs and the keys published beside it.
#[derive(Debug, Clone)]
pub struct DnssecSettings {
    /// The combined signing key, read from `key_file` when the config is
    /// loaded; shared so a config clone does not copy key material.
    pub key: std::sync::Arc<crate::dnssec::key::SigningKey>,
    /// DNSKEYs published but not signing (`publish`): the next key of a
    /// rollover, or the previous one until caches have forgotten it.
    pub published: Vec<crate::dnssec::key::Dnskey>,
    /// How long a signature is valid from its window's start.
    pub validity: Duration,
    /// How often signatures are renewed; at most `validity`, half of it
    /// unless set.
    pub refresh: Duration,
    /// TTL of the DNSKEY set.
    pub dnskey_ttl: u32,
}

/// An availability zone or site: a place with a load balancer.
#[derive(Debug, Clone)]
pub struct Zone {
    pub name: String,
    pub latitude: f64,
    pub longitude: f64,
    /// Two-letter continent code (AF, AN, AS, EU, NA, OC, SA).
    pub continent: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
    /// Free-form region tag, e.g. an ISO 3166-2 subdivision.
    pub region: Option<String>,
}

/// A load-balanced name and how it chooses among zones.
#[derive(Debug, Clone)]
pub struct Service {
    /// Fully qualified name inside the domain.
    pub name: Name,
    pub policy: Policy,
    pub ttl: u32,
    pub endpoints: Vec<Endpoint>,
    /// How many zones an answer names (multi-value answers when above 1).
    pub answers: usize,
    /// What to answer when no endpoint is up.
    pub all_down: AllDown,
    /// Some zone holds several endpoints (see [`Service::has_splits`]).
    pub has_splits: bool,
}

/// A service's answer when every endpoint is down or drained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllDown {
    /// Answer with every endpoint anyway: a check that is wrong everywhere
    /// at once is likelier than every zone being dead, and an answer that
    /// might work beats one that surely will not.
    FailOpen,
    /// Answer with these addresses (a static "sorry" site, say).
    Fallback(Vec<IpAddr>),
}

impl AllDown {
    /// `all_down = "fail-open"`.
    pub const FAIL_OPEN: &'static str = "fail-open";
    /// `all_down = "fallback"`.
    pub const FALLBACK: &'static str = "fallback";

    /// The rule as the config spells it, for logs and the explain output.
    pub fn name(&self) -> &'static str {
        match self {
            AllDown::FailOpen => AllDown::FAIL_OPEN,
            AllDown::Fallback(_) => AllDown::FALLBACK,
        }
    }
}

/// How a service orders its zones for a client. Every policy then skips
/// zones that are down or drained; see `routing`.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    /// Every serving endpoint, whoever asks.
    All,
    /// Serving zones by great-circle distance from the client.
    Nearest,
    /// Zone lists by the client's region, country or continent (most
    /// specific wins), else the default list; then the rest by distance.
    Geo(GeoMap),
    /// A fixed order (active-passive).
    Failover(Vec<usize>),
    /// Split by endpoint weights, stable for a client prefix.
    Weighted,
    /// Lowest measured RTT for the client's network, else nearest.
    Latency,
}

impl Policy {
    pub const NAMES: &'static [&'static str] =
        &["all", "nearest", "geo", "failover", "weighted", "latency"];

    pub fn name(&self) -> &'static str {
        match self {
            Policy::All => "all",
            Policy::Nearest => "nearest",
            Policy::Geo(_) => "geo",
            Policy::Failover(_) => "failover",
            Policy::Weighted => "weighted",
            Policy::Latency => "latency",
        }
    }
}

/// Ordered zone lists (zone indices) by where the client is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GeoMap {
    pub default: Vec<usize>,
    /// Keys are continent codes (`EU`).
    pub continents: std::collections::HashMap<String, Vec<usize>>,
    /// Keys are ISO 3166-1 alpha-2 codes (`DE`).
    pub countries: std::collections::HashMap<String, Vec<usize>>,
    /// Keys are ISO 3166-2 codes (`US-CA`).
    pub regions: std::collections::HashMap<String, Vec<usize>>,
}

/// One service's load balancer in one zone. A zone may hold several of a
/// service's endpoints (blue and green, say), each named: the zone is
/// chosen first, then one of its endpoints by weight.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Index into [`Config::zones`].
    pub zone: usize,
    /// Unique among the service's endpoints in the zone; required when
    /// the zone holds more than one, optional otherwise.
    pub name: Option<String>,
    /// A stable 64-bit digest of (service, zone, name), the endpoint's
    /// identity in the in-zone rendezvous hashing: computed once here so
    /// the answer path mixes it with the client prefix instead of hashing
    /// names per decision. Depends on names only, so reordering the config
    /// moves no client.
    pub split_key: u64,
    pub addresses: Vec<IpAddr>,
    /// The endpoint is up while at least this many of its addresses are.
    pub min_healthy: usize,
    /// Share of traffic under the weighted policy, relative to the others.
    pub weight: u32,
    pub check: Check,
}

/// How an endpoint's health is probed.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub kind: CheckKind,
    pub port: u16,
    /// HTTP(S) path.
    pub path: String,
    /// HTTP Host header and TLS SNI; the address when unset.
    pub host: Option<String>,
    /// Status codes counted as healthy.
    pub expect_status: RangeInclusive<u16>,
    /// A substring the body must contain.
    pub body_contains: Option<String>,
    /// Accept self-signed or otherwise unverifiable certificates.
    pub insecure: bool,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive successes before an endpoint is up.
    pub rise: u32,
    /// Consecutive failures before an endpoint is down.
    pub fall: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    Http,
    Https,
    Tcp,
    /// Always up: for demos and endpoints checked elsewhere.
    None,
}

impl CheckKind {
    pub const NAMES: &'static [&'static str] = &["http", "https", "tcp", "none"];

    pub fn name(self) -> &'static str {
        match self {
            CheckKind::Http => "http",
            CheckKind::Https => "https",
            CheckKind::Tcp => "tcp",
            CheckKind::None => "none",
        }
    }
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_after(path, None)
    }

    /// Reads and checks a config file again: services whose text is
    /// unchanged since `previous` was read are taken from it instead of
    /// being parsed and checked again. The result, and any error, is what
    /// [`Config::load`] gives.
    pub fn load_after(path: &Path, previous: Option<&Config>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        Config::parse_after(&text, path, previous)
    }

    /// Checks config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config = validate::parse(text, path).map_err(ConfigError::Invalid)?;
        config.digest = digest(text);
        Ok(config)
    }

    /// [`Config::parse`], reusing `previous`'s unchanged services (see
    /// [`Config::load_after`]).
    pub fn parse_after(
        text: &str,
        path: &Path,
        previous: Option<&Config>,
    ) -> Result<Config, ConfigError> {
        validate::incremental::parse_after(text, path, previous).map_err(ConfigError::Invalid)
    }

    /// This config as seen by node `name` (from `--node` or
    /// `MERIDIAN_NODE`): sets `cluster.this_node`, and `routing.this_zone`
    /// to the node's zone unless the file sets it. With no cluster nodes
    /// any name (or none) is accepted: the node is alone.
    pub fn for_node(mut self, name: Option<&str>) -> Result<Config, NodeError> {
        let file = self.source.display().to_string();
        let nodes = &self.cluster.nodes;
        if nodes.is_empty() {
            if self.server.identity.is_none() {
                self.server.identity = host_name();
            }
            return Ok(self);
        }
        let Some(name) = name else {
            if nodes.len() == 1 {
                let only = nodes[0].name.clone();
                return self.for_node(Some(&only));
            }
            return Err(NodeError::Unnamed {
                file,
                count: nodes.len(),
            });
        };
        let Some(i) = nodes.iter().position(|n| n.name == name) else {
            let known: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
            return Err(NodeError::Unknown {
                name: name.to_string(),
                file,
                known: known.join(", "),
            });
        };
        self.cluster.this_node = Some(i);
        if self.server.identity.is_none() {
            self.server.identity = Some(nodes[i].name.clone());
        }
        if self.routing.this_zone.is_none() {
            self.routing.this_zone = Some(nodes[i].zone);
        }
        Ok(self)
    }

    /// This config with the secrets the environment sets (through `var`,
    /// `std::env::var` outside tests) in place of the file's: an empty
    /// variable counts as unset. Checked as the file's values are.
    pub fn with_env(mut self, var: impl Fn(&str) -> Option<String>) -> Result<Config, EnvError> {
        let var = |name: &str| {
            var(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if let Some(token) = var(ENV_ADMIN_TOKEN) {
            if token.len() < defaults::ADMIN_TOKEN_MIN_LEN {
                return Err(EnvError::AdminToken);
            }
            self.server.admin_token = Some(token);
        }
        if let Some(hex) = var(ENV_COOKIE_SECRET) {
            let secret = validate::parse_hex16(&hex).ok_or(EnvError::CookieSecret)?;
            self.server.cookie_secret = Some(secret);
        }
        Ok(self)
    }

    /// Whether `other` was read from a file with the same text as this
    /// one's outside their `[[services]]` entries, and as many entries:
    /// the domain, its records and every other section then read the same
    /// (secrets from the environment and the node's name are the
    /// process's own). False when either was not read entry by entry.
    pub fn same_outside_services(&self, other: &Config) -> bool {
        match (&self.service_index, &other.service_index) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a.same_outside_services(b),
            _ => false,
        }
    }

    pub fn zone_index(&self, name: &str) -> Option<usize> {
        self.zones.iter().position(|z| z.name == name)
    }

    /// The service an operator means by `name`: relative to the domain
    /// (`www`, `@` for the apex) or absolute, with or without the trailing
    /// dot (`www.gslb.example`, `www.gslb.example.`), in any case. A name
    /// that reads both ways (`www.gslb.example` when a service
    /// `www.gslb.example.gslb.example.` exists too) is taken as absolute.
    pub fn service_index(&self, name: &str) -> Option<usize> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let domain = self.domain.name.to_ascii().to_ascii_lowercase();
        let domain = domain.trim_end_matches('.');
        let relative = match name.as_str() {
            "@" | "" => domain.to_string(),
            _ => format!("{name}.{domain}"),
        };
        let position = |wanted: &str| {
            self.services.iter().position(|s| {
                s.name
                    .to_ascii()
                    .trim_end_matches('.')
                    .eq_ignore_ascii_case(wanted)
            })
        };
        position(&name)
            .or_else(|| position(&relative))
            .or_else(|| self.wildcard_service(&name))
            .or_else(|| self.wildcard_service(&relative))
    }

    /// The wildcard service that answers for `name` (absolute, without the
    /// trailing dot) as the DNS does (RFC 4592): `*.` its closest encloser,
    /// the deepest ancestor that exists, and only if `name` itself does not.
    fn wildcard_service(&self, name: &str) -> Option<usize> {
        let name = Name::from_ascii(format!("{name}.")).ok()?;
        if !self.domain.name.zone_of(&name) {
            return None;
        }
        // A name exists when some configured name is at or below it.
        let owners: Vec<&Name> = self
            .records
            .iter()
            .map(|r| &r.name)
            .chain(self.services.iter().map(|s| &s.name))
            .chain(self.domain.nameservers.iter().map(|n| &n.name))
            .collect();
        let exists = |n: &Name| n == &self.domain.name || owners.iter().any(|o| n.zone_of(o));
        if exists(&name) {
            return None;
        }
        let mut encloser = name.base_name();
        while !exists(&encloser) {
            encloser = encloser.base_name();
        }
        let source = Name::from_ascii("*").ok()?.append_domain(&encloser).ok()?;
        self.services.iter().position(|s| s.name == source)
    }
}

#[cfg(test)]
mod tests;
