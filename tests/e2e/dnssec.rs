//! DNSSEC end to end: keys made with `meridian dnssec keygen`, a signed
//! node, and real validators judging its answers: BIND's `delv` and a
//! validating `unbound` holding the domain's trust anchor. A zone's health
//! switch must give an answer that validates without any signing on the
//! answer path.
//!
//! When a tool is missing the test fails under CI (`CI=true`) and is
//! reported as SKIPPED otherwise (see `harness::require_tool`).

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::backend::Backend;
use crate::harness::*;

/// A key pair made by the binary in `dir`: the private key's path and the
/// DNSKEY line.
fn keygen(dir: &Path, domain: &str) -> (PathBuf, String) {
    keygen_with(dir, domain, "ecdsap256sha256")
}

fn keygen_with(dir: &Path, domain: &str, algorithm: &str) -> (PathBuf, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args([
            "dnssec",
            "keygen",
            "--domain",
            domain,
            "--algorithm",
            algorithm,
        ])
        .arg("--out-dir")
        .arg(dir)
        .output()
        .expect("run meridian dnssec keygen");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let path = |label: &str| -> PathBuf {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(label))
            .map(|p| PathBuf::from(p.trim()))
            .unwrap_or_else(|| panic!("no `{label}` in {stdout}"))
    };
    let private = path("private key (mode 0600):");
    let public = std::fs::read_to_string(path("DNSKEY:")).unwrap();
    let dnskey = public
        .lines()
        .find(|l| l.contains("DNSKEY"))
        .expect("a DNSKEY line")
        .to_string();
    (private, dnskey)
}

/// `name. ttl IN DNSKEY flags 3 alg key` -> the part after the TTL and
/// class, as trust anchors write it.
fn anchor_fields(dnskey: &str) -> (String, String) {
    let fields: Vec<&str> = dnskey.split_whitespace().collect();
    (fields[0].to_string(), fields[4..].join(" "))
}

/// The example domain, signed with a fresh key, its NS glue on loopback so
/// a resolver that follows it stays on this machine.
fn signed_example(dir: &Path) -> (String, String) {
    let (key, dnskey) = keygen(dir, "gslb.example.");
    let text = all_policy_example()
        .replace("192.0.2.53", "127.0.0.1")
        .replace("198.51.100.53", "127.0.0.1")
        .replace("203.0.113.53", "127.0.0.1");
    let text = format!("{text}\n[dnssec]\nkey_file = \"{}\"\n", key.display());
    (text, dnskey)
}

