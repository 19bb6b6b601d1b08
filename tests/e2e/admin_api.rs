//! Admin API promises no other test reaches: 403 for a state-changing
//! request from a non-loopback peer without a token, 413 for a body over
//! the limit, `GET /v1/zones/{zone}/endpoints/{service}`, and `since`
//! moving on a transition (and only then).
//!
//! A non-loopback peer cannot be made on 127.0.0.0/8 (every source there is
//! loopback), so the 403 test runs itself again inside a private network
//! namespace (`unshare --user --map-root-user --net`, no privileges
//! needed where user namespaces are allowed) whose `lo` also carries
//! 10.255.0.1: a peer with that source is local to the namespace but not
//! loopback. No traffic leaves the namespace.

use std::net::IpAddr;
use std::time::Duration;

use meridian::Listeners;
use meridian::config::Config;
use meridian::dns::DnsSockets;
use serde_json::Value;

use crate::backend::Backend;
use crate::harness::*;
use crate::health::admin;

const NON_LOOPBACK: &str = "10.255.0.1";

/// A POST with an optional token from a chosen source address.
fn post_from(source: &str, url: &str, token: Option<&str>) -> (u16, Value) {
    let source: IpAddr = source.parse().unwrap();
    let client = reqwest::blocking::Client::builder()
        .local_address(source)
        .no_proxy()
        .build()
        .unwrap();
    let mut request = client.post(url);
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

/// The example with `server` keys, served with its admin API on
/// 10.255.0.1 (inside the namespace).
fn node_on_non_loopback_admin(server: &str) -> Node {
    let text = example_config_text().replace("[server]\n", &format!("[server]\n{server}\n"));
    let dir = private_dir();
    let config = Config::parse(&text, &dir.join("test.toml")).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
    let dns = DnsSockets::bind(&["127.0.0.1:0".parse().unwrap()], 1).unwrap();
    let admin = std::net::TcpListener::bind((NON_LOOPBACK, 0)).expect("bind admin on 10.255.0.1");
    admin.set_nonblocking(true).unwrap();
    Node::start_on(
        config,
        Listeners {
            dns,
            admin: Some(admin),
        },
    )
}

/// The body of the test inside the namespace.
fn forbidden_in_this_namespace() {
    let node = node_on_non_loopback_admin("");
    let url = format!("http://{}/v1/zones/us-east/drain", node.admin);
    // Without a token, a write from a non-loopback peer is refused...
    let (status, body) = post_from(NON_LOOPBACK, &url, None);
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("loopback"),
        "{body}"
    );
    let (_, zone) = crate::health::admin(&node, "GET", "/v1/zones/us-east", None);
    assert_eq!(zone["drained"], false, "the refused drain did not apply");
    // ...the same request from loopback is accepted.
    let (status, body) = post_from("127.0.0.1", &url, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changed"], true);
    drop(node);

    // With a token, the token decides, whatever the peer.
    let token = "0123456789abcdef0123";
    let node = node_on_non_loopback_admin(&format!("admin_token = \"{token}\""));
    let url = format!("http://{}/v1/zones/us-east/drain", node.admin);
    let (status, body) = post_from(NON_LOOPBACK, &url, None);
    assert_eq!(status, 401, "{body}");
    let (status, body) = post_from(NON_LOOPBACK, &url, Some(token));
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_write_from_a_non_loopback_peer_without_a_token_is_forbidden() {
    let name = "admin_api::a_write_from_a_non_loopback_peer_without_a_token_is_forbidden";
    let address = format!("{NON_LOOPBACK}/32");
    let setup: [&[&str]; 2] = [
        &["link", "set", "lo", "up"],
        &["addr", "add", &address, "dev", "lo"],
    ];
    if in_private_netns(name, &setup) {
        forbidden_in_this_namespace();
    }
}

#[test]
fn a_loopback_client_of_an_ipv6_admin_socket_is_still_loopback() {
    // An admin address given as IPv6 that IPv4 clients also reach (a
    // dual-stack `[::]`, here its loopback-only form) sees 127.0.0.1 as
    // ::ffff:127.0.0.1; that peer is loopback and may write.
    let text = example_config_text();
    let dir = private_dir();
    let config = Config::parse(&text, &dir.join("test.toml")).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
    let dns = DnsSockets::bind(&["127.0.0.1:0".parse().unwrap()], 1).unwrap();
    let admin = match std::net::TcpListener::bind("[::ffff:127.0.0.1]:0") {
        Ok(admin) => admin,
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "bind [::ffff:127.0.0.1]: {e}"
            );
            eprintln!("SKIPPED: cannot bind [::ffff:127.0.0.1] here ({e})");
            return;
        }
    };
    admin.set_nonblocking(true).unwrap();
    let node = Node::start_on(
        config,
        Listeners {
            dns,
            admin: Some(admin),
        },
    );
    let url = format!(
        "http://127.0.0.1:{}/v1/zones/us-east/drain",
        node.admin.port()
    );
    let (status, body) = post_from("127.0.0.1", &url, None);
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_body_over_the_limit_gets_413_and_changes_nothing() {
    let node =
        Node::start(&all_policy_example().replace("policy = \"all\"", "policy = \"latency\""));
    let explain = |node: &Node| {
        let (status, e) = admin(node, "GET", "/v1/explain?name=www&client=10.9.1.0/24", None);
        assert_eq!(status, 200, "{e}");
        e["basis"]["kind"].as_str().unwrap().to_string()
    };
    let before = explain(&node);
    assert_ne!(before, "latency", "no measurement yet");
    let sample = r#"{"prefix": "10.9.0.0/16", "zone": "ap-south", "rtt_ms": 1.0}"#;
    let post = |body: String| {
        let response = reqwest::blocking::Client::new()
            .post(format!("http://{}/v1/latency", node.admin))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .expect("admin answers");
        let status = response.status().as_u16();
        let text = response.text().unwrap();
        (status, text)
    };
    // A valid measurement padded past 1 MiB: refused for its size.
    let (status, text) = post(format!("{sample}{}", " ".repeat(1 << 20)));
    assert_eq!(status, 413, "{text}");
    let body: Value = serde_json::from_str(&text).expect("a JSON error");
    assert!(body["error"].as_str().is_some(), "{body}");
    assert_eq!(explain(&node), before, "nothing of it applied");
    // The same padded to just under the limit is accepted.
    let (status, text) = post(format!("{sample}{}", " ".repeat((1 << 20) - 200)));
    assert_eq!(status, 200, "{text}");
    assert_eq!(explain(&node), "latency");
}

/// Two zones probed over HTTP, `www` in both and `api` in zone-a only.
fn two_zone_config(a: &Backend, b: &Backend) -> String {
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
longitude = 10.0
[[services]]
name = "www"
policy = "all"
[services.check]
kind = "http"
path = "/health"
interval = "200ms"
timeout = "200ms"
port = {a_port}
[[services.endpoints]]
zone = "zone-a"
addresses = ["{a_ip}"]
[[services.endpoints]]
zone = "zone-b"
addresses = ["{b_ip}"]
min_healthy = 1
check = {{ port = {b_port} }}
[[services]]
name = "api"
policy = "all"
[services.check]
kind = "none"
[[services.endpoints]]
zone = "zone-a"
addresses = ["192.0.2.20"]
"#,
        a_ip = a.addr.ip(),
        a_port = a.addr.port(),
        b_ip = b.addr.ip(),
        b_port = b.addr.port(),
    )
}

