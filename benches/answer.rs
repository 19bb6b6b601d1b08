//! Criterion benches of the answer path and of building a snapshot.
//!
//! `answer/*` times the general path, `dns::answer`, on request bytes: a
//! static record, a geo-routed service answer with and without ECS, and
//! NXDOMAIN, against the shipped example and its GeoIP database. `fast/*`
//! times `dns::fast::answer` on the same requests as the UDP loop calls it
//! (a reused reply buffer, the thread's decision memo); over many subnets
//! the memo misses once per /24 and then hits; `fast/random_subnets`
//! sends a new /24 every query, so the memo always misses (a flood's
//! worst case).
//! `snapshot/*` times a full rebuild, what every health transition costs.
//! Run with `cargo bench --bench answer`.

use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RecordType};
use meridian::config::Config;
use meridian::dns::{Transport, answer, fast};
use meridian::health::drains::Drains;
use meridian::metrics::Metrics;
use meridian::routing::geo::GeoDb;
use meridian::routing::memo::DecisionMemo;
use meridian::snapshot::Snapshot;

fn example() -> (Arc<Config>, Option<Arc<GeoDb>>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/example.toml");
    let config = Config::load(&path).expect("example config");
    let geo = config
        .geoip
        .as_ref()
        .map(|g| Arc::new(GeoDb::open(&g.files).expect("shipped GeoIP database")));
    (Arc::new(config), geo)
}

fn request(name: &str, qtype: RecordType, ecs: Option<&str>) -> Vec<u8> {
    let mut message = Message::query();
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    if let Some(subnet) = ecs {
        let net: ipnet::IpNet = subnet.parse().unwrap();
        edns.options_mut()
            .insert(EdnsOption::Subnet(ClientSubnet::new(
                net.addr(),
                net.prefix_len(),
                0,
            )));
    }
    message.set_edns(edns);
    message.to_vec().unwrap()
}

fn answer_path(c: &mut Criterion) {
    let (config, geo) = example();
    let metrics = Metrics::default();
    let counters = metrics.answer_counters(&config);
    let snapshot = Snapshot::initial(config, Drains::default(), geo, counters);
    let source: IpAddr = "192.0.2.77".parse().unwrap();
    let cases = [
        (
            "static_a",
            request("mail.gslb.example.", RecordType::A, None),
        ),
        (
            "geo_source",
            request("www.gslb.example.", RecordType::A, None),
        ),
        (
            "geo_ecs",
            request("www.gslb.example.", RecordType::A, Some("193.0.0.0/24")),
        ),
        (
            "nxdomain",
            request("nope.gslb.example.", RecordType::A, None),
        ),
    ];
    let mut group = c.benchmark_group("answer");
    for (label, bytes) in &cases {
        assert!(answer(bytes, Transport::Udp, source, &snapshot).is_some());
        group.bench_function(*label, |b| {
            b.iter(|| answer(black_box(bytes), Transport::Udp, source, &snapshot))
        });
    }
    // Many different client subnets, so GeoIP caching is exercised too.
    let subnets: Vec<Vec<u8>> = (0..1024u32)
        .map(|i| {
            let a = [
                (i * 37 % 223 + 1) as u8,
                (i * 11 % 256) as u8,
                (i % 256) as u8,
                0,
            ];
            let subnet = format!("{}.{}.{}.0/24", a[0], a[1], a[2]);
            request("www.gslb.example.", RecordType::A, Some(&subnet))
        })
        .collect();
    let mut i = 0;
    group.bench_function("geo_ecs_1024_subnets", |b| {
        b.iter(|| {
            i = (i + 1) % subnets.len();
            answer(black_box(&subnets[i]), Transport::Udp, source, &snapshot)
        })
    });
    group.finish();

    let mut group = c.benchmark_group("fast");
    let mut memo = DecisionMemo::new();
    let mut out = Vec::with_capacity(1232);
    let mut fast_answer = |bytes: &[u8]| {
        fast::answer(
            bytes,
            Transport::Udp,
            source,
            &snapshot,
            &mut memo,
            &mut out,
        )
        .is_some()
    };
    for (label, bytes) in &cases {
        assert!(fast_answer(bytes), "{label} is a fast-path shape");
        group.bench_function(*label, |b| b.iter(|| fast_answer(black_box(bytes))));
    }
    group.bench_function("geo_ecs_1024_subnets", |b| {
        b.iter(|| {
            i = (i + 1) % subnets.len();
            fast_answer(black_box(&subnets[i]))
        })
    });
    // A random-subnet flood: a new /24 every query, so the memo always
    // misses. The ECS address is the request's last three bytes.
    let mut random = request("www.gslb.example.", RecordType::A, Some("1.0.0.0/24"));
    let tail = random.len() - 3;
    let mut n = 0u32;
    group.bench_function("random_subnets", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            let h = n.wrapping_mul(0x9E37_79B1) >> 8;
            random[tail..].copy_from_slice(&[(h >> 16) as u8 % 223 + 1, (h >> 8) as u8, h as u8]);
            fast_answer(black_box(&random))
        })
    });
    group.finish();
}

fn snapshot_build(c: &mut Criterion) {
    let (config, geo) = example();
    let metrics = Metrics::default();
    c.bench_function("snapshot/example", |b| {
        b.iter(|| {
            let counters = metrics.answer_counters(&config);
            Snapshot::initial(config.clone(), Drains::default(), geo.clone(), counters)
        })
    });
    // A large domain: 1,000 services of 3 endpoints each.
    let text = std::fs::read_to_string(&config.source).unwrap();
    let mut big = text.split("[geoip]").next().unwrap().to_string();
    big.push_str(
        &text
            .split("# Static records")
            .nth(1)
            .map(|t| format!("# Static records{t}"))
            .unwrap(),
    );
    for s in 0..1000 {
        big.push_str(&format!(
            "\n[[services]]\nname = \"svc{s}\"\n[services.check]\nkind = \"none\"\n\
             [[services.endpoints]]\nzone = \"us-east\"\naddresses = [\"192.0.2.{}\"]\n\
             [[services.endpoints]]\nzone = \"eu-west\"\naddresses = [\"198.51.100.{}\"]\n\
             [[services.endpoints]]\nzone = \"ap-south\"\naddresses = [\"203.0.113.{}\"]\n",
            s % 250 + 1,
            s % 250 + 1,
            s % 250 + 1
        ));
    }
    let big = Arc::new(Config::parse(&big, &config.source).unwrap_or_else(|e| panic!("{e}")));
    c.bench_function("snapshot/1000_services", |b| {
        b.iter(|| {
            let counters = metrics.answer_counters(&big);
            Snapshot::initial(big.clone(), Drains::default(), None, counters)
        })
    });
}

criterion_group!(benches, answer_path, snapshot_build);
criterion_main!(benches);
