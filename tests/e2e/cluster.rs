//! Three nodes sharing their checker pool, in one test process on
//! 127.0.0.1 with their own ports, in front of real HTTP load balancers:
//! a dead load balancer leaves every node's answers, one node's cut path
//! is outvoted, drains spread, dead nodes age out and a lone survivor
//! fails static.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::rr::{RData, RecordType};
use meridian::Listeners;
use meridian::config::Config;
use meridian::dns::DnsSockets;
use serde_json::Value;

use crate::backend::Backend;
use crate::harness::*;

/// Interval x fall + pull interval is well under a second here; this is
/// room for a loaded two-core CI machine. Behaviour is under test.
const WITHIN: Duration = Duration::from_secs(8);
const TOKEN: &str = "cluster-token-for-tests-0123456789";
const ZONES: [&str; 3] = ["a", "b", "c"];
const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];

struct Cluster {
    backends: Vec<Backend>,
    nodes: Vec<Option<Node>>,
    texts: Vec<String>,
    dir: std::path::PathBuf,
    /// Holds the port a cut path's probes go to, so nothing else takes it.
    _closed: socket2::Socket,
}

/// The config every node runs; `closed_port_for` names a node and a zone
/// whose check port, on that node only, refuses (its path to the zone is
/// cut; the address, and so what it votes on, stays the same).
fn config_text(
    backends: &[Backend],
    admins: &[SocketAddr],
    closed: Option<(usize, u16)>,
    node: usize,
    extra: &str,
) -> String {
    let mut text = format!(
        r#"
[domain]
name = "gslb.test."
[[domain.nameservers]]
name = "ns1"
addresses = ["192.0.2.53"]

[cluster]
token = "{TOKEN}"
pull_interval = "100ms"
pull_timeout = "300ms"
stale_after = "1s"
"#
    );
    for (i, zone) in ZONES.iter().enumerate() {
        text += &format!(
            "\n[[zones]]\nname = \"{zone}\"\nlatitude = {}.0\nlongitude = 0.0\n",
            i * 10
        );
    }
    for (i, name) in NODES.iter().enumerate() {
        text += &format!(
            "\n[[cluster.nodes]]\nname = \"{name}\"\nzone = \"{}\"\nadmin = \"http://{}\"\n",
            ZONES[i], admins[i]
        );
    }
    text +=
        "\n[[services]]\nname = \"www\"\npolicy = \"failover\"\norder = [\"a\", \"b\", \"c\"]\n";
    for (i, backend) in backends.iter().enumerate() {
        let port = match closed {
            Some((cut_node, port)) if cut_node == node && i == 0 => port,
            _ => backend.addr.port(),
        };
        text += &format!(
            "\n[[services.endpoints]]\nzone = \"{}\"\naddresses = [\"{}\"]\ncheck = {{ kind = \"http\", port = {port}, interval = \"200ms\", timeout = \"150ms\", rise = 2, fall = 2 }}\n",
            ZONES[i],
            backend.addr.ip()
        );
    }
    text + extra
}

/// Blue/green in zone a, answer data only (no probes): for drains of one
/// named endpoint.
const BLUE_GREEN: &str = r#"
[[services]]
name = "bg"
policy = "failover"
order = ["a", "b"]
[services.check]
kind = "none"
[[services.endpoints]]
zone = "a"
name = "blue"
addresses = ["192.0.2.71"]
[[services.endpoints]]
zone = "a"
name = "green"
addresses = ["192.0.2.72"]
[[services.endpoints]]
zone = "b"
addresses = ["192.0.2.73"]
"#;

/// A port on 127.0.0.1 that refuses connections: bound, not listening,
/// held by the returned socket.
fn closed_port() -> (u16, socket2::Socket) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&any.into()).unwrap();
    let port = socket.local_addr().unwrap().as_socket().unwrap().port();
    (port, socket)
}

impl Cluster {
    fn start(cut: Option<usize>) -> Cluster {
        Cluster::start_with(cut, "")
    }

