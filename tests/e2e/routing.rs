//! Routing end to end: GeoIP databases written by the test, queries with
//! and without EDNS Client Subnet over the wire, real backends that die.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{RData, RecordType};
use serde_json::json;

use crate::backend::Backend;
use crate::geodata::{FRANKFURT, NEW_YORK, SINGAPORE, TestLayout, TestPlace, write_mmdb};
use crate::harness::*;
use crate::health::admin;

/// Test networks placed at known cities: New York, Frankfurt, Singapore;
/// loopback (where test queries come from) in London.
const PLACES: &[TestPlace] = &[
    NEW_YORK,
    FRANKFURT,
    SINGAPORE,
    TestPlace {
        network: "127.0.0.0/8",
        latitude: 51.5,
        longitude: -0.1,
        country: "GB",
        continent: "EU",
        region: None,
    },
    TestPlace {
        network: "2001:db8:1::/48",
        latitude: 40.7,
        longitude: -74.0,
        country: "US",
        continent: "NA",
        region: None,
    },
];

/// Zone name by the address its `www` endpoint answers with.
fn zone_of(addr: &str) -> &'static str {
    match addr {
        "192.0.2.1" | "127.0.0.1" => "us-east",
        "192.0.2.2" | "127.0.0.2" => "eu-west",
        "192.0.2.3" | "127.0.0.3" => "ap-south",
        other => panic!("unexpected address {other}"),
    }
}

struct Setup {
    dir: PathBuf,
    mmdb: PathBuf,
}

impl Setup {
    fn new(layout: TestLayout) -> Setup {
        let dir = private_dir();
        let mmdb = dir.join("test.mmdb");
        write_mmdb(&mmdb, PLACES, layout);
        Setup { dir, mmdb }
    }

    /// Three zones; `www` with `policy_lines`, endpoints at `addrs` (one per
    /// zone) with `check`.
    fn config(&self, policy_lines: &str, extra: &str, addrs: [&str; 3], check: &str) -> String {
        let mut text = format!(
            r#"
[domain]
name = "gslb.test."
[[domain.nameservers]]
name = "ns1"
addresses = ["192.0.2.53"]

[geoip]
files = ["{}"]
watch_interval = "200ms"

{extra}

{GEO_ZONES}

[[services]]
name = "www"
{policy_lines}
[services.check]
{check}
"#,
            self.mmdb.display()
        );
        for (zone, addr) in ["us-east", "eu-west", "ap-south"].iter().zip(addrs) {
            text +=
                &format!("\n[[services.endpoints]]\nzone = \"{zone}\"\naddresses = [\"{addr}\"]\n");
        }
        text
    }

    /// Endpoints at three real backends (us-east, eu-west, ap-south), each
    /// probed with `kind` at its own port.
    fn with_backends(
        &self,
        policy_lines: &str,
        extra: &str,
        kind: &str,
        backends: [&Backend; 3],
    ) -> String {
        let addrs = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
        // The service default names us-east's port; the others override it.
        let check = format!(
            "kind = \"{kind}\"\ninterval = \"200ms\"\ntimeout = \"200ms\"\nport = {}",
            backends[0].addr.port()
        );
        let mut text = self.config(policy_lines, extra, addrs, &check);
        for (addr, b) in addrs.iter().zip(backends).skip(1) {
            text = text.replace(
                &format!("addresses = [\"{addr}\"]\n"),
                &format!(
                    "addresses = [\"{addr}\"]\ncheck = {{ port = {} }}\n",
                    b.addr.port()
                ),
            );
        }
        text
    }

