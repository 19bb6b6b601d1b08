//! Health checking end to end: real backends that die, hang, fail and
//! flap; the DNS answers and the admin API must follow.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use serde_json::Value;

use crate::backend::{Backend, Mode};
use crate::harness::*;

/// Generous bound for a state change: interval (200 ms) x fall (2) plus
/// room for a loaded CI machine. Behaviour, not speed, is under test.
const FLIP_WITHIN: Duration = Duration::from_secs(5);

const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];

/// A domain with one service `www` and an endpoint per backend, each zone
/// probed over HTTP at its backend's port.
fn config(backends: &[&Backend], check: &str, service_extra: &str, server_extra: &str) -> String {
    let mut text = format!(
        r#"
[server]
{server_extra}

[domain]
name = "gslb.test."

[[domain.nameservers]]
name = "ns1"
addresses = ["192.0.2.53"]
"#
    );
    for (i, _) in backends.iter().enumerate() {
        text += &format!(
            "\n[[zones]]\nname = \"{}\"\nlatitude = {}.0\nlongitude = 0.0\n",
            ZONES[i],
            i * 10
        );
    }
    // Health tests look at every endpoint at once: answer with all of them.
    let policy = if service_extra.contains("policy") {
        ""
    } else {
        "policy = \"all\""
    };
    text += &format!("\n[[services]]\nname = \"www\"\n{policy}\n{service_extra}\n");
    for (i, b) in backends.iter().enumerate() {
        text += &format!(
            "\n[[services.endpoints]]\nzone = \"{}\"\naddresses = [\"{}\"]\ncheck = {{ port = {}, interval = \"200ms\", timeout = \"200ms\", rise = 2, fall = 2, {check} }}\n",
            ZONES[i],
            b.addr.ip(),
            b.addr.port()
        );
    }
    text
}

fn answer(node: &Node) -> BTreeSet<String> {
    a_addrs(&node.udp(&query("www.gslb.test.", RecordType::A)).answers)
        .into_iter()
        .collect()
}

fn set(ips: &[&str]) -> BTreeSet<String> {
    ips.iter().map(|s| s.to_string()).collect()
}

fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < within {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{what}: not within {within:?}");
}

pub fn admin(node: &Node, method: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let client = reqwest::blocking::Client::new();
    let url = format!("http://{}{path}", node.admin);
    let mut request = match method {
        "GET" => client.get(url),
        "POST" => client.post(url),
        "DELETE" => client.delete(url),
        other => panic!("method {other}"),
    };
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().expect("admin answers");
    let status = response.status().as_u16();
    let text = response.text().unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("admin body is not JSON ({e}): {text}"));
    (status, body)
}

/// The admin view of one zone's `www` endpoint.
fn endpoint_view(node: &Node, zone: &str) -> Value {
    let (status, body) = admin(node, "GET", &format!("/v1/zones/{zone}"), None);
    assert_eq!(status, 200, "{body}");
    body["services"][0].clone()
}

fn three_backends() -> (Backend, Backend, Backend) {
    (
        Backend::start("127.0.0.1"),
        Backend::start("127.0.0.2"),
        Backend::start("127.0.0.3"),
    )
}

