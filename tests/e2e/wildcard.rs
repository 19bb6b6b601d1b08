//! Wildcard names (RFC 4592) over the wire, on both answer paths.
//!
//! A service at `*.apps` answers every missing name below `apps` like one
//! service; records at `*.wild` answer every missing name below `wild`. The
//! RFC's rules each have a test: the closest encloser decides, an existing
//! name (an empty non-terminal too) is never covered nor is anything below
//! it, nothing at or below a delegation is covered, other types at a
//! matched wildcard are NODATA, and the owner is the query's name as spelled.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType};

use crate::harness::*;
use crate::health::admin;

/// Wildcards beside the example's names, a delegation, and names that
/// block the wildcards (`real.apps`, and the empty non-terminal
/// `ent.apps` above `deep.ent.apps`).
const WILDCARDS: &str = r#"
[[services]]
name = "*.apps"
policy = "all"
[services.check]
kind = "none"
[[services.endpoints]]
zone = "us-east"
addresses = ["192.0.2.70", "2001:db8:1::70"]
[[services.endpoints]]
zone = "eu-west"
addresses = ["198.51.100.70"]

[[records]]
name = "real.apps"
type = "TXT"
data = "a real name"
[[records]]
name = "deep.ent.apps"
type = "TXT"
data = "below an empty non-terminal"

[[records]]
name = "*.wild"
type = "TXT"
data = "from the wildcard"
[[records]]
name = "*.wild"
type = "MX"
data = "10 mail"

[[records]]
name = "*.alias"
type = "CNAME"
data = "www"

[[records]]
name = "sub"
type = "NS"
data = "ns.sub"
[[records]]
name = "ns.sub"
type = "A"
data = "192.0.2.153"
"#;

/// The example (every `www` endpoint answered) with [`WILDCARDS`].
fn start() -> Node {
    Node::start(&format!("{}\n{WILDCARDS}", all_policy_example()))
}

fn addresses(records: &[Record]) -> Vec<String> {
    let mut out: Vec<String> = records
        .iter()
        .filter_map(|r| r.data.ip_addr().map(|a| a.to_string()))
        .collect();
    out.sort();
    out
}

fn owners(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| r.name.to_ascii()).collect()
}

/// Asks over UDP and TCP; both replies must agree.
fn ask(node: &Node, name: &str, qtype: RecordType) -> Message {
    let request = query_edns(name, qtype, 1232);
    let udp = node.udp(&request);
    let tcp = node.tcp(&request);
    assert_eq!(
        udp.answers, tcp.answers,
        "{name} {qtype}: UDP and TCP agree"
    );
    assert_eq!(udp.response_code, tcp.response_code);
    udp
}

/// NXDOMAIN (or NODATA for `ResponseCode::NoError`) with the SOA.
fn assert_negative(reply: &Message, rcode: ResponseCode, what: &str) {
    assert_eq!(reply.response_code, rcode, "{what}");
    assert!(reply.authoritative, "{what}: AA");
    assert!(reply.answers.is_empty(), "{what}: {:?}", reply.answers);
    assert_eq!(reply.authorities.len(), 1, "{what}: the SOA");
    assert_eq!(reply.authorities[0].record_type(), RecordType::SOA);
}

#[test]
fn a_wildcard_service_answers_every_name_below_it_under_the_query_spelling() {
    let node = start();
    for name in [
        "host.apps.gslb.example.",
        "Shop.APPS.gslb.example.",
        "a.b.c.apps.gslb.example.",
    ] {
        let reply = ask(&node, name, RecordType::A);
        assert_eq!(reply.response_code, ResponseCode::NoError, "{name}");
        assert!(reply.authoritative, "{name}");
        assert_eq!(
            addresses(&reply.answers),
            ["192.0.2.70", "198.51.100.70"],
            "{name}"
        );
        assert!(owners(&reply.answers).iter().all(|o| o == name), "{name}");
        let reply = ask(&node, name, RecordType::AAAA);
        assert_eq!(addresses(&reply.answers), ["2001:db8:1::70"], "{name}");
        assert_eq!(owners(&reply.answers), [name]);
    }
    // The wildcard's own name is answered as itself.
    let reply = ask(&node, "*.apps.gslb.example.", RecordType::A);
    assert_eq!(addresses(&reply.answers).len(), 2);
}

