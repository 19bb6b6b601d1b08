//! A node's life across changes: drains surviving a reload, fresh health
//! for an address a reload changed, leaving fail-open (and saying so in the
//! log), refusing to start on an unreadable state file, the reload result
//! counters, and one snapshot per burst of health transitions.
//!
//! The log and the start-up refusal are checked on the built binary, as an
//! operator runs it; it binds port 0 and the test reads the ports it got
//! from its log, so no port is guessed.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use serde_json::Value;

use crate::backend::{Backend, Mode};
use crate::harness::*;
use crate::health::admin;

const WITHIN: Duration = Duration::from_secs(10);
const BYSTANDERS: usize = 2000;

fn a_records(reply: &Message) -> BTreeSet<String> {
    a_addrs(&reply.answers).into_iter().collect()
}

fn answer(node: &Node) -> BTreeSet<String> {
    a_records(&node.udp(&query("www.gslb.test.", RecordType::A)))
}

fn set(ips: &[&str]) -> BTreeSet<String> {
    ips.iter().map(|s| s.to_string()).collect()
}

/// Two zones with `www` (policy all); each endpoint line is given whole.
fn two_zones(server: &str, endpoint_a: &str, endpoint_b: &str, extra: &str) -> String {
    format!(
        r#"
[server]
{server}

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

{extra}

[[services]]
name = "www"
policy = "all"

[[services.endpoints]]
zone = "zone-a"
{endpoint_a}

[[services.endpoints]]
zone = "zone-b"
{endpoint_b}
"#
    )
}

fn http_check(b: &Backend, timing: &str) -> String {
    format!(
        "addresses = [\"{}\"]\ncheck = {{ kind = \"http\", port = {}, {timing} }}",
        b.addr.ip(),
        b.addr.port()
    )
}

const FAST: &str = "interval = \"200ms\", timeout = \"200ms\"";

fn reload(node: &Node) -> (u16, Value) {
    admin(node, "POST", "/v1/reload", None)
}

