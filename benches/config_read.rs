//! How long reading a 10,000-service config takes: fresh (`meridian
//! check`, start-up), and again after an edit, the reload's read phase,
//! which reuses the services whose text is unchanged. The config is the
//! one `benches/reload.sh` generates. Wall time and this process's CPU time
//! (the machine may be shared: CPU time shows the work, wall time the
//! parallel read). Not a criterion bench: `cargo bench --bench config_read`.

use std::path::Path;
use std::time::{Duration, Instant};

use meridian::config::Config;

fn generate(services: usize, version: usize, service_tag: &str) -> String {
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
        out += &format!(
            "[[services]]\nname = \"svc{s}{service_tag}\"\n[services.check]\nkind = \"none\"\n\
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
    let base = generate(services, 0, "");
    let one = generate(services, 1, "");
    let all = generate(services, 0, "x");
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
    measure("read after every service changed", 7, || {
        parse(&all, Some(&previous))
    });
}
