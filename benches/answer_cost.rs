//! What one fast-path answer costs in instructions and heap allocations,
//! on a memo hit and on a memo miss, through `fast::answer_or_send_kept`
//! as the sockets' loops call it (a static or negative reply is the kept
//! one after the first). Not a timing bench: it answers a fixed number of
//! queries so that callgrind can count them.
//!
//! `cargo bench --bench answer_cost -- MODE N` answers `N` queries for
//! `www` (geo routed, with ECS) against the shipped example and its
//! GeoIP database, after a warm-up of the same queries, and prints the
//! heap allocations per answer (a counting global allocator). Modes:
//! `hit` (one /24 every time), `subnets` (1,024 /24s in turn: misses
//! once each, then hits), `random` (a new /24 every query: the memo
//! always misses, the worst case of a random-subnet flood), `static`
//! (a static A record), `nxdomain` and `junk` (a new name every query,
//! NXDOMAIN: a random-subdomain flood, where no reply is ever kept again);
//! `split-hit` and `split-random` are
//! `hit` and `random` for `bg`, a service like `www` whose every zone
//! holds two endpoints (blue 90, green 10), split per client prefix; and
//! on the example signed with a fresh key (`[dnssec]`), `signed_do0` and
//! `signed_do1`: the `hit` query without and with the DO bit (DO=1 appends
//! the pre-made RRSIG), and `signed_nxdomain_do0` and
//! `signed_nxdomain_do1` (DO=1 adds the SOA's RRSIG and two NSECs with
//! theirs).
//!
//! Instructions per answer: run it under callgrind at two query counts
//! and divide the difference by the difference in counts, which cancels
//! start-up and warm-up:
//!
//! ```sh
//! cargo bench --bench answer_cost --no-run   # prints the binary's path
//! for n in 100000 200000; do valgrind --tool=callgrind \
//!   --callgrind-out-file=/tmp/cg.$n target/release/deps/answer_cost-* random $n; done
//! ```
//! (`benches/answer_cost.sh` does exactly that for every mode.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RecordType};
use meridian::config::Config;
use meridian::dns::fast::ThreadCaches;
use meridian::dns::{Transport, fast};
use meridian::health::drains::Drains;
use meridian::metrics::Metrics;
use meridian::routing::geo::GeoDb;
use meridian::snapshot::Snapshot;

/// The system allocator, counting allocations (this bench is one thread).
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call goes to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// `www` again as `bg`, with two endpoints in each zone.
const BLUE_GREEN: &str = r#"
[[services]]
name = "bg"
[services.check]
kind = "none"
[[services.endpoints]]
zone = "us-east"
name = "blue"
weight = 90
addresses = ["192.0.2.10"]
[[services.endpoints]]
zone = "us-east"
name = "green"
weight = 10
addresses = ["192.0.2.11"]
[[services.endpoints]]
zone = "eu-west"
name = "blue"
weight = 90
addresses = ["198.51.100.10"]
[[services.endpoints]]
zone = "eu-west"
name = "green"
weight = 10
addresses = ["198.51.100.11"]
[[services.endpoints]]
zone = "ap-south"
name = "blue"
weight = 90
addresses = ["203.0.113.10"]
[[services.endpoints]]
zone = "ap-south"
name = "green"
weight = 10
addresses = ["203.0.113.11"]
"#;

fn request(name: &str, ecs: Option<[u8; 3]>) -> Vec<u8> {
    let mut message = Message::query();
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    if let Some([a, b, c]) = ecs {
        let addr = IpAddr::from([a, b, c, 0]);
        edns.options_mut()
            .insert(EdnsOption::Subnet(ClientSubnet::new(addr, 24, 0)));
    }
    message.set_edns(edns);
    message.to_vec().unwrap()
}

/// Distinct /24s the `random` mode asks from, in turn: more than any run
/// asks (answer_cost.sh's largest is 2 × 200,000 after a 20,000 warm-up),
/// so none is asked twice.
const FLOOD_SUBNETS: u32 = 1 << 20;

