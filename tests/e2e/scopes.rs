//! Routing promises the README's policy table makes and no other test
//! reaches: the ECS scope of `weighted` for IPv6, of `geo` and of `all`;
//! `geo` ranking the zones it does not list by distance; measured latency
//! forgotten after `latency_max_age`; and `latency_margin_ms` and
//! `latency_margin` each holding a prefix on its own.

use std::path::PathBuf;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{RData, RecordType};
use serde_json::json;

use crate::geodata::{FRANKFURT, NEW_YORK, SINGAPORE, TestLayout, TestPlace, write_mmdb};
use crate::harness::*;

/// New York, Frankfurt and Singapore networks, and an IPv6 /48 in New York.
const PLACES: &[TestPlace] = &[
    NEW_YORK,
    FRANKFURT,
    SINGAPORE,
    TestPlace {
        network: "2001:db8:1::/48",
        latitude: 40.7,
        longitude: -74.0,
        country: "US",
        continent: "NA",
        region: None,
    },
];

/// A private directory holding the test GeoIP database.
struct Geo {
    dir: PathBuf,
    mmdb: PathBuf,
}

impl Geo {
    fn new() -> Geo {
        let dir = private_dir();
        let mmdb = dir.join("test.mmdb");
        write_mmdb(&mmdb, PLACES, TestLayout::City);
        Geo { dir, mmdb }
    }

    /// Three zones listed us-east, eu-west, ap-south (so "config order"
    /// and "by distance" differ for Frankfurt and Singapore), and `www`
    /// with `service` lines; `extra` goes before the zones.
    fn config(&self, service: &str, extra: &str) -> String {
        config_with(Some(&self.mmdb), service, extra)
    }
}

impl Drop for Geo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn config_with(mmdb: Option<&PathBuf>, service: &str, extra: &str) -> String {
    let geoip = match mmdb {
        Some(path) => format!("[geoip]\nfiles = [\"{}\"]\n", path.display()),
        None => String::new(),
    };
    format!(
        r#"
[domain]
name = "gslb.test."
[[domain.nameservers]]
name = "ns1"
addresses = ["192.0.2.53"]

{geoip}
{extra}

{GEO_ZONES}

[[services]]
name = "www"
{service}
[services.check]
kind = "none"

[[services.endpoints]]
zone = "us-east"
addresses = ["192.0.2.1", "2001:db8:a::1"]

[[services.endpoints]]
zone = "eu-west"
addresses = ["192.0.2.2", "2001:db8:a::2"]

[[services.endpoints]]
zone = "ap-south"
addresses = ["192.0.2.3", "2001:db8:a::3"]
"#
    )
}

fn zone_of(addr: &str) -> &'static str {
    match addr {
        "192.0.2.1" => "us-east",
        "192.0.2.2" => "eu-west",
        "192.0.2.3" => "ap-south",
        other => panic!("unexpected address {other}"),
    }
}

/// Asks for www A with ECS `subnet`; returns the zones answered in order
/// and the reply's ECS (source, scope).
fn ask(node: &Node, subnet: &str) -> (Vec<&'static str>, Option<(u8, u8)>) {
    let net: ipnet::IpNet = subnet.parse().unwrap();
    let mut q = query("www.gslb.test.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.options_mut()
        .insert(EdnsOption::Subnet(ClientSubnet::new(
            net.addr(),
            net.prefix_len(),
            0,
        )));
    q.set_edns(edns);
    let reply = node.udp(&q);
    assert_eq!(reply.response_code, ResponseCode::NoError, "{subnet}");
    (zones(&reply), ecs(&reply))
}

fn zones(reply: &Message) -> Vec<&'static str> {
    reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(zone_of(&a.to_string())),
            _ => None,
        })
        .collect()
}

fn ecs(reply: &Message) -> Option<(u8, u8)> {
    match reply.edns.as_ref()?.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(s) => Some((s.source_prefix(), s.scope_prefix())),
        _ => None,
    }
}

#[test]
fn weighted_scopes_ipv6_clients_to_their_56() {
    let geo = Geo::new();
    let node = Node::start(&geo.config("policy = \"weighted\"", ""));
    // IPv4: the /24; IPv6: the /56, whatever longer source was sent.
    assert_eq!(ask(&node, "10.1.2.0/24").1, Some((24, 24)));
    for subnet in [
        "2001:db8:1:200::/56",
        "2001:db8:1:2ff::/64",
        "2001:db8:1:2ff:1::/80",
    ] {
        let source = subnet.split('/').nth(1).unwrap().parse().unwrap();
        assert_eq!(ask(&node, subnet).1, Some((source, 56)), "{subnet}");
    }
    // Never wider than the source.
    assert_eq!(ask(&node, "2001:db8:1::/48").1, Some((48, 48)));
    // One /56 is one hashing key: every /64 in it gets its zone.
    let zone = ask(&node, "2001:db8:1:200::/64").0;
    for i in 0..16 {
        let subnet = format!("2001:db8:1:2{i:02x}::/64");
        assert_eq!(ask(&node, &subnet).0, zone, "{subnet}");
    }
}

