//! Health-checking promises beyond one address per endpoint: `min_healthy`
//! over several addresses, `probe_concurrency` bounding the probes in
//! flight (hung backends then delay the others), and `probe_metrics =
//! "zone"` summing the probe series per zone.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use serde_json::Value;

use crate::backend::{Backend, Mode};
use crate::harness::*;
use crate::health::admin;

/// A bound for a state change: 200 ms probes, fall 2, and a loaded machine.
const FLIP_WITHIN: Duration = Duration::from_secs(10);

fn header(server: &str) -> String {
    format!(
        r#"
[server]
{server}

[domain]
name = "gslb.test."
[[domain.nameservers]]
name = "ns1"
addresses = ["192.0.2.53"]
"#
    )
}

fn zone(name: &str, latitude: u32) -> String {
    format!("\n[[zones]]\nname = \"{name}\"\nlatitude = {latitude}.0\nlongitude = 0.0\n")
}

/// Endpoint `zone` of `www` at `ips`, TCP-checked at `port` every 200 ms.
fn tcp_endpoint(zone: &str, ips: &[&str], port: u16, extra: &str) -> String {
    let addresses: Vec<String> = ips.iter().map(|ip| format!("\"{ip}\"")).collect();
    format!(
        "\n[[services.endpoints]]\nzone = \"{zone}\"\naddresses = [{}]\n{extra}\ncheck = {{ kind = \"tcp\", port = {port}, interval = \"200ms\", timeout = \"200ms\", rise = 2, fall = 2 }}\n",
        addresses.join(", ")
    )
}

fn answer(node: &Node) -> BTreeSet<String> {
    a_addrs(&node.udp(&query("www.gslb.test.", RecordType::A)).answers)
        .into_iter()
        .collect()
}

fn set(ips: &[&str]) -> BTreeSet<String> {
    ips.iter().map(|s| s.to_string()).collect()
}