#[test]
fn a_refusing_endpoint_leaves_the_answer_and_comes_back() {
    let (mut a, b, c) = three_backends();
    let node = Node::start(&config(&[&a, &b, &c], "kind = \"http\"", "", ""));
    let all = set(&["127.0.0.1", "127.0.0.2", "127.0.0.3"]);
    assert_eq!(
        answer(&node),
        all,
        "unknown endpoints are answered at start"
    );
    wait_for("all endpoints probed up", FLIP_WITHIN, || {
        endpoint_view(&node, "zone-a")["addresses"][0]["observed"] == "up"
    });

    a.stop();
    wait_for("dead endpoint leaves the answer", FLIP_WITHIN, || {
        answer(&node) == set(&["127.0.0.2", "127.0.0.3"])
    });
    let view = endpoint_view(&node, "zone-a");
    assert_eq!(view["observed"], "down", "{view}");
    assert_eq!(view["serving"], false);
    let address = &view["addresses"][0];
    assert_eq!(address["observed"], "down");
    assert!(
        address["last_result"].as_str().unwrap().contains("refused"),
        "{address}"
    );
    assert!(address["consecutive_fail"].as_u64().unwrap() >= 2);

    a.restart();
    wait_for("recovered endpoint returns", FLIP_WITHIN, || {
        answer(&node) == all
    });
    let address = &endpoint_view(&node, "zone-a")["addresses"][0];
    assert_eq!(address["observed"], "up");
    assert_eq!(address["last_result"], "ok");
    assert!(address["rtt_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_hung_endpoint_costs_a_timeout_and_goes_down() {
    let (a, b, c) = three_backends();
    let node = Node::start(&config(&[&a, &b, &c], "kind = \"http\"", "", ""));
    a.set_mode(Mode::Hang);
    wait_for("hung endpoint leaves the answer", FLIP_WITHIN, || {
        answer(&node) == set(&["127.0.0.2", "127.0.0.3"])
    });
    let address = &endpoint_view(&node, "zone-a")["addresses"][0];
    assert!(
        address["last_result"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{address}"
    );
    // The other zones kept being probed while zone-a hung.
    assert_eq!(
        endpoint_view(&node, "zone-b")["addresses"][0]["last_result"],
        "ok"
    );
}

#[test]
fn an_http_500_is_down_and_a_slow_200_is_up() {
    let (a, b, c) = three_backends();
    let node = Node::start(&config(&[&a, &b, &c], "kind = \"http\"", "", ""));
    a.set_mode(Mode::Error);
    b.set_mode(Mode::Slow);
    wait_for("500 endpoint leaves the answer", FLIP_WITHIN, || {
        answer(&node) == set(&["127.0.0.2", "127.0.0.3"])
    });
    let a_view = &endpoint_view(&node, "zone-a")["addresses"][0];
    assert!(
        a_view["last_result"].as_str().unwrap().contains("500"),
        "{a_view}"
    );
    wait_for("slow endpoint probed up", FLIP_WITHIN, || {
        endpoint_view(&node, "zone-b")["addresses"][0]["observed"] == "up"
    });
    let b_view = &endpoint_view(&node, "zone-b")["addresses"][0];
    assert!(
        b_view["rtt_ms"].as_f64().unwrap() >= 100.0,
        "slow answers show in the smoothed RTT: {b_view}"
    );
}

/// The probe counter of zone-a's address (127.0.0.1) for `result`.
fn zone_a_probes(metrics: &str, result: &str) -> u64 {
    let series = format!(
        "meridian_probes_total{{service=\"www.gslb.test.\",zone=\"zone-a\",address=\"127.0.0.1\",result=\"{result}\"}} "
    );
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&series)?.parse().ok())
        .unwrap_or(0)
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[test]
fn a_flapping_endpoint_does_not_flip_on_every_probe() {
    let (a, b, c) = three_backends();
    // zone-a is probed every second; a failure is re-checked at a fifth of
    // that (README: "re-probed at a fifth of the interval").
    let text = config(&[&a, &b, &c], "kind = \"http\"", "", "");
    let fast = "interval = \"200ms\", timeout = \"200ms\"";
    assert!(text.contains(fast), "the check settings changed");
    let text = text.replacen(fast, "interval = \"1s\", timeout = \"500ms\"", 1);
    let node = Node::start(&text);
    wait_for("zone-a probed up", FLIP_WITHIN, || {
        endpoint_view(&node, "zone-a")["addresses"][0]["observed"] == "up"
    });
    a.set_mode(Mode::Flapping);
    // Watch the probe counters: each probe that lands alone between two
    // scrapes is timed, and the wait before the next probe is filed under
    // the result of the one before it.
    let counts = || {
        let (_, metrics) = metrics_text(&node);
        (
            zone_a_probes(&metrics, "ok"),
            zone_a_probes(&metrics, "fail"),
        )
    };
    let mut last = counts();
    let mut previous: Option<(Instant, bool)> = None;
    let (mut after_fail, mut after_ok) = (Vec::new(), Vec::new());
    let start = Instant::now();
    while after_fail.len() < 4 || after_ok.len() < 4 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "too few probes seen: after a failure {after_fail:?}, after a success {after_ok:?}"
        );
        assert!(
            answer(&node).contains("127.0.0.1"),
            "a single failed probe removed the endpoint"
        );
        std::thread::sleep(Duration::from_millis(20));
        let now = counts();
        let (ok, fail) = (now.0 - last.0, now.1 - last.1);
        last = now;
        let probe = match (ok, fail) {
            (0, 0) => continue,
            (0, 1) => Some(true),
            (1, 0) => Some(false),
            // Several probes between two scrapes: their times are unknown.
            _ => None,
        };
        let at = Instant::now();
        if let (Some((then, failed)), Some(_)) = (previous, probe) {
            let gap = at - then;
            if failed {
                after_fail.push(gap);
            } else {
                after_ok.push(gap);
            }
        }
        previous = probe.map(|failed| (at, failed));
    }
    // A failure is re-probed far sooner than the interval (about 200 ms
    // against 1 s); a success waits the interval.
    let (quick, normal) = (median(after_fail.clone()), median(after_ok.clone()));
    assert!(
        quick * 2 < normal,
        "re-probe after a failure {quick:?} (all: {after_fail:?}), after a success {normal:?} (all: {after_ok:?})"
    );
    let (_, metrics) = metrics_text(&node);
    assert!(
        !metrics.contains("meridian_health_transitions_total{service=\"www.gslb.test.\",zone=\"zone-a\",to=\"down\"}"),
        "{metrics}"
    );
}