#[test]
fn geo_scopes_to_the_block_that_ranks_alike_and_all_to_zero() {
    let geo = Geo::new();
    let policy = "policy = \"geo\"\n[services.geo]\ndefault = [\"us-east\"]\ncountries = { DE = [\"ap-south\"] }";
    let node = Node::start(&geo.config(policy, ""));
    // A mapped country: its network, as its neighbours rank otherwise.
    assert_eq!(
        ask(&node, "10.2.5.0/24"),
        (vec!["ap-south"], Some((24, 16)))
    );
    // New York ranks us-east, eu-west, ap-south, as unlocated clients do
    // (the default list, then config order): the empty 10.0.0.0/16 beside
    // it joins its scope, 10.2.0.0/16 (Germany) bounds it.
    assert_eq!(ask(&node, "10.1.5.0/24"), (vec!["us-east"], Some((24, 15))));
    // IPv6: every other address near it is unlocated, so ranks alike, up
    // to 2001::/32, which the database aliases to its IPv4 data (Teredo):
    // 2001:db8::/32 and 2001::/32 part at bit 21.
    assert_eq!(
        ask(&node, "2001:db8:1:5::/64"),
        (vec!["us-east"], Some((64, 21)))
    );

    let all = Node::start(&geo.config("policy = \"all\"", ""));
    for subnet in ["10.2.5.0/24", "10.3.0.0/16", "2001:db8:1:5::/64"] {
        let (zones, ecs) = ask(&all, subnet);
        assert_eq!(zones.len(), 3, "{subnet}: every endpoint");
        let source = subnet.split('/').nth(1).unwrap().parse().unwrap();
        assert_eq!(ecs, Some((source, 0)), "{subnet}: the same for everyone");
    }
}

#[test]
fn geo_ranks_the_zones_its_lists_leave_out_by_distance() {
    let geo = Geo::new();
    let policy = "policy = \"geo\"\nanswers = 3\n[services.geo]\ndefault = [\"eu-west\"]\ncountries = { DE = [\"ap-south\"], US = [\"ap-south\"] }";
    let node = Node::start(&geo.config(policy, ""));
    // Frankfurt: its list, then Dublin before Virginia (config order
    // would put us-east second).
    assert_eq!(
        ask(&node, "10.2.0.0/24").0,
        ["ap-south", "eu-west", "us-east"]
    );
    // New York: its list, then Virginia before Dublin.
    assert_eq!(
        ask(&node, "10.1.0.0/24").0,
        ["ap-south", "us-east", "eu-west"]
    );
    // Singapore, unmapped: the default, then Mumbai before Virginia
    // (config order would put us-east second).
    assert_eq!(
        ask(&node, "10.3.0.0/24").0,
        ["eu-west", "ap-south", "us-east"]
    );
}

/// Pushes measurements; panics unless they are accepted.
fn push(node: &Node, body: serde_json::Value) {
    let response = reqwest::blocking::Client::new()
        .post(format!("http://{}/v1/latency", node.admin))
        .json(&body)
        .send()
        .expect("admin answers");
    let status = response.status().as_u16();
    let text = response.text().unwrap();
    assert_eq!(status, 200, "{text}");
}

#[test]
fn pushed_latency_is_forgotten_after_latency_max_age() {
    // No GeoIP: without measurements, the endpoints' configured order.
    let node = Node::start(&config_with(
        None,
        "policy = \"latency\"",
        "[routing]\nlatency_max_age = \"2s\"",
    ));
    assert_eq!(ask(&node, "10.9.1.0/24"), (vec!["us-east"], Some((24, 0))));
    push(
        &node,
        json!([
            {"prefix": "10.9.0.0/16", "zone": "ap-south", "rtt_ms": 10.0},
            {"prefix": "10.9.0.0/16", "zone": "us-east", "rtt_ms": 100.0},
        ]),
    );
    // Live when the push returns (well inside the 2 s).
    assert_eq!(
        ask(&node, "10.9.1.0/24"),
        (vec!["ap-south"], Some((24, 16)))
    );
    // Then aged out: back to the configured order.
    wait_until(
        "the measurement is forgotten",
        Duration::from_secs(15),
        || ask(&node, "10.9.1.0/24") == (vec!["us-east"], Some((24, 0))),
    );
}