    fn simple(&self, policy_lines: &str) -> String {
        self.config(
            policy_lines,
            "",
            ["192.0.2.1", "192.0.2.2", "192.0.2.3"],
            "kind = \"none\"",
        )
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A query for www.gslb.test A carrying ECS `subnet` (e.g. "10.1.2.0/24").
fn ecs_query(subnet: &str) -> Message {
    let net: ipnet::IpNet = subnet.parse().unwrap();
    ecs_query_raw(net.addr(), net.prefix_len(), 0)
}

/// The same with every ECS field chosen, valid or not.
fn ecs_query_raw(addr: IpAddr, source: u8, scope: u8) -> Message {
    let mut message = query("www.gslb.test.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.options_mut()
        .insert(EdnsOption::Subnet(ClientSubnet::new(addr, source, scope)));
    message.set_edns(edns);
    message
}

fn answered_zones(reply: &Message) -> Vec<&'static str> {
    reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(zone_of(&a.to_string())),
            _ => None,
        })
        .collect()
}

/// The reply's ECS option: (source prefix, scope prefix).
fn reply_ecs(reply: &Message) -> Option<(u8, u8)> {
    match reply.edns.as_ref()?.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(s) => Some((s.source_prefix(), s.scope_prefix())),
        _ => None,
    }
}

