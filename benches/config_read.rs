//! How long reading a 10,000-service config takes: fresh (`meridian
//! check`, start-up), and again after an edit, the reload's read phase,
//! which reuses the services whose text is unchanged. The config is the
//! one `benches/reload.sh` generates. Wall time and this process's CPU time
//! (the machine may be shared: CPU time shows the work, wall time the
//! parallel read). Then the rest of a reload as the publisher does it, step
//! by step, in this thread's CPU time: carrying health over, applying the
//! config, the answer counters, the snapshot's inputs and its build. Not a
//! criterion bench: `cargo bench --bench config_read`.

use std::path::Path;
use std::time::{Duration, Instant};

use std::sync::Arc;

use meridian::config::Config;
use meridian::health::address_keys;
use meridian::health::drains::Drains;
use meridian::health::state::AddressHealth;
use meridian::metrics::Metrics;
use meridian::publisher::state::{Change, Reloaded, State};

/// `ttl`: set on every service, so each one's text differs from a config
/// without it.
fn generate(services: usize, version: usize, ttl: Option<u32>) -> String {
    let mut out = String::from(
        "[domain]\nname = \"gslb.test.\"\n[[domain.nameservers]]\nname = \"ns1\"\naddresses = [\"192.0.2.53\"]\n",
    );
    out += &format!("[[records]]\nname = \"version\"\ntype = \"TXT\"\ndata = \"v{version}\"\n");
    for (zone, lat, lon) in [
        ("us-east", 38.9, -77.4),
        ("eu-west", 53.3, -6.3),
        ("ap-south", 1.3, 103.8),
    ] {
        out += &format!("[[zones]]\nname = \"{zone}\"\nlatitude = {lat}\nlongitude = {lon}\n");
    }
    for s in 0..services {
        let (a, b) = (s / 250, s % 250 + 1);
        let ttl = ttl.map_or(String::new(), |t| format!("ttl = {t}\n"));
        out += &format!(
            "[[services]]\nname = \"svc{s}\"\n{ttl}[services.check]\nkind = \"none\"\n\
             [[services.endpoints]]\nzone = \"us-east\"\naddresses = [\"10.1.{a}.{b}\"]\n\
             [[services.endpoints]]\nzone = \"eu-west\"\naddresses = [\"10.2.{a}.{b}\"]\n\
             [[services.endpoints]]\nzone = \"ap-south\"\naddresses = [\"10.3.{a}.{b}\"]\n"
        );
    }
    out
}

/// This process's user + system CPU time.
fn cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage writes one rusage into the pointer it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// The publisher's steps after the read, `runs` times from `previous` to
/// `next`; the median of each step's CPU time (the process's, so work
/// done on other threads counts) and of the whole's wall time.
fn phases(previous: &Arc<Config>, next: &Arc<Config>, runs: usize) {
    let metrics = Metrics::default();
    let mut walls = Vec::new();
    let mut steps: Vec<(&str, Vec<Duration>)> = [
        "carry over",
        "board",
        "apply",
        "counters",
        "inputs",
        "build",
    ]
    .iter()
    .map(|s| (*s, Vec::new()))
    .collect();
    for _ in 0..runs {
        let mut state = State::new(previous.clone(), Drains::default(), None);
        let counters = metrics.answer_counters(previous);
        let old = meridian::snapshot::build(state.next_inputs(counters));
        let now = std::time::SystemTime::now();
        let board: Vec<_> = address_keys(previous)
            .map(|k| (k, AddressHealth::always_up(now)))
            .collect();
        let live_board = meridian::health::initial_board(previous, now);
        let wall = Instant::now();
        let mut t = cpu();
        let mut lap = |i: usize, steps: &mut Vec<(&str, Vec<Duration>)>| {
            let c = cpu();
            steps[i].1.push(c - t);
            t = c;
        };
        let carried = meridian::publisher::reload::carry_over(previous, board, next, now);
        let observed = carried.iter().map(|(k, h)| (*k, h.observed)).collect();
        lap(0, &mut steps);
        // The board the probes write and the admin API reads, refilled.
        live_board.clear();
        for (key, health) in carried {
            live_board.insert(key, health);
        }
        lap(1, &mut steps);
        let _ = state.apply(Change::Reloaded(Reloaded {
            config: next.clone(),
            geo: None,
            observed,
        }));
        lap(2, &mut steps);
        let counters =
            metrics.answer_counters_after(next, Some((&old.config, &old.answer_counters)));
        lap(3, &mut steps);
        let inputs = state.next_inputs(counters);
        lap(4, &mut steps);
        std::hint::black_box(meridian::snapshot::build(inputs));
        lap(5, &mut steps);
        walls.push(wall.elapsed());
    }
    walls.sort();
    let line: Vec<String> = steps
        .iter_mut()
        .map(|(name, times)| {
            times.sort();
            format!("{name} {:.1}", times[times.len() / 2].as_secs_f64() * 1e3)
        })
        .collect();
    println!(
        "  then, ms of CPU: {}; {:.1} ms wall for them all",
        line.join(", "),
        walls[walls.len() / 2].as_secs_f64() * 1e3
    );
}

/// ONLY=word runs just the measurements whose name holds it (for a
/// profiler).
fn measure(what: &str, runs: usize, mut f: impl FnMut() -> Config) {
    if std::env::var("ONLY").is_ok_and(|only| !what.contains(&only)) {
        return;
    }
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    for _ in 0..runs {
        let (w, c) = (Instant::now(), cpu());
        std::hint::black_box(f());
        walls.push(w.elapsed());
        cpus.push(cpu() - c);
    }
    walls.sort();
    cpus.sort();
    println!(
        "{what}: median {:.1} ms wall (min {:.1}), {:.1} ms CPU",
        walls[runs / 2].as_secs_f64() * 1e3,
        walls[0].as_secs_f64() * 1e3,
        cpus[runs / 2].as_secs_f64() * 1e3,
    );
}

fn main() {
    let services = std::env::var("SERVICES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let path = Path::new("/nonexistent/meridian.toml");
    let base = generate(services, 0, None);
    let one = generate(services, 1, None);
    let all = generate(services, 0, Some(31));
    let parse = |text: &str, previous: Option<&Config>| {
        Config::parse_after(text, path, previous).unwrap_or_else(|e| panic!("{e}"))
    };
    let previous = parse(&base, None);
    println!("{services} services, {} bytes of config", base.len());
    measure("fresh read, one pass (`meridian check`'s way)", 7, || {
        Config::parse(&base, path).unwrap()
    });
    measure("fresh read, entries in parallel (start-up)", 7, || {
        parse(&base, None)
    });
    measure("read after one record changed", 15, || {
        parse(&one, Some(&previous))
    });
    let previous = Arc::new(previous);
    if std::env::var("ONLY").is_err() {
        phases(&previous, &Arc::new(parse(&one, Some(&previous))), 9);
    }
    measure("read after every service changed", 7, || {
        parse(&all, Some(&previous))
    });
    if std::env::var("ONLY").is_err() {
        phases(&previous, &Arc::new(parse(&all, Some(&previous))), 5);
    }
}
