//! Resident memory of a large node: 10,000 services and a latency table of
//! 1,000,000 client prefixes, measured from /proc/self/status. Not a timing
//! bench; run with `cargo bench --bench memory`.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use meridian::config::Config;
use meridian::health::drains::Drains;
use meridian::metrics::Metrics;
use meridian::routing::latency::LatencyTable;
use meridian::snapshot::Snapshot;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let base = rss_kib();
    let mut text = String::from(
        "[domain]\nname = \"gslb.test.\"\n[[domain.nameservers]]\nname = \"ns1\"\naddresses = [\"192.0.2.53\"]\n",
    );
    for z in 0..5 {
        text += &format!(
            "[[zones]]\nname = \"z{z}\"\nlatitude = {}.0\nlongitude = 0.0\n",
            z * 10
        );
    }
    for s in 0..10_000 {
        text += &format!(
            "[[services]]\nname = \"svc{s}\"\npolicy = \"latency\"\n[services.check]\nkind = \"none\"\n"
        );
        for z in 0..3 {
            text += &format!(
                "[[services.endpoints]]\nzone = \"z{z}\"\naddresses = [\"10.{}.{}.{}\"]\n",
                z,
                s / 256,
                s % 256
            );
        }
    }
    let started = Instant::now();
    let config =
        Arc::new(Config::parse(&text, Path::new("memory.toml")).unwrap_or_else(|e| panic!("{e}")));
    let parsed = started.elapsed();
    drop(text);
    let metrics = Metrics::default();
    let started = Instant::now();
    let counters = metrics.answer_counters(&config);
    let snapshot = Snapshot::initial(config.clone(), Drains::default(), None, counters);
    let built = started.elapsed();
    let with_services = rss_kib();

    let mut table = LatencyTable::default();
    let now = Instant::now();
    let started = Instant::now();
    for p in 0..1_000_000u32 {
        let prefix =
            ipnet::IpNet::new(std::net::Ipv4Addr::from(0x0100_0000 + (p << 8)).into(), 24).unwrap();
        table.push(prefix, (p % 5) as usize, f64::from(p % 97) + 1.0, now);
    }
    let pushed = started.elapsed();
    let with_table = rss_kib();
    let started = Instant::now();
    let view = table.view(0.2, 5.0);
    let frozen = started.elapsed();
    let with_latency = rss_kib();

    // Lookups in a scattered order, as clients arrive, so the figure
    // includes cache misses rather than a warm walk through the table. The
    // best of a few rounds, as other work on the machine only adds time.
    const LOOKUPS: u32 = 1_000_000;
    let mut per_lookup = std::time::Duration::MAX;
    for round in 0..5u32 {
        let mut addr = 0x9e37_79b9u32 ^ round;
        let mut found = 0u32;
        let started = Instant::now();
        for _ in 0..LOOKUPS {
            addr = addr.wrapping_mul(0x0019_660d).wrapping_add(0x3c6e_f35f);
            let client =
                std::net::Ipv4Addr::from(0x0100_0000 + ((addr % 1_000_000) << 8) + (addr >> 24));
            // The best zone, as routing reads it.
            let best = std::hint::black_box(&view)
                .lookup(client.into(), 32)
                .and_then(|(_, ranking)| ranking.order().next());
            found += u32::from(best.is_some());
        }
        per_lookup = per_lookup.min(started.elapsed() / LOOKUPS);
        assert_eq!(found, LOOKUPS);
    }

    println!(
        "memory: 10,000 services x 3 endpoints: snapshot RSS +{} MiB (config parse {:?}, snapshot build {:?})",
        (with_services - base) / 1024,
        parsed,
        built
    );
    println!(
        "memory: + latency table of 1,000,000 prefixes (working table and frozen view): RSS +{} MiB, total {} MiB",
        (with_latency - with_services) / 1024,
        with_latency / 1024
    );
    println!(
        "memory:   of which working table +{} MiB (1,000,000 pushes {:?}), frozen view +{} MiB (built in {:?})",
        (with_table - with_services) / 1024,
        pushed,
        (with_latency - with_table) / 1024,
        frozen
    );
    println!("latency view lookup, scattered /32 clients: {per_lookup:?} each");
    assert_eq!(view.len(), 1_000_000);
    drop((snapshot, table, view));
}