#[test]
fn other_types_at_a_matched_wildcard_are_nodata() {
    let node = start();
    for (name, qtype) in [
        ("host.apps.gslb.example.", RecordType::TXT),
        ("host.apps.gslb.example.", RecordType::MX),
        ("host.wild.gslb.example.", RecordType::A),
        ("host.wild.gslb.example.", RecordType::AAAA),
    ] {
        let reply = ask(&node, name, qtype);
        assert_negative(&reply, ResponseCode::NoError, &format!("{name} {qtype}"));
    }
}

#[test]
fn wildcard_records_answer_with_their_additional_data() {
    let node = start();
    let reply = ask(&node, "Mx.Wild.gslb.example.", RecordType::MX);
    assert_eq!(reply.response_code, ResponseCode::NoError);
    assert!(reply.authoritative);
    assert_eq!(owners(&reply.answers), ["Mx.Wild.gslb.example."]);
    assert!(
        matches!(&reply.answers[0].data, RData::MX(mx) if mx.exchange.to_ascii() == "mail.gslb.example.")
    );
    // The exchange's address, as for any MX.
    assert!(
        reply
            .additionals
            .iter()
            .any(|r| r.name.to_ascii() == "mail.gslb.example." && r.data.ip_addr().is_some()),
        "{:?}",
        reply.additionals
    );
    let reply = ask(&node, "x.y.wild.gslb.example.", RecordType::TXT);
    assert_eq!(reply.answers.len(), 1);
    assert_eq!(owners(&reply.answers), ["x.y.wild.gslb.example."]);
}

#[test]
fn existing_names_and_empty_non_terminals_block_the_wildcard() {
    let node = start();
    // The names exist: their own data, or NODATA; never the wildcard's.
    for name in [
        "real.apps.gslb.example.",
        "ent.apps.gslb.example.",
        "apps.gslb.example.",
    ] {
        let reply = ask(&node, name, RecordType::A);
        assert_negative(&reply, ResponseCode::NoError, name);
    }
    // Below them the closest encloser is the existing name, which has no
    // wildcard child: NXDOMAIN.
    for name in [
        "x.real.apps.gslb.example.",
        "x.ent.apps.gslb.example.",
        "x.deep.ent.apps.gslb.example.",
        "x.*.apps.gslb.example.",
    ] {
        let reply = ask(&node, name, RecordType::A);
        assert_negative(&reply, ResponseCode::NXDomain, name);
    }
    // Outside any wildcard's reach, NXDOMAIN as ever.
    let reply = ask(&node, "nope.gslb.example.", RecordType::A);
    assert_negative(&reply, ResponseCode::NXDomain, "nope");
}

#[test]
fn nothing_at_or_below_a_delegation_is_covered() {
    // A wildcard at the apex covers every missing name, but not the
    // delegated subtree: that is a referral.
    let node = Node::start(&format!(
        "{}\n{WILDCARDS}\n[[records]]\nname = \"*\"\ntype = \"TXT\"\ndata = \"apex wildcard\"\n",
        all_policy_example()
    ));
    for name in ["x.sub.gslb.example.", "a.b.sub.gslb.example."] {
        let reply = ask(&node, name, RecordType::TXT);
        assert_eq!(reply.response_code, ResponseCode::NoError, "{name}");
        assert!(!reply.authoritative, "{name}: a referral");
        assert!(reply.answers.is_empty(), "{name}");
        assert_eq!(reply.authorities[0].record_type(), RecordType::NS);
    }
    let reply = ask(&node, "Nope.gslb.example.", RecordType::TXT);
    assert_eq!(reply.response_code, ResponseCode::NoError);
    assert_eq!(owners(&reply.answers), ["Nope.gslb.example."]);
    // The apex wildcard does not reach below `apps`: `*.apps` is closer.
    let reply = ask(&node, "x.apps.gslb.example.", RecordType::TXT);
    assert_negative(&reply, ResponseCode::NoError, "x.apps TXT");
}