    /// The same with `extra` TOML in every node's config.
    fn start_with(cut: Option<usize>, extra: &str) -> Cluster {
        let backends: Vec<Backend> = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
            .iter()
            .map(|ip| Backend::start(ip))
            .collect();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let listeners: Vec<Listeners> = (0..3)
            .map(|_| {
                let admin = std::net::TcpListener::bind(any).unwrap();
                admin.set_nonblocking(true).unwrap();
                Listeners {
                    dns: DnsSockets::bind(&[any], 1).unwrap(),
                    admin: Some(admin),
                }
            })
            .collect();
        let admins: Vec<SocketAddr> = listeners
            .iter()
            .map(|l| l.admin.as_ref().unwrap().local_addr().unwrap())
            .collect();
        let held = closed_port();
        let closed = cut.map(|node| (node, held.0));
        let texts: Vec<String> = (0..3)
            .map(|i| config_text(&backends, &admins, closed, i, extra))
            .collect();
        let dir = private_dir();
        let mut cluster = Cluster {
            backends,
            nodes: (0..3).map(|_| None).collect(),
            texts,
            dir,
            _closed: held.1,
        };
        for (i, l) in listeners.into_iter().enumerate() {
            cluster.nodes[i] = Some(cluster.start_node(i, l));
        }
        cluster
    }

    fn start_node(&self, i: usize, listeners: Listeners) -> Node {
        let config = Config::parse(&self.texts[i], &self.dir.join(format!("{}.toml", NODES[i])))
            .unwrap_or_else(|e| panic!("{e}"))
            .for_node(Some(NODES[i]))
            .unwrap();
        Node::start_on(config, listeners)
    }

    fn node(&self, i: usize) -> &Node {
        self.nodes[i].as_ref().expect("node running")
    }

    fn running(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().flatten()
    }

    /// The zones a node answers `www` with.
    fn answer(node: &Node) -> Vec<String> {
        let reply = node.udp(&query("www.gslb.test.", RecordType::A));
        reply
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(match a.0.octets()[3] {
                    1 => "a".to_string(),
                    2 => "b".to_string(),
                    3 => "c".to_string(),
                    _ => format!("{a}"),
                }),
                _ => None,
            })
            .collect()
    }

    fn answers(&self) -> Vec<Vec<String>> {
        self.running().map(Cluster::answer).collect()
    }

    fn all_answer(&self, zone: &str) -> bool {
        self.answers().iter().all(|a| a == &[zone.to_string()])
    }

    fn kill(&mut self, i: usize) {
        self.nodes[i].take().expect("node running").stop();
    }
}