#[test]
fn one_endpoint_is_served_by_zone_and_service() {
    let a = Backend::start("127.0.0.1");
    let b = Backend::start("127.0.0.2");
    let node = Node::start(&two_zone_config(&a, &b));
    let get = |path: &str| {
        let (status, body) = admin(&node, "GET", path, None);
        assert_eq!(status, 200, "{path}: {body}");
        body
    };
    wait_until("zone-b probed up", Duration::from_secs(10), || {
        get("/v1/zones/zone-b/endpoints/www")["addresses"][0]["observed"] == "up"
    });
    let view = get("/v1/zones/zone-b/endpoints/www");
    assert_eq!(view["service"], "www.gslb.test.");
    assert_eq!(view["zone"], "zone-b");
    assert_eq!(view["observed"], "up");
    assert_eq!(view["forced"], Value::Null);
    assert_eq!(view["serving"], true);
    assert_eq!(view["min_healthy"], 1);
    assert_eq!(
        view["check"],
        format!("http port {} path /health", b.addr.port())
    );
    let addresses = view["addresses"].as_array().unwrap();
    assert_eq!(addresses.len(), 1, "{view}");
    assert_eq!(addresses[0]["address"], "127.0.0.2");
    assert_eq!(addresses[0]["last_result"], "ok");
    // The same endpoint as the zone view shows it, and by its full name.
    let (_, zone) = admin(&node, "GET", "/v1/zones/zone-b", None);
    assert_eq!(zone["services"][0]["zone"], view["zone"]);
    assert_eq!(zone["services"][0]["check"], view["check"]);
    assert_eq!(
        get("/v1/zones/zone-b/endpoints/www.gslb.test.")["service"],
        "www.gslb.test."
    );
    // A drain shows on the one endpoint.
    let (status, _) = admin(&node, "POST", "/v1/zones/zone-b/endpoints/www/drain", None);
    assert_eq!(status, 200);
    let view = get("/v1/zones/zone-b/endpoints/www");
    assert_eq!(
        (view["forced"].as_str(), &view["serving"]),
        (Some("drained"), &Value::Bool(false))
    );
    // api has no endpoint in zone-b; unknown names are 404 too.
    for (path, needle) in [
        ("/v1/zones/zone-b/endpoints/api", "no endpoint in zone"),
        ("/v1/zones/zone-b/endpoints/nope", "no service `nope`"),
        ("/v1/zones/atlantis/endpoints/www", "no zone `atlantis`"),
    ] {
        let (status, body) = admin(&node, "GET", path, None);
        assert_eq!(status, 404, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(needle),
            "{path}: {body}"
        );
    }
}