#[test]
fn tcp_checks_follow_the_port() {
    let (mut a, b, c) = three_backends();
    let node = Node::start(&config(&[&a, &b, &c], "kind = \"tcp\"", "", ""));
    wait_for("tcp check up", FLIP_WITHIN, || {
        endpoint_view(&node, "zone-a")["addresses"][0]["observed"] == "up"
    });
    // A hung HTTP server still accepts: a TCP check stays up.
    a.set_mode(Mode::Hang);
    std::thread::sleep(Duration::from_millis(800));
    assert!(answer(&node).contains("127.0.0.1"));
    a.stop();
    wait_for("closed port leaves the answer", FLIP_WITHIN, || {
        !answer(&node).contains("127.0.0.1")
    });
}

#[test]
fn when_every_endpoint_is_down_the_service_fails_open() {
    let (mut a, mut b, mut c) = three_backends();
    let node = Node::start(&config(&[&a, &b, &c], "kind = \"http\"", "", ""));
    let all = set(&["127.0.0.1", "127.0.0.2", "127.0.0.3"]);
    a.stop();
    b.stop();
    wait_for("two endpoints down", FLIP_WITHIN, || {
        answer(&node) == set(&["127.0.0.3"])
    });
    c.stop();
    wait_for(
        "all-down service answers every endpoint",
        FLIP_WITHIN,
        || endpoint_view(&node, "zone-c")["observed"] == "down",
    );
    assert_eq!(answer(&node), all);
    let (_, metrics) = metrics_text(&node);
    assert!(
        metrics.contains("meridian_fail_open_total{service=\"www.gslb.test.\"} 1"),
        "{metrics}"
    );
}

#[test]
fn when_every_endpoint_is_down_a_fallback_can_answer() {
    let mut a = Backend::start("127.0.0.1");
    let node = Node::start(&config(
        &[&a],
        "kind = \"http\"",
        "all_down = \"fallback\"\nfallback = [\"192.0.2.99\"]",
        "",
    ));
    assert_eq!(answer(&node), set(&["127.0.0.1"]));
    a.stop();
    wait_for("fallback answers", FLIP_WITHIN, || {
        answer(&node) == set(&["192.0.2.99"])
    });
}

