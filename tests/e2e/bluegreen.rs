//! Blue/green inside one zone, end to end: a zone holding two endpoints of
//! a service splits its answers between them per client prefix; when one
//! endpoint's load balancer stops, or an operator drains that one endpoint,
//! every client of the zone gets its sibling, and the zone is still chosen.
//! Real backends probed over HTTP, real DNS over UDP, on both answer paths.

use std::collections::BTreeSet;
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::RData;
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use serde_json::Value;

use crate::backend::Backend;
use crate::harness::*;
use crate::health::admin;

/// Interval (200 ms) x fall (2) plus room for a loaded CI machine.
const WITHIN: Duration = Duration::from_secs(8);

/// Client /24s the tests ask from; 32 of them land on both endpoints of
/// a 50/50 split with near certainty (and the tests assert they do).
const CLIENTS: u8 = 32;

/// zone-a holds `blue` and `green` (each its own backend), zone-b one
/// endpoint; `www` prefers zone-a. `check` is the blue and green checks'
/// kind and its extra keys.
fn config(blue: &Backend, green: &Backend, other: &Backend) -> String {
    let check = |b: &Backend| {
        format!(
            "check = {{ kind = \"http\", port = {}, interval = \"200ms\", timeout = \"200ms\", rise = 2, fall = 2 }}",
            b.addr.port()
        )
    };
    format!(
        r#"
[domain]
name = "gslb.test."
[[domain.nameservers]]
name = "ns1"
addresses = ["192.0.2.53"]

[[zones]]
name = "zone-a"
latitude = 0.0
longitude = 0.0
[[zones]]
name = "zone-b"
latitude = 10.0
longitude = 0.0

[[services]]
name = "www"
policy = "failover"
order = ["zone-a", "zone-b"]

[[services.endpoints]]
zone = "zone-a"
name = "blue"
weight = 50
addresses = ["{}"]
{}

[[services.endpoints]]
zone = "zone-a"
name = "green"
weight = 50
addresses = ["{}"]
{}

[[services.endpoints]]
zone = "zone-b"
addresses = ["{}"]
{}
"#,
        blue.addr.ip(),
        check(blue),
        green.addr.ip(),
        check(green),
        other.addr.ip(),
        check(other),
    )
}

fn backends() -> (Backend, Backend, Backend) {
    (
        Backend::start("127.0.0.1"),
        Backend::start("127.0.0.2"),
        Backend::start("127.0.0.3"),
    )
}

/// The addresses and ECS scope `node` answers `www` A with for a client in
/// `198.18.<i>.0/24` (ECS), so each `i` is another client prefix.
fn ask(node: &Node, i: u8) -> (Vec<String>, u8) {
    let mut q = query_edns("www.gslb.test.", RecordType::A, 1232);
    q.edns
        .as_mut()
        .unwrap()
        .options_mut()
        .insert(EdnsOption::Subnet(ClientSubnet::new(
            std::net::IpAddr::from([198, 18, i, 0]),
            24,
            0,
        )));
    let reply: Message = node.udp(&q);
    let addresses = reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.to_string()),
            _ => None,
        })
        .collect();
    let scope = match reply.edns.as_ref().and_then(|e| e.option(EdnsCode::Subnet)) {
        Some(EdnsOption::Subnet(s)) => s.scope_prefix(),
        other => panic!("no ECS in the reply: {other:?}"),
    };
    (addresses, scope)
}

/// The answer for every client prefix, by prefix.
fn answers(node: &Node) -> Vec<Vec<String>> {
    (0..CLIENTS).map(|i| ask(node, i).0).collect()
}

/// Every client prefix gets exactly `address`.
fn all_get(node: &Node, address: &str) -> bool {
    answers(node).iter().all(|a| a == &[address.to_string()])
}

/// Both of zone-a's endpoints answer some prefixes, every prefix gets one
/// of them alone, and a split answer's scope is the hashed /24.
fn split_between(node: &Node, blue: &str, green: &str) -> bool {
    let mut seen = BTreeSet::new();
    for i in 0..CLIENTS {
        let (addresses, scope) = ask(node, i);
        match addresses.as_slice() {
            [a] if a == blue || a == green => {
                assert_eq!(scope, 24, "a split answer holds for the /24 only");
                seen.insert(a.clone());
            }
            _ => return false,
        }
    }
    seen.len() == 2
}

fn endpoint(node: &Node, path: &str) -> Value {
    let (status, body) = admin(node, "GET", path, None);
    assert_eq!(status, 200, "{path}: {body}");
    body
}

#[test]
fn a_stopped_endpoints_share_goes_to_its_sibling_in_the_zone() {
    let (mut blue, green, other) = backends();
    let node = Node::start(&config(&blue, &green, &other));
    let (b, g) = (blue.addr.ip().to_string(), green.addr.ip().to_string());
    wait_until(
        "zone-a's answers split between blue and green",
        WITHIN,
        || split_between(&node, &b, &g),
    );
    // The same prefix keeps its endpoint.
    let first = answers(&node);
    assert_eq!(answers(&node), first, "stable per prefix");

    blue.stop();
    wait_until("every zone-a client gets green", WITHIN, || {
        all_get(&node, &g)
    });
    // The zone is still up (green is), so zone-b gets nobody, and with one
    // endpoint left the answer no longer depends on the prefix.
    let (_, scope) = ask(&node, 0);
    assert_eq!(scope, 0, "failover with one serving endpoint holds for all");
    let view = endpoint(&node, "/v1/zones/zone-a/endpoints/www/blue");
    assert_eq!(view["observed"], "down", "{view}");
    assert_eq!(view["endpoint"], "blue", "{view}");

    blue.restart();
    wait_until("blue takes its prefixes back", WITHIN, || {
        answers(&node) == first
    });
}

