//! The status page in a real browser, and the admin API's description.
//!
//! A headless Chromium ([`crate::cdp`]) loads `GET /` from a real node
//! whose three zones are real HTTP backends, sees the three zones up, and
//! then, without a reload, sees a zone go down when its load balancer is
//! stopped, and a zone drained by its button once the page has the admin
//! token. A screenshot is kept under `target/artifacts/` for CI (and, with
//! `MERIDIAN_UPDATE_SCREENSHOT=1`, written to `docs/status-page.png`).
//!
//! The OpenAPI test checks from outside what the unit test checks from the
//! router's source: every documented route answers, with the documented
//! method, on a real node.

use std::path::PathBuf;
use std::time::Duration;

use hickory_proto::op::Edns;
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use serde_json::Value;

use crate::backend::Backend;
use crate::cdp::Browser;
use crate::harness::*;
use crate::health::admin;

/// Bound for what the page must show: a flip takes interval x fall plus a
/// poll (1 s); generous for a loaded CI machine.
const SHOWN_WITHIN: Duration = Duration::from_secs(20);
const TOKEN: &str = "status-page-test-token-0123456789";

/// The shipped example's zones (at their coordinates), each with a real
/// backend, the shipped GeoIP database, and a token.
fn config(backends: &[&Backend; 3]) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let zones = [
        ("us-east", 38.9, -77.4, "NA", "US"),
        ("eu-west", 53.3, -6.3, "EU", "IE"),
        ("ap-south", 19.1, 72.9, "AS", "IN"),
    ];
    let mut text = format!(
        r#"
[server]
admin_token = "{TOKEN}"

[domain]
name = "gslb.example."

[[domain.nameservers]]
name = "ns1"
addresses = ["192.0.2.53"]

[geoip]
files = ["{root}/geo/default.mmdb"]
"#
    );
    for (name, lat, lon, continent, country) in zones {
        text += &format!(
            "\n[[zones]]\nname = \"{name}\"\nlatitude = {lat}\nlongitude = {lon}\ncontinent = \"{continent}\"\ncountry = \"{country}\"\n"
        );
    }
    text += "\n[[services]]\nname = \"www\"\npolicy = \"nearest\"\n";
    for ((name, ..), backend) in zones.iter().zip(backends) {
        text += &format!(
            "\n[[services.endpoints]]\nzone = \"{name}\"\naddresses = [\"{}\"]\ncheck = {{ kind = \"http\", port = {}, interval = \"200ms\", timeout = \"200ms\", rise = 2, fall = 2 }}\n",
            backend.addr.ip(),
            backend.addr.port()
        );
    }
    text
}

/// Queries for `www` from clients on several continents, so the page's
/// answer chart has something to show.
fn ask_from_around_the_world(node: &Node, rounds: usize) {
    let clients = [
        "12.0.0.0/24",
        "193.0.0.0/24",
        "14.139.0.0/24",
        "200.160.0.0/24",
        "1.0.0.0/24",
    ];
    for round in 0..rounds {
        for (i, subnet) in clients.iter().enumerate() {
            if (round + i) % 3 == 0 && i > 2 {
                continue;
            }
            let net: ipnet::IpNet = subnet.parse().unwrap();
            let mut message = query("www.gslb.example.", RecordType::A);
            let mut edns = Edns::new();
            edns.set_max_payload(1232);
            edns.options_mut()
                .insert(EdnsOption::Subnet(ClientSubnet::new(
                    net.addr(),
                    net.prefix_len(),
                    0,
                )));
            message.set_edns(edns);
            node.udp(&message);
        }
    }
}

fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("artifacts");
    std::fs::create_dir_all(&dir).expect("create target/artifacts");
    dir
}

/// The state the page shows for `zone`, on the map and on its card.
fn zone_state_js(zone: &str) -> String {
    format!(
        "(() => {{ const m = document.querySelector('#map [data-zone=\"{zone}\"]'); \
         const c = document.querySelector('[data-zone-card=\"{zone}\"]'); \
         return m && c && m.dataset.state === c.dataset.state ? m.dataset.state : null; }})()"
    )
}

const SHOWN_ZONES_JS: &str = "JSON.stringify([...document.querySelectorAll('#map [data-zone]')]\
    .map(z => z.dataset.zone + ':' + z.dataset.state)) + ' / ' + document.getElementById('live').textContent";