/// A /24 that `i` maps to, spread over the public IPv4 space.
fn subnet(i: u32) -> [u8; 3] {
    // A multiplicative hash walks 2^24 /24s without repeating.
    let n = i.wrapping_mul(0x9E37_79B1) >> 8;
    let first = (n >> 16) as u8 % 223 + 1;
    [first, (n >> 8) as u8, n as u8]
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let mode = args.first().map_or("random", String::as_str).to_string();
    let count: u32 = args.get(1).map_or(100_000, |n| n.parse().expect("a count"));

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/example.toml");
    let (mode, name, extra) = match mode.strip_prefix("split-") {
        Some(mode) => (mode.to_string(), "bg.gslb.example.", BLUE_GREEN),
        None => (mode, "www.gslb.example.", ""),
    };
    let mut text = std::fs::read_to_string(&path).expect("example config");
    text.push('\n');
    text.push_str(extra);
    if mode.starts_with("signed_") {
        let (pem, _) = meridian::dnssec::key::SigningKey::generate(
            meridian::dnssec::key::Algorithm::EcdsaP256Sha256,
        )
        .unwrap();
        let key = std::env::temp_dir().join(format!("meridian-cost-{}.pem", std::process::id()));
        std::fs::write(&key, pem).unwrap();
        text.push_str(&format!("\n[dnssec]\nkey_file = \"{}\"\n", key.display()));
    }
    let config = Config::parse(&text, &path).expect("example config");
    let geo = config
        .geoip
        .as_ref()
        .map(|g| Arc::new(GeoDb::open(&g.files).expect("shipped GeoIP database")));
    let config = Arc::new(config);
    let counters = Metrics::default().answer_counters(&config);
    let snapshot = Snapshot::initial(config, Drains::default(), geo, counters);
    let source: IpAddr = "192.0.2.77".parse().unwrap();

    let fixed = match mode.as_str() {
        // `hit` asks from one /24 the way `random` asks from many (see
        // `ecs_sequence` below): their difference is the answer's alone.
        "hit" => None,
        "static" => Some(request("mail.gslb.example.", None)),
        "nxdomain" => Some(request("nope.gslb.example.", None)),
        "junk" => None,
        "signed_do0" => Some(request("www.gslb.example.", Some([193, 0, 0]))),
        "signed_do1" | "signed_nxdomain_do1" => {
            let bytes = if mode == "signed_do1" {
                request("www.gslb.example.", Some([193, 0, 0]))
            } else {
                request("nope.gslb.example.", None)
            };
            let mut message = Message::from_vec(&bytes).unwrap();
            message.edns.as_mut().unwrap().set_dnssec_ok(true);
            Some(message.to_vec().unwrap())
        }
        "signed_nxdomain_do0" => Some(request("nope.gslb.example.", None)),
        "subnets" | "random" => None,
        other => panic!(
            "unknown mode {other}: hit, subnets, random, static, nxdomain, junk, split-hit, split-random, \
             signed_do0, signed_do1, signed_nxdomain_do0 or signed_nxdomain_do1"
        ),
    };
    let subnets: Vec<Vec<u8>> = (0..1024).map(|i| request(name, Some(subnet(i)))).collect();
    // One request rewritten in place per query: the ECS address is its
    // last three bytes, taken in turn from `ecs_sequence`. `hit` and
    // `random` both ask this way, so the harness costs them the same and
    // their difference is the answer's. The /24s are made before anything
    // is counted, a fixed number whatever the count, so their making
    // cancels out of the difference answer_cost.sh takes.
    let mut rewritten = request(name, Some([0, 0, 0]));
    let tail = rewritten.len() - 3;
    let ecs_sequence: Vec<[u8; 3]> = if mode == "random" {
        (0..FLOOD_SUBNETS).map(subnet).collect()
    } else {
        vec![[193, 0, 0]]
    };

    // `junk`: a name never asked before every query (a random-subdomain
    // flood), its first label rewritten in place from the count.
    let mut junk = request("00000000.gslb.example.", None);

    let mut caches = ThreadCaches::new();
    let mut out = Vec::with_capacity(1232);
    let mut next = 0u32;
    let mut run = |n: u32, caches: &mut ThreadCaches, out: &mut Vec<u8>| {
        let mut answered = 0u32;
        for _ in 0..n {
            let bytes: &[u8] = match (&fixed, mode.as_str()) {
                (Some(bytes), _) => bytes,
                (None, "subnets") => &subnets[next as usize % subnets.len()],
                (None, "junk") => {
                    for (i, byte) in junk[13..21].iter_mut().enumerate() {
                        *byte = b"0123456789abcdef"[(next >> (28 - 4 * i)) as usize & 15];
                    }
                    &junk
                }
                _ => {
                    let ecs: &mut [u8; 3] = (&mut rewritten[tail..]).try_into().unwrap();
                    *ecs = ecs_sequence[next as usize % ecs_sequence.len()];
                    &rewritten
                }
            };
            next = next.wrapping_add(1);
            let reply = fast::answer_or_send_kept(
                black_box(bytes),
                Transport::Udp,
                source,
                &snapshot,
                caches,
                out,
            );
            answered += u32::from(reply.is_some());
        }
        answered
    };
    // Warm-up: the memo's and the GeoIP cache's tables reach their size,
    // the reply buffer its capacity.
    let warm = count.min(20_000);
    assert_eq!(
        run(warm, &mut caches, &mut out),
        warm,
        "every query answered"
    );
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let answered = run(count, &mut caches, &mut out);
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(answered, count, "every query answered on the fast path");
    let (hits, misses) = caches.memo.counts();
    println!(
        "{mode}: {count} answers, {:.4} allocations per answer, memo hits {hits} misses {misses} \
         (settled by record {})",
        allocations as f64 / f64::from(count),
        caches.memo.settled()
    );
}
