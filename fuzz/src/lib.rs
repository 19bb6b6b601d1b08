//! The checks behind Meridian's fuzz targets, kept out of the targets so the
//! seed generator and the corpus replay test (`cargo test` in `fuzz/`, on a
//! stable toolchain without libFuzzer) run exactly the same invariants.
//!
//! - [`check_request`]: request bytes into `meridian::dns::answer` over UDP
//!   and TCP against one snapshot of the shipped example (plus CNAME chains,
//!   a delegation with glue, a big TXT set and one service per policy);
//!   the reply must be a well-formed response to that request. Where the
//!   fast path (`meridian::dns::fast`) answers too, its reply must say the
//!   same as the general path's, with one decision memo kept across inputs
//!   as a serving thread keeps it.
//! - [`check_config`]: text into `Config::parse`; it never panics, every
//!   problem it reports points inside the text, and a config it accepts
//!   builds a snapshot that answers.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use hickory_proto::op::{Message, MessageType, Query};
use hickory_proto::rr::{Name, RecordType};
use meridian::config::Config;
use meridian::dns::fast::ThreadCaches;
use meridian::dns::{Transport, answer, fast};
use meridian::health::drains::Drains;
use meridian::metrics::Metrics;
use meridian::routing::geo::GeoDb;
use meridian::snapshot::Snapshot;

/// The main crate's root: `fuzz/` lives inside it.
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("fuzz/ has a parent")
        .to_path_buf()
}

/// What the `request` target's snapshot adds to `zones/example.toml`:
/// every kind of answer the table can give.
pub const EXTRA_CONFIG: &str = r#"
[[records]]
name = "chain1"
type = "CNAME"
data = "chain2"

[[records]]
name = "chain2"
type = "CNAME"
data = "docs"

[[records]]
name = "loop-a"
type = "CNAME"
data = "loop-b"

[[records]]
name = "loop-b"
type = "CNAME"
data = "loop-a"

[[records]]
name = "self"
type = "CNAME"
data = "self"

[[records]]
name = "away"
type = "CNAME"
data = "www.example.net."

[[records]]
name = "dangling"
type = "CNAME"
data = "missing"

[[records]]
name = "sub"
type = "NS"
data = ["ns1.sub", "ns2.sub", "ns.elsewhere.example."]

[[records]]
name = "ns1.sub"
type = "A"
data = "192.0.2.77"

[[records]]
name = "ns1.sub"
type = "AAAA"
data = "2001:db8::77"

[[records]]
name = "ns2.sub"
type = "A"
data = "192.0.2.78"

[[records]]
name = "mail"
type = "AAAA"
data = "2001:db8::25"

[[records]]
name = "ptr"
type = "PTR"
data = "mail"

[[records]]
name = "a.b.c.deep"
type = "A"
data = "192.0.2.99"

[[records]]
name = "*.wild"
type = "A"
data = "192.0.2.98"

[[records]]
name = "*.wild"
type = "MX"
data = "10 mail"

[[records]]
name = "real.wild"
type = "TXT"
data = "not covered by the wildcard"

[[records]]
name = "*.wild-alias"
type = "CNAME"
data = "www"

[[services]]
name = "*.pool"
policy = "failover"
order = ["eu-west", "us-east"]

[services.check]
kind = "none"

[[services.endpoints]]
zone = "us-east"
addresses = ["192.0.2.18", "2001:db8:1::18"]

[[services.endpoints]]
zone = "eu-west"
addresses = ["198.51.100.18"]

[[services]]
name = "geo"
policy = "geo"
answers = 2

[services.geo]
default = ["us-east"]
continents = { EU = ["eu-west"], AS = ["ap-south", "eu-west"] }
countries = { DE = ["eu-west", "us-east"] }
regions = { "US-CA" = ["us-east"] }

[services.check]
kind = "none"

[[services.endpoints]]
zone = "us-east"
addresses = ["192.0.2.11", "2001:db8:1::11"]

[[services.endpoints]]
zone = "eu-west"
addresses = ["198.51.100.11"]

[[services.endpoints]]
zone = "ap-south"
addresses = ["2001:db8:3::11"]

[[services]]
name = "failover"
policy = "failover"
order = ["ap-south", "us-east"]
all_down = "fallback"
fallback = ["192.0.2.200", "2001:db8::200"]

[services.check]
kind = "none"

[[services.endpoints]]
zone = "us-east"
addresses = ["192.0.2.12"]

[[services.endpoints]]
zone = "ap-south"
addresses = ["203.0.113.12"]

[[services]]
name = "weighted"
policy = "weighted"

[services.check]
kind = "none"

[[services.endpoints]]
zone = "us-east"
addresses = ["192.0.2.13"]
weight = 5