fn ask(node: &Node, subnet: &str) -> (Vec<&'static str>, Option<(u8, u8)>) {
    let reply = node.udp(&ecs_query(subnet));
    assert_eq!(reply.response_code, ResponseCode::NoError);
    (answered_zones(&reply), reply_ecs(&reply))
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
fn nearest_follows_the_client_subnet_and_sets_the_scope() {
    for layout in [TestLayout::City, TestLayout::DbIpFlat] {
        let setup = Setup::new(layout);
        let node = Node::start(&setup.simple("policy = \"nearest\""));
        // New York ranks the zones as unlocated clients do (config order),
        // so the empty 10.0.0.0/16 beside it shares its scope.
        assert_eq!(ask(&node, "10.1.2.0/24"), (vec!["us-east"], Some((24, 15))));
        assert_eq!(ask(&node, "10.2.0.0/24"), (vec!["eu-west"], Some((24, 16))));
        assert_eq!(
            ask(&node, "10.3.9.0/24"),
            (vec!["ap-south"], Some((24, 16)))
        );
        // IPv6 client subnet.
        assert_eq!(ask(&node, "2001:db8:1::/56").0, vec!["us-east"]);
        // The scope is never wider than the source prefix.
        let (_, ecs) = ask(&node, "10.0.0.0/12");
        let (source, scope) = ecs.unwrap();
        assert_eq!(source, 12);
        assert!(scope <= 12, "scope {scope} wider than the source /12");
        // Without ECS the packet's source decides: 127.0.0.1 is "London".
        let reply = node.udp(&query("www.gslb.test.", RecordType::A));
        assert_eq!(answered_zones(&reply), ["eu-west"]);
        assert_eq!(reply_ecs(&reply), None, "no ECS in, no ECS out");
        // ECS with source prefix 0: the source address decides, scope 0.
        let (zones, ecs) = ask(&node, "0.0.0.0/0");
        assert_eq!((zones, ecs), (vec!["eu-west"], Some((0, 0))));
    }
}

#[test]
fn killing_the_nearest_zone_moves_its_clients_to_the_next_nearest() {
    let mut us = Backend::start("127.0.0.1");
    let eu = Backend::start("127.0.0.2");
    let ap = Backend::start("127.0.0.3");
    let setup = Setup::new(TestLayout::City);
    let text = setup.with_backends("policy = \"nearest\"", "", "tcp", [&us, &eu, &ap]);
    let node = Node::start(&text);
    assert_eq!(ask(&node, "10.1.2.0/24").0, ["us-east"]);
    us.stop();
    // New York to Dublin is nearer than New York to Mumbai.
    wait_for("us-east clients move to eu-west", || {
        ask(&node, "10.1.2.0/24").0 == ["eu-west"]
    });
    assert_eq!(ask(&node, "10.3.0.0/24").0, ["ap-south"], "others stay");
    us.restart();
    wait_for("us-east clients come back", || {
        ask(&node, "10.1.2.0/24").0 == ["us-east"]
    });
}

#[test]
fn a_drained_zone_gets_no_traffic() {
    let setup = Setup::new(TestLayout::City);
    let node = Node::start(&setup.simple("policy = \"nearest\"\nanswers = 2"));
    assert_eq!(ask(&node, "10.2.0.0/24").0, ["eu-west", "us-east"]);
    let (status, body) = admin(&node, "POST", "/v1/zones/eu-west/drain", None);
    assert_eq!(status, 200, "{body}");
    for subnet in ["10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24"] {
        assert!(!ask(&node, subnet).0.contains(&"eu-west"), "{subnet}");
    }
    assert_eq!(ask(&node, "10.2.0.0/24").0, ["us-east", "ap-south"]);
}

#[test]
fn geo_maps_pick_the_most_specific_match() {
    let setup = Setup::new(TestLayout::City);
    let policy = r#"policy = "geo"
[services.geo]
default = ["us-east"]
continents = { EU = ["ap-south"], AS = ["eu-west"] }
countries = { DE = ["us-east", "eu-west"] }
regions = { "US-NY" = ["ap-south"] }
"#;
    let node = Node::start(&setup.simple(policy));
    assert_eq!(
        ask(&node, "10.2.0.0/24").0,
        ["us-east"],
        "country beats continent"
    );
    assert_eq!(ask(&node, "10.3.0.0/24").0, ["eu-west"], "continent");
    assert_eq!(
        ask(&node, "10.1.0.0/24").0,
        ["ap-south"],
        "region beats all"
    );
    assert_eq!(
        ask(&node, "172.16.0.0/24").0,
        ["us-east"],
        "unlocated: default"
    );
    // Source 127.0.0.1 is GB in EU: the continent list.
    let reply = node.udp(&query("www.gslb.test.", RecordType::A));
    assert_eq!(answered_zones(&reply), ["ap-south"]);
    // The country's first choice drained: its next choice.
    admin(&node, "POST", "/v1/zones/us-east/drain", None);
    assert_eq!(ask(&node, "10.2.0.0/24").0, ["eu-west"]);
}

#[test]
fn cidr_rules_override_geoip_and_narrow_the_scope() {
    let setup = Setup::new(TestLayout::City);
    let rules = "[[cidr_rules]]\nnetworks = [\"10.2.5.0/24\"]\nzones = [\"ap-south\"]\n";
    let node = Node::start(&setup.config(
        "policy = \"nearest\"",
        rules,
        ["192.0.2.1", "192.0.2.2", "192.0.2.3"],
        "kind = \"none\"",
    ));
    assert_eq!(
        ask(&node, "10.2.5.0/24"),
        (vec!["ap-south"], Some((24, 24)))
    );
    // Same GeoIP network, outside the rule: the /16 is narrowed so a cached
    // answer never covers 10.2.5.0/24 (10.2.6 and 10.2.5 share 22 bits, so
    // 10.2.6.0/23 is the widest safe scope).
    assert_eq!(ask(&node, "10.2.6.0/24"), (vec!["eu-west"], Some((24, 23))));
}

#[test]
fn weighted_answers_split_by_weight_over_many_prefixes() {
    let setup = Setup::new(TestLayout::City);
    let text = setup
        .simple("policy = \"weighted\"")
        .replace(
            "addresses = [\"192.0.2.1\"]",
            "addresses = [\"192.0.2.1\"]\nweight = 6",
        )
        .replace(
            "addresses = [\"192.0.2.2\"]",
            "addresses = [\"192.0.2.2\"]\nweight = 3",
        )
        .replace(
            "addresses = [\"192.0.2.3\"]",
            "addresses = [\"192.0.2.3\"]\nweight = 1",
        );
    let node = Node::start(&text);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let n = 1000;
    for i in 0..n {
        let subnet = format!("172.{}.{}.0/24", 16 + i / 256, i % 256);
        let (zones, ecs) = ask(&node, &subnet);
        assert_eq!(ecs, Some((24, 24)));
        *counts.entry(zones[0]).or_default() += 1;
        // Stable: the same prefix, the same zone.
        assert_eq!(ask(&node, &subnet).0, zones);
    }
    // Binomial with n=1000: sd is at most 16 answers; allow 4 sd.
    for (zone, want) in [("us-east", 600), ("eu-west", 300), ("ap-south", 100)] {
        let got = counts.get(zone).copied().unwrap_or(0) as i64;
        assert!(
            (got - want).abs() <= 64,
            "{zone}: {got} of {n}, want ~{want}: {counts:?}"
        );
    }
}

#[test]
fn latency_policy_follows_pushed_measurements_without_flapping() {
    let setup = Setup::new(TestLayout::City);
    let node = Node::start(&setup.config(
        "policy = \"latency\"",
        "[routing]\nlatency_margin = 0.2\nlatency_margin_ms = 5",
        ["192.0.2.1", "192.0.2.2", "192.0.2.3"],
        "kind = \"none\"",
    ));
    // No measurements: nearest (10.9/16 is unlocated -> config order).
    assert_eq!(ask(&node, "10.1.0.0/24").0, ["us-east"]);
    let push = |body: serde_json::Value| {
        let client = reqwest::blocking::Client::new();
        let response = client
            .post(format!("http://{}/v1/latency", node.admin))
            .json(&body)
            .send()
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<serde_json::Value>().unwrap())
    };
    let (status, body) = push(json!([
        {"prefix": "10.1.0.0/16", "zone": "ap-south", "rtt_ms": 20.0},
        {"prefix": "10.1.0.0/16", "zone": "us-east", "rtt_ms": 80.0},
    ]));
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (200, Some(2)),
        "{body}"
    );
    assert_eq!(
        ask(&node, "10.1.2.0/24"),
        (vec!["ap-south"], Some((24, 16)))
    );
    // us-east gets a little faster than ap-south: inside the margin, stay.
    for _ in 0..10 {
        push(json!({"prefix": "10.1.0.0/16", "zone": "us-east", "rtt_ms": 18.0}));
    }
    assert_eq!(ask(&node, "10.1.2.0/24").0, ["ap-south"]);
    // Clearly faster: move.
    for _ in 0..10 {
        push(json!({"prefix": "10.1.0.0/16", "zone": "us-east", "rtt_ms": 3.0}));
    }
    assert_eq!(ask(&node, "10.1.2.0/24").0, ["us-east"]);
    // Bad input is a JSON 4xx, and nothing changes.
    let (status, body) = push(json!({"prefix": "10.1.0.0/16", "zone": "mars", "rtt_ms": 1.0}));
    assert_eq!(status, 422, "{body}");
    let (status, body) = push(json!({"prefix": "not-a-prefix", "zone": "us-east", "rtt_ms": 1.0}));
    assert_eq!(status, 400, "{body}");
    let (status, _) = push(json!({"prefix": "10.1.0.0/16", "zone": "us-east", "rtt_ms": -1.0}));
    assert_eq!(status, 400);
    let (status, _) = push(json!({"nonsense": true}));
    assert_eq!(status, 400);
}