/// Whether a prefix measured at ap-south 100 ms / us-east 200 ms moves to
/// us-east once us-east is measured at 60 ms (40 ms and 40% faster), and
/// once at 20 ms (80 ms and 80% faster).
fn moves_at_60_and_at_20(margin: f64, margin_ms: f64) -> (bool, bool) {
    let node = Node::start(&config_with(
        None,
        "policy = \"latency\"",
        &format!("[routing]\nlatency_margin = {margin:?}\nlatency_margin_ms = {margin_ms:?}"),
    ));
    let subnet = "10.9.1.0/24";
    push(
        &node,
        json!([
            {"prefix": "10.9.0.0/16", "zone": "ap-south", "rtt_ms": 100.0},
            {"prefix": "10.9.0.0/16", "zone": "us-east", "rtt_ms": 200.0},
        ]),
    );
    assert_eq!(ask(&node, subnet).0, ["ap-south"]);
    let mut moved = Vec::new();
    for rtt in [60.0, 20.0] {
        // Enough pushes for the smoothed RTT to settle within 1 ms.
        for _ in 0..15 {
            push(
                &node,
                json!({"prefix": "10.9.0.0/16", "zone": "us-east", "rtt_ms": rtt}),
            );
        }
        moved.push(ask(&node, subnet).0 == ["us-east"]);
    }
    (moved[0], moved[1])
}

#[test]
fn latency_margin_ms_and_latency_margin_each_hold_a_prefix() {
    // No margin at all: 40 ms faster is enough to move.
    assert_eq!(moves_at_60_and_at_20(0.0, 0.0), (true, true));
    // Only the milliseconds: 40 ms faster is not 50 ms, 80 ms is.
    assert_eq!(moves_at_60_and_at_20(0.0, 50.0), (false, true));
    // Only the fraction: 40% faster is not half, 80% is.
    assert_eq!(moves_at_60_and_at_20(0.5, 0.0), (false, true));
}

/// Neighbouring networks at different places that rank the zones alike
/// (New York and Boston), a German network beside them, gaps elsewhere.
const NEIGHBOURS: &[TestPlace] = &[
    TestPlace {
        network: "10.8.0.0/17",
        latitude: 40.7,
        longitude: -74.0,
        country: "US",
        continent: "NA",
        region: None,
    },
    TestPlace {
        network: "10.8.128.0/17",
        latitude: 42.4,
        longitude: -71.1,
        country: "US",
        continent: "NA",
        region: None,
    },
    TestPlace {
        network: "10.9.0.0/16",
        latitude: 50.1,
        longitude: 8.7,
        country: "DE",
        continent: "EU",
        region: None,
    },
    TestPlace {
        network: "2001:db8:2::/48",
        latitude: 40.7,
        longitude: -74.0,
        country: "US",
        continent: "NA",
        region: None,
    },
    TestPlace {
        network: "2001:db8:3::/48",
        latitude: 42.4,
        longitude: -71.1,
        country: "US",
        continent: "NA",
        region: None,
    },
];

#[test]
fn neighbouring_networks_that_rank_alike_share_one_wider_scope() {
    let dir = private_dir();
    let mmdb = dir.join("neighbours.mmdb");
    write_mmdb(&mmdb, NEIGHBOURS, TestLayout::City);
    // Unlocated clients start at ap-south, US ones at us-east: gaps do
    // not rank like the US networks, so what merges is the two of them.
    let policy = "policy = \"geo\"\n[services.geo]\ndefault = [\"ap-south\"]\n\
                  countries = { US = [\"us-east\"] }";
    let node = Node::start(&config_with(Some(&mmdb), policy, ""));
    let us = vec!["us-east"];
    // Each /17 alone would scope to /17; together they are 10.8.0.0/16.
    assert_eq!(ask(&node, "10.8.1.0/24"), (us.clone(), Some((24, 16))));
    assert_eq!(ask(&node, "10.8.200.0/24"), (us.clone(), Some((24, 16))));
    // Germany beside them ranks otherwise: its own /16, no wider.
    assert_eq!(
        ask(&node, "10.9.1.0/24"),
        (vec!["ap-south"], Some((24, 16)))
    );
    // A gap: 10.10.0.0/15 holds nothing, 10.8.0.0/14 would hold the US.
    assert_eq!(
        ask(&node, "10.10.1.0/24"),
        (vec!["ap-south"], Some((24, 15)))
    );
    // IPv6: two /48s, one /47.
    assert_eq!(
        ask(&node, "2001:db8:2:100::/56"),
        (us.clone(), Some((56, 47)))
    );
    // Never wider than the source prefix.
    assert_eq!(ask(&node, "10.8.0.0/15"), (us, Some((15, 15))));
    let _ = std::fs::remove_dir_all(&dir);
}

// The routing tests again with the fast path switched off.
crate::also_on_general_path! {
    weighted_scopes_ipv6_clients_to_their_56,
    geo_scopes_to_the_block_that_ranks_alike_and_all_to_zero,
    geo_ranks_the_zones_its_lists_leave_out_by_distance,
    pushed_latency_is_forgotten_after_latency_max_age,
    latency_margin_ms_and_latency_margin_each_hold_a_prefix,
    neighbouring_networks_that_rank_alike_share_one_wider_scope,
}