[[services.endpoints]]
zone = "eu-west"
addresses = ["198.51.100.13"]
weight = 1

[[services]]
name = "bg"
policy = "weighted"

[services.check]
kind = "none"

[[services.endpoints]]
zone = "us-east"
name = "blue"
addresses = ["192.0.2.17", "2001:db8:1::17"]
weight = 9

[[services.endpoints]]
zone = "us-east"
name = "green"
addresses = ["192.0.2.18"]
weight = 1

[[services.endpoints]]
zone = "eu-west"
addresses = ["198.51.100.17"]

[[services]]
name = "latency"
policy = "latency"

[services.check]
kind = "none"

[[services.endpoints]]
zone = "us-east"
addresses = ["192.0.2.14"]

[[services.endpoints]]
zone = "eu-west"
addresses = ["198.51.100.14"]

[[services]]
name = "all.many"
policy = "all"

[services.check]
kind = "none"

[[services.endpoints]]
zone = "us-east"
addresses = ["192.0.2.15", "192.0.2.16", "192.0.2.17", "2001:db8:1::15"]

[[services.endpoints]]
zone = "eu-west"
addresses = ["198.51.100.15", "198.51.100.16"]

[[cidr_rules]]
networks = ["10.0.0.0/8", "2001:db8:ffff::/48"]
zones = ["ap-south"]
"#;

/// The `request` snapshot's DNS cookie secret (random per process if unset).
pub const COOKIE_SECRET: &str = "00112233445566778899aabbccddeeff";

/// The TXT set too big for a 1232-byte UDP reply (~2.3 kB).
pub fn big_txt_record() -> String {
    let strings: Vec<String> = (0..20)
        .map(|i| format!("\"record {i:02} {}\"", "x".repeat(90)))
        .collect();
    format!(
        "\n[[records]]\nname = \"big\"\ntype = \"TXT\"\ndata = [{}]\n",
        strings.join(", ")
    )
}

/// The `request` target's config text: the shipped example, as read from
/// `zones/`, plus [`EXTRA_CONFIG`] and the big TXT set.
pub fn request_config_text() -> String {
    let example = std::fs::read_to_string(project_root().join("zones/example.toml"))
        .expect("zones/example.toml is readable");
    // A fixed cookie secret, so a crash reproduces in another process.
    let server = "[server]\n";
    assert!(example.contains(server), "the example has a [server] table");
    let example = example.replacen(
        server,
        &format!("{server}cookie_secret = \"{COOKIE_SECRET}\"\n"),
        1,
    );
    format!("{example}\n{EXTRA_CONFIG}\n{}", big_txt_record())
}

/// The snapshot every `request` input is answered from, built once.
pub static SNAPSHOT: LazyLock<Snapshot> = LazyLock::new(|| {
    // Parsed as if it were zones/example.toml, so its relative GeoIP path
    // names the shipped geo/default.mmdb.
    let path = project_root().join("zones/example.toml");
    let config = Config::parse(&request_config_text(), &path)
        .unwrap_or_else(|e| panic!("the fuzz config is invalid:\n{e}"));
    let geo = config.geoip.as_ref().map(|g| {
        Arc::new(
            GeoDb::open(&g.files).unwrap_or_else(|e| panic!("the shipped GeoIP database: {e}")),
        )
    });
    assert!(geo.is_some(), "the example names a GeoIP database");
    let metrics = Metrics::default();
    let counters = metrics.answer_counters(&config);
    Snapshot::initial(Arc::new(config), Drains::default(), geo, counters)
});

/// Sources a request may come from: located in each of the example's
/// regions, unlocated, loopback, CIDR-ruled, both families.
const SOURCES: &[IpAddr] = &[
    IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)),
    IpAddr::V4(Ipv4Addr::new(193, 0, 0, 1)),
    IpAddr::V4(Ipv4Addr::new(202, 12, 27, 33)),
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
    IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
    IpAddr::V4(Ipv4Addr::new(0, 0, 0, 0)),
    IpAddr::V4(Ipv4Addr::new(255, 255, 255, 255)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x4860, 0, 0, 0, 0, 0, 0x8888)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x67c, 0x2e8, 0, 0, 0, 0, 1)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1)),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
    IpAddr::V6(Ipv6Addr::UNSPECIFIED),
];

/// The packet's source address, derived from the input so the fuzzer can
/// steer it: the last byte picks one of [`SOURCES`], or (at 0x80 and above)
/// an IPv4 (even) or IPv6 (odd) address spelled by the input's first bytes.
pub fn source_for(data: &[u8]) -> IpAddr {
    let Some(&selector) = data.last() else {
        return SOURCES[0];
    };
    if selector < 0x80 {
        return SOURCES[usize::from(selector) % SOURCES.len()];
    }
    let mut bytes = [0u8; 16];
    for (b, d) in bytes.iter_mut().zip(data.iter().rev().skip(1)) {
        *b = *d;
    }
    if selector % 2 == 0 {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(bytes))
    }
}