#[test]
fn client_subnet_edge_cases() {
    let setup = Setup::new(TestLayout::City);
    let node = Node::start(&setup.simple("policy = \"nearest\""));
    // A scope in the query is malformed (RFC 7871 7.1.1).
    let q = ecs_query_raw("10.1.2.0".parse().unwrap(), 24, 16);
    assert_eq!(node.udp(&q).response_code, ResponseCode::FormErr);
    // Address bits beyond the source prefix are malformed too (a /20 sent
    // with 10.1.255: the last four bits of the third byte are set).
    let q = ecs_query_raw("10.1.255.0".parse().unwrap(), 20, 0);
    assert_eq!(node.udp(&q).response_code, ResponseCode::FormErr);
    // Non-service answers with ECS say scope 0.
    let mut q = query("nope.gslb.test.", RecordType::A);
    q.set_edns(ecs_query("10.1.2.0/24").edns.unwrap());
    let reply = node.udp(&q);
    assert_eq!(reply.response_code, ResponseCode::NXDomain);
    assert_eq!(reply_ecs(&reply), Some((24, 0)));
    // Failover does not depend on the client: scope 0.
    let failover =
        Node::start(&setup.simple("policy = \"failover\"\norder = [\"ap-south\", \"us-east\"]"));
    assert_eq!(
        ask(&failover, "10.1.2.0/24"),
        (vec!["ap-south"], Some((24, 0)))
    );
}

