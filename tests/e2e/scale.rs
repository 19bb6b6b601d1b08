//! A large config reloaded under load: 10,000 services, each reload a new
//! version of the file, while clients keep asking; not one query may fail
//! or go unanswered. Timings are printed for the curious, never asserted.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

use crate::harness::*;
use crate::health::admin;

const SERVICES: u32 = 10_000;

/// `services` services over three zones, three endpoints each, checks off
/// (`kind = "none"`), and a TXT record naming `version`. The same inputs
/// give the same text: nothing random.
fn large_config(services: u32, version: u32) -> String {
    let mut text = String::from(
        "[domain]\nname = \"gslb.test.\"\n[[domain.nameservers]]\nname = \"ns1\"\n\
         addresses = [\"192.0.2.53\"]\n\
         [[records]]\nname = \"version\"\ntype = \"TXT\"\n",
    );
    writeln!(text, "data = \"v{version}\"").unwrap();
    for (zone, lat, lon) in [
        ("us-east", 38.9, -77.4),
        ("eu-west", 53.3, -6.3),
        ("ap-south", 1.3, 103.8),
    ] {
        writeln!(
            text,
            "[[zones]]\nname = \"{zone}\"\nlatitude = {lat}\nlongitude = {lon}"
        )
        .unwrap();
    }
    for s in 0..services {
        writeln!(
            text,
            "[[services]]\nname = \"svc{s}\"\n[services.check]\nkind = \"none\"\n\
             [[services.endpoints]]\nzone = \"us-east\"\naddresses = [\"10.1.{}.{}\"]\n\
             [[services.endpoints]]\nzone = \"eu-west\"\naddresses = [\"10.2.{}.{}\"]\n\
             [[services.endpoints]]\nzone = \"ap-south\"\naddresses = [\"10.3.{}.{}\"]",
            s / 250,
            s % 250 + 1,
            s / 250,
            s % 250 + 1,
            s / 250,
            s % 250 + 1
        )
        .unwrap();
    }
    text
}

fn version(node: &Node) -> Option<String> {
    let reply = node.udp(&query("version.gslb.test.", RecordType::TXT));
    reply.answers.iter().find_map(|r| match &r.data {
        RData::TXT(t) => Some(t.to_string()),
        _ => None,
    })
}