fn endpoint(node: &Node, zone: &str) -> Value {
    let (status, body) = admin(
        node,
        "GET",
        &format!("/v1/zones/{zone}/endpoints/www"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    body
}

fn all_addresses_up(view: &Value) -> bool {
    view["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["observed"] == "up")
}

#[test]
fn min_healthy_keeps_an_endpoint_up_only_while_enough_addresses_are() {
    // zone-a: three addresses on one port, two must be up; zone-b: one.
    let mut a = OpenPort::open_all(&["127.0.0.1", "127.0.0.2", "127.0.0.3"]);
    let b = OpenPort::open("127.0.0.4:0".parse().unwrap()).unwrap();
    let mut text = header("") + &zone("zone-a", 0) + &zone("zone-b", 10);
    text += "\n[[services]]\nname = \"www\"\npolicy = \"all\"\n";
    text += &tcp_endpoint(
        "zone-a",
        &["127.0.0.1", "127.0.0.2", "127.0.0.3"],
        a[0].addr.port(),
        "min_healthy = 2",
    );
    text += &tcp_endpoint("zone-b", &["127.0.0.4"], b.addr.port(), "");
    let node = Node::start(&text);
    let everyone = set(&["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]);
    wait_until("every address probed up", FLIP_WITHIN, || {
        all_addresses_up(&endpoint(&node, "zone-a")) && all_addresses_up(&endpoint(&node, "zone-b"))
    });
    assert_eq!(answer(&node), everyone);
    assert_eq!(endpoint(&node, "zone-a")["min_healthy"], 2);

    // One of three down: two remain, the endpoint serves without it.
    a[0].close();
    wait_until("the down address leaves the answer", FLIP_WITHIN, || {
        answer(&node) == set(&["127.0.0.2", "127.0.0.3", "127.0.0.4"])
    });
    let view = endpoint(&node, "zone-a");
    assert_eq!(
        (&view["observed"], &view["serving"]),
        (&Value::from("up"), &Value::Bool(true)),
        "{view}"
    );

    // Two of three down: one is below min_healthy, the whole endpoint is
    // down although 127.0.0.3 still answers its probes.
    a[1].close();
    wait_until("zone-a leaves the answer", FLIP_WITHIN, || {
        answer(&node) == set(&["127.0.0.4"])
    });
    let view = endpoint(&node, "zone-a");
    assert_eq!(view["observed"], "down", "{view}");
    assert_eq!(view["serving"], false);
    assert_eq!(view["addresses"][2]["observed"], "up", "{view}");

    // Back to two: up again.
    a[1].reopen();
    wait_until("zone-a comes back with two addresses", FLIP_WITHIN, || {
        answer(&node) == set(&["127.0.0.2", "127.0.0.3", "127.0.0.4"])
    });
}

/// Four zones whose backends hang and a fifth, healthy one, every check
/// HTTP; hung probes cost their 1 s timeout (`fall = 1`: a hung address is
/// down after its first timeout, so no shorter confirming probe follows).
fn hung_and_healthy(hung: &[Backend], healthy: &Backend, server: &str) -> String {
    let mut text = header(server);
    let all: Vec<&Backend> = hung.iter().chain([healthy]).collect();
    for i in 0..all.len() {
        text += &zone(&format!("z{i}"), i as u32);
    }
    text += "\n[[services]]\nname = \"www\"\npolicy = \"all\"\n";
    for (i, b) in all.iter().enumerate() {
        let interval = if i < hung.len() { "1s" } else { "200ms" };
        text += &format!(
            "\n[[services.endpoints]]\nzone = \"z{i}\"\naddresses = [\"{}\"]\ncheck = {{ port = {}, interval = \"{interval}\", timeout = \"{interval}\", fall = 1 }}\n",
            b.addr.ip(),
            b.addr.port()
        );
    }
    text
}

fn ok_probes(node: &Node, zone: &str, address: &str) -> f64 {
    let series = format!(
        "meridian_probes_total{{service=\"www.gslb.test.\",zone=\"{zone}\",address=\"{address}\",result=\"ok\"}}"
    );
    node.series(&series).unwrap_or(0.0)
}

#[test]
fn probe_concurrency_bounds_probes_in_flight_so_hung_ones_delay_the_rest() {
    let start_all = |first: u8| -> (Vec<Backend>, Backend) {
        let hung: Vec<Backend> = (0..4)
            .map(|i| Backend::start(&format!("127.0.0.{}", first + i)))
            .collect();
        for b in &hung {
            b.set_mode(Mode::Hang);
        }
        (hung, Backend::start(&format!("127.0.0.{}", first + 4)))
    };
    let (hung_one, healthy_one) = start_all(1);
    let (hung_many, healthy_many) = start_all(11);
    let one = Node::start(&hung_and_healthy(
        &hung_one,
        &healthy_one,
        "probe_concurrency = 1",
    ));
    let many = Node::start(&hung_and_healthy(&hung_many, &healthy_many, ""));
    let sum = |hung: &[Backend]| hung.iter().map(Backend::requests).sum::<u64>();

    // Let every task start (the first probes are spread over an interval).
    std::thread::sleep(Duration::from_millis(1500));
    let t0 = Instant::now();
    let (hung_one_0, hung_many_0) = (sum(&hung_one), sum(&hung_many));
    let healthy_one_0 = ok_probes(&one, "z4", "127.0.0.5");
    let healthy_many_0 = ok_probes(&many, "z4", "127.0.0.15");
    std::thread::sleep(Duration::from_secs(4));
    let hung_one_n = sum(&hung_one) - hung_one_0;
    let hung_many_n = sum(&hung_many) - hung_many_0;
    let healthy_one_n = ok_probes(&one, "z4", "127.0.0.5") - healthy_one_0;
    let healthy_many_n = ok_probes(&many, "z4", "127.0.0.15") - healthy_many_0;
    let seconds = t0.elapsed().as_secs_f64();

    // One slot: each hung probe holds it for its 1 s timeout, so at most
    // one starts per second (plus one at each edge of the window).
    let bound = seconds.floor() as u64 + 2;
    assert!(
        hung_one_n <= bound,
        "concurrency 1: {hung_one_n} hung probes in {seconds:.1} s"
    );
    // Without the bound the four hung addresses are probed side by side.
    assert!(
        hung_many_n > bound,
        "default concurrency: only {hung_many_n} hung probes in {seconds:.1} s"
    );
    // The healthy address waits its turn behind the hung ones (each of its
    // probes is followed by a hung one), while alone it is probed every
    // 200 ms.
    assert!(
        healthy_one_n <= hung_one_n as f64 + 2.0,
        "concurrency 1: {healthy_one_n} healthy probes, {hung_one_n} hung"
    );
    assert!(
        healthy_many_n > healthy_one_n,
        "default: {healthy_many_n} healthy probes, concurrency 1: {healthy_one_n}"
    );
}

#[test]
fn probe_metrics_zone_sums_each_zones_addresses_into_one_series() {
    let a = OpenPort::open_all(&["127.0.0.1", "127.0.0.2"]);
    let b = OpenPort::open("127.0.0.3:0".parse().unwrap()).unwrap();
    let mut text = header("probe_metrics = \"zone\"") + &zone("zone-a", 0) + &zone("zone-b", 10);
    text += "\n[[services]]\nname = \"www\"\npolicy = \"all\"\n";
    text += &tcp_endpoint("zone-a", &["127.0.0.1", "127.0.0.2"], a[0].addr.port(), "");
    text += &tcp_endpoint("zone-b", &["127.0.0.3"], b.addr.port(), "");
    let node = Node::start(&text);
    let probes_seen = |zone: &str| -> u64 {
        endpoint(&node, zone)["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["probes"].as_u64().unwrap_or(0))
            .sum()
    };
    wait_until("a few probes of each address", FLIP_WITHIN, || {
        ["zone-a", "zone-b"].iter().all(|zone| {
            endpoint(&node, zone)["addresses"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["probes"].as_u64().unwrap_or(0) >= 3)
        })
    });

    // The series of zone-a is the sum over its two addresses: it lies
    // between the admin API's per-address totals read before and after.
    let before = probes_seen("zone-a");
    let text = node.metrics_text();
    let after = probes_seen("zone-a");
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    };
    let ok = value("meridian_probes_total{zone=\"zone-a\",result=\"ok\"}");
    let failed = value("meridian_probes_total{zone=\"zone-a\",result=\"fail\"}");
    assert_eq!(failed, 0.0);
    assert!(
        before as f64 <= ok && ok <= after as f64 + 2.0,
        "zone-a: {ok} probes counted, the addresses had {before}..{after}"
    );
    let rtt_count = value("meridian_probe_rtt_seconds_count{zone=\"zone-a\"}");
    // Every success has an RTT; the same bounds hold for the histogram.
    assert!(
        before as f64 <= rtt_count && rtt_count <= after as f64 + 2.0,
        "zone-a: {rtt_count} RTTs counted, the addresses had {before}..{after}"
    );
    assert!(value("meridian_probes_total{zone=\"zone-b\",result=\"ok\"}") >= 3.0);
    // No probe series carries an address (or anything but its zone).
    for line in text.lines().filter(|l| l.starts_with("meridian_probe")) {
        assert!(!line.contains("address="), "{line}");
        assert!(!line.contains("service="), "{line}");
    }
}

/// One service per path, each with one endpoint at `backend` checked over HTTP
/// at `path` every 200 ms.
fn services_on(backend: &Backend, paths: &[&str]) -> String {
    let mut text = header("") + &zone("a", 0);
    for (i, path) in paths.iter().enumerate() {
        text += &format!(
            "\n[[services]]\nname = \"s{i}\"\n[[services.endpoints]]\nzone = \"a\"\naddresses = [\"{}\"]\ncheck = {{ port = {}, path = \"{path}\", interval = \"200ms\", timeout = \"200ms\" }}\n",
            backend.addr.ip(),
            backend.addr.port()
        );
    }
    text
}

/// Requests a backend gets over `window` while `node` probes it.
fn requests_over(backend: &Backend, window: Duration) -> u64 {
    let before = backend.requests();
    std::thread::sleep(window);
    backend.requests() - before
}

#[test]
fn services_checking_one_address_the_same_way_share_its_probe() {
    // Ten services behind one load balancer, checked alike: one probe per
    // interval. Two more with another path: a second probe.
    let shared = Backend::start("127.0.0.21");
    let node = Node::start(&services_on(&shared, &["/health"; 10]));
    wait_until("first probes", FLIP_WITHIN, || shared.requests() >= 2);
    let window = Duration::from_secs(2);
    let n = requests_over(&shared, window);
    // 2 s at 200 ms is 10 probes; ten separate probes would be 100.
    assert!((5..=20).contains(&n), "{n} probes for ten services in 2 s");

    let mixed = Backend::start("127.0.0.22");
    let other = Node::start(&services_on(&mixed, &["/health", "/health", "/ready"]));
    wait_until("first probes", FLIP_WITHIN, || mixed.requests() >= 2);
    let m = requests_over(&mixed, window);
    assert!(
        (12..=30).contains(&m),
        "{m} probes for two distinct checks in 2 s"
    );

    // They share the verdict: all ten go down together.
    drop(shared);
    wait_until("every service down", FLIP_WITHIN, || {
        let (_, body) = admin(&node, "GET", "/v1/zones/a", None);
        body["services"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["observed"] == "down")
    });
    drop(other);
}