fn replace_file(path: &Path, write: impl FnOnce(&Path)) {
    let tmp = path.with_extension("new");
    write(&tmp);
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn replacing_the_geoip_file_changes_answers_without_a_restart() {
    let setup = Setup::new(TestLayout::City);
    let node = Node::start(&setup.simple("policy = \"nearest\""));
    assert_eq!(ask(&node, "10.1.2.0/24").0, ["us-east"]);
    // A geoipupdate-style replace: New York's network is now in Singapore.
    let moved: Vec<TestPlace> = PLACES
        .iter()
        .map(|p| TestPlace {
            latitude: if p.network == "10.1.0.0/16" {
                1.35
            } else {
                p.latitude
            },
            longitude: if p.network == "10.1.0.0/16" {
                103.8
            } else {
                p.longitude
            },
            ..*p
        })
        .collect();
    replace_file(&setup.mmdb, |tmp| write_mmdb(tmp, &moved, TestLayout::City));
    wait_for("answers follow the new database", || {
        ask(&node, "10.1.2.0/24").0 == ["ap-south"]
    });
    // A corrupt replacement is rejected; the last good database stays.
    replace_file(&setup.mmdb, |tmp| {
        std::fs::write(tmp, b"not an mmdb").unwrap()
    });
    wait_for("the corrupt file is rejected", || {
        let text = reqwest::blocking::get(format!("http://{}/metrics", node.admin))
            .unwrap()
            .text()
            .unwrap();
        text.contains("meridian_geoip_reloads_total{result=\"rejected\"} 1")
    });
    assert_eq!(ask(&node, "10.1.2.0/24").0, ["ap-south"]);
}

#[test]
fn explain_says_why() {
    let setup = Setup::new(TestLayout::City);
    let node = Node::start(&setup.simple("policy = \"nearest\"\nanswers = 1"));
    admin(&node, "POST", "/v1/zones/ap-south/drain", None);
    let (status, e) = admin(
        &node,
        "GET",
        "/v1/explain?name=www&client=10.3.0.0/24",
        None,
    );
    assert_eq!(status, 200, "{e}");
    assert_eq!(e["policy"], "nearest");
    assert_eq!(e["basis"]["kind"], "geo");
    assert_eq!(e["basis"]["network"], "10.3.0.0/16");
    assert_eq!(e["basis"]["location"]["country"], "SG");
    let candidates = e["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 3);
    assert_eq!(candidates[0]["zone"], "ap-south");
    assert_eq!(candidates[0]["drained"], true);
    assert_eq!(candidates[0]["serving"], false);
    assert!(
        candidates[0]["distance_km"].as_f64().unwrap()
            < candidates[1]["distance_km"].as_f64().unwrap()
    );
    let chosen: Vec<&str> = e["chosen"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(chosen.len(), 1);
    assert_eq!(candidates.iter().filter(|c| c["chosen"] == true).count(), 1);
    assert_eq!(e["ecs_scope"], 16);
    assert_eq!(e["ttl"], 30);
    // What explain says is what DNS does.
    assert_eq!(ask(&node, "10.3.0.0/24").0, chosen);
    // A service is found by its relative name, its absolute name with or
    // without the trailing dot, in any case; all say the same.
    let domain = e["service"].as_str().unwrap().trim_start_matches("www.");
    let domain = domain.trim_end_matches('.');
    for name in [
        format!("www.{domain}"),
        format!("www.{domain}."),
        format!("WWW.{}", domain.to_uppercase()),
    ] {
        let (status, same) = admin(
            &node,
            "GET",
            &format!("/v1/explain?name={name}&client=10.3.0.0/24"),
            None,
        );
        assert_eq!(status, 200, "{name}: {same}");
        assert_eq!(same["chosen"], e["chosen"], "{name}");
    }
    let (status, body) = admin(&node, "GET", "/v1/explain?name=nope&client=10.3.0.0", None);
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("services are"),
        "{body}"
    );
    let (status, body) = admin(&node, "GET", "/v1/explain?name=www&client=banana", None);
    assert_eq!(status, 400, "{body}");
}

#[test]
fn the_shipped_example_routes_three_regions_to_three_zones() {
    let node = Node::start_example();
    let ask_example = |subnet: &str| -> Vec<IpAddr> {
        let mut q = ecs_query(subnet);
        q.queries[0].set_name("www.gslb.example.".parse().unwrap());
        node.udp(&q)
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                _ => None,
            })
            .collect()
    };
    let us = ask_example("8.8.8.0/24");
    let eu = ask_example("193.0.0.0/24");
    let asia = ask_example("202.12.27.0/24");
    assert_eq!(
        us,
        ["192.0.2.10".parse::<IpAddr>().unwrap()],
        "US -> us-east"
    );
    assert_eq!(
        eu,
        ["198.51.100.10".parse::<IpAddr>().unwrap()],
        "Europe -> eu-west"
    );
    assert_eq!(
        asia,
        ["203.0.113.10".parse::<IpAddr>().unwrap()],
        "Asia -> ap-south"
    );
}