#[test]
fn a_drain_survives_a_restart_and_undrain_brings_the_zone_back() {
    let (a, b, c) = three_backends();
    let dir = std::env::temp_dir().join(format!("meridian-e2e-drain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");
    let _ = std::fs::remove_file(&state);
    let text = config(
        &[&a, &b, &c],
        "kind = \"http\"",
        "",
        &format!("state_file = \"{}\"", state.display()),
    );

    let node = Node::start(&text);
    let (status, body) = admin(&node, "POST", "/v1/zones/zone-b/drain", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changed"], true);
    assert_eq!(body["persisted"], true);
    // The drain is live when the request returns.
    assert_eq!(answer(&node), set(&["127.0.0.1", "127.0.0.3"]));
    let (status, body) = admin(&node, "POST", "/v1/zones/zone-c/endpoints/www/drain", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(answer(&node), set(&["127.0.0.1"]));
    node.stop();

    let node = Node::start(&text);
    assert_eq!(
        answer(&node),
        set(&["127.0.0.1"]),
        "drains restored at start"
    );
    let (_, zones) = admin(&node, "GET", "/v1/zones", None);
    assert_eq!(zones["zones"][1]["drained"], true, "{zones}");
    let zone_b = endpoint_view(&node, "zone-b");
    assert_eq!(zone_b["forced"], "drained (zone)");
    assert_eq!(zone_b["serving"], false);
    assert_eq!(endpoint_view(&node, "zone-c")["forced"], "drained");

    // Undrain: back once healthy (it is), observed state was kept apart.
    wait_for("zone-b probed up while drained", FLIP_WITHIN, || {
        endpoint_view(&node, "zone-b")["addresses"][0]["observed"] == "up"
    });
    let (status, _) = admin(&node, "POST", "/v1/zones/zone-b/undrain", None);
    assert_eq!(status, 200);
    let (status, _) = admin(
        &node,
        "POST",
        "/v1/zones/zone-c/endpoints/www.gslb.test./undrain",
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(answer(&node), set(&["127.0.0.1", "127.0.0.2", "127.0.0.3"]));
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["zones"].as_array().unwrap().len(), 0, "{saved}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn admin_errors_are_json_with_the_right_status() {
    let node = Node::start_example();
    let (status, body) = admin(&node, "GET", "/v1/zones/atlantis", None);
    assert_eq!(status, 404);
    assert!(
        body["error"].as_str().unwrap().contains("us-east"),
        "{body}"
    );
    let (status, body) = admin(
        &node,
        "POST",
        "/v1/zones/us-east/endpoints/nope/drain",
        None,
    );
    assert_eq!(status, 404);
    assert!(
        body["error"].as_str().unwrap().contains("no service"),
        "{body}"
    );
    let (status, body) = admin(&node, "GET", "/v1/nothing", None);
    assert_eq!(status, 404, "{body}");
    let (status, body) = admin(&node, "DELETE", "/v1/zones/us-east", None);
    assert_eq!(status, 405, "{body}");
    let (status, body) = admin(&node, "GET", "/healthz", None);
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
}

#[test]
fn with_a_token_writes_need_it() {
    let token = "0123456789abcdef0123";
    let text = example_config_text().replace(
        "[server]\n",
        &format!("[server]\nadmin_token = \"{token}\"\n"),
    );
    let node = Node::start(&text);
    let (status, body) = admin(&node, "POST", "/v1/zones/us-east/drain", None);
    assert_eq!(status, 401, "{body}");
    let (status, body) = admin(
        &node,
        "POST",
        "/v1/zones/us-east/drain",
        Some("wrong-token-wrong-token"),
    );
    assert_eq!(status, 401, "{body}");
    assert!(!body.to_string().contains(token), "the token never leaks");
    let (status, body) = admin(&node, "POST", "/v1/zones/us-east/drain", Some(token));
    assert_eq!(status, 200, "{body}");
    // Reads stay open.
    let (status, _) = admin(&node, "GET", "/v1/zones", None);
    assert_eq!(status, 200);
}

fn metrics_text(node: &Node) -> (u16, String) {
    let response = reqwest::blocking::get(format!("http://{}/metrics", node.admin)).unwrap();
    let status = response.status().as_u16();
    (status, response.text().unwrap())
}

#[test]
fn metrics_parse_as_prometheus_text() {
    let (a, b, c) = three_backends();
    let node = Node::start(&config(&[&a, &b, &c], "kind = \"http\"", "", ""));
    a.set_mode(Mode::Error);
    wait_for("a transition", FLIP_WITHIN, || {
        endpoint_view(&node, "zone-a")["observed"] == "down"
    });
    answer(&node);
    node.udp(&query("nope.gslb.test.", RecordType::A));
    let (status, text) = metrics_text(&node);
    assert_eq!(status, 200);
    for needle in [
        "meridian_dns_queries_total{transport=\"udp\",qtype=\"A\"}",
        "meridian_dns_responses_total{rcode=\"NXDOMAIN\"} 1",
        "meridian_service_answers_total{service=\"www.gslb.test.\",zone=\"zone-b\"}",
        "meridian_probes_total{service=\"www.gslb.test.\",zone=\"zone-a\",address=\"127.0.0.1\",result=\"fail\"}",
        "meridian_probe_rtt_seconds_bucket{service=\"www.gslb.test.\",zone=\"zone-b\",address=\"127.0.0.2\",le=\"+Inf\"}",
        "meridian_health_transitions_total{service=\"www.gslb.test.\",zone=\"zone-a\",to=\"down\"} 1",
    ] {
        assert!(text.contains(needle), "missing {needle}:\n{text}");
    }
    if let Some(promtool) = require_tool("promtool", "prometheus") {
        use std::io::Write;
        let mut child = std::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool rejects the metrics:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