#[test]
fn the_status_page_follows_a_zone_going_down_without_a_reload() {
    let Some(chromium) = require_tool("chromium", "chromium") else {
        return;
    };
    let mut backends = [
        Backend::start("127.0.0.1"),
        Backend::start("127.0.0.2"),
        Backend::start("127.0.0.3"),
    ];
    let node = Node::start(&config(&[&backends[0], &backends[1], &backends[2]]));
    let mut last = Value::Null;
    let up = (0..200).any(|_| {
        let (_, status) = admin(&node, "GET", "/v1/status", None);
        last = status["zones"].clone();
        let up = last
            .as_array()
            .is_some_and(|z| z.len() == 3 && z.iter().all(|z| z["state"] == "up"));
        if !up {
            std::thread::sleep(Duration::from_millis(100));
        }
        up
    });
    assert!(up, "every zone probed up within 20 s: {last}");

    let log = artifacts_dir().join("chromium-status-page.log");
    let mut browser = Browser::start(&chromium, private_dir(), &log, 1440, 1300);
    browser.navigate(&format!("http://{}/", node.admin));
    browser.wait_for(
        "the page shows three zones up",
        SHOWN_WITHIN,
        &format!(
            "['us-east', 'eu-west', 'ap-south'].every(z => {} === 'up')",
            zone_state_js("z").replace("\"z\"", "\"' + z + '\"")
        ),
        SHOWN_ZONES_JS,
    );
    assert_eq!(
        browser.eval("document.querySelectorAll('#map [data-zone]').length"),
        3,
        "exactly the three configured zones are drawn"
    );
    // A mark that a reload would erase.
    browser.eval("window.__loadedOnce = 'still the same page'; true");
    let polls_before = browser.eval("Number(document.body.dataset.polls)");

    // Answers for the chart, over a few of the page's polls.
    for _ in 0..4 {
        ask_from_around_the_world(&node, 6);
        std::thread::sleep(Duration::from_millis(600));
    }

    backends[1].stop();
    browser.wait_for(
        "the page shows eu-west down",
        SHOWN_WITHIN,
        &format!("{} === 'down'", zone_state_js("eu-west")),
        SHOWN_ZONES_JS,
    );
    assert_eq!(
        browser.eval("window.__loadedOnce"),
        "still the same page",
        "the page changed by itself, without being reloaded"
    );
    assert!(
        browser.eval("Number(document.body.dataset.polls)").as_f64() > polls_before.as_f64(),
        "the page polled again"
    );
    assert_eq!(browser.eval(&zone_state_js("us-east")), "up");
    assert_eq!(browser.eval(&zone_state_js("ap-south")), "up");
    browser.wait_for(
        "the flip is listed among recent events with its probe error",
        SHOWN_WITHIN,
        "[...document.querySelectorAll('#events li')].some(li => li.textContent.includes('127.0.0.2') && li.textContent.includes('→ down'))",
        "document.getElementById('events').textContent",
    );
    browser.wait_for(
        "Europe is sent elsewhere now",
        SHOWN_WITHIN,
        "[...document.querySelectorAll('#routing tbody tr')].some(tr => tr.cells[0].textContent === 'Europe' && !tr.cells[3].textContent.includes('eu-west'))",
        "document.getElementById('routing').textContent",
    );
    ask_from_around_the_world(&node, 6);
    browser.wait_for(
        "the answer chart has bars",
        SHOWN_WITHIN,
        "document.querySelectorAll('#chart rect[height]').length > 0 && document.getElementById('share-text').textContent.includes('%')",
        "document.getElementById('share-text').textContent",
    );

    // The explain box.
    browser.eval(
        "document.getElementById('explain-client').value = '193.0.0.0/24'; \
         document.getElementById('explain-form').requestSubmit(); true",
    );
    browser.wait_for(
        "explain names the zone and why",
        SHOWN_WITHIN,
        "document.getElementById('explain-result').textContent.includes('NL') && document.getElementById('explain-result').textContent.includes('Sent to')",
        "document.getElementById('explain-result').textContent",
    );

    let png = browser.screenshot();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let artifact = artifacts_dir().join("status-page.png");
    std::fs::write(&artifact, &png).expect("write the screenshot");
    if std::env::var_os("MERIDIAN_UPDATE_SCREENSHOT").is_some() {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/status-page.png");
        std::fs::write(docs, &png).expect("write docs/status-page.png");
    }

    // Drain buttons: refused without the token, applied with it.
    let drain_button = "[...document.querySelectorAll('[data-zone-card=\"ap-south\"] h3 button')].find(b => b.textContent === 'Drain zone')";
    browser.eval(&format!("{drain_button}.click(); true"));
    browser.wait_for(
        "without the token the page says what is missing",
        SHOWN_WITHIN,
        "document.getElementById('message').textContent.includes('token')",
        "document.getElementById('message').textContent",
    );
    assert_eq!(browser.eval(&zone_state_js("ap-south")), "up");
    browser.eval(&format!(
        "document.getElementById('token').value = '{TOKEN}'; \
         document.getElementById('token-form').requestSubmit(); \
         document.getElementById('reason').value = 'browser test'; true"
    ));
    assert_eq!(
        browser.eval("sessionStorage.getItem('meridian-admin-token')"),
        TOKEN
    );
    browser.eval(&format!("{drain_button}.click(); true"));
    browser.wait_for(
        "the drained zone shows drained",
        SHOWN_WITHIN,
        &format!("{} === 'drained'", zone_state_js("ap-south")),
        SHOWN_ZONES_JS,
    );
    let (_, zone) = admin(&node, "GET", "/v1/zones/ap-south", None);
    let record = &zone["services"][0]["drain_records"]["zone"];
    assert_eq!(record["drained"], true, "{zone}");
    assert_eq!(record["reason"], "browser test", "{zone}");
    browser.wait_for(
        "the drain is listed with who and why",
        SHOWN_WITHIN,
        "document.getElementById('drains').textContent.includes('browser test') && document.getElementById('events').textContent.includes('drained zone ap-south')",
        "document.getElementById('drains').textContent",
    );
    browser.eval(
        "[...document.querySelectorAll('[data-zone-card=\"ap-south\"] h3 button')].find(b => b.textContent === 'Undrain zone').click(); true",
    );
    browser.wait_for(
        "the undrained zone is up again",
        SHOWN_WITHIN,
        &format!("{} === 'up'", zone_state_js("ap-south")),
        SHOWN_ZONES_JS,
    );

    // Every load balancer stopped: `www` fails open (the default all-down
    // rule), and the page says so rather than plain "down".
    backends[0].stop();
    backends[2].stop();
    browser.wait_for(
        "every zone shows failing open",
        SHOWN_WITHIN,
        &format!(
            "['us-east', 'eu-west', 'ap-south'].every(z => {} === 'failing open')",
            zone_state_js("z").replace("\"z\"", "\"' + z + '\"")
        ),
        SHOWN_ZONES_JS,
    );
    assert!(
        browser
            .eval("document.getElementById('announce').textContent")
            .as_str()
            .is_some_and(|t| t.contains("is now failing open")),
        "the change is announced to screen readers"
    );
}

