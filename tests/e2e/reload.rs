//! Config reload: a valid file swaps in one snapshot with health carried
//! over; an invalid one is rejected with its problems and the old config
//! keeps serving; queries during reloads never fail.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

use crate::backend::Backend;
use crate::harness::*;
use crate::health::admin;

fn config(a: &Backend, b: &Backend, extra: &str) -> String {
    format!(
        r#"
[domain]
name = "gslb.test."
[[domain.nameservers]]
name = "ns1"
addresses = ["192.0.2.53"]
{extra}
[[zones]]
name = "zone-a"
latitude = 0.0
longitude = 0.0
[[zones]]
name = "zone-b"
latitude = 10.0
longitude = 10.0
[[services]]
name = "www"
policy = "all"
[services.check]
kind = "http"
interval = "200ms"
timeout = "200ms"
port = {}
[[services.endpoints]]
zone = "zone-a"
addresses = ["{}"]
[[services.endpoints]]
zone = "zone-b"
addresses = ["{}"]
check = {{ port = {} }}
"#,
        a.addr.port(),
        a.addr.ip(),
        b.addr.ip(),
        b.addr.port()
    )
}

fn txt(node: &Node, name: &str) -> (ResponseCode, Vec<String>) {
    let reply = node.udp(&query(name, RecordType::TXT));
    let texts = reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) => Some(t.to_string()),
            _ => None,
        })
        .collect();
    (reply.response_code, texts)
}

fn addresses(node: &Node) -> Vec<String> {
    a_addrs(&node.udp(&query("www.gslb.test.", RecordType::A)).answers)
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{what}: not within 5 s");
}

#[test]
fn a_valid_reload_applies_and_keeps_what_probes_have_seen() {
    let mut a = Backend::start("127.0.0.1");
    let b = Backend::start("127.0.0.2");
    let dir = private_dir();
    let path = dir.join("meridian.toml");
    std::fs::write(&path, config(&a, &b, "")).unwrap();
    let node = Node::start_file(&path);
    a.stop();
    wait_for("zone-a down", || addresses(&node) == ["127.0.0.2"]);
    assert_eq!(txt(&node, "hello.gslb.test.").0, ResponseCode::NXDomain);

    let extra = "[[records]]\nname = \"hello\"\ntype = \"TXT\"\ndata = \"reloaded\"\n";
    std::fs::write(&path, config(&a, &b, extra)).unwrap();
    let (status, body) = admin(&node, "POST", "/v1/reload", None);
    assert_eq!(status, 200, "{body}");
    // Live when the request returns.
    assert_eq!(
        txt(&node, "hello.gslb.test."),
        (ResponseCode::NoError, vec!["reloaded".to_string()])
    );
    // The dead endpoint stays out: its health carried over, it did not
    // restart as unknown (which answers count as up).
    assert_eq!(addresses(&node), ["127.0.0.2"]);
    let (_, zone) = admin(&node, "GET", "/v1/zones/zone-a", None);
    let address = &zone["services"][0]["addresses"][0];
    assert_eq!(address["observed"], "down", "{zone}");
    assert!(address["consecutive_fail"].as_u64().unwrap() >= 2, "{zone}");
    // And probes go on under the new config.
    a.restart();
    wait_for("zone-a back after the reload", || {
        addresses(&node) == ["127.0.0.1", "127.0.0.2"]
    });
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_bad_reload_is_rejected_with_its_problems_and_the_old_config_serves() {
    let a = Backend::start("127.0.0.1");
    let b = Backend::start("127.0.0.2");
    let dir = private_dir();
    let path = dir.join("meridian.toml");
    let good = config(
        &a,
        &b,
        "[[records]]\nname = \"hello\"\ntype = \"TXT\"\ndata = \"v1\"\n",
    );
    std::fs::write(&path, &good).unwrap();
    let node = Node::start_file(&path);
    let bad = good
        .replace("data = \"v1\"", "data = \"v2\"")
        .replace("latitude = 10.0", "latitude = 100.0")
        .replace("name = \"zone-b\"", "name = \"zone-b\"\ncolour = \"blue\"");
    std::fs::write(&path, &bad).unwrap();
    let (status, body) = admin(&node, "POST", "/v1/reload", None);
    assert_eq!(status, 422, "{body}");
    let problems = body["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{body}");
    let line_of = |needle: &str| bad.lines().position(|l| l.contains(needle)).unwrap() as u64 + 1;
    assert_eq!(problems[0]["line"].as_u64(), Some(line_of("colour")));
    assert_eq!(
        problems[1]["line"].as_u64(),
        Some(line_of("latitude = 100.0"))
    );
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("still serving the previous config")
    );
    // Nothing of the bad file applies.
    assert_eq!(txt(&node, "hello.gslb.test.").1, ["v1"]);
    let metrics = reqwest::blocking::get(format!("http://{}/metrics", node.admin))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("meridian_config_reloads_total{result=\"rejected\"} 1"),
        "{metrics}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn queries_during_reloads_never_fail() {
    let a = Backend::start("127.0.0.1");
    let b = Backend::start("127.0.0.2");
    let dir = private_dir();
    let path = dir.join("meridian.toml");
    let version = |v: u32| {
        config(
            &a,
            &b,
            &format!("[[records]]\nname = \"hello\"\ntype = \"TXT\"\ndata = \"v{v}\"\n"),
        )
    };
    std::fs::write(&path, version(0)).unwrap();
    let node = Arc::new(Node::start_file(&path));
    let running = Arc::new(AtomicBool::new(true));
    let (answered, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load: Vec<_> = (0..2)
        .map(|_| {
            let (node, running) = (node.clone(), running.clone());
            let (answered, failed) = (answered.clone(), failed.clone());
            std::thread::spawn(move || {
                let q = query("hello.gslb.test.", RecordType::TXT).to_vec().unwrap();
                while running.load(Ordering::Relaxed) {
                    // Every reply must be a whole answer from one config.
                    let ok = node
                        .udp_raw(&q, Duration::from_secs(2))
                        .and_then(|r| hickory_proto::op::Message::from_vec(&r).ok())
                        .is_some_and(|m| {
                            m.response_code == ResponseCode::NoError && m.answers.len() == 1
                        });
                    if ok {
                        answered.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for v in 1..=10 {
        std::fs::write(&path, version(v)).unwrap();
        let (status, body) = admin(&node, "POST", "/v1/reload", None);
        assert_eq!(status, 200, "{body}");
        assert_eq!(txt(&node, "hello.gslb.test.").1, [format!("v{v}")]);
    }
    running.store(false, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    let answered = answered.load(Ordering::Relaxed);
    assert!(answered > 50, "the load ran ({answered} answers)");
    assert_eq!(failed.load(Ordering::Relaxed), 0, "of {answered} queries");
    std::fs::remove_dir_all(dir).unwrap();
}
