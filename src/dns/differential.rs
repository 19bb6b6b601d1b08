//! The general path is the reference: every reply the fast path gives
//! must say the same as the general path's reply to the same bytes.
//!
//! Thousands of generated queries (names in and out of the domain, mixed
//! case, every common type, ECS subnets, cookies valid and not, payload
//! sizes, UDP and TCP) go to both paths; where the fast path answers, the
//! replies must parse to the same message and report the same facts. Floors
//! on how many of each kind of reply the fast path gave keep it from
//! passing by declining everything.
//!
//! The third user of the decision-to-records rule, `routing::explain`, is
//! held to the same addresses as the answers.
//!
//! - `rebuilt`: a snapshot built after another, sharing what it can,
//!   answers as one built afresh.

mod rebuilt;

use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RecordType};

use super::answer::answer as general_answer;
use super::cookie;
use super::fast::{ThreadCaches, answer_or_send_kept};
use super::fixture::{config, snapshot, snapshot_endpoints_drained, snapshot_observed};
use super::wire::Transport;
use crate::health::AddressKey;
use crate::health::state::Observed;
use crate::routing::Client;
use crate::routing::explain::explain;
use crate::snapshot::Snapshot;

/// The cases are many and varied, and the same every run.
use crate::test_rng::Rng as Cases;

