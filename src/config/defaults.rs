//! Every value a config gets for a key the operator left out, in one table.
//!
//! The checks in `validate` take their defaults from here and nowhere else,
//! so this file and the configuration reference in `README.md` are the two
//! places a default is written; keep them in step. Limits (the ranges a
//! value must fall in) are not defaults and stay beside their checks.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::ops::RangeInclusive;
use std::time::Duration;

use super::{AllDown, CheckKind};

// [server]

/// Where DNS is served: loopback, on an unprivileged port, so a first run
/// needs no privileges and exposes nothing.
pub const DNS_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5300));
/// Largest UDP reply to EDNS clients: 1232 avoids IP fragmentation on
/// practically every path (the DNS Flag Day 2020 figure).
pub const UDP_PAYLOAD_MAX: u16 = 1232;
/// UDP sockets per DNS address; 0 means one per core.
pub const UDP_SOCKETS: usize = 0;
/// How long an idle TCP connection is kept open.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to finish sending a query, or to take a reply.
pub const TCP_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Concurrent TCP connections per DNS address.
pub const TCP_MAX_CONNECTIONS: usize = 1024;
/// Of those, how many one client (an IPv4 address, an IPv6 /64) may hold.
pub const TCP_MAX_CONNECTIONS_PER_SOURCE: usize = 64;
/// Queries answered on one TCP connection before it is closed; high, since
/// queries pipelined past it go unanswered and must be retried.
pub const TCP_MAX_QUERIES: usize = 100_000;
/// Health probes in flight at once, across all endpoints.
pub const PROBE_CONCURRENCY: usize = 512;
/// With rate limiting on, every second response over the limit is sent
/// truncated so real clients retry over TCP; the rest are dropped.
pub const RRL_SLIP: u32 = 2;
/// Common UDP queries take the fast path.
pub const FAST_PATH: bool = true;
/// NSID is answered when asked for.
pub const NSID: bool = true;
/// `id.server` and `hostname.bind` are answered.
pub const ID_SERVER: bool = true;
/// Probe metrics are exported per endpoint address (`"address"`), not
/// summed per zone.
pub const PROBE_METRICS_BY_ZONE: bool = false;

// [domain]

/// TTL of static records without their own.
pub const TTL: u32 = 300;
/// TTL of service answers without their own: short, so failover is quick.
pub const SERVICE_TTL: u32 = 30;
/// SOA RNAME, relative to the domain (the mailbox `hostmaster@domain`).
/// The default MNAME is the first nameserver, so it has no entry here.
pub const SOA_RNAME: &str = "hostmaster";
pub const SOA_SERIAL: u32 = 1;
pub const SOA_REFRESH: u32 = 3600;
pub const SOA_RETRY: u32 = 600;
pub const SOA_EXPIRE: u32 = 604_800;
/// The negative-caching TTL (RFC 2308).
pub const SOA_MINIMUM: u32 = 60;
/// TTL of the SOA record itself.
pub const SOA_TTL: u32 = 3600;

// [[services]] and [[services.endpoints]]

/// Zones by distance from the client.
pub const POLICY: &str = "nearest";
/// One zone per answer.
pub const ANSWERS: usize = 1;
/// With every endpoint down, answer with all of them (see [`AllDown`]).
pub const ALL_DOWN: &str = AllDown::FAIL_OPEN;
/// An endpoint is up while one of its addresses is.
pub const MIN_HEALTHY: usize = 1;
/// Equal shares under the weighted policy.
pub const WEIGHT: u32 = 1;

// Health checks ([services.check] and an endpoint's `check`)

pub const CHECK_KIND: CheckKind = CheckKind::Http;
/// The port of an `http` check without one.
pub const HTTP_PORT: u16 = 80;
/// The port of an `https` check without one.
pub const HTTPS_PORT: u16 = 443;
/// The port of a `none` check, which probes nothing. A `tcp` check has no
/// default port: there is no port a TCP service can be assumed to use.
pub const NONE_PORT: u16 = 0;
pub const CHECK_PATH: &str = "/";
/// Success and redirects count as healthy.
pub const EXPECT_STATUS: RangeInclusive<u16> = 200..=399;
pub const CHECK_INSECURE: bool = false;
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// Consecutive successes before an endpoint is up: one lucky probe is
/// not enough.
pub const RISE: u32 = 2;
/// Consecutive failures before an endpoint is down: one lost probe does
/// not flip it.
pub const FALL: u32 = 2;

// [geoip]

/// How often the GeoIP files are checked for replacement.
pub const GEOIP_WATCH_INTERVAL: Duration = Duration::from_secs(5);

// [routing]

/// The latency policy moves a prefix only to a zone faster by this
/// fraction of the current zone's RTT...
pub const LATENCY_MARGIN: f64 = 0.2;
/// ...and by at least this many milliseconds.
pub const LATENCY_MARGIN_MS: f64 = 5.0;
/// Pushed latency measurements older than this are forgotten.
pub const LATENCY_MAX_AGE: Duration = Duration::from_secs(600);

/// Shortest admin token: 16 random characters resist guessing.
pub const ADMIN_TOKEN_MIN_LEN: usize = 16;

// [dnssec]

/// How long signatures are valid: two weeks, as most signers default to.
pub const DNSSEC_VALIDITY: Duration = Duration::from_secs(14 * 86_400);
/// The algorithm `meridian dnssec keygen` uses unless told: 13, ECDSA P-256.
/// (`[dnssec] algorithm` unset takes the key's own.)
pub const DNSSEC_ALGORITHM: &str = "ecdsap256sha256";