#[test]
fn a_cname_at_a_wildcard_is_followed_from_the_query_name() {
    let node = start();
    let reply = ask(&node, "Web.Alias.gslb.example.", RecordType::A);
    assert_eq!(reply.response_code, ResponseCode::NoError);
    assert!(reply.authoritative);
    assert_eq!(reply.answers[0].record_type(), RecordType::CNAME);
    assert_eq!(reply.answers[0].name.to_ascii(), "Web.Alias.gslb.example.");
    assert!(
        reply.answers[1..]
            .iter()
            .all(|r| r.name.to_ascii() == "www.gslb.example." && r.record_type() == RecordType::A)
    );
    assert_eq!(
        reply.answers.len(),
        4,
        "the CNAME and www's three addresses"
    );
}

#[test]
fn explain_finds_the_wildcard_service_for_a_covered_name() {
    let node = start();
    for name in ["foo.apps", "foo.apps.gslb.example.", "a.b.apps"] {
        let (status, body) = admin(
            &node,
            "GET",
            &format!("/v1/explain?name={name}&client=192.0.2.1"),
            None,
        );
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(body["service"], "*.apps.gslb.example.", "{name}");
    }
    // A name that exists, or lies below one, is not the wildcard's.
    for name in ["real.apps", "x.real.apps", "x.ent.apps"] {
        let (status, body) = admin(
            &node,
            "GET",
            &format!("/v1/explain?name={name}&client=192.0.2.1"),
            None,
        );
        assert_eq!(status, 404, "{name}: {body}");
    }
}

#[test]
fn check_rejects_a_star_anywhere_but_a_whole_leftmost_label() {
    let dir = private_dir();
    let path = dir.join("stars.toml");
    let mut text = format!("{}\n{WILDCARDS}", all_policy_example());
    for (owner, record_type, data) in [
        ("a*.b", "A", "192.0.2.1"),
        ("*.*", "A", "192.0.2.1"),
        ("x.*.y", "TXT", "t"),
        ("*.child", "NS", "ns.elsewhere.example."),
    ] {
        text.push_str(&format!(
            "\n[[records]]\nname = \"{owner}\"\ntype = \"{record_type}\"\ndata = \"{data}\"\n"
        ));
    }
    std::fs::write(&path, &text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for owner in ["a*.b", "*.*", "x.*.y"] {
        let line = text
            .lines()
            .position(|l| l == format!("name = \"{owner}\""))
            .unwrap()
            + 1;
        let location = format!("{}:{line}:", path.display());
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&location)
                    && l.contains("has `*` where a wildcard cannot be")),
            "{owner} at {location}:\n{stderr}"
        );
    }
    assert!(
        stderr.contains("is a wildcard and cannot hold NS records"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: write a wildcard as `*.name`"),
        "{stderr}"
    );
    assert!(stderr.contains("4 errors in config"), "{stderr}");
    // The valid wildcards alone pass.
    std::fs::write(&path, format!("{}\n{WILDCARDS}", all_policy_example())).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

crate::also_on_general_path! {
    a_wildcard_service_answers_every_name_below_it_under_the_query_spelling,
    other_types_at_a_matched_wildcard_are_nodata,
    wildcard_records_answer_with_their_additional_data,
    existing_names_and_empty_non_terminals_block_the_wildcard,
    nothing_at_or_below_a_delegation_is_covered,
    a_cname_at_a_wildcard_is_followed_from_the_query_name,
}