/// One input of the `request` target: answered over UDP and over TCP, each
/// reply checked. Panics (the fuzzer's crash) on a broken invariant.
pub fn check_request(data: &[u8]) {
    let snapshot = &*SNAPSHOT;
    let source = source_for(data);
    let parsed = Message::from_vec(data).ok();
    let header_only = data.len() < 12 || data[2] & 0x80 != 0;
    for transport in [Transport::Udp, Transport::Tcp] {
        let reply = answer(data, transport, source, snapshot);
        let Some(reply) = reply else {
            // Silence is only for what cannot be answered: no header, or a
            // response (replying to those starts reflection loops).
            assert!(
                header_only,
                "no {transport:?} reply to a {}-byte query (parsed: {})",
                data.len(),
                parsed.is_some()
            );
            continue;
        };
        assert!(
            !header_only,
            "{transport:?} reply to a packet that is not a query"
        );
        check_reply(data, parsed.as_ref(), transport, &reply.wire, snapshot);
        check_fast_path(
            data,
            parsed.as_ref(),
            transport,
            source,
            &reply.wire,
            snapshot,
        );
    }
}

thread_local! {
    static CACHES: RefCell<ThreadCaches> = RefCell::new(ThreadCaches::new());
}

/// The fast path, where it answers, says what the general path says.
fn check_fast_path(
    data: &[u8],
    parsed: Option<&Message>,
    transport: Transport,
    source: IpAddr,
    general_wire: &[u8],
    snapshot: &Snapshot,
) {
    let mut out = Vec::new();
    let answered = CACHES.with_borrow_mut(|caches| {
        fast::answer_or_send_kept(data, transport, source, snapshot, caches, &mut out).is_some()
    });
    if !answered {
        return;
    }
    check_reply(data, parsed, transport, &out, snapshot);
    let mut fast = Message::from_vec(&out).expect("checked above");
    let mut general = Message::from_vec(general_wire).expect("checked above");
    // A server cookie carries the time in seconds, which may move on between
    // the two answers (in either order): ask both again, a few times.
    for _ in 0..3 {
        if fast == general {
            break;
        }
        let again = answer(data, transport, source, snapshot).expect("answered before");
        general = Message::from_vec(&again.wire).expect("checked above");
        out.clear();
        let repeated = CACHES.with_borrow_mut(|caches| {
            fast::answer_or_send_kept(data, transport, source, snapshot, caches, &mut out).is_some()
        });
        assert!(repeated, "the fast path answered before");
        fast = Message::from_vec(&out).expect("checked above");
    }
    assert_eq!(
        fast, general,
        "{transport:?}: the fast path and the general path disagree"
    );
}

fn check_reply(
    request: &[u8],
    parsed: Option<&Message>,
    transport: Transport,
    wire: &[u8],
    snapshot: &Snapshot,
) {
    let reply = Message::from_vec(wire).unwrap_or_else(|e| {
        panic!("{transport:?} reply does not parse: {e}\nreply bytes: {wire:02x?}")
    });
    let id = u16::from_be_bytes([request[0], request[1]]);
    assert_eq!(reply.id, id, "{transport:?} reply ID");
    assert_eq!(
        reply.message_type,
        MessageType::Response,
        "{transport:?} QR set"
    );
    let request_opcode = (request[2] >> 3) & 0x0f;
    let reply_opcode = (wire[2] >> 3) & 0x0f;
    assert_eq!(reply_opcode, request_opcode, "{transport:?} opcode copied");
    assert_eq!(wire[2] & 0x01, request[2] & 0x01, "{transport:?} RD copied");
    assert!(!reply.recursion_available, "{transport:?} RA never set");
    let limit = match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => match parsed.map(|m| m.edns.is_some()) {
            Some(true) => usize::from(snapshot.config.server.udp_payload_max),
            // No OPT, or a packet hickory cannot read (answered FORMERR).
            _ => 512,
        },
    };
    assert!(
        wire.len() <= limit,
        "{transport:?} reply of {} bytes over the {limit}-byte limit",
        wire.len()
    );
    if transport == Transport::Tcp {
        assert!(!reply.truncation, "TC set on a TCP reply");
    }
    match parsed {
        Some(request) => {
            // One question is echoed (unless it alone would not fit, when
            // a truncated header is all that is sent); several are not, so
            // an error reply cannot amplify. An EDNS request gets EDNS back.
            if request.queries.len() == 1 {
                if !(reply.truncation && reply.queries.is_empty()) {
                    assert_eq!(reply.queries, request.queries, "{transport:?} question");
                }
            } else {
                assert!(
                    reply.queries.is_empty(),
                    "{transport:?} several questions echoed"
                );
            }
            assert_eq!(
                reply.edns.is_some(),
                request.edns.is_some(),
                "{transport:?} OPT present iff the request had one"
            );
        }
        None => {
            assert_eq!(
                reply.response_code,
                hickory_proto::op::ResponseCode::FormErr,
                "{transport:?} an unreadable query gets FORMERR"
            );
        }
    }
}