/// Runs `delv` against `node` with `dnskey` as the only trust anchor;
/// returns its output (both streams: delv reports on stderr too).
fn delv(delv: &Path, node: &Node, dnskey: &str, args: &[&str]) -> String {
    let (owner, rest) = anchor_fields(dnskey);
    let mut parts = rest.splitn(4, ' ');
    let (flags, protocol, algorithm, key) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let dir = private_dir();
    let anchors = dir.join("anchors.conf");
    std::fs::write(
        &anchors,
        format!(
            "trust-anchors {{\n  {owner} static-key {flags} {protocol} {algorithm} \"{key}\";\n}};\n"
        ),
    )
    .unwrap();
    let output = Command::new(delv)
        .arg("-a")
        .arg(&anchors)
        .arg(format!("+root={}", owner.trim_end_matches('.')))
        .args(["-p", &node.dns.port().to_string()])
        .arg("@127.0.0.1")
        .args(args)
        .output()
        .expect("run delv");
    let _ = std::fs::remove_dir_all(dir);
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn delv_fully_validates_a_service_an_nxdomain_and_a_nodata() {
    let Some(delv_path) = require_tool("delv", "bind9-dnsutils") else {
        return;
    };
    let dir = private_dir();
    let (text, dnskey) = signed_example(&dir);
    let node = Node::start(&text);
    for (args, expect) in [
        (["www.gslb.example.", "A"], "; fully validated"),
        (
            ["mail.gslb.example.", "AAAA"],
            "; negative response, fully validated",
        ),
        (
            ["nope.gslb.example.", "A"],
            "; negative response, fully validated",
        ),
        (["gslb.example.", "DNSKEY"], "; fully validated"),
        (["gslb.example.", "MX"], "; fully validated"),
    ] {
        let out = delv(&delv_path, &node, &dnskey, &args);
        assert!(out.contains(expect), "delv {args:?}:\n{out}");
    }
    let out = delv(&delv_path, &node, &dnskey, &["nope.gslb.example.", "A"]);
    assert!(
        out.contains("NXDOMAIN") || out.contains("nxdomain"),
        "{out}"
    );
    // Ed25519 (algorithm 15) validates too.
    let (ed_key, ed_dnskey) = keygen_with(&dir, "gslb.example.", "ed25519");
    assert!(ed_dnskey.contains(" DNSKEY 257 3 15 "), "{ed_dnskey}");
    let ed_text = text.replace(
        &text[text.find("key_file = ").unwrap()..],
        &format!("key_file = \"{}\"\n", ed_key.display()),
    );
    let ed_node = Node::start(&ed_text);
    for args in [["www.gslb.example.", "A"], ["nope.gslb.example.", "A"]] {
        let out = delv(&delv_path, &ed_node, &ed_dnskey, &args);
        assert!(
            out.contains("fully validated"),
            "Ed25519, delv {args:?}:\n{out}"
        );
    }
    // A wrong anchor: nothing validates, so the checks above can fail.
    let (_, other) = keygen(&dir, "gslb.example.");
    let out = delv(&delv_path, &node, &other, &["www.gslb.example.", "A"]);
    assert!(!out.contains("fully validated"), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn ds_prints_the_signing_keys_digest() {
    let dir = private_dir();
    let (text, dnskey) = signed_example(&dir);
    let tag_in_dnskey = dnskey.split_whitespace().count();
    assert_eq!(tag_in_dnskey, 8, "one DNSKEY line: {dnskey}");
    let config = dir.join("signed.toml");
    std::fs::write(&config, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["dnssec", "ds", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let fields: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(&fields[..3], ["gslb.example.", "IN", "DS"], "{stdout}");
    assert_eq!(fields[4], "13", "algorithm");
    assert_eq!(fields[5], "2", "SHA-256");
    assert_eq!(fields[6].len(), 64, "a SHA-256 digest in hex");
    // The key tag is the one keygen named the file after.
    let files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files
            .iter()
            .any(|f| f.ends_with(&format!("+{:0>5}.pem", fields[3]))),
        "{files:?} {stdout}"
    );
    // Without [dnssec]: an error saying so.
    std::fs::write(&config, all_policy_example()).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["dnssec", "ds", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no [dnssec] table"));
    let _ = std::fs::remove_dir_all(dir);
}

/// A validating unbound on a free loopback port, with `dnskey` as the
/// only trust anchor and the domain as a stub zone at `node`.
struct Unbound {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Unbound {
    /// Starts unbound on a port free for both UDP and TCP (unbound binds
    /// both). Between the check and unbound's bind, another test's
    /// connection may take the port as its ephemeral source port, and
    /// unbound then exits at once: that start is retried on a new port.
    fn start(unbound: &Path, node: &Node, domain: &str, dnskey: &str) -> Unbound {
        let dir = private_dir();
        let mut exits = Vec::new();
        for _ in 0..5 {
            let port = free_udp_and_tcp_port();
            let path = dir.join("unbound.conf");
            std::fs::write(&path, unbound_conf(&dir, port, node, domain, dnskey)).unwrap();
            let stderr = std::fs::File::create(dir.join("unbound.stderr")).unwrap();
            let mut child = Command::new(unbound)
                .arg("-d")
                .arg("-c")
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("start unbound");
            // A failed bind ends unbound within a moment of starting.
            std::thread::sleep(Duration::from_millis(300));
            match child.try_wait().unwrap() {
                None => return Unbound { child, port, dir },
                Some(status) => exits.push(format!(
                    "port {port}: {status}: {}",
                    std::fs::read_to_string(dir.join("unbound.stderr")).unwrap_or_default()
                )),
            }
        }
        panic!("unbound would not start in 5 tries:\n{}", exits.join("\n"));
    }

    /// One query with RD and DO; `None` while unbound is not answering.
    fn ask(&self, name: &str, qtype: RecordType) -> Option<Message> {
        let mut message = query(name, qtype);
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        edns.set_dnssec_ok(true);
        message.set_edns(edns);
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        socket
            .send_to(&message.to_vec().unwrap(), ("127.0.0.1", self.port))
            .ok()?;
        let mut buf = [0u8; 4096];
        let (n, _) = socket.recv_from(&mut buf).ok()?;
        Message::from_vec(&buf[..n]).ok()
    }

    /// Waits (bounded) for unbound to answer, then asks.
    fn resolve(&self, name: &str, qtype: RecordType) -> Message {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if let Some(reply) = self.ask(name, qtype) {
                return reply;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "unbound did not answer {name} {qtype} within 15 s; its log:\n{}",
            self.log()
        );
    }

    /// Its log file, then what it wrote to stderr before it opened that.
    fn log(&self) -> String {
        let read = |file: &str| std::fs::read_to_string(self.dir.join(file)).unwrap_or_default();
        format!(
            "{}\nstderr:\n{}",
            read("unbound.log"),
            read("unbound.stderr")
        )
    }
}

/// A port on 127.0.0.1 that is free for UDP and TCP alike at this moment.
fn free_udp_and_tcp_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP in 50 tries");
}

/// A validating resolver's config: `dnskey` the only anchor, `domain` a
/// stub zone at `node`.
fn unbound_conf(dir: &Path, port: u16, node: &Node, domain: &str, dnskey: &str) -> String {
    let (owner, rest) = anchor_fields(dnskey);
    format!(
        r#"server:
  interface: 127.0.0.1
  port: {port}
  do-ip6: no
  do-not-query-localhost: no
  chroot: ""
  username: ""
  directory: "{dir}"
  pidfile: "{dir}/unbound.pid"
  use-syslog: no
  logfile: "{dir}/unbound.log"
  verbosity: 1
  val-log-level: 2
  num-threads: 1
  so-reuseport: no
  outgoing-range: 64
  module-config: "validator iterator"
  trust-anchor: "{owner} DNSKEY {rest}"
  qname-minimisation: no

stub-zone:
  name: "{domain}"
  stub-addr: 127.0.0.1@{node_port}
"#,
        dir = dir.display(),
        node_port = node.dns.port()
    )
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn addresses(reply: &Message) -> Vec<String> {
    a_addrs(&reply.answers)
}

#[test]
fn a_validating_unbound_sets_ad_on_services_and_nxdomains() {
    let Some(unbound_path) = require_tool("unbound", "unbound") else {
        return;
    };
    let dir = private_dir();
    let (text, dnskey) = signed_example(&dir);
    let node = Node::start(&text);
    let unbound = Unbound::start(&unbound_path, &node, "gslb.example.", &dnskey);
    let reply = unbound.resolve("www.gslb.example.", RecordType::A);
    assert_eq!(
        reply.response_code,
        ResponseCode::NoError,
        "{}",
        unbound.log()
    );
    assert!(!addresses(&reply).is_empty(), "{reply:?}");
    assert!(
        reply.metadata.authentic_data,
        "AD: {reply:?}\n{}",
        unbound.log()
    );
    let reply = unbound.resolve("nope.gslb.example.", RecordType::A);
    assert_eq!(
        reply.response_code,
        ResponseCode::NXDomain,
        "{}",
        unbound.log()
    );
    assert!(
        reply.metadata.authentic_data,
        "AD on the NXDOMAIN: {reply:?}"
    );
    let reply = unbound.resolve("mail.gslb.example.", RecordType::TXT);
    assert_eq!(reply.response_code, ResponseCode::NoError);
    assert!(
        reply.answers.is_empty() && reply.metadata.authentic_data,
        "NODATA with AD"
    );
    drop(unbound);
    // The same resolver with someone else's key as the anchor: SERVFAIL,
    // so the AD bits above are the validator's verdict, not a default.
    let (_, other) = keygen(&dir, "gslb.example.");
    let unbound = Unbound::start(&unbound_path, &node, "gslb.example.", &other);
    let reply = unbound.resolve("www.gslb.example.", RecordType::A);
    assert_eq!(reply.response_code, ResponseCode::ServFail, "{reply:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A domain with one service failing over from zone-a to zone-b, each
/// probed over HTTP on its backend; signed with a fresh key.
fn failover_config(dir: &Path, a: &Backend, b: &Backend) -> (String, String) {
    let (key, dnskey) = keygen(dir, "gslb.test.");
    let mut text = String::from(
        "[domain]\nname = \"gslb.test.\"\n[[domain.nameservers]]\nname = \"ns1\"\naddresses = [\"127.0.0.1\"]\n\
         [[zones]]\nname = \"zone-a\"\nlatitude = 0.0\nlongitude = 0.0\n\
         [[zones]]\nname = \"zone-b\"\nlatitude = 10.0\nlongitude = 0.0\n\
         [[services]]\nname = \"www\"\npolicy = \"failover\"\norder = [\"zone-a\", \"zone-b\"]\n",
    );
    for (zone, backend) in [("zone-a", a), ("zone-b", b)] {
        text += &format!(
            "[[services.endpoints]]\nzone = \"{zone}\"\naddresses = [\"{}\"]\n\
             check = {{ port = {}, interval = \"200ms\", timeout = \"200ms\", rise = 2, fall = 2 }}\n",
            backend.addr.ip(),
            backend.addr.port()
        );
    }
    text += &format!("[dnssec]\nkey_file = \"{}\"\n", key.display());
    (text, dnskey)
}

fn signed_query(name: &str, qtype: RecordType) -> Message {
    let mut message = query_edns(name, qtype, 1232);
    message.edns.as_mut().unwrap().set_dnssec_ok(true);
    message
}

#[test]
fn a_health_switch_answers_with_an_already_signed_set_and_signs_nothing_per_query() {
    let Some(delv_path) = require_tool("delv", "bind9-dnsutils") else {
        return;
    };
    let dir = private_dir();
    let mut a = Backend::start("127.0.0.31");
    let b = Backend::start("127.0.0.32");
    let (text, dnskey) = failover_config(&dir, &a, &b);
    let node = Node::start(&text);
    let answer = || addresses(&node.udp(&query("www.gslb.test.", RecordType::A)));
    let wait_for = |what: &str, want: &str| {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if answer() == [want] {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("{what}: www is not {want} within 10 s");
    };
    let ip_a = a.addr.ip().to_string();
    let ip_b = b.addr.ip().to_string();
    wait_for("zone-a up", &ip_a);
    let out = delv(&delv_path, &node, &dnskey, &["www.gslb.test.", "A"]);
    assert!(
        out.contains("; fully validated") && out.contains(&ip_a),
        "{out}"
    );
    let before = node.metric("meridian_dnssec_signatures_total");
    assert!(before > 0.0, "the first snapshot signed the domain");

    a.stop();
    wait_for("failover to zone-b", &ip_b);
    let out = delv(&delv_path, &node, &dnskey, &["www.gslb.test.", "A"]);
    assert!(
        out.contains("; fully validated") && out.contains(&ip_b),
        "{out}"
    );
    let after_switch = node.metric("meridian_dnssec_signatures_total");
    assert_eq!(
        after_switch, before,
        "zone-b's set was signed with the first snapshot; the switch signs nothing"
    );

    // A burst of signed queries of every kind: each carries signatures,
    // none is made for it.
    for i in 0..300 {
        let (name, qtype) = match i % 3 {
            0 => ("www.gslb.test.", RecordType::A),
            1 => ("www.gslb.test.", RecordType::AAAA),
            _ => ("nope.gslb.test.", RecordType::A),
        };
        let reply = node.udp(&signed_query(name, qtype));
        let signatures = reply
            .answers
            .iter()
            .chain(&reply.authorities)
            .filter(|r| r.record_type() == RecordType::RRSIG)
            .count();
        assert!(signatures >= 1, "{name} {qtype}: {reply:?}");
    }
    assert_eq!(
        node.metric("meridian_dnssec_signatures_total"),
        after_switch,
        "no signature was made on the answer path"
    );
    let _ = std::fs::remove_dir_all(dir);
}

// The validators again, with the fast path switched off.
crate::also_on_general_path! {
    delv_fully_validates_a_service_an_nxdomain_and_a_nodata,
    a_validating_unbound_sets_ad_on_services_and_nxdomains,
}