#[test]
fn draining_one_endpoint_sends_its_zone_to_the_sibling() {
    let (blue, green, other) = backends();
    let node = Node::start(&config(&blue, &green, &other));
    let (b, g) = (blue.addr.ip().to_string(), green.addr.ip().to_string());
    wait_until(
        "zone-a's answers split between blue and green",
        WITHIN,
        || split_between(&node, &b, &g),
    );
    let before = answers(&node);

    let (status, body) = admin(
        &node,
        "POST",
        "/v1/zones/zone-a/endpoints/www/blue/drain",
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["endpoint"], &body["changed"]),
        (&Value::from("blue"), &Value::Bool(true))
    );
    // The reply comes once a snapshot carrying the drain is live.
    assert!(all_get(&node, &g), "{:?}", answers(&node));

    // The admin API shows which endpoint is drained, by name.
    let zone = endpoint(&node, "/v1/zones/zone-a");
    let by_name: Vec<(Value, Value)> = zone["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["endpoint"].clone(), e["forced"].clone()))
        .collect();
    assert_eq!(
        by_name,
        [
            (Value::from("blue"), Value::from("drained (endpoint)")),
            (Value::from("green"), Value::Null)
        ],
        "{zone}"
    );
    assert_eq!(zone["drained"], false, "the zone itself is not drained");
    // Explain says which endpoint and why.
    let (status, explained) = admin(
        &node,
        "GET",
        "/v1/explain?name=www&client=198.18.0.0/24",
        None,
    );
    assert_eq!(status, 200, "{explained}");
    assert_eq!(
        explained["chosen_endpoints"],
        serde_json::json!(["zone-a/green"]),
        "{explained}"
    );
    let why = explained["in_zone"][0]["why"].as_str().unwrap_or_default();
    if before[0] == [b.clone()] {
        assert!(why.contains("`blue` (drained)"), "{explained}");
    } else {
        assert!(
            why.contains("`green` is 198.18.0.0/24's first choice"),
            "{explained}"
        );
    }
    let (status, missing) = admin(
        &node,
        "POST",
        "/v1/zones/zone-a/endpoints/www/teal/drain",
        None,
    );
    assert_eq!(status, 404, "{missing}");
    assert!(
        missing["error"]
            .as_str()
            .unwrap()
            .contains("its endpoints there are: blue, green"),
        "{missing}"
    );

    let (status, _) = admin(
        &node,
        "POST",
        "/v1/zones/zone-a/endpoints/www/blue/undrain",
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(answers(&node), before, "the same split as before the drain");
    let (_, explained) = admin(
        &node,
        "GET",
        "/v1/explain?name=www&client=198.18.0.0/24",
        None,
    );
    let why = explained["in_zone"][0]["why"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        why.contains("first choice") && why.contains("198.18.0.0/24"),
        "{explained}"
    );
    // Every one of these UDP queries took the path under test.
    let fast = node.metric("meridian_dns_fast_path_total");
    if fast_path_on() {
        assert!(fast >= f64::from(CLIENTS) * 3.0, "{fast}");
    } else {
        assert_eq!(fast, 0.0);
    }
    // Answers are counted per named endpoint.
    let metrics = node.metrics_text();
    assert!(
        metrics.contains("meridian_endpoint_answers_total{service=\"www.gslb.test.\",zone=\"zone-a\",endpoint=\"green\"}"),
        "{metrics}"
    );
}

crate::also_on_general_path!(
    a_stopped_endpoints_share_goes_to_its_sibling_in_the_zone,
    draining_one_endpoint_sends_its_zone_to_the_sibling,
);

/// The status page lists a zone's endpoints by name, drains one alone from
/// its button, and names it among the drains.
#[test]
fn the_status_page_lists_and_drains_endpoints_by_name() {
    let Some(chromium) = require_tool("chromium", "chromium") else {
        return;
    };
    let (blue, green, other) = backends();
    let node = Node::start(&config(&blue, &green, &other));
    let (b, g) = (blue.addr.ip().to_string(), green.addr.ip().to_string());
    wait_until(
        "zone-a's answers split between blue and green",
        WITHIN,
        || split_between(&node, &b, &g),
    );
    let dir = private_dir();
    let mut browser = crate::cdp::Browser::start(
        &chromium,
        dir.join("profile"),
        &dir.join("chromium.log"),
        1200,
        900,
    );
    browser.navigate(&format!("http://{}/", node.admin));
    let shown = Duration::from_secs(20);
    let rows = "JSON.stringify([...document.querySelectorAll('[data-zone-card=\"zone-a\"] [data-endpoint]')].map(e => e.textContent))";
    browser.wait_for(
        "zone-a's card lists blue and green",
        shown,
        &format!(
            "{rows} === JSON.stringify(['endpoint blue · weight 50', 'endpoint green · weight 50'])"
        ),
        rows,
    );
    browser.eval(
        "[...document.querySelectorAll('[data-zone-card=\"zone-a\"] button')].find(b => b.getAttribute('aria-label') === 'Drain www.gslb.test. endpoint blue in zone-a').click(); true",
    );
    wait_until("blue is drained, green is not", WITHIN, || {
        endpoint(&node, "/v1/zones/zone-a/endpoints/www/blue")["forced"] == "drained (endpoint)"
    });
    assert_eq!(
        endpoint(&node, "/v1/zones/zone-a/endpoints/www/green")["forced"],
        Value::Null
    );
    assert!(all_get(&node, &g));
    browser.wait_for(
        "the drain is listed by endpoint name",
        shown,
        "document.getElementById('drains').textContent.includes('www.gslb.test. endpoint blue in zone-a')",
        "document.getElementById('drains').textContent",
    );
}
