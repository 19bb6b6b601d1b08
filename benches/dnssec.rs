//! What DNSSEC costs: a DO=1 geo+ECS answer against the same answer with
//! DO=0 on a signed domain (fast and general paths), and building a
//! snapshot of 10,000 services with signing, cold (every set signed) and
//! warm (the signature cache of the previous build).
//! Run with `cargo bench --bench dnssec`.

use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RecordType};
use meridian::config::Config;
use meridian::dns::{Transport, answer, fast};
use meridian::dnssec::key::{Algorithm, SigningKey};
use meridian::health::drains::Drains;
use meridian::metrics::Metrics;
use meridian::routing::geo::GeoDb;
use meridian::routing::memo::DecisionMemo;
use meridian::snapshot::{self, Snapshot};

/// The shipped example (GeoIP included) with a fresh key appended.
fn signed_example(extra: &str) -> Config {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("zones/example.toml");
    let (pem, _) = SigningKey::generate(Algorithm::EcdsaP256Sha256).unwrap();
    let key = std::env::temp_dir().join(format!("meridian-bench-{}.pem", std::process::id()));
    std::fs::write(&key, pem).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let text = format!(
        "{text}\n{extra}\n[dnssec]\nkey_file = \"{}\"\n",
        key.display()
    );
    Config::parse(&text, &path).unwrap_or_else(|e| panic!("{e}"))
}

fn request(dnssec_ok: bool) -> Vec<u8> {
    let mut message = Message::query();
    let name = Name::from_ascii("www.gslb.example.").unwrap();
    message.add_query(Query::query(name, RecordType::A));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.set_dnssec_ok(dnssec_ok);
    edns.options_mut()
        .insert(EdnsOption::Subnet(ClientSubnet::new(
            "193.0.0.0".parse().unwrap(),
            24,
            0,
        )));
    message.set_edns(edns);
    message.to_vec().unwrap()
}

fn answers(c: &mut Criterion) {
    let config = Arc::new(signed_example(""));
    let geo = config
        .geoip
        .as_ref()
        .map(|g| Arc::new(GeoDb::open(&g.files).unwrap()));
    let counters = Metrics::default().answer_counters(&config);
    let snapshot = Snapshot::initial(config, Drains::default(), geo, counters);
    let source: IpAddr = "192.0.2.77".parse().unwrap();
    let mut memo = DecisionMemo::new();
    let mut out = Vec::with_capacity(1232);
    let mut group = c.benchmark_group("dnssec");
    for (label, dnssec_ok) in [("geo_ecs_do0", false), ("geo_ecs_do1", true)] {
        let bytes = request(dnssec_ok);
        let reply = fast::answer(
            &bytes,
            Transport::Udp,
            source,
            &snapshot,
            &mut memo,
            &mut out,
        );
        assert!(reply.is_some(), "{label} is a fast-path shape");
        group.bench_function(format!("fast/{label}"), |b| {
            b.iter(|| {
                fast::answer(
                    black_box(&bytes),
                    Transport::Udp,
                    source,
                    &snapshot,
                    &mut memo,
                    &mut out,
                )
                .is_some()
            })
        });
        group.bench_function(format!("general/{label}"), |b| {
            b.iter(|| answer(black_box(&bytes), Transport::Udp, source, &snapshot))
        });
    }
    group.finish();
}

fn signed_build(c: &mut Criterion) {
    // 10,000 services of 3 endpoints each, one answer per decision.
    let mut services = String::new();
    for s in 0..10_000 {
        let o = s % 250 + 1;
        services.push_str(&format!(
            "\n[[services]]\nname = \"svc{s}\"\n[services.check]\nkind = \"none\"\n\
             [[services.endpoints]]\nzone = \"us-east\"\naddresses = [\"192.0.2.{o}\"]\n\
             [[services.endpoints]]\nzone = \"eu-west\"\naddresses = [\"198.51.100.{o}\"]\n\
             [[services.endpoints]]\nzone = \"ap-south\"\naddresses = [\"203.0.113.{o}\"]\n"
        ));
    }
    let config = Arc::new(signed_example(&services));
    let metrics = Metrics::default();
    let mut group = c.benchmark_group("dnssec/snapshot_10000_services");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    let mut plain = (*config).clone();
    plain.dnssec = None;
    let plain = Arc::new(plain);
    group.bench_function("unsigned", |b| {
        b.iter(|| {
            let counters = metrics.answer_counters(&plain);
            Snapshot::initial(plain.clone(), Drains::default(), None, counters)
        })
    });
    group.bench_function("cold", |b| {
        b.iter(|| {
            let counters = metrics.answer_counters(&config);
            Snapshot::initial(config.clone(), Drains::default(), None, counters)
        })
    });
    let counters = metrics.answer_counters(&config);
    let first = Snapshot::initial(config.clone(), Drains::default(), None, counters);
    let made = first.signature_cache.made();
    group.bench_function("warm", |b| {
        b.iter(|| {
            snapshot::build(snapshot::Inputs {
                config: config.clone(),
                health: first.health.clone(),
                drains: Drains::default(),
                router: meridian::routing::Router {
                    geo: None,
                    cidr: meridian::routing::cidr_map(&config),
                    latency: Arc::default(),
                    local_latency: None,
                    peer_latency: Vec::new(),
                    uniform: None,
                },
                cluster: Default::default(),
                answer_counters: first.answer_counters.clone(),
                generation: 2,
                signature_cache: first.signature_cache.clone(),
            })
        })
    });
    assert_eq!(
        first.signature_cache.made(),
        made,
        "warm builds signed nothing"
    );
    eprintln!(
        "signatures made by one cold build of 10,000 services: {made}; sets signed: {}",
        first.signed.as_ref().map_or(0, |s| s.signature_count())
    );
    group.finish();
}

criterion_group!(benches, answers, signed_build);
criterion_main!(benches);