/// Every route the description documents answers with its method: not the
/// router's 404 ("no such endpoint") or 405 fallbacks.
#[test]
fn every_documented_route_is_served() {
    let text = example_config_text().replace(
        "[server]\n",
        &format!("[server]\nadmin_token = \"{TOKEN}\"\n"),
    );
    let node = Node::start(&text);
    let (status, doc) = admin(&node, "GET", "/v1/openapi.json", None);
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 15, "{paths:?}");
    let client = reqwest::blocking::Client::new();
    for (path, item) in paths {
        let concrete = path
            .replace("{zone}", "us-east")
            .replace("{service}", "www");
        for method in item.as_object().unwrap().keys() {
            let url = format!("http://{}{concrete}", node.admin);
            let request = match method.as_str() {
                "get" => client.get(&url),
                // With the token: a refused request would not tell a
                // routed POST from an unrouted one. Drains come before
                // undrains in this order, and the node is thrown away.
                "post" => client.post(&url).bearer_auth(TOKEN),
                other => panic!("{path}: method {other} is not served by the router"),
            };
            let response = request.send().expect("admin answers");
            let code = response.status().as_u16();
            let body = response.text().unwrap();
            assert!(
                code != 405 && !body.contains("no such endpoint"),
                "{method} {path} is documented but not routed: {code} {body}"
            );
        }
    }
    let response = reqwest::blocking::get(format!("http://{}/", node.admin)).unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let policy = response
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"),
        "the page may load only from the node: {policy}"
    );
    assert!(response.text().unwrap().contains("Meridian status"));
    let (_, status) = admin(&node, "GET", "/v1/status", None);
    let regions = status["services"][0]["regions"].as_array().unwrap();
    let europe = regions.iter().find(|r| r["region"] == "Europe").unwrap();
    assert_eq!(europe["chosen"], serde_json::json!(["eu-west"]), "{europe}");
    assert_eq!(status["zones"].as_array().map(Vec::len), Some(3));
    // The drains and undrains sent above (paths in sorted order: zone
    // drain, endpoint drain, endpoint undrain, zone undrain), newest
    // first, with who.
    let events = status["events"].as_array().expect("events");
    let kinds: Vec<(&str, &str, Option<&str>)> = events
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap(),
                e["zone"].as_str().unwrap(),
                e["service"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("undrain", "us-east", None),
            ("undrain", "us-east", Some("www.gslb.example.")),
            ("drain", "us-east", Some("www.gslb.example.")),
            ("drain", "us-east", None),
        ],
        "{status}"
    );
    assert!(events.iter().all(|e| e["who"] == "127.0.0.1"), "{status}");
    let (code, body) = admin(&node, "GET", "/v1/status?service=nope", None);
    assert_eq!(code, 404, "{body}");
    let (code, body) = admin(&node, "GET", "/v1/status?service=www", None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["services"][0]["regions"].as_array().map(Vec::len),
        Some(7)
    );
}