#[test]
fn since_moves_on_a_transition_and_only_then() {
    let mut a = Backend::start("127.0.0.1");
    let b = Backend::start("127.0.0.2");
    let node = Node::start(&two_zone_config(&a, &b));
    let address = || {
        let (status, body) = admin(&node, "GET", "/v1/zones/zone-a/endpoints/www", None);
        assert_eq!(status, 200, "{body}");
        body["addresses"][0].clone()
    };
    wait_until("zone-a probed up", Duration::from_secs(10), || {
        address()["observed"] == "up"
    });
    let up = address();
    let up_since = up["since"].as_str().unwrap().to_string();
    // More probes, no transition: `since` stays.
    let probes = up["probes"].as_u64().unwrap();
    wait_until("three more probes", Duration::from_secs(10), || {
        address()["probes"].as_u64().unwrap() >= probes + 3
    });
    let still = address();
    assert_eq!(still["observed"], "up");
    assert_eq!(still["since"].as_str(), Some(up_since.as_str()), "{still}");
    // Down: `since` moves forward (fixed-width RFC 3339, so the strings
    // order as the instants do).
    a.stop();
    wait_until("zone-a down", Duration::from_secs(10), || {
        address()["observed"] == "down"
    });
    let down_since = address()["since"].as_str().unwrap().to_string();
    assert!(down_since > up_since, "{down_since} after {up_since}");
    assert_eq!(down_since.len(), "2026-11-23T19:25:20.123Z".len());
    assert!(down_since.ends_with('Z'));
}
