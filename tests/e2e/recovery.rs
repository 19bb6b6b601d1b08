//! How a hang is detected and how a stall ends, against a real HTTP load
//! balancer that holds its requests the way a stopped process does.
//!
//! Times are read from the admin API's `last_probe` and `since` stamps,
//! which the node takes from its own clock as probes end; the bounds say
//! which evidence the node acted on, with room for a loaded machine.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::backend::{Backend, Mode};
use crate::harness::*;

const WITHIN: Duration = Duration::from_secs(10);

/// One zone, probed every second with a one-second timeout: the quick
/// re-probe interval is 200 ms.
fn config(backend: &Backend) -> String {
    format!(
        r#"
[domain]
name = "gslb.test."
[[domain.nameservers]]
name = "ns1"
addresses = ["192.0.2.53"]
[[zones]]
name = "a"
latitude = 0.0
longitude = 0.0
[[services]]
name = "www"
[[services.endpoints]]
zone = "a"
addresses = ["{}"]
check = {{ port = {}, interval = "1s", timeout = "1s", rise = 2, fall = 2 }}
"#,
        backend.addr.ip(),
        backend.addr.port()
    )
}

fn address(node: &Node) -> Value {
    let (status, body) = crate::health::admin(node, "GET", "/v1/zones/a", None);
    assert_eq!(status, 200, "{body}");
    body["services"][0]["addresses"][0].clone()
}

/// Milliseconds since the epoch of an RFC 3339 stamp as the API writes it
/// (`2026-12-05T00:44:17.617Z`).
fn stamp_ms(text: &Value) -> u64 {
    let text = text
        .as_str()
        .unwrap_or_else(|| panic!("not a stamp: {text}"));
    let (date, time) = text.trim_end_matches('Z').split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let (hms, ms) = time.split_once('.').unwrap();
    let t: Vec<u64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
    // Days from the civil date (proleptic Gregorian), independently of the
    // server's own conversion.
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe - 719_468) as u64;
    ((days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2]) * 1000) + ms.parse::<u64>().unwrap()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn the_stamp_reader_agrees_with_known_dates() {
    assert_eq!(stamp_ms(&Value::from("1970-01-01T00:00:00.000Z")), 0);
    assert_eq!(
        stamp_ms(&Value::from("2000-02-29T00:00:01.250Z")),
        951_782_401_250
    );
}

#[test]
fn a_hang_is_confirmed_by_a_short_second_probe_not_a_second_timeout() {
    let backend = Backend::start("127.0.0.1");
    let node = Node::start(&config(&backend));
    wait_until("up", WITHIN, || address(&node)["observed"] == "up");
    backend.set_mode(Mode::Stalled);
    // The end of the first probe that timed out...
    let mut first_failure = None;
    wait_until("a first timeout", WITHIN, || {
        let a = address(&node);
        if a["consecutive_fail"] == 1 {
            first_failure = Some(stamp_ms(&a["last_probe"]));
            true
        } else {
            a["observed"] == "down"
        }
    });
    let first_failure = first_failure.expect("the first failure was seen before the flip");
    // ...and the flip, made by the probe that confirmed it.
    wait_until("down", WITHIN, || address(&node)["observed"] == "down");
    let down_at = stamp_ms(&address(&node)["since"]);
    let confirm = down_at - first_failure;
    // A second full timeout would take 1,000 ms; the confirming probe's
    // deadline is the quick re-probe interval (200 ms).
    assert!(
        confirm < 700,
        "the hang took {confirm} ms after the first timeout to confirm"
    );
    backend.resume();
}

#[test]
fn a_stalled_load_balancer_is_not_brought_back_by_the_burst_of_replies_when_it_resumes() {
    let backend = Backend::start("127.0.0.2");
    let node = Node::start(&config(&backend));
    wait_until("up", WITHIN, || address(&node)["observed"] == "up");
    backend.set_mode(Mode::Stalled);
    wait_until("down", WITHIN, || address(&node)["observed"] == "down");
    // Stay stalled a while: a probe is waiting on it when it resumes.
    std::thread::sleep(Duration::from_millis(1500));
    let resumed = now_ms();
    backend.resume();
    wait_until("up again", WITHIN, || address(&node)["observed"] == "up");
    let up_at = stamp_ms(&address(&node)["since"]);
    // The waiting probe's reply and the one right behind it are one piece
    // of evidence; the second counted success comes from a probe started a
    // quick re-probe interval (200 ms) after the first ended.
    assert!(
        up_at >= resumed + 199,
        "brought back {} ms after resuming, by its queued replies",
        up_at as i64 - resumed as i64
    );
}