/// Three nodes sharing their probes: the page of one of them lists every
/// node, the quorum, and each node's vote on each address.
#[test]
fn the_status_page_shows_every_node_and_its_votes() {
    let Some(chromium) = require_tool("chromium", "chromium") else {
        return;
    };
    let names = ["node-a", "node-b", "node-c"];
    let backends = [
        Backend::start("127.0.0.1"),
        Backend::start("127.0.0.2"),
        Backend::start("127.0.0.3"),
    ];
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let listeners: Vec<meridian::Listeners> = (0..3)
        .map(|_| {
            let admin = std::net::TcpListener::bind(any).unwrap();
            admin.set_nonblocking(true).unwrap();
            meridian::Listeners {
                dns: meridian::dns::DnsSockets::bind(&[any], 1).unwrap(),
                admin: Some(admin),
            }
        })
        .collect();
    let admins: Vec<std::net::SocketAddr> = listeners
        .iter()
        .map(|l| l.admin.as_ref().unwrap().local_addr().unwrap())
        .collect();
    let mut text = config(&[&backends[0], &backends[1], &backends[2]]);
    text += "\n[cluster]\ntoken = \"status-page-cluster-token-0123456789\"\npull_interval = \"100ms\"\npull_timeout = \"300ms\"\nstale_after = \"1s\"\n";
    for ((name, zone), admin) in names
        .iter()
        .zip(["us-east", "eu-west", "ap-south"])
        .zip(&admins)
    {
        text += &format!(
            "\n[[cluster.nodes]]\nname = \"{name}\"\nzone = \"{zone}\"\nadmin = \"http://{admin}\"\n"
        );
    }
    let dir = private_dir();
    let mut nodes: Vec<Option<Node>> = listeners
        .into_iter()
        .zip(names)
        .map(|(l, name)| {
            let config = meridian::config::Config::parse(&text, &dir.join(format!("{name}.toml")))
                .unwrap_or_else(|e| panic!("{e}"))
                .for_node(Some(name))
                .unwrap();
            Some(Node::start_on(config, l))
        })
        .collect();
    let first = nodes[0].as_ref().unwrap();

    let log = artifacts_dir().join("chromium-status-page-cluster.log");
    let mut browser = Browser::start(&chromium, private_dir(), &log, 1440, 1300);
    browser.navigate(&format!("http://{}/", first.admin));
    browser.wait_for(
        "the page lists three fresh nodes",
        SHOWN_WITHIN,
        "!document.getElementById('cluster-section').hidden && \
         document.querySelectorAll('#nodes tbody tr').length === 3 && \
         document.getElementById('quorum').textContent.startsWith('3 fresh node(s) of 3') && \
         [...document.querySelectorAll('#nodes tbody tr')].filter(tr => tr.cells[2].textContent === 'yes, fresh').length === 2",
        "document.getElementById('cluster-section').textContent",
    );
    browser.wait_for(
        "each address shows the votes of every node",
        SHOWN_WITHIN,
        "['node-a: up', 'node-b: up', 'node-c: up'].every(v => document.querySelector('[data-zone-card=\"eu-west\"]').textContent.includes(v)) && \
         document.querySelector('[data-zone-card=\"eu-west\"]').textContent.includes('quorum up')",
        "document.getElementById('zones').textContent",
    );
    browser.eval("window.__loadedOnce = 'same page'; true");
    nodes[2].take().unwrap().stop();
    browser.wait_for(
        "the stopped node is shown unreachable",
        SHOWN_WITHIN,
        "[...document.querySelectorAll('#nodes tbody tr')].some(tr => tr.cells[0].textContent === 'node-c' && tr.cells[2].textContent.startsWith('no'))",
        "document.getElementById('nodes').textContent",
    );
    assert_eq!(browser.eval("window.__loadedOnce"), "same page");
    std::fs::write(
        artifacts_dir().join("status-page-cluster.png"),
        browser.screenshot(),
    )
    .expect("write the screenshot");
    drop(browser);
    drop(nodes);
    let _ = std::fs::remove_dir_all(dir);
}