fn mixed_case(name: &str, cases: &mut Cases) -> String {
    name.chars()
        .map(|c| {
            if cases.one_in(3) {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

fn query(cases: &mut Cases, snapshot: &Snapshot) -> (Vec<u8>, IpAddr) {
    let source = *cases.pick(&[
        "127.0.0.1",
        "8.8.4.4",
        "193.0.0.9",
        "10.20.30.140",
        "2001:4860::1",
        "::ffff:202.12.27.33",
    ]);
    let source: IpAddr = source.parse().unwrap();
    let names = [
        "www.gslb.example.",
        "api.gslb.example.",
        "split.apps.gslb.example.",
        "every.gslb.example.",
        "bg.gslb.example.",
        "bg.gslb.example.",
        "static.gslb.example.",
        "gslb.example.",
        "mail.gslb.example.",
        "docs.gslb.example.",
        "apps.gslb.example.",
        "empty.nonterminal.gslb.example.",
        "nope.gslb.example.",
        "x.www.gslb.example.",
        "www.other.example.",
        "_sip._udp.gslb.example.",
        // Wildcards: covered names at one and two labels down, the
        // wildcard's own name, names below existing names (never covered),
        // a record wildcard and a CNAME wildcard.
        "host.apps.gslb.example.",
        "a.b.apps.gslb.example.",
        "*.apps.gslb.example.",
        "x.split.apps.gslb.example.",
        "x.wild.gslb.example.",
        "real.wild.gslb.example.",
        "x.real.wild.gslb.example.",
        "x.wild-alias.gslb.example.",
    ];
    let name = *cases.pick(&names);
    let name = mixed_case(name, cases);
    let qtype = *cases.pick(&[
        RecordType::A,
        RecordType::A,
        RecordType::AAAA,
        RecordType::TXT,
        RecordType::MX,
        RecordType::SOA,
        RecordType::ANY,
        RecordType::CNAME,
        RecordType::NS,
        RecordType::SRV,
        RecordType::CAA,
        RecordType::DS,
        RecordType::AXFR,
        RecordType::Unknown(200),
        RecordType::Unknown(65280),
    ]);
    let mut message = Message::query();
    message.metadata.id = cases.next() as u16;
    message.metadata.recursion_desired = cases.one_in(2);
    message.metadata.checking_disabled = cases.one_in(5);
    message.add_query(Query::query(Name::from_ascii(&name).unwrap(), qtype));
    let subnets = [
        "8.8.8.0/24",
        "193.0.0.0/24",
        "202.12.27.0/24",
        "10.20.30.0/24",
        "10.20.30.128/25",
        "10.20.30.200/32",
        "81.2.69.0/24",
        "1.0.0.0/8",
        "0.0.0.0/0",
        "2001:4860::/32",
        "2a00:1450:4001::/48",
        "2001:200::/56",
        "24.1.2.0/24",
        "24.1.3.0/24",
        "24.1.4.0/24",
        "24.1.5.0/24",
        "73.9.9.0/24",
        "77.10.0.0/16",
    ];
    if !cases.one_in(4) {
        let mut edns = Edns::new();
        edns.set_max_payload(*cases.pick(&[512u16, 1232, 4096, 100, 1400]));
        edns.set_dnssec_ok(cases.one_in(4));
        if cases.one_in(3) {
            let client = cases.next().to_be_bytes();
            let payload = match cases.next() % 4 {
                0 => client.to_vec(),
                1 => client[..5].to_vec(),
                2 => [&client[..], &[1u8; 16]].concat(),
                _ => {
                    // A server cookie this node minted for `source`.
                    cookie::reply(
                        client,
                        source,
                        &cookie::secret(snapshot.config.server.cookie_secret),
                    )
                    .to_vec()
                }
            };
            edns.options_mut().insert(EdnsOption::Unknown(10, payload));
        }
        if !cases.one_in(3) {
            let net: ipnet::IpNet = cases.pick(&subnets).parse().unwrap();
            edns.options_mut()
                .insert(EdnsOption::Subnet(ClientSubnet::from(net)));
        }
        message.set_edns(edns);
    }

    (message.to_vec().unwrap(), source)
}

fn compare(
    snapshot: &Snapshot,
    transport: Transport,
    request: &[u8],
    source: IpAddr,
    caches: &mut ThreadCaches,
) -> Option<Answered> {
    let mut out = Vec::new();
    // Asked first twice under other IDs: a reply the fast path keeps (see
    // `fast::replies`: kept the second time it is written) is then
    // compared as it is sent again, to this ID.
    for flip in [0x5A, 0xA5] {
        let mut other = request.to_vec();
        other[0] ^= flip;
        answer_or_send_kept(&other, transport, source, snapshot, caches, &mut out)?;
    }
    let was_kept = caches.has_kept(snapshot.id, request);
    // Server cookies carry the time in seconds: a second may end between
    // the two answers, so on a difference both are asked again (the
    // general path alone again would still be a second later).
    let mut attempts = 0;
    let (fast, fast_msg, slow, slow_msg) = loop {
        attempts += 1;
        let fast = answer_or_send_kept(request, transport, source, snapshot, caches, &mut out)?;
        let fast = (
            fast.facts,
            fast.has_valid_cookie,
            fast.service.map(|(s, e)| (s, e.to_vec())),
        );
        let slow = general_answer(request, transport, source, snapshot).expect("a reply");
        let fast_msg = Message::from_vec(&out).expect("the fast reply parses");
        let slow_msg = Message::from_vec(&slow.wire).unwrap();
        if fast_msg == slow_msg || attempts == 3 {
            break (fast, fast_msg, slow, slow_msg);
        }
    };
    let (fast_facts, fast_valid_cookie, fast_service) = fast;
    assert_eq!(fast_valid_cookie, slow.has_valid_cookie);
    assert_eq!(fast_msg, slow_msg, "request {request:02x?} from {source}");
    assert_eq!(fast_facts.rcode, slow.facts.rcode);
    assert_eq!(fast_facts.qtype, slow.facts.qtype);
    assert!(!slow.facts.truncated);
    let slow_hit = slow.service.map(|h| (h.service, h.endpoints));
    assert_eq!(fast_service, slow_hit);
    Some(Answered {
        was_kept,
        refused: fast_facts.rcode == ResponseCode::Refused,
        with_additionals: !fast_msg.additionals.is_empty(),
        with_valid_cookie: fast_valid_cookie,
        with_ecs_scope: has_ecs_scope(&fast_msg),
        signed: fast_msg
            .answers
            .iter()
            .chain(&fast_msg.authorities)
            .any(|r| r.record_type() == RecordType::RRSIG),
        signed_negative: fast_msg
            .authorities
            .iter()
            .any(|r| r.record_type() == RecordType::NSEC),
    })
}

/// What kind of reply the fast path gave, so tests know it took them all.
struct Answered {
    /// The fast path's reply was one it kept (for another ID).
    was_kept: bool,
    refused: bool,
    with_additionals: bool,
    with_valid_cookie: bool,
    with_ecs_scope: bool,
    signed: bool,
    signed_negative: bool,
}

fn has_ecs_scope(reply: &Message) -> bool {
    reply.edns.as_ref().is_some_and(|e| {
        matches!(e.option(EdnsCode::Subnet), Some(EdnsOption::Subnet(s)) if s.scope_prefix() > 0)
    })
}

#[derive(Debug, Default)]
struct Tally {
    answered: usize,
    refused: usize,
    with_additionals: usize,
    with_valid_cookie: usize,
    with_ecs_scope: usize,
    signed: usize,
    signed_negative: usize,
    was_kept: usize,
}

fn differential(snapshot: &Snapshot, seed: u64, rounds: usize) -> Tally {
    let mut cases = Cases(seed);
    let mut caches = ThreadCaches::new();
    let mut tally = Tally::default();
    for _ in 0..rounds {
        let (request, source) = query(&mut cases, snapshot);
        let transport = if cases.one_in(4) {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        if let Some(answered) = compare(snapshot, transport, &request, source, &mut caches) {
            tally.answered += 1;
            tally.refused += usize::from(answered.refused);
            tally.with_additionals += usize::from(answered.with_additionals);
            tally.with_valid_cookie += usize::from(answered.with_valid_cookie);
            tally.with_ecs_scope += usize::from(answered.with_ecs_scope);
            tally.signed += usize::from(answered.signed);
            tally.signed_negative += usize::from(answered.signed_negative);
            tally.was_kept += usize::from(answered.was_kept);
        }
    }
    tally
}

#[test]
fn fast_replies_match_the_general_path() {
    let snapshot = snapshot(config(""), &[]);
    let tally = differential(&snapshot, 0x5eed, 20_000);
    // The shapes it is for are most of these cases: it must take them.
    assert!(tally.answered > 6_000, "{tally:?} of 20000");
    assert!(tally.with_valid_cookie > 200, "{tally:?}");
    assert!(tally.with_additionals > 100, "{tally:?}");
    assert!(tally.refused > 100, "{tally:?}");
    assert!(tally.with_ecs_scope > 150, "{tally:?}");
    assert!(tally.was_kept > 1_000, "{tally:?}");
}

#[test]
fn fast_replies_match_the_general_path_when_signed() {
    // DO=1 service answers come from the fast path with their pre-made
    // RRSIG; every other DO=1 shape is declined, and DO=0 is as unsigned.
    let (config, _) = crate::dnssec::testing::signed_config("");
    for drained in [&[][..], &["eu-west"], &["us-east", "eu-west", "ap-south"]] {
        let snapshot = snapshot(config.clone(), drained);
        let tally = differential(&snapshot, 0xd0_5eed, 20_000);
        assert!(tally.answered > 5_000, "{drained:?}: {tally:?} of 20000");
        assert!(tally.signed > 60, "{drained:?}: {tally:?}");
        assert!(tally.was_kept > 500, "{drained:?}: {tally:?}");
    }
}

#[test]
fn fast_negative_answers_match_the_general_path_when_signed() {
    // The shipped example alone has no wildcard: a DO=1 NXDOMAIN or NODATA
    // is the fast path's, with its NSEC proofs.
    let (path, _) = crate::dnssec::testing::key_file(crate::dnssec::key::Algorithm::Ed25519);
    let text = std::fs::read_to_string("zones/example.toml").unwrap();
    let text = format!("{text}\n[dnssec]\nkey_file = \"{}\"\n", path.display());
    let config = crate::config::Config::parse(&text, std::path::Path::new("zones/example.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let snapshot = snapshot(std::sync::Arc::new(config), &[]);
    let tally = differential(&snapshot, 0xd0_0001, 20_000);
    assert!(tally.signed > 300, "{tally:?}");
    assert!(tally.signed_negative > 300, "{tally:?}");
    assert!(tally.was_kept > 500, "{tally:?}");
}

#[test]
fn dnssec_ok_answers_are_the_same_bytes_unsigned_as_before() {
    // The same query with DO=0 to a signed and an unsigned snapshot of the
    // same domain: identical replies on both paths (the DNSKEY set aside,
    // which only a signed domain has).
    let (signed_config, _) = crate::dnssec::testing::signed_config("");
    let signed = snapshot(signed_config, &[]);
    let plain = snapshot(config(""), &[]);
    let mut cases = Cases(0xd0_0000);
    let mut caches = ThreadCaches::new();
    let mut compared = 0;
    for _ in 0..5_000 {
        let (request, source) = query(&mut cases, &plain);
        let message = Message::from_vec(&request).unwrap();
        if message.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok)
            || message
                .queries
                .first()
                .is_some_and(|q| matches!(q.query_type(), RecordType::ANY | RecordType::DNSKEY))
        {
            continue;
        }
        // Server cookies carry the time in seconds: a second may end
        // between the two answers, so on a difference both are asked again.
        let general = || {
            let a = general_answer(&request, Transport::Tcp, source, &plain).unwrap();
            let b = general_answer(&request, Transport::Tcp, source, &signed).unwrap();
            (a.wire, b.wire)
        };
        let (a, b) = (0..3)
            .map(|_| general())
            .find(|(a, b)| a == b)
            .unwrap_or_else(general);
        assert_eq!(
            Message::from_vec(&a).unwrap(),
            Message::from_vec(&b).unwrap()
        );
        let mut out_a = Vec::new();
        let mut out_b = Vec::new();
        let mut fast = || {
            let a = answer_or_send_kept(
                &request,
                Transport::Udp,
                source,
                &plain,
                &mut caches,
                &mut out_a,
            );
            let a = a.is_some();
            let b = answer_or_send_kept(
                &request,
                Transport::Udp,
                source,
                &signed,
                &mut caches,
                &mut out_b,
            );
            (a, b.is_some(), out_a.clone(), out_b.clone())
        };
        let (fast_a, fast_b, out_a, out_b) = (0..3)
            .map(|_| fast())
            .find(|(_, _, a, b)| a == b)
            .unwrap_or_else(&mut fast);
        assert_eq!(fast_a, fast_b, "the fast path takes the same DO=0 queries");
        if fast_a {
            assert_eq!(
                Message::from_vec(&out_a).unwrap(),
                Message::from_vec(&out_b).unwrap()
            );
        }
        compared += 1;
    }
    assert!(compared > 3_000, "{compared}");
}

#[test]
fn fast_replies_match_when_zones_are_down() {
    for drained in [
        &["eu-west"][..],
        &["us-east", "eu-west"],
        &["us-east", "eu-west", "ap-south"],
    ] {
        let snapshot = snapshot(config(""), drained);
        let tally = differential(&snapshot, 0xd0a1, 5_000);
        assert!(tally.answered > 1_000, "{drained:?}: {tally:?}");
    }
}

#[test]
fn fast_replies_match_when_endpoints_inside_a_zone_are_drained() {
    for drained in [
        &[("bg", "us-east", "blue")][..],
        &[("bg", "us-east", "green"), ("bg", "eu-west", "blue")],
        &[("bg", "us-east", "blue"), ("bg", "us-east", "green")],
    ] {
        let snapshot = snapshot_endpoints_drained(config(""), drained);
        let tally = differential(&snapshot, 0xb1e, 5_000);
        assert!(tally.answered > 1_000, "{drained:?}: {tally:?}");
    }
}

/// Both paths split a zone's answers between its endpoints: over many
/// client prefixes both of us-east's endpoints answer, in about their
/// 90/10 proportion, and each prefix always gets the same one.
#[test]
fn a_zones_endpoints_split_its_answers_on_both_paths() {
    let snapshot = snapshot(config(""), &[]);
    let mut caches = ThreadCaches::new();
    let mut out = Vec::new();
    let source: IpAddr = "127.0.0.1".parse().unwrap();
    let (mut blue, mut green) = (0, 0);
    for i in 0..2000u32 {
        // 24.0.0.0/8 is in the US in the shipped database: zone us-east.
        let net: ipnet::IpNet = format!("24.{}.{}.0/24", i / 256, i % 256).parse().unwrap();
        let mut request = Message::query();
        request.add_query(Query::query(
            Name::from_ascii("bg.gslb.example.").unwrap(),
            RecordType::A,
        ));
        let mut edns = Edns::new();
        edns.options_mut()
            .insert(EdnsOption::Subnet(ClientSubnet::from(net)));
        request.set_edns(edns);
        let wire = request.to_vec().unwrap();
        let fast = answer_or_send_kept(
            &wire,
            Transport::Udp,
            source,
            &snapshot,
            &mut caches,
            &mut out,
        )
        .expect("the fast path answers");
        assert!(fast.service.is_some());
        let fast_msg = Message::from_vec(&out).unwrap();
        let slow = general_answer(&wire, Transport::Udp, source, &snapshot).unwrap();
        let slow_msg = Message::from_vec(&slow.wire).unwrap();
        assert_eq!(fast_msg, slow_msg);
        let addrs: Vec<String> = fast_msg
            .answers
            .iter()
            .filter_map(|r| r.data.ip_addr())
            .map(|a| a.to_string())
            .collect();
        match addrs.as_slice() {
            [a] if a == "192.0.2.70" => blue += 1,
            [a] if a == "192.0.2.71" => green += 1,
            other => panic!("{net}: {other:?}, not one of us-east's endpoints"),
        }
        let scope = match fast_msg.edns.as_ref().unwrap().option(EdnsCode::Subnet) {
            Some(EdnsOption::Subnet(s)) => s.scope_prefix(),
            other => panic!("{other:?}"),
        };
        assert_eq!(scope, 24, "a split answer holds for the hashed /24 only");
    }
    let share = f64::from(blue) / f64::from(blue + green);
    assert!((share - 0.9).abs() < 0.03, "blue {blue}, green {green}");
}

#[test]
fn wildcard_names_are_answered_on_the_fast_path_as_on_the_general_path() {
    let snapshot = snapshot(config(""), &[]);
    let wildcard_service = snapshot
        .config
        .services
        .iter()
        .position(|s| s.name.is_wildcard())
        .expect("the fixture has a wildcard service");
    let mut caches = ThreadCaches::new();
    let source: IpAddr = "193.0.0.9".parse().unwrap();
    let ask = |name: &str, qtype: RecordType| {
        let mut m = Message::query();
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        m.to_vec().unwrap()
    };
    for (name, qtype, rcode, answers) in [
        (
            "Host.APPS.gslb.example.",
            RecordType::A,
            ResponseCode::NoError,
            1,
        ),
        (
            "a.b.apps.gslb.example.",
            RecordType::A,
            ResponseCode::NoError,
            1,
        ),
        (
            "host.apps.gslb.example.",
            RecordType::TXT,
            ResponseCode::NoError,
            0,
        ),
        (
            "x.split.apps.gslb.example.",
            RecordType::A,
            ResponseCode::NXDomain,
            0,
        ),
        (
            "X.wild.gslb.example.",
            RecordType::TXT,
            ResponseCode::NoError,
            1,
        ),
        (
            "x.wild.gslb.example.",
            RecordType::MX,
            ResponseCode::NoError,
            1,
        ),
        (
            "x.wild.gslb.example.",
            RecordType::A,
            ResponseCode::NoError,
            0,
        ),
        (
            "real.wild.gslb.example.",
            RecordType::TXT,
            ResponseCode::NoError,
            0,
        ),
        (
            "x.real.wild.gslb.example.",
            RecordType::A,
            ResponseCode::NXDomain,
            0,
        ),
        (
            "nope.gslb.example.",
            RecordType::A,
            ResponseCode::NXDomain,
            0,
        ),
    ] {
        let request = ask(name, qtype);
        let answered = compare(&snapshot, Transport::Udp, &request, source, &mut caches);
        assert!(
            answered.is_some(),
            "{name} {qtype}: the fast path answers it"
        );
        let reply = general_answer(&request, Transport::Udp, source, &snapshot).unwrap();
        let message = Message::from_vec(&reply.wire).unwrap();
        assert_eq!(message.metadata.response_code, rcode, "{name} {qtype}");
        assert_eq!(message.answers.len(), answers, "{name} {qtype}");
        for record in &message.answers {
            // The owner is the name as asked, case and all.
            assert_eq!(record.name.to_string(), name, "{name} {qtype}");
        }
        if name.to_ascii_lowercase().ends_with(".apps.gslb.example.")
            && rcode == ResponseCode::NoError
            && answers > 0
        {
            assert_eq!(reply.service.map(|h| h.service), Some(wildcard_service));
        }
    }
    // A CNAME at a wildcard: the general path's, with the owner the name asked.
    let request = ask("X.wild-alias.gslb.example.", RecordType::A);
    let mut out = Vec::new();
    assert!(
        answer_or_send_kept(
            &request,
            Transport::Udp,
            source,
            &snapshot,
            &mut caches,
            &mut out
        )
        .is_none()
    );
    let reply = general_answer(&request, Transport::Udp, source, &snapshot).unwrap();
    let message = Message::from_vec(&reply.wire).unwrap();
    assert_eq!(
        message.answers[0].name.to_string(),
        "X.wild-alias.gslb.example."
    );
    assert_eq!(message.answers[0].record_type(), RecordType::CNAME);
    assert_eq!(message.answers.last().unwrap().record_type(), RecordType::A);
}

#[test]
fn delegations_and_tiny_payloads_are_left_to_the_general_path() {
    let extra = "[[records]]\nname = \"sub\"\ntype = \"NS\"\ndata = \"ns.sub\"\n\
                 [[records]]\nname = \"ns.sub\"\ntype = \"A\"\ndata = \"192.0.2.53\"\n";
    let snapshot = snapshot(config(extra), &[]);
    differential(&snapshot, 0xde1e, 5_000);
    let mut caches = ThreadCaches::new();
    let mut out = Vec::new();
    let below_cut = {
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_ascii("ns.sub.gslb.example.").unwrap(),
            RecordType::A,
        ));
        m.to_vec().unwrap()
    };
    let source: IpAddr = "127.0.0.1".parse().unwrap();
    assert!(
        answer_or_send_kept(
            &below_cut,
            Transport::Udp,
            source,
            &snapshot,
            &mut caches,
            &mut out
        )
        .is_none()
    );
    let missing = {
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_ascii("nope.gslb.example.").unwrap(),
            RecordType::A,
        ));
        m.to_vec().unwrap()
    };
    assert!(
        answer_or_send_kept(
            &missing,
            Transport::Udp,
            source,
            &snapshot,
            &mut caches,
            &mut out
        )
        .is_none()
    );
}

/// The addresses of a service's A and AAAA answers from the general path,
/// for a query from `source` with an ECS of `subnet` if given, sorted.
fn answered_addresses(
    snapshot: &Snapshot,
    name: &str,
    source: IpAddr,
    subnet: Option<ipnet::IpNet>,
) -> Vec<String> {
    let mut addresses = Vec::new();
    for qtype in [RecordType::A, RecordType::AAAA] {
        let mut request = Message::query();
        request.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        let mut edns = Edns::new();
        if let Some(net) = subnet {
            edns.options_mut()
                .insert(EdnsOption::Subnet(ClientSubnet::from(net)));
        }
        request.set_edns(edns);
        let reply = general_answer(&request.to_vec().unwrap(), Transport::Tcp, source, snapshot)
            .expect("a reply");
        let reply = Message::from_vec(&reply.wire).unwrap();
        addresses.extend(
            reply
                .answers
                .iter()
                .filter_map(|r| r.data.ip_addr())
                .map(|a| a.to_string()),
        );
    }
    addresses.sort();
    addresses
}

/// Explain and the answer paths share one decision-to-records rule; this
/// holds them to it: for every service, client and health state, explain
/// names exactly the addresses DNS answers with.
#[test]
fn explain_names_the_addresses_the_answers_carry() {
    let config = config("");
    // Every address of `www` (service 0) down but one IPv4 in ap-south.
    let mut mostly_down = std::collections::HashMap::new();
    for (endpoint, e) in config.services[0].endpoints.iter().enumerate() {
        for address in 0..e.addresses.len() {
            let key = AddressKey {
                service: 0,
                endpoint,
                address,
            };
            let up = endpoint == 2 && address == 0;
            mostly_down.insert(key, if up { Observed::Up } else { Observed::Down });
        }
    }
    let mut all_down = mostly_down.clone();
    for observed in all_down.values_mut() {
        *observed = Observed::Down;
    }
    let states = [
        snapshot(config.clone(), &[]),
        snapshot(config.clone(), &["eu-west"]),
        snapshot(config.clone(), &["us-east", "eu-west", "ap-south"]),
        snapshot_observed(config.clone(), &mostly_down, &[]),
        snapshot_observed(config.clone(), &all_down, &[]),
    ];
    let source: IpAddr = "127.0.0.1".parse().unwrap();
    let subnets = [
        None,
        Some("193.0.0.0/24"),
        Some("202.12.27.0/24"),
        Some("2001:4860::/32"),
    ];
    let mut compared = 0;
    for snapshot in &states {
        for (service, svc) in config.services.iter().enumerate() {
            for subnet in subnets {
                let subnet: Option<ipnet::IpNet> = subnet.map(|s| s.parse().unwrap());
                let client = subnet.map_or(Client::from_source(source), |net| Client {
                    addr: net.addr(),
                    source_prefix: net.prefix_len(),
                });
                let explained = explain(
                    &snapshot.config,
                    &snapshot.health,
                    &snapshot.router,
                    service,
                    client,
                );
                let mut said = explained.answer.clone();
                said.sort();
                let name = svc.name.to_ascii();
                let answered = answered_addresses(snapshot, &name, source, subnet);
                assert_eq!(said, answered, "{name} for {client:?}");
                compared += usize::from(!answered.is_empty());
            }
        }
    }
    // Answers with addresses, not agreement on empty lists.
    assert!(compared > 60, "{compared}");
}