#[test]
fn drains_stay_across_a_reload() {
    let dir = private_dir();
    let path = dir.join("meridian.toml");
    let a = "addresses = [\"192.0.2.1\"]\ncheck = { kind = \"none\" }";
    let b = "addresses = [\"192.0.2.2\"]\ncheck = { kind = \"none\" }";
    std::fs::write(&path, two_zones("", a, b, "")).unwrap();
    let node = Node::start_file(&path);
    let (status, body) = admin(&node, "POST", "/v1/zones/zone-b/drain", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(answer(&node), set(&["192.0.2.1"]));

    // A changed file: a new record, so the reload is a real swap.
    let extra = "[[records]]\nname = \"hello\"\ntype = \"TXT\"\ndata = \"v2\"\n";
    std::fs::write(&path, two_zones("", a, b, extra)).unwrap();
    let (status, body) = reload(&node);
    assert_eq!(status, 200, "{body}");
    let hello = node.udp(&query("hello.gslb.test.", RecordType::TXT));
    assert_eq!(hello.answers.len(), 1, "the new file is live");
    assert_eq!(answer(&node), set(&["192.0.2.1"]), "the drain stays");
    let (_, zone) = admin(&node, "GET", "/v1/zones/zone-b", None);
    assert_eq!(zone["drained"], true, "{zone}");
    // And undrain still works on the reloaded config.
    let (status, _) = admin(&node, "POST", "/v1/zones/zone-b/undrain", None);
    assert_eq!(status, 200);
    assert_eq!(answer(&node), set(&["192.0.2.1", "192.0.2.2"]));
    drop(node);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_reload_that_changes_an_address_starts_its_health_afresh() {
    let mut old = Backend::start("127.0.0.1");
    let b = Backend::start("127.0.0.2");
    // The replacement hangs: its probes take 2 s each to fail, so for
    // several seconds after the reload it can only be `unknown`, unless
    // the old address's `down` was wrongly carried over to it.
    let new = Backend::start("127.0.0.4");
    new.set_mode(Mode::Hang);
    let dir = private_dir();
    let path = dir.join("meridian.toml");
    let endpoint_b = http_check(&b, FAST);
    std::fs::write(
        &path,
        two_zones("", &http_check(&old, FAST), &endpoint_b, ""),
    )
    .unwrap();
    let node = Node::start_file(&path);
    old.stop();
    wait_until("the old address down", WITHIN, || {
        answer(&node) == set(&["127.0.0.2"])
    });

    wait_until("zone-b probed up", WITHIN, || {
        admin(&node, "GET", "/v1/zones/zone-b/endpoints/www", None).1["addresses"][0]["observed"]
            == "up"
    });
    let slow = "interval = \"5s\", timeout = \"2s\"";
    std::fs::write(
        &path,
        two_zones("", &http_check(&new, slow), &endpoint_b, ""),
    )
    .unwrap();
    let (status, body) = reload(&node);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        answer(&node),
        set(&["127.0.0.4", "127.0.0.2"]),
        "a new address starts unknown, which answers count as up"
    );
    let (_, zone_a) = admin(&node, "GET", "/v1/zones/zone-a/endpoints/www", None);
    let address = &zone_a["addresses"][0];
    assert_eq!(address["address"], "127.0.0.4");
    assert_eq!(address["observed"], "unknown", "{zone_a}");
    assert_eq!(address["consecutive_fail"].as_u64(), Some(0), "{zone_a}");
    // The address that stayed kept what its probes had seen.
    let (_, zone_b) = admin(&node, "GET", "/v1/zones/zone-b/endpoints/www", None);
    assert_eq!(zone_b["addresses"][0]["observed"], "up", "{zone_b}");
    drop(node);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn both_reload_results_are_counted() {
    let dir = private_dir();
    let path = dir.join("meridian.toml");
    let a = "addresses = [\"192.0.2.1\"]\ncheck = { kind = \"none\" }";
    let b = "addresses = [\"192.0.2.2\"]\ncheck = { kind = \"none\" }";
    let good = two_zones("", a, b, "");
    std::fs::write(&path, &good).unwrap();
    let node = Node::start_file(&path);
    let ok = "meridian_config_reloads_total{result=\"accepted\"}";
    let rejected = "meridian_config_reloads_total{result=\"rejected\"}";
    assert_eq!(
        (node.series(ok), node.series(rejected)),
        (Some(0.0), Some(0.0))
    );
    assert_eq!(reload(&node).0, 200);
    std::fs::write(&path, good.replace("latitude = 10.0", "latitude = 100.0")).unwrap();
    assert_eq!(reload(&node).0, 422);
    std::fs::write(&path, &good).unwrap();
    assert_eq!(reload(&node).0, 200);
    assert_eq!(
        (node.series(ok), node.series(rejected)),
        (Some(2.0), Some(1.0))
    );
    drop(node);
    std::fs::remove_dir_all(dir).unwrap();
}

/// An HTTP backend that holds every request until released, then answers
/// all it holds from one thread in one loop (so within microseconds of
/// each other), and every later request at once, with 200.
struct Gate {
    addr: SocketAddr,
    /// Requests read and waiting for the release.
    held: Arc<Mutex<Vec<TcpStream>>>,
    open: Arc<AtomicBool>,
    running: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const OK_REPLY: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

impl Gate {
    fn start(ip: &str) -> Gate {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let held = Arc::new(Mutex::new(Vec::new()));
        let open = Arc::new(AtomicBool::new(false));
        let running = Arc::new(AtomicBool::new(true));
        let (h, o, r) = (held.clone(), open.clone(), running.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if !r.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (h, o) = (h.clone(), o.clone());
                std::thread::spawn(move || Gate::serve(stream, &h, &o));
            }
        });
        Gate {
            addr,
            held,
            open,
            running,
            thread: Some(thread),
        }
    }

    fn serve(mut stream: TcpStream, held: &Mutex<Vec<TcpStream>>, open: &AtomicBool) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        // Decided under the lock, so no request is left behind by a
        // release running at the same moment.
        let mut waiting = held.lock().unwrap();
        if open.load(Ordering::SeqCst) {
            drop(waiting);
            let _ = stream.write_all(OK_REPLY);
        } else {
            waiting.push(stream);
        }
    }

    /// Requests held whose prober is still waiting (it has not closed).
    fn waiting(&self) -> usize {
        let mut held = self.held.lock().unwrap();
        held.retain(|s| {
            let _ = s.set_nonblocking(true);
            let mut byte = [0u8; 1];
            let closed = matches!(s.peek(&mut byte), Ok(0));
            let _ = s.set_nonblocking(false);
            !closed
        });
        held.len()
    }

    /// Answers every held request now, and every later one at once.
    fn release(&self) {
        let mut held = self.held.lock().unwrap();
        self.open.store(true, Ordering::SeqCst);
        for stream in held.iter_mut() {
            let _ = stream.write_all(OK_REPLY);
        }
        held.clear();
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.running.store(false, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.held.lock().unwrap().clear();
    }
}

#[test]
fn a_burst_of_transitions_costs_one_snapshot_not_one_each() {
    // Ten services on one gated backend, each checking its own path (so
    // ten probes, not one shared); rise 1 and fall 1, so one probe result
    // flips each. While the gate is shut every probe times out:
    // all ten go down, and each keeps a probe waiting at the gate.
    let gate = Gate::start("127.0.0.1");
    let mut text = String::from(
        "[domain]\nname = \"gslb.test.\"\n[[domain.nameservers]]\nname = \"ns1\"\naddresses = [\"192.0.2.53\"]\n\
         [[zones]]\nname = \"zone-a\"\nlatitude = 0.0\nlongitude = 0.0\n",
    );
    for i in 0..10 {
        text += &format!(
            "\n[[services]]\nname = \"s{i}\"\npolicy = \"all\"\n[services.check]\nkind = \"http\"\npath = \"/s{i}\"\nport = {}\ninterval = \"1s\"\ntimeout = \"1s\"\nrise = 1\nfall = 1\n[[services.endpoints]]\nzone = \"zone-a\"\naddresses = [\"127.0.0.1\"]\n",
            gate.addr.port()
        );
    }
    // Folding takes in what is queued when a rebuild starts, so a burst is
    // one rebuild when rebuilding takes longer than the burst takes to
    // arrive. Many services that are never probed make a rebuild take a
    // few milliseconds; with these ten alone it takes microseconds and
    // ten near-simultaneous transitions still cost 8 to 10 rebuilds.
    for i in 0..BYSTANDERS {
        text += &format!(
            "\n[[services]]\nname = \"b{i}\"\n[services.check]\nkind = \"none\"\n[[services.endpoints]]\nzone = \"zone-a\"\naddresses = [\"192.0.2.1\"]\n"
        );
    }
    let node = Node::start(&text);
    let observed = || -> Vec<String> {
        let (_, zone) = admin(&node, "GET", "/v1/zones/zone-a", None);
        zone["services"]
            .as_array()
            .unwrap()
            .iter()
            .take(10)
            .map(|s| s["observed"].as_str().unwrap().to_string())
            .collect()
    };
    wait_until("all ten down", WITHIN, || {
        observed().iter().all(|o| o == "down")
    });
    wait_until("every prober waiting at the gate", WITHIN, || {
        gate.waiting() == 10
    });
    let published = "meridian_snapshots_published_total";
    let before = node.metric(published);
    gate.release();
    wait_until("all ten up", WITHIN, || {
        observed().iter().all(|o| o == "up")
    });
    let after = node.metric(published);
    let transitions = node
        .metrics_text()
        .lines()
        .filter(|l| l.starts_with("meridian_health_transitions_total") && l.contains("to=\"up\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum::<f64>();
    assert_eq!(transitions, 10.0, "ten transitions to up");
    let rebuilds = after - before;
    // Observed: 2 or 3; one per transition would be 10.
    assert!(
        (1.0..=5.0).contains(&rebuilds),
        "{rebuilds} snapshots for a burst of ten transitions"
    );
}

/// The built binary serving a config with JSON logs on port 0 (DNS and
/// admin); the ports it got are read from its log. Killed on drop.
struct Served {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    dns: SocketAddr,
    admin: SocketAddr,
}

/// The first `127.0.0.1:<port>` in a log line.
fn loopback_addr_in(line: &str) -> Option<SocketAddr> {
    let at = line.find("127.0.0.1:")?;
    let rest = &line[at + "127.0.0.1:".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    format!("127.0.0.1:{digits}").parse().ok()
}

impl Served {
    fn start(config: &Path) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_meridian"))
            .args(["serve", "--config"])
            .arg(config)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--admin",
                "127.0.0.1:0",
                "--log-format",
                "json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                sink.lock().unwrap().push(line);
            }
        });
        let mut served = Served {
            child,
            logs,
            dns: "127.0.0.1:0".parse().unwrap(),
            admin: "127.0.0.1:0".parse().unwrap(),
        };
        wait_until("the binary logs its addresses", WITHIN, || {
            let found = |message: &str| {
                served
                    .lines_with(message)
                    .first()
                    .and_then(|l| loopback_addr_in(l))
            };
            match (found("\"serving\""), found("admin endpoint listening")) {
                (Some(dns), Some(admin)) => {
                    served.dns = dns;
                    served.admin = admin;
                    true
                }
                _ => false,
            }
        });
        served
    }

    fn lines_with(&self, needle: &str) -> Vec<String> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    fn answer(&self) -> BTreeSet<String> {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let q = query("www.gslb.test.", RecordType::A);
        socket.send_to(&q.to_vec().unwrap(), self.dns).unwrap();
        let mut buf = [0u8; 1500];
        let (n, _) = socket.recv_from(&mut buf).expect("a reply within 5 s");
        a_records(&Message::from_vec(&buf[..n]).unwrap())
    }

    fn metric(&self, series: &str) -> Option<f64> {
        let text = reqwest::blocking::get(format!("http://{}/metrics", self.admin))
            .unwrap()
            .text()
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn leaving_fail_open_is_logged_once_and_answers_recover() {
    let mut ports = [
        OpenPort::open("127.0.0.1:0".parse().unwrap()).unwrap(),
        OpenPort::open("127.0.0.2:0".parse().unwrap()).unwrap(),
    ];
    let endpoint = |p: &OpenPort| {
        format!(
            "addresses = [\"{}\"]\ncheck = {{ kind = \"tcp\", port = {}, {FAST} }}",
            p.addr.ip(),
            p.addr.port()
        )
    };
    let dir = private_dir();
    let path = dir.join("meridian.toml");
    std::fs::write(
        &path,
        two_zones("", &endpoint(&ports[0]), &endpoint(&ports[1]), ""),
    )
    .unwrap();
    let served = Served::start(&path);
    let both = set(&["127.0.0.1", "127.0.0.2"]);
    assert_eq!(served.answer(), both);
    let entering = "answering by the all-down rule";
    let lifted = "all-down rule lifted";

    for p in &mut ports {
        p.close();
    }
    wait_until("fail-open entered", WITHIN, || {
        !served.lines_with(entering).is_empty()
    });
    assert_eq!(served.answer(), both, "fail-open answers every endpoint");
    assert!(served.lines_with(lifted).is_empty());

    ports[1].reopen();
    wait_until("fail-open left", WITHIN, || {
        !served.lines_with(lifted).is_empty()
    });
    assert_eq!(served.answer(), set(&["127.0.0.2"]), "only the live zone");
    let lines = served.lines_with(lifted);
    assert_eq!(lines.len(), 1, "logged once: {lines:?}");
    let line: Value = serde_json::from_str(&lines[0]).expect("a JSON log line");
    assert_eq!(line["service"], "www.gslb.test.", "{line}");
    assert_eq!(served.lines_with(entering).len(), 1);
    assert_eq!(
        served.metric("meridian_fail_open_total{service=\"www.gslb.test.\"}"),
        Some(1.0)
    );
    drop(served);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_unreadable_state_file_stops_the_start_with_a_clear_error() {
    let dir = private_dir();
    let corrupt = dir.join("corrupt.json");
    std::fs::write(&corrupt, "{ not json").unwrap();
    // A directory where the file should be: it exists and cannot be read
    // as one (unlike permissions, this holds for root too).
    let directory = dir.join("a-directory.json");
    std::fs::create_dir(&directory).unwrap();
    let endpoint = |ip: &str| format!("addresses = [\"{ip}\"]\ncheck = {{ kind = \"none\" }}");
    for (state, expected) in [
        (&corrupt, "is not valid"),
        (&directory, "cannot read state file"),
    ] {
        let config = dir.join("meridian.toml");
        let server = format!("state_file = \"{}\"", state.display());
        std::fs::write(
            &config,
            two_zones(&server, &endpoint("192.0.2.1"), &endpoint("192.0.2.2"), ""),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_meridian"))
            .args(["serve", "--config"])
            .arg(&config)
            .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // It must exit by itself; a node that started serving is killed.
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > WITHIN {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{}: still running after {WITHIN:?}", state.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(!status.success(), "{}: {status}", state.display());
        assert!(stderr.contains(expected), "{stderr}");
        assert!(
            stderr.contains(&state.display().to_string()),
            "names the file: {stderr}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}