fn get(node: &Node, path: &str) -> Value {
    let (status, body) = crate::health::admin(node, "GET", path, None);
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn post(node: &Node, path: &str, body: &str) -> Value {
    let response = reqwest::blocking::Client::new()
        .post(format!("http://{}{path}", node.admin))
        .body(body.to_string())
        .send()
        .expect("admin answers");
    assert_eq!(response.status().as_u16(), 200);
    response.json().unwrap()
}

/// Waits until every node pulls from every peer and has every peer's
/// opinion of zone a's load balancer.
fn wait_connected(cluster: &Cluster) {
    wait_until("every node pulls from its peers", WITHIN, || {
        cluster.running().all(|n| {
            get(n, "/v1/cluster")["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["self"] == true || p["reachable"] == true)
        })
    });
    wait_until("every node has three votes on zone a", WITHIN, || {
        cluster
            .running()
            .all(|n| get(n, "/v1/zones/a")["services"][0]["addresses"][0]["cluster"]["voters"] == 3)
    });
}

#[test]
fn a_dead_load_balancer_leaves_every_nodes_answers_and_they_agree() {
    let mut cluster = Cluster::start(None);
    wait_connected(&cluster);
    assert!(cluster.all_answer("a"), "{:?}", cluster.answers());
    cluster.backends[0].stop();
    wait_until("every node answers b", WITHIN, || cluster.all_answer("b"));
    // The decision is the quorum's, and says so.
    let zone = get(cluster.node(1), "/v1/zones/a");
    let votes = &zone["services"][0]["addresses"][0]["cluster"];
    assert_eq!(votes["decision"], "down", "{zone}");
    assert!(votes["down_votes"].as_u64().unwrap() >= 2, "{votes}");
    cluster.backends[0].restart();
    wait_until("every node answers a again", WITHIN, || {
        cluster.all_answer("a")
    });
}

#[test]
fn one_nodes_cut_path_is_outvoted_and_it_says_so() {
    // node-c's probes of zone a go to a closed port: its path is cut.
    let cluster = Cluster::start(Some(2));
    wait_connected(&cluster);
    let c = cluster.node(2);
    wait_until("node-c sees zone a down itself", WITHIN, || {
        get(c, "/v1/zones/a")["services"][0]["addresses"][0]["observed"] == "down"
    });
    // Several pull and probe intervals later, nobody has moved away.
    for _ in 0..10 {
        assert!(cluster.all_answer("a"), "{:?}", cluster.answers());
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = get(c, "/v1/cluster");
    let disagreements = status["disagreements"].as_array().unwrap();
    assert_eq!(disagreements.len(), 1, "{status}");
    assert_eq!(disagreements[0]["zone"], "a");
    assert_eq!(disagreements[0]["own"], "down");
    assert_eq!(disagreements[0]["agreed"], "up");
    assert_eq!(c.series("meridian_cluster_disagreements"), Some(1.0));
    assert_eq!(
        cluster.node(0).series("meridian_cluster_disagreements"),
        Some(0.0)
    );
    assert_eq!(
        c.series(r#"meridian_cluster_peer_reachable{node="node-a"}"#),
        Some(1.0)
    );
    // Its config differs from the others' (the cut is made by config here),
    // and the others see that.
    let a = get(cluster.node(0), "/v1/cluster");
    let peer_c = a["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "node-c")
        .unwrap();
    assert_eq!(peer_c["config_differs"], true, "{a}");
    // node-a records node-c's vote.
    let votes =
        get(cluster.node(0), "/v1/zones/a")["services"][0]["addresses"][0]["cluster"].clone();
    assert_eq!(votes["nodes"]["node-c"], "down", "{votes}");
    assert_eq!(votes["decision"], "up", "{votes}");
    // Explain shows the same votes behind the zone it chose.
    let e = get(c, "/v1/explain?name=www&client=198.51.100.7");
    let chosen = &e["candidates"][0];
    assert_eq!(chosen["zone"], "a", "{e}");
    assert_eq!(chosen["votes"][0]["nodes"]["node-c"], "down", "{e}");
    assert_eq!(chosen["votes"][0]["decision"], "up", "{e}");
}

#[test]
fn a_drain_on_one_node_reaches_every_node_and_concurrent_changes_converge() {
    let cluster = Cluster::start(None);
    wait_connected(&cluster);
    let drained = post(
        cluster.node(0),
        "/v1/zones/a/drain",
        r#"{"reason": "maintenance window"}"#,
    );
    assert_eq!(drained["changed"], true, "{drained}");
    wait_until("every node avoids a", WITHIN, || cluster.all_answer("b"));
    let record =
        get(cluster.node(1), "/v1/zones/a")["services"][0]["drain_records"]["zone"].clone();
    assert_eq!(record["reason"], "maintenance window", "{record}");
    assert_eq!(record["node"], "node-a", "{record}");
    assert_eq!(record["who"], "127.0.0.1", "{record}");

    post(cluster.node(2), "/v1/zones/a/undrain", "");
    wait_until("every node answers a again", WITHIN, || {
        cluster.all_answer("a")
    });

    // Drain on one node and undrain on another at once: whichever is newer
    // wins, and every node ends the same.
    let a = cluster.node(0).admin;
    let b = cluster.node(1).admin;
    let one = std::thread::spawn(move || {
        reqwest::blocking::Client::new()
            .post(format!("http://{a}/v1/zones/b/drain"))
            .send()
            .unwrap()
    });
    let two = std::thread::spawn(move || {
        reqwest::blocking::Client::new()
            .post(format!("http://{b}/v1/zones/b/undrain"))
            .send()
            .unwrap()
    });
    one.join().unwrap();
    two.join().unwrap();
    wait_until(
        "every node holds the same drain record for b",
        WITHIN,
        || {
            let records: Vec<Value> = cluster
                .running()
                .map(|n| get(n, "/v1/zones/b")["services"][0]["drain_records"]["zone"].clone())
                .collect();
            records.iter().all(|r| *r == records[0] && !r.is_null())
        },
    );
    let drained: Vec<Value> = cluster
        .running()
        .map(|n| get(n, "/v1/zones/b")["drained"].clone())
        .collect();
    assert!(drained.iter().all(|d| *d == drained[0]), "{drained:?}");
}

/// The addresses a node answers `bg` with, for 16 client /24s (ECS).
fn bg_answers(node: &Node) -> Vec<String> {
    use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
    (0..16u8)
        .flat_map(|i| {
            let mut q = query_edns("bg.gslb.test.", RecordType::A, 1232);
            q.edns
                .as_mut()
                .unwrap()
                .options_mut()
                .insert(EdnsOption::Subnet(ClientSubnet::new(
                    std::net::IpAddr::from([198, 18, i, 0]),
                    24,
                    0,
                )));
            node.udp(&q)
                .answers
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(a.to_string()),
                    _ => None,
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn a_drain_of_one_endpoint_in_a_zone_reaches_every_node() {
    let cluster = Cluster::start_with(None, BLUE_GREEN);
    wait_connected(&cluster);
    let split = |n: &Node| {
        let seen: std::collections::BTreeSet<String> = bg_answers(n).into_iter().collect();
        seen == ["192.0.2.71".to_string(), "192.0.2.72".to_string()].into()
    };
    assert!(cluster.running().all(split), "blue and green share zone a");
    let drained = post(
        cluster.node(0),
        "/v1/zones/a/endpoints/bg/blue/drain",
        r#"{"reason": "deploying green"}"#,
    );
    assert_eq!(
        (&drained["endpoint"], &drained["changed"]),
        (&Value::from("blue"), &Value::Bool(true)),
        "{drained}"
    );
    wait_until("every node sends zone a's clients to green", WITHIN, || {
        cluster
            .running()
            .all(|n| bg_answers(n).iter().all(|a| a == "192.0.2.72"))
    });
    for n in cluster.running() {
        let blue = get(n, "/v1/zones/a/endpoints/bg/blue");
        assert_eq!(blue["forced"], "drained (endpoint)", "{blue}");
        let record = &blue["drain_records"]["named"];
        assert_eq!(record["node"], "node-a", "{blue}");
        assert_eq!(record["reason"], "deploying green", "{blue}");
        let green = get(n, "/v1/zones/a/endpoints/bg/green");
        assert_eq!(green["forced"], Value::Null, "only blue: {green}");
    }
    // Undrained on another node, and that spreads too.
    post(cluster.node(2), "/v1/zones/a/endpoints/bg/blue/undrain", "");
    wait_until("every node splits zone a again", WITHIN, || {
        cluster.running().all(split)
    });
}

#[test]
fn dead_nodes_age_out_of_the_vote_and_a_lone_survivor_fails_static() {
    let mut cluster = Cluster::start(None);
    wait_connected(&cluster);
    cluster.kill(1);
    wait_until("node-b's observations go stale", WITHIN, || {
        get(cluster.node(0), "/v1/cluster")["fresh_nodes"] == 2
    });
    // Two fresh nodes of three still decide: a dead load balancer goes.
    cluster.backends[0].stop();
    wait_until("the two live nodes answer b", WITHIN, || {
        cluster.all_answer("b")
    });
    let status = get(cluster.node(0), "/v1/cluster");
    assert_eq!(status["fail_static"], false, "{status}");

    // One of three alone cannot decide: it keeps the last agreed state,
    // even when its own probes see zone a come back.
    cluster.kill(2);
    wait_until("node-a says it fails static", WITHIN, || {
        get(cluster.node(0), "/v1/cluster")["fail_static"] == true
    });
    cluster.backends[0].restart();
    wait_until("node-a sees a up itself", WITHIN, || {
        get(cluster.node(0), "/v1/zones/a")["services"][0]["addresses"][0]["observed"] == "up"
    });
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        Cluster::answer(cluster.node(0)),
        ["b"],
        "last agreed state kept"
    );
    let votes =
        get(cluster.node(0), "/v1/zones/a")["services"][0]["addresses"][0]["cluster"].clone();
    assert_eq!(votes["fail_static"], true, "{votes}");
}

#[test]
fn a_restarted_node_converges_to_the_clusters_view() {
    let mut cluster = Cluster::start(None);
    wait_connected(&cluster);
    post(cluster.node(0), "/v1/zones/c/drain", "");
    cluster.backends[0].stop();
    wait_until("every node answers b", WITHIN, || cluster.all_answer("b"));
    // node-b restarts on new ports: its peers' configs still name the old
    // admin address, so it is started with a config naming its new one.
    let old = cluster.nodes[1].take().unwrap();
    old.stop();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let admin = std::net::TcpListener::bind(cluster.node(0).admin.ip().to_string() + ":0").unwrap();
    admin.set_nonblocking(true).unwrap();
    let listeners = Listeners {
        dns: DnsSockets::bind(&[any], 1).unwrap(),
        admin: Some(admin),
    };
    let fresh = cluster.start_node(1, listeners);
    wait_until("the restarted node drains c and drops a", WITHIN, || {
        Cluster::answer(&fresh) == ["b"] && get(&fresh, "/v1/zones/c")["drained"] == true
    });
    cluster.nodes[1] = Some(fresh);
}

#[test]
fn observations_are_served_only_with_the_cluster_token() {
    let cluster = Cluster::start(None);
    let node = cluster.node(0);
    let url = format!("http://{}/v1/cluster/observations", node.admin);
    let client = reqwest::blocking::Client::new();
    let none = client.get(&url).send().unwrap();
    assert_eq!(none.status().as_u16(), 401);
    let wrong = client
        .get(&url)
        .bearer_auth("not-the-cluster-token-at-all")
        .send()
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let body: Value = client
        .get(&url)
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(body["node"], "node-a");
    assert_eq!(body["addresses"].as_array().unwrap().len(), 3, "{body}");
    // A refused request changed nothing.
    let before = get(node, "/v1/cluster");
    assert_eq!(before["node"], "node-a");
}

/// The raw NSID option (code 3) of a reply, if any.
fn nsid_of(reply: &hickory_proto::op::Message) -> Option<String> {
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    match reply.edns.as_ref()?.option(EdnsCode::NSID)? {
        EdnsOption::NSID(payload) => Some(String::from_utf8_lossy(payload.as_ref()).into_owned()),
        _ => None,
    }
}

#[test]
fn nsid_and_id_server_name_the_node_that_answered() {
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::rdata::opt::{EdnsOption, NSIDPayload};
    use hickory_proto::rr::{DNSClass, Name};

    let cluster = Cluster::start(None);
    for (i, name) in NODES.iter().enumerate() {
        let node = cluster.node(i);
        // NSID asked: the reply names the node, on UDP and TCP.
        let mut asked = query_edns("www.gslb.test.", RecordType::A, 1232);
        let mut edns = asked.edns.clone().unwrap_or_default();
        edns.options_mut()
            .insert(EdnsOption::NSID(NSIDPayload::new(Vec::new()).unwrap()));
        asked.set_edns(edns);
        assert_eq!(nsid_of(&node.udp(&asked)).as_deref(), Some(*name));
        assert_eq!(nsid_of(&node.tcp(&asked)).as_deref(), Some(*name));
        // Not asked: not told.
        let plain = query_edns("www.gslb.test.", RecordType::A, 1232);
        assert_eq!(nsid_of(&node.udp(&plain)), None);

        for id in ["id.server.", "hostname.bind.", "ID.SERVER."] {
            let mut q = Message::query();
            q.metadata.id = 7;
            let mut question = Query::query(Name::from_ascii(id).unwrap(), RecordType::TXT);
            question.set_query_class(DNSClass::CH);
            q.add_query(question);
            let reply = node.udp(&q);
            assert_eq!(reply.answers.len(), 1, "{id}: {reply:?}");
            let RData::TXT(txt) = &reply.answers[0].data else {
                panic!("{id}: {reply:?}");
            };
            assert_eq!(txt.to_string(), *name, "{id}");
            assert_eq!(reply.answers[0].dns_class, DNSClass::CH);
        }
    }
}