/// One input of the `config` target.
pub fn check_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_config_text(text);
}

/// `Config::parse` on `text`: no panic; an error's every problem points
/// inside the text; an accepted config builds a snapshot that answers.
pub fn check_config_text(text: &str) {
    let path = Path::new("fuzz.toml");
    match Config::parse(text, path) {
        Ok(config) => check_accepted(config),
        Err(err) => {
            let problems = err.problems();
            assert!(!problems.is_empty(), "an error with no problem: {err}");
            let lines: Vec<&str> = text.split('\n').collect();
            for p in problems {
                assert_eq!(p.file, path, "{p}");
                assert!(
                    (1..=lines.len()).contains(&p.line),
                    "line {} outside the text's {} lines: {p}",
                    p.line,
                    lines.len()
                );
                let columns = lines[p.line - 1].chars().count() + 1;
                assert!(
                    (1..=columns).contains(&p.column),
                    "column {} outside line {} ({} columns): {p}",
                    p.column,
                    p.line,
                    columns
                );
            }
        }
    }
}

/// A config that passed validation must be usable: the table builds and
/// every name it defines can be asked for over both transports.
fn check_accepted(config: Config) {
    let metrics = Metrics::default();
    let mut names: Vec<Name> = vec![config.domain.name.clone()];
    names.extend(config.records.iter().map(|r| r.name.clone()));
    names.extend(config.services.iter().map(|s| s.name.clone()));
    names.truncate(64);
    let counters = metrics.answer_counters(&config);
    let snapshot = Snapshot::initial(Arc::new(config), Drains::default(), None, counters);
    let source = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    for name in names {
        for qtype in [
            RecordType::A,
            RecordType::AAAA,
            RecordType::ANY,
            RecordType::NS,
        ] {
            let mut message = Message::query();
            message.add_query(Query::query(name.clone(), qtype));
            let Ok(bytes) = message.to_vec() else {
                continue;
            };
            let parsed = Message::from_vec(&bytes).ok();
            for transport in [Transport::Udp, Transport::Tcp] {
                let reply = answer(&bytes, transport, source, &snapshot)
                    .unwrap_or_else(|| panic!("no {transport:?} reply for {name} {qtype}"));
                check_reply(&bytes, parsed.as_ref(), transport, &reply.wire, &snapshot);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of `corpus/<target>/` through the same checks, on stable.
    fn replay(target: &str, check: fn(&[u8])) -> usize {
        replay_dir(&Path::new("corpus").join(target), check)
    }

    fn replay_dir(dir: &Path, check: fn(&[u8])) -> usize {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            check(&data);
            n += 1;
        }
        n
    }

    #[test]
    fn request_corpus_replays() {
        assert!(replay("request", check_request) > 0);
    }

    #[test]
    fn config_corpus_replays() {
        assert!(replay("config", check_config) > 0);
    }

    /// Inputs that broke an invariant because of a bug in src/, named for
    /// it; also in corpus/ once fixed, so every fuzz run tries them first.
    /// A new one goes here (and stays out of corpus/ with an `#[ignore]`d
    /// test of its own while the bug is open: see README.md).
    #[test]
    fn regressions_replay() {
        assert!(replay_dir(Path::new("regressions/request"), check_request) > 0);
    }

    /// Found by fuzzing (fixed in b92007b): a query with many questions was
    /// answered FORMERR with all of them echoed, over the UDP size limit.
    /// Here without compression tricks: 20 questions, no EDNS.
    #[test]
    fn many_questions_stay_within_the_udp_limit() {
        let mut message = Message::query();
        for i in 0..20 {
            let name = format!("question-{i:02}-{}.example.", "x".repeat(20));
            message.add_query(Query::query(
                Name::from_ascii(&name).unwrap(),
                RecordType::A,
            ));
        }
        check_request(&message.to_vec().unwrap());
    }

    #[test]
    fn the_request_snapshot_builds_from_the_example_and_extras() {
        let snapshot = &*SNAPSHOT;
        assert!(snapshot.config.services.len() >= 6);
        assert!(snapshot.router.geo.is_some());
    }
}