#[test]
fn queued_queries_from_new_networks_are_answered_as_lone_ones_are() {
    // Queries from 128 networks new to the node, sent back to back from
    // one socket, queue up and are answered in batches, whose memo
    // lookups are fetched ahead (`meridian_dns_prefetched_batches_total`).
    // Every reply must be the one the same query gets asked alone.
    let node = Node::start_example();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket.connect(node.dns).unwrap();
    // /24s spread over the public IPv4 space, none repeated.
    let subnets: Vec<String> = (0..128u32)
        .map(|i| {
            let n = i.wrapping_mul(0x9E37_79B1) >> 8;
            format!(
                "{}.{}.{}.0/24",
                (n >> 16) % 223 + 1,
                (n >> 8) & 255,
                n & 255
            )
        })
        .collect();
    let request = |i: usize| {
        let mut q = ecs_query(&subnets[i]);
        q.queries[0].set_name("www.gslb.example.".parse().unwrap());
        q.metadata.id = i as u16;
        q.to_vec().unwrap()
    };
    let summary = |reply: &Message| {
        (
            reply.response_code,
            a_addrs(&reply.answers),
            reply_ecs(reply),
        )
    };
    for i in 0..subnets.len() {
        socket.send(&request(i)).unwrap();
    }
    let mut queued = BTreeMap::new();
    let mut buf = [0u8; 4096];
    while queued.len() < subnets.len() {
        let n = socket
            .recv(&mut buf)
            .expect("a reply to every queued query");
        let reply = Message::from_vec(&buf[..n]).unwrap();
        queued.insert(usize::from(reply.id), summary(&reply));
    }
    if fast_path_on() {
        assert!(node.metric("meridian_dns_prefetched_batches_total") >= 1.0);
    }
    for (i, subnet) in subnets.iter().enumerate() {
        socket.send(&request(i)).unwrap();
        let n = socket.recv(&mut buf).expect("a reply");
        let alone = summary(&Message::from_vec(&buf[..n]).unwrap());
        assert_eq!(queued[&i], alone, "{subnet}");
        assert_eq!(alone.0, ResponseCode::NoError, "{subnet}");
        assert!(!alone.1.is_empty(), "{subnet}: no address");
    }
}