#[test]
fn reloading_ten_thousand_services_under_queries_fails_none() {
    let dir = private_dir();
    let path = dir.join("meridian.toml");
    std::fs::write(&path, large_config(SERVICES, 0)).unwrap();
    let node = Arc::new(Node::start_file(&path));
    assert_eq!(version(&node).as_deref(), Some("v0"));
    let running = Arc::new(AtomicBool::new(true));
    let (answered, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load: Vec<_> = (0..2u32)
        .map(|t| {
            let (node, running) = (node.clone(), running.clone());
            let (answered, failed) = (answered.clone(), failed.clone());
            std::thread::spawn(move || {
                // Services spread over the whole config, so answers come
                // from every part of the table being replaced.
                let mut s = t;
                let started = Instant::now();
                while running.load(Ordering::Relaxed)
                    && started.elapsed() < Duration::from_secs(120)
                {
                    s = (s + 7919) % SERVICES;
                    let name = format!("svc{s}.gslb.test.");
                    let q = query(&name, RecordType::A).to_vec().unwrap();
                    let ok = node
                        .udp_raw(&q, Duration::from_secs(2))
                        .and_then(|r| Message::from_vec(&r).ok())
                        .is_some_and(|m| {
                            m.response_code == ResponseCode::NoError && m.answers.len() == 1
                        });
                    let counter = if ok { &answered } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for v in 1..=3 {
        std::fs::write(&path, large_config(SERVICES, v)).unwrap();
        let started = Instant::now();
        let (status, body) = admin(&node, "POST", "/v1/reload", None);
        assert_eq!(status, 200, "{body}");
        eprintln!(
            "reload of {SERVICES} services (this build): {:?}",
            started.elapsed()
        );
        assert_eq!(version(&node), Some(format!("v{v}")), "reload {v} is live");
    }
    running.store(false, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    let answered = answered.load(Ordering::Relaxed);
    assert!(answered > 50, "the load ran ({answered} answers)");
    assert_eq!(failed.load(Ordering::Relaxed), 0, "of {answered} queries");
    drop(node);
    std::fs::remove_dir_all(dir).unwrap();
}

/// The A records `name` answers with, sorted.
fn a_records(node: &Node, name: &str) -> (ResponseCode, Vec<String>) {
    let reply = node.udp(&query(name, RecordType::A));
    (reply.response_code, a_addrs(&reply.answers))
}

/// A reload reuses the services whose text it read before; one changed,
/// one added and one removed in the middle of the file must each show on
/// the wire, and the services around them answer as before.
#[test]
fn a_reload_changing_services_in_the_middle_of_a_large_file_takes_effect() {
    let services = 600;
    let dir = private_dir();
    let path = dir.join("meridian.toml");
    let base = large_config(services, 0);
    std::fs::write(&path, &base).unwrap();
    let node = Node::start_file(&path);
    let before = |s: u32| a_records(&node, &format!("svc{s}.gslb.test."));
    let (neighbours, gone) = ([299, 301, 599], 400);
    let expected: Vec<_> = neighbours.iter().map(|&s| before(s)).collect();
    assert_eq!(before(gone).0, ResponseCode::NoError);
    let changed = base
        .replace("addresses = [\"10.1.1.51\"]", "addresses = [\"10.9.9.1\"]")
        .replace("addresses = [\"10.2.1.51\"]", "addresses = [\"10.9.9.2\"]")
        .replace("addresses = [\"10.3.1.51\"]", "addresses = [\"10.9.9.3\"]")
        .replace(
            "[[services]]\nname = \"svc400\"",
            "[[services]]\nname = \"added\"\n[[services.endpoints]]\nzone = \"eu-west\"\naddresses = [\"10.8.8.8\"]\n[[services]]\nname = \"svc400-renamed\"",
        );
    assert_ne!(changed, base);
    std::fs::write(&path, &changed).unwrap();
    let (status, body) = admin(&node, "POST", "/v1/reload", None);
    assert_eq!(status, 200, "{body}");
    // svc300 is the one whose addresses changed (10.x.1.51).
    let (code, answer) = before(300);
    assert_eq!(code, ResponseCode::NoError);
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert!(answer[0].starts_with("10.9.9."), "{answer:?}");
    assert_eq!(
        a_records(&node, "added.gslb.test."),
        (ResponseCode::NoError, vec!["10.8.8.8".to_string()])
    );
    assert_eq!(before(gone).0, ResponseCode::NXDomain);
    assert_eq!(
        a_records(&node, "svc400-renamed.gslb.test.").0,
        ResponseCode::NoError
    );
    let after: Vec<_> = neighbours.iter().map(|&s| before(s)).collect();
    assert_eq!(after, expected, "the services around them are unchanged");
    drop(node);
    std::fs::remove_dir_all(dir).unwrap();
}

/// After a reload that reused services, lines added above a service move
/// it; a mistake in it must be reported at its new line.
#[test]
fn a_rejected_reload_points_at_the_new_line_of_a_moved_service() {
    let services = 300;
    let dir = private_dir();
    let path = dir.join("meridian.toml");
    let base = large_config(services, 0);
    std::fs::write(&path, &base).unwrap();
    let node = Node::start_file(&path);
    // A first reload, so the next one has a previous read to reuse.
    std::fs::write(&path, large_config(services, 1)).unwrap();
    assert_eq!(admin(&node, "POST", "/v1/reload", None).0, 200);
    let bad = large_config(services, 2)
        .replacen("[[zones]]", "# three\n# lines\n# more\n[[zones]]", 1)
        .replace(
            "addresses = [\"10.2.0.201\"]",
            "addresses = [\"10.2.0.301\"]",
        );
    std::fs::write(&path, &bad).unwrap();
    let (status, body) = admin(&node, "POST", "/v1/reload", None);
    assert_eq!(status, 422, "{body}");
    let problems = body["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{body}");
    let line = bad.lines().position(|l| l.contains("10.2.0.301")).unwrap() as u64 + 1;
    assert_eq!(problems[0]["line"].as_u64(), Some(line), "{body}");
    // 1-based, at the opening quote of the address.
    let column = bad
        .lines()
        .nth(line as usize - 1)
        .unwrap()
        .find('"')
        .unwrap() as u64
        + 1;
    assert_eq!(problems[0]["column"].as_u64(), Some(column), "{body}");
    assert_eq!(
        version(&node).as_deref(),
        Some("v1"),
        "the previous config serves"
    );
    drop(node);
    std::fs::remove_dir_all(dir).unwrap();
}