#[test]
fn latency_policy_uses_this_nodes_probe_rtts_for_clients_in_its_country() {
    let us = Backend::start("127.0.0.1");
    let eu = Backend::start("127.0.0.2");
    let ap = Backend::start("127.0.0.3");
    // The nearest zone for US clients answers its probes slowly (150 ms),
    // yet well within the probe timeout (1 s): slow, not down, so only
    // its RTT can push it back.
    us.set_mode(crate::backend::Mode::Slow);
    let setup = Setup::new(TestLayout::City);
    let fast_checks = "interval = \"200ms\"\ntimeout = \"200ms\"";
    let text = setup.with_backends(
        "policy = \"latency\"",
        "[routing]\nthis_zone = \"us-east\"",
        "http",
        [&us, &eu, &ap],
    );
    assert!(text.contains(fast_checks), "the check settings changed");
    let text = text.replace(fast_checks, "interval = \"1s\"\ntimeout = \"1s\"");
    let node = Node::start(&text);
    let explain = || {
        admin(
            &node,
            "GET",
            "/v1/explain?name=www&client=10.1.2.0/24",
            None,
        )
        .1
    };
    let rtt = |e: &serde_json::Value, zone: &str| -> Option<f64> {
        e["candidates"]
            .as_array()?
            .iter()
            .find(|c| c["zone"] == zone)?["rtt_ms"]
            .as_f64()
    };
    wait_for("US clients ranked by this node's probe RTTs", || {
        let e = explain();
        e["basis"]["kind"] == "local_latency"
            && ["us-east", "eu-west", "ap-south"]
                .iter()
                .all(|zone| rtt(&e, zone).is_some())
    });
    // The slow zone is up, and last because of its RTT alone.
    let (status, zone) = admin(&node, "GET", "/v1/zones/us-east", None);
    assert_eq!(status, 200, "{zone}");
    assert_eq!(zone["services"][0]["observed"], "up", "{zone}");
    let e = explain();
    let order: Vec<&str> = e["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["zone"].as_str().unwrap())
        .collect();
    assert_eq!(order.len(), 3, "{e}");
    assert_eq!(order[2], "us-east", "the slow zone ranks last: {e}");
    let slow = rtt(&e, "us-east").unwrap();
    assert!(slow >= 100.0, "the backend's 150 ms shows: {e}");
    assert!(rtt(&e, order[0]).unwrap() < slow && rtt(&e, order[1]).unwrap() < slow);
    let (zones, ecs) = ask(&node, "10.1.2.0/24");
    assert_eq!(zones, [order[0]], "the answer is the fastest zone");
    assert_eq!(ecs, Some((24, 16)));
    // Clients elsewhere are not ranked by this node's view: nearest.
    assert_eq!(ask(&node, "10.2.0.0/24").0, ["eu-west"]);
}

// Every test above, again with the fast path switched off.
crate::also_on_general_path! {
    nearest_follows_the_client_subnet_and_sets_the_scope,
    killing_the_nearest_zone_moves_its_clients_to_the_next_nearest,
    a_drained_zone_gets_no_traffic,
    geo_maps_pick_the_most_specific_match,
    cidr_rules_override_geoip_and_narrow_the_scope,
    weighted_answers_split_by_weight_over_many_prefixes,
    latency_policy_follows_pushed_measurements_without_flapping,
    client_subnet_edge_cases,
    replacing_the_geoip_file_changes_answers_without_a_restart,
    explain_says_why,
    the_shipped_example_routes_three_regions_to_three_zones,
    latency_policy_uses_this_nodes_probe_rtts_for_clients_in_its_country,
}
