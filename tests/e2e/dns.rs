//! Authoritative DNS behaviour over the wire.
//!
//! Every test talks to a real node over real UDP or TCP sockets and checks
//! exact header flags, response codes, sections and TTLs, so a change in
//! what Meridian says on the wire fails here.

use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::harness::*;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// How long to wait for a reply that must not come.
const SILENCE: Duration = Duration::from_millis(300);

/// The negative-caching TTL of the example: min(SOA ttl 3600, minimum 60).
const NEGATIVE_TTL: u32 = 60;

/// The service `www` answers with these IPv4 addresses.
const WWW_V4: [&str; 3] = ["192.0.2.10", "198.51.100.10", "203.0.113.10"];

/// Owner names exactly as they came over the wire (case kept).
fn owners(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| r.name.to_ascii()).collect()
}

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

/// A query with a chosen ID and RD flag.
fn query_with(id: u16, qname: &str, qtype: RecordType, rd: bool) -> Message {
    let mut message = query(qname, qtype);
    message.metadata.id = id;
    message.metadata.recursion_desired = rd;
    message
}

/// A query for `qname` with the given class.
fn query_class(qname: &str, qtype: RecordType, class: DNSClass) -> Message {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    let mut q = Query::query(name(qname), qtype);
    q.set_query_class(class);
    message.add_query(q);
    message
}

/// Checks a reply's header bits that every answer from us has in common.
fn assert_response_header(reply: &Message, request: &Message) {
    assert_eq!(reply.id, request.id, "ID echoed");
    assert_eq!(reply.message_type, MessageType::Response, "QR set");
    assert_eq!(reply.op_code, request.op_code, "opcode echoed");
    assert!(!reply.recursion_available, "RA is never set");
    assert_eq!(
        reply.recursion_desired, request.recursion_desired,
        "RD is copied"
    );
    assert!(!reply.authentic_data, "AD is never set");
    assert_eq!(reply.queries, request.queries, "question echoed");
}

/// Checks the SOA of a negative answer: the domain's SOA at the apex with
/// the negative TTL, alone in the authority section.
fn assert_negative_soa(reply: &Message) {
    assert_eq!(reply.authorities.len(), 1, "exactly the SOA in authority");
    let soa = &reply.authorities[0];
    assert_eq!(soa.name, name("gslb.example."));
    assert_eq!(soa.dns_class, DNSClass::IN);
    assert_eq!(soa.ttl, NEGATIVE_TTL, "SOA TTL = min(SOA ttl, minimum)");
    match &soa.data {
        RData::SOA(soa) => {
            assert_eq!(soa.mname, name("ns-us-east.gslb.example."));
            assert_eq!(soa.rname, name("hostmaster.gslb.example."));
            assert_eq!(soa.serial, 2026112301);
            assert_eq!(soa.minimum, 60);
        }
        other => panic!("authority holds {other:?}, not an SOA"),
    }
}

/// NXDOMAIN or NODATA (`rcode` NoError) for `qname`/`qtype` over UDP and
/// TCP: authoritative, no answer, no additional data, the SOA in authority.
fn assert_negative(node: &Node, qname: &str, qtype: RecordType, rcode: ResponseCode) {
    let request = query(qname, qtype);
    for reply in [node.udp(&request), node.tcp(&request)] {
        assert_response_header(&reply, &request);
        assert_eq!(reply.response_code, rcode, "{qname} {qtype}");
        assert!(
            reply.authoritative,
            "{qname} {qtype}: AA on a negative answer"
        );
        assert!(reply.answers.is_empty(), "{qname} {qtype}: no answer");
        assert!(reply.additionals.is_empty(), "{qname} {qtype}");
        assert_negative_soa(&reply);
    }
}

/// Checks the node still gives a normal answer (after malformed input).
fn assert_still_answers(node: &Node) {
    let reply = node.udp(&query("www.gslb.example.", RecordType::A));
    assert_eq!(reply.response_code, ResponseCode::NoError);
    assert!(reply.authoritative);
    assert_eq!(a_addrs(&reply.answers), WWW_V4);
}

/// Sets the 4-bit opcode in an encoded message's header.
fn patch_opcode(bytes: &mut [u8], opcode: u8) {
    bytes[2] = (bytes[2] & 0x87) | ((opcode & 0x0f) << 3);
}

/// Parses a raw reply, checking it came back at all.
fn parse(reply: Option<Vec<u8>>) -> Message {
    Message::from_vec(&reply.expect("a reply")).expect("reply parses")
}

// ---------------------------------------------------------------------------
// 0. The basic answer
// ---------------------------------------------------------------------------

#[test]
fn service_answers_with_every_endpoint_over_udp_and_tcp() {
    let node = Node::start(&all_policy_example());
    for reply in [
        node.udp(&query("www.gslb.example.", RecordType::A)),
        node.tcp(&query("www.gslb.example.", RecordType::A)),
    ] {
        assert_eq!(reply.response_code, ResponseCode::NoError);
        assert!(reply.authoritative, "AA is set");
        assert!(!reply.recursion_available, "RA is never set");
        assert!(reply.recursion_desired, "RD is copied");
        let mut addrs: Vec<String> = reply
            .answers
            .iter()
            .map(|r| match &r.data {
                RData::A(a) => a.to_string(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        addrs.sort();
        assert_eq!(addrs, ["192.0.2.10", "198.51.100.10", "203.0.113.10"]);
        assert!(reply.answers.iter().all(|r| r.ttl == 30));
    }
}

// ---------------------------------------------------------------------------
// 1. Header flags
// ---------------------------------------------------------------------------

#[test]
fn header_sets_aa_never_ra_copies_rd_and_echoes_id() {
    let node = Node::start(&all_policy_example());
    for (id, rd) in [(0x0000, false), (0xbeef, true), (0xffff, false), (1, true)] {
        let request = query_with(id, "www.gslb.example.", RecordType::A, rd);
        let mut stream = node.tcp_connect();
        for reply in [node.udp(&request), tcp_exchange(&mut stream, &request)] {
            assert_response_header(&reply, &request);
            assert_eq!(reply.response_code, ResponseCode::NoError);
            assert!(reply.authoritative, "AA on authoritative data");
            assert!(!reply.truncation, "TC clear");
            assert!(!reply.checking_disabled, "CD clear when the query's is");
            assert_eq!(a_addrs(&reply.answers), WWW_V4);
        }
    }
    // The raw header bits too, independent of the parser: byte 2 is
    // QR|opcode|AA|TC|RD, byte 3 is RA|Z|AD|CD|RCODE.
    for (rd, byte2) in [(false, 0x84u8), (true, 0x85u8)] {
        let request = query_with(0x1234, "www.gslb.example.", RecordType::A, rd);
        let raw = node
            .udp_raw(&request.to_vec().unwrap(), Duration::from_secs(5))
            .expect("a reply");
        assert_eq!(&raw[0..2], &[0x12, 0x34], "ID echoed");
        assert_eq!(raw[2], byte2, "QR=1 opcode=0 AA=1 TC=0 RD={rd}");
        assert_eq!(raw[3], 0x00, "RA=0 Z=0 AD=0 CD=0 RCODE=0");
    }
}

#[test]
fn header_copies_cd() {
    let node = Node::start(&all_policy_example());
    let mut request = query("www.gslb.example.", RecordType::A);
    request.metadata.checking_disabled = true;
    let reply = node.udp(&request);
    assert_response_header(&reply, &request);
    assert!(reply.checking_disabled, "CD is copied");
    assert!(reply.authoritative);
}

// ---------------------------------------------------------------------------
// 2. Opcodes
// ---------------------------------------------------------------------------

#[test]
fn unknown_opcodes_get_notimp() {
    let node = Node::start(&all_policy_example());
    // 1 IQUERY (obsolete), 2 STATUS, 3 unassigned, 4 NOTIFY, 5 UPDATE,
    // 6 DSO, 15 unassigned.
    for opcode in [1u8, 2, 3, 4, 5, 6, 15] {
        let request = query_with(
            0x4200 + u16::from(opcode),
            "gslb.example.",
            RecordType::SOA,
            true,
        );
        let mut bytes = request.to_vec().unwrap();
        patch_opcode(&mut bytes, opcode);
        let raw = node
            .udp_raw(&bytes, Duration::from_secs(5))
            .unwrap_or_else(|| panic!("opcode {opcode}: a reply"));
        let reply = Message::from_vec(&raw).expect("reply parses");
        assert_eq!(reply.id, request.id, "opcode {opcode}: ID echoed");
        assert_eq!(reply.message_type, MessageType::Response);
        assert_eq!(u8::from(reply.op_code), opcode, "opcode echoed");
        assert_eq!(
            reply.response_code,
            ResponseCode::NotImp,
            "opcode {opcode}: NOTIMP"
        );
        assert!(!reply.authoritative, "opcode {opcode}: AA clear");
        assert!(!reply.recursion_available);
        assert!(reply.answers.is_empty() && reply.authorities.is_empty());
        assert!(reply.additionals.is_empty());
    }
    assert_still_answers(&node);
}

// ---------------------------------------------------------------------------
// 3. Negative answers
// ---------------------------------------------------------------------------

#[test]
fn nxdomain_carries_soa_with_negative_ttl() {
    let node = Node::start(&all_policy_example());
    for qname in [
        "nope.gslb.example.",
        "a.b.nope.gslb.example.",
        "x.www.gslb.example.",
        "x._sip._udp.gslb.example.",
    ] {
        for qtype in [RecordType::A, RecordType::AAAA, RecordType::TXT] {
            assert_negative(&node, qname, qtype, ResponseCode::NXDomain);
        }
    }
}

#[test]
fn nodata_carries_soa_with_noerror() {
    let node = Node::start(&all_policy_example());
    for (qname, qtype) in [
        // A name with data, but not of this type.
        ("www.gslb.example.", RecordType::MX),
        ("www.gslb.example.", RecordType::TXT),
        ("mail.gslb.example.", RecordType::AAAA),
        ("gslb.example.", RecordType::A),
        // An empty non-terminal: `_sip._udp` exists, so `_udp` does too.
        ("_udp.gslb.example.", RecordType::SRV),
        ("_udp.gslb.example.", RecordType::A),
    ] {
        assert_negative(&node, qname, qtype, ResponseCode::NoError);
    }
}

// ---------------------------------------------------------------------------
// 4. Outside the domain
// ---------------------------------------------------------------------------

#[test]
fn names_outside_the_domain_are_refused() {
    let node = Node::start(&all_policy_example());
    for (qname, qtype) in [
        ("example.com.", RecordType::A),
        ("www.example.com.", RecordType::A),
        ("example.", RecordType::NS),
        (".", RecordType::NS),
        ("gslb.example.org.", RecordType::SOA),
        // Shares the apex's last label bytes but not a label boundary.
        ("xgslb.example.", RecordType::A),
        ("www.gslb.example.net.", RecordType::A),
    ] {
        let request = query(qname, qtype);
        for reply in [node.udp(&request), node.tcp(&request)] {
            assert_response_header(&reply, &request);
            assert_eq!(reply.response_code, ResponseCode::Refused, "{qname}");
            assert!(!reply.authoritative, "{qname}: AA clear on REFUSED");
            assert!(reply.answers.is_empty(), "{qname}: no answer");
            assert!(reply.authorities.is_empty(), "{qname}: no authority");
            assert!(reply.additionals.is_empty(), "{qname}: no additional");
        }
    }
}

// ---------------------------------------------------------------------------
// 5. CNAME
// ---------------------------------------------------------------------------

const CNAME_EXTRAS: &str = r#"
[[records]]
name = "loop-a"
type = "CNAME"
data = "loop-b"

[[records]]
name = "loop-b"
type = "CNAME"
data = "loop-a"

[[records]]
name = "self"
type = "CNAME"
data = "self"

[[records]]
name = "away"
type = "CNAME"
data = "www.example.net."

[[records]]
name = "chain1"
type = "CNAME"
data = "chain2"

[[records]]
name = "chain2"
type = "CNAME"
data = "docs"

[[records]]
name = "dangling"
type = "CNAME"
data = "missing"
"#;

fn cname_target(record: &Record) -> String {
    match &record.data {
        RData::CNAME(c) => c.0.to_ascii(),
        other => panic!("expected a CNAME, got {other:?}"),
    }
}

#[test]
fn cname_inside_the_domain_is_followed() {
    let node = Node::start(&all_policy_example());
    let request = query("docs.gslb.example.", RecordType::A);
    for reply in [node.udp(&request), node.tcp(&request)] {
        assert_response_header(&reply, &request);
        assert_eq!(reply.response_code, ResponseCode::NoError);
        assert!(reply.authoritative);
        assert_eq!(reply.answers.len(), 4, "the CNAME then three A records");
        let cname = &reply.answers[0];
        assert_eq!(cname.name.to_ascii(), "docs.gslb.example.");
        assert_eq!(cname_target(cname), "www.gslb.example.");
        assert_eq!(cname.ttl, 300, "static records use the domain TTL");
        for a in &reply.answers[1..] {
            assert_eq!(a.record_type(), RecordType::A);
            assert_eq!(a.name.to_ascii(), "www.gslb.example.");
            assert_eq!(a.ttl, 30, "service TTL");
        }
        assert_eq!(a_addrs(&reply.answers), WWW_V4);
        assert!(reply.authorities.is_empty());
    }
}

#[test]
fn cname_chain_is_followed_in_order() {
    let node = Node::start(&example_with(CNAME_EXTRAS));
    let reply = node.udp(&query("chain1.gslb.example.", RecordType::A));
    assert_eq!(reply.response_code, ResponseCode::NoError);
    assert!(reply.authoritative);
    let chain: Vec<(String, String)> = reply.answers[..3]
        .iter()
        .map(|r| (r.name.to_ascii(), cname_target(r)))
        .collect();
    assert_eq!(
        chain,
        [
            ("chain1.gslb.example.".into(), "chain2.gslb.example.".into()),
            ("chain2.gslb.example.".into(), "docs.gslb.example.".into()),
            ("docs.gslb.example.".into(), "www.gslb.example.".into()),
        ]
    );
    assert_eq!(reply.answers.len(), 6);
    assert_eq!(a_addrs(&reply.answers[3..]), WWW_V4);
}

#[test]
fn cname_query_type_returns_only_the_cname() {
    let node = Node::start(&all_policy_example());
    let request = query("docs.gslb.example.", RecordType::CNAME);
    let reply = node.udp(&request);
    assert_response_header(&reply, &request);
    assert_eq!(reply.response_code, ResponseCode::NoError);
    assert!(reply.authoritative);
    assert_eq!(reply.answers.len(), 1, "{:?}", reply.answers);
    assert_eq!(reply.answers[0].name.to_ascii(), "docs.gslb.example.");
    assert_eq!(cname_target(&reply.answers[0]), "www.gslb.example.");
    assert_eq!(reply.answers[0].ttl, 300);
    assert!(reply.authorities.is_empty());
    assert!(reply.additionals.is_empty());
}

#[test]
fn cname_loop_terminates() {
    let node = Node::start(&example_with(CNAME_EXTRAS));
    for qname in ["loop-a.gslb.example.", "self.gslb.example."] {
        let request = query(qname, RecordType::A);
        // Over both transports, and the node must stay responsive.
        for reply in [node.udp(&request), node.tcp(&request)] {
            assert_response_header(&reply, &request);
            assert_eq!(reply.response_code, ResponseCode::NoError, "{qname}");
            assert!(reply.authoritative);
            assert!(!reply.answers.is_empty(), "{qname}: the CNAMEs");
            assert!(
                reply
                    .answers
                    .iter()
                    .all(|r| r.record_type() == RecordType::CNAME),
                "{qname}: only CNAMEs: {:?}",
                reply.answers
            );
            assert!(reply.answers.len() <= 16, "{qname}: a bounded chain");
            assert_eq!(reply.answers[0].name.to_ascii(), qname);
        }
    }
    let reply = node.udp(&query("loop-a.gslb.example.", RecordType::A));
    let mut links: Vec<(String, String)> = reply
        .answers
        .iter()
        .map(|r| (r.name.to_ascii(), cname_target(r)))
        .collect();
    links.sort();
    links.dedup();
    assert_eq!(
        links,
        [
            ("loop-a.gslb.example.".into(), "loop-b.gslb.example.".into()),
            ("loop-b.gslb.example.".into(), "loop-a.gslb.example.".into()),
        ],
        "both links of the loop are in the answer"
    );
    assert_still_answers(&node);
}

#[test]
fn cname_loop_lists_each_cname_once() {
    let node = Node::start(&example_with(CNAME_EXTRAS));
    let reply = node.udp(&query("loop-a.gslb.example.", RecordType::A));
    assert_eq!(reply.response_code, ResponseCode::NoError);
    let links: Vec<(String, String)> = reply
        .answers
        .iter()
        .map(|r| (r.name.to_ascii(), cname_target(r)))
        .collect();
    assert_eq!(
        links,
        [
            ("loop-a.gslb.example.".into(), "loop-b.gslb.example.".into()),
            ("loop-b.gslb.example.".into(), "loop-a.gslb.example.".into()),
        ],
        "each CNAME of the loop once, in chain order"
    );
    let reply = node.udp(&query("self.gslb.example.", RecordType::A));
    assert_eq!(reply.answers.len(), 1, "{:?}", reply.answers);
}

#[test]
fn cname_out_of_the_domain_returns_only_the_cname() {
    let node = Node::start(&example_with(CNAME_EXTRAS));
    let request = query("away.gslb.example.", RecordType::A);
    for reply in [node.udp(&request), node.tcp(&request)] {
        assert_response_header(&reply, &request);
        assert_eq!(reply.response_code, ResponseCode::NoError);
        assert!(reply.authoritative, "the CNAME is our data");
        assert_eq!(reply.answers.len(), 1);
        assert_eq!(reply.answers[0].name.to_ascii(), "away.gslb.example.");
        assert_eq!(cname_target(&reply.answers[0]), "www.example.net.");
        assert!(
            reply.authorities.is_empty(),
            "no SOA: not a negative answer"
        );
        assert!(reply.additionals.is_empty());
    }
}

#[test]
fn cname_to_a_missing_name_is_nxdomain_with_the_cname() {
    // RFC 6604: the rcode is that of the last name in the chain.
    let node = Node::start(&example_with(CNAME_EXTRAS));
    let request = query("dangling.gslb.example.", RecordType::A);
    let reply = node.udp(&request);
    assert_response_header(&reply, &request);
    assert_eq!(reply.response_code, ResponseCode::NXDomain);
    assert!(reply.authoritative);
    assert_eq!(reply.answers.len(), 1);
    assert_eq!(cname_target(&reply.answers[0]), "missing.gslb.example.");
    assert_negative_soa(&reply);
}

// ---------------------------------------------------------------------------
// 6. Delegation
// ---------------------------------------------------------------------------

const DELEGATION: &str = r#"
[[records]]
name = "sub"
type = "NS"
data = "ns1.sub"

[[records]]
name = "ns1.sub"
type = "A"
data = "192.0.2.77"
"#;

#[test]
fn delegation_gets_a_referral_with_glue() {
    let node = Node::start(&example_with(DELEGATION));
    for (qname, qtype) in [
        ("sub.gslb.example.", RecordType::A),
        ("sub.gslb.example.", RecordType::NS),
        ("sub.gslb.example.", RecordType::SOA),
        ("www.sub.gslb.example.", RecordType::A),
        ("deep.below.sub.gslb.example.", RecordType::AAAA),
        ("ns1.sub.gslb.example.", RecordType::A),
    ] {
        let request = query(qname, qtype);
        for reply in [node.udp(&request), node.tcp(&request)] {
            assert_response_header(&reply, &request);
            assert_eq!(
                reply.response_code,
                ResponseCode::NoError,
                "{qname} {qtype}"
            );
            assert!(
                !reply.authoritative,
                "{qname} {qtype}: AA clear on a referral"
            );
            assert!(reply.answers.is_empty(), "{qname} {qtype}: empty answer");
            assert_eq!(reply.authorities.len(), 1, "{qname} {qtype}: the NS set");
            let ns = &reply.authorities[0];
            assert_eq!(ns.name.to_ascii(), "sub.gslb.example.");
            assert_eq!(ns.ttl, 300);
            match &ns.data {
                RData::NS(target) => assert_eq!(target.0.to_ascii(), "ns1.sub.gslb.example."),
                other => panic!("authority holds {other:?}, not NS"),
            }
            assert_eq!(reply.additionals.len(), 1, "{qname} {qtype}: the glue");
            let glue = &reply.additionals[0];
            assert_eq!(glue.name.to_ascii(), "ns1.sub.gslb.example.");
            assert_eq!(a_addrs(&reply.additionals), ["192.0.2.77"]);
        }
    }
    // The parent still answers its own names.
    assert_still_answers(&node);
}

#[test]
fn ds_at_a_delegation_is_answered_by_the_parent() {
    let node = Node::start(&example_with(DELEGATION));
    let request = query("sub.gslb.example.", RecordType::DS);
    let reply = node.udp(&request);
    assert_response_header(&reply, &request);
    assert_eq!(reply.response_code, ResponseCode::NoError);
    assert!(reply.authoritative, "the parent is authoritative for DS");
    assert!(reply.answers.is_empty(), "no DS: the child is unsigned");
    assert_negative_soa(&reply);
    // Below the cut, DS belongs to the child: still a referral.
    let reply = node.udp(&query("www.sub.gslb.example.", RecordType::DS));
    assert!(!reply.authoritative);
    assert_eq!(reply.authorities[0].record_type(), RecordType::NS);
}

// ---------------------------------------------------------------------------
// 7. Case
// ---------------------------------------------------------------------------

#[test]
fn matching_ignores_case_and_keeps_the_query_spelling() {
    let node = Node::start(&all_policy_example());
    let request = query("WwW.GsLb.ExAmPlE.", RecordType::A);
    for reply in [node.udp(&request), node.tcp(&request)] {
        assert_response_header(&reply, &request);
        assert_eq!(reply.response_code, ResponseCode::NoError);
        assert!(reply.authoritative);
        assert_eq!(reply.queries[0].name().to_ascii(), "WwW.GsLb.ExAmPlE.");
        assert_eq!(a_addrs(&reply.answers), WWW_V4);
        assert_eq!(owners(&reply.answers), ["WwW.GsLb.ExAmPlE."; 3]);
    }

    // Through a CNAME: the first owner is the query's spelling.
    let reply = node.udp(&query("DOCS.gslb.EXAMPLE.", RecordType::A));
    assert_eq!(reply.response_code, ResponseCode::NoError);
    assert_eq!(reply.queries[0].name().to_ascii(), "DOCS.gslb.EXAMPLE.");
    assert_eq!(reply.answers[0].name.to_ascii(), "DOCS.gslb.EXAMPLE.");
    assert_eq!(reply.answers.len(), 4);

    // Negative answers match case-insensitively too.
    let reply = node.udp(&query("NoPe.GSLB.example.", RecordType::A));
    assert_eq!(reply.response_code, ResponseCode::NXDomain);
    assert_eq!(reply.queries[0].name().to_ascii(), "NoPe.GSLB.example.");
    let reply = node.udp(&query("MAIL.GSLB.EXAMPLE.", RecordType::A));
    assert_eq!(reply.response_code, ResponseCode::NoError);
    assert_eq!(owners(&reply.answers), ["MAIL.GSLB.EXAMPLE."]);
    assert_eq!(a_addrs(&reply.answers), ["192.0.2.25"]);
}

// ---------------------------------------------------------------------------
// 8. EDNS
// ---------------------------------------------------------------------------

#[test]
fn edns_reply_advertises_our_payload_not_the_clients() {
    let node = Node::start(&all_policy_example());
    for payload in [512u16, 1232, 4096, 65535] {
        let request = query_edns("www.gslb.example.", RecordType::A, payload);
        for reply in [node.udp(&request), node.tcp(&request)] {
            assert_response_header(&reply, &request);
            assert_eq!(reply.response_code, ResponseCode::NoError);
            let edns = reply.edns.as_ref().expect("OPT echoed");
            assert_eq!(edns.max_payload(), 1232, "client said {payload}");
            assert_eq!(edns.version(), 0);
            assert_eq!(edns.rcode_high(), 0);
            assert!(!edns.flags().dnssec_ok);
            assert!(edns.options().options.is_empty(), "no options offered");
            assert_eq!(a_addrs(&reply.answers), WWW_V4);
            assert!(reply.additionals.is_empty(), "the OPT is not a record here");
        }
        // On the wire the OPT is the one additional record, once.
        let bytes = request.to_vec().unwrap();
        let udp = node
            .udp_raw(&bytes, Duration::from_secs(5))
            .expect("a UDP reply");
        for wire in [udp, node.tcp_raw(&bytes)] {
            assert_eq!(arcount(&wire), 1, "client said {payload}");
            let reply = Message::from_vec(&wire).unwrap();
            assert!(reply.edns.is_some() && reply.additionals.is_empty());
        }
    }
}

#[test]
fn edns_version_1_gets_badvers() {
    let node = Node::start(&all_policy_example());
    for version in [1u8, 2, 255] {
        let mut request = query_edns("www.gslb.example.", RecordType::A, 1232);
        request.edns.as_mut().unwrap().set_version(version);
        let raw = node
            .udp_raw(&request.to_vec().unwrap(), Duration::from_secs(5))
            .expect("a reply");
        // BADVERS is 16: header RCODE 0, OPT extended RCODE 1.
        assert_eq!(raw[3] & 0x0f, 0, "low RCODE bits");
        let reply = Message::from_vec(&raw).unwrap();
        assert_response_header(&reply, &request);
        // hickory decodes 16 as BADSIG (TSIG shares the number), so
        // compare the number: 16 is BADVERS in a reply to an OPT query.
        assert_eq!(
            u16::from(reply.response_code),
            u16::from(ResponseCode::BADVERS),
            "version {version}: BADVERS (16)"
        );
        let edns = reply.edns.as_ref().expect("OPT in the BADVERS reply");
        assert_eq!(edns.version(), 0, "we answer with the version we speak");
        assert_eq!(edns.rcode_high(), 1);
        assert_eq!(edns.max_payload(), 1232);
        assert!(reply.answers.is_empty());
        assert!(reply.authorities.is_empty());
        assert!(reply.additionals.is_empty());
    }
}

#[test]
fn edns_unknown_option_is_ignored_and_not_echoed() {
    let node = Node::start(&all_policy_example());
    let mut request = query_edns("www.gslb.example.", RecordType::A, 1232);
    request
        .edns
        .as_mut()
        .unwrap()
        .options_mut()
        .insert(EdnsOption::Unknown(65001, vec![0xde, 0xad, 0xbe, 0xef]));
    // A sanity check that the option really goes on the wire.
    let sent = Message::from_vec(&request.to_vec().unwrap()).unwrap();
    assert!(
        sent.edns
            .as_ref()
            .unwrap()
            .option(EdnsCode::Unknown(65001))
            .is_some()
    );
    for reply in [node.udp(&request), node.tcp(&request)] {
        assert_response_header(&reply, &request);
        assert_eq!(reply.response_code, ResponseCode::NoError);
        assert!(reply.authoritative);
        let edns = reply.edns.as_ref().expect("OPT echoed");
        assert_eq!(edns.version(), 0);
        assert!(
            edns.options().options.is_empty(),
            "unknown option not echoed: {:?}",
            edns.options()
        );
        assert_eq!(a_addrs(&reply.answers), WWW_V4);
    }
}

#[test]
fn no_opt_in_the_query_means_no_opt_in_the_reply() {
    let node = Node::start(&all_policy_example());
    for (qname, qtype) in [
        ("www.gslb.example.", RecordType::A),
        ("nope.gslb.example.", RecordType::A),
        ("example.com.", RecordType::A),
    ] {
        let request = query(qname, qtype);
        assert!(request.edns.is_none());
        for reply in [node.udp(&request), node.tcp(&request)] {
            assert!(reply.edns.is_none(), "{qname}: no OPT in the reply");
        }
        // The parser would take an OPT out of the additional section; the
        // header's count says none was sent (these replies have no other
        // additional records).
        let bytes = request.to_vec().unwrap();
        let udp = node
            .udp_raw(&bytes, Duration::from_secs(5))
            .expect("a UDP reply");
        for wire in [udp, node.tcp_raw(&bytes)] {
            assert_eq!(arcount(&wire), 0, "{qname}: no OPT on the wire");
        }
    }
}

#[test]
fn edns_do_bit_is_copied() {
    let node = Node::start(&all_policy_example());
    for dnssec_ok in [true, false] {
        let mut request = query_edns("www.gslb.example.", RecordType::A, 1232);
        request.edns.as_mut().unwrap().set_dnssec_ok(dnssec_ok);
        for reply in [node.udp(&request), node.tcp(&request)] {
            assert_response_header(&reply, &request);
            assert_eq!(reply.response_code, ResponseCode::NoError);
            let edns = reply.edns.as_ref().expect("OPT echoed");
            assert_eq!(edns.flags().dnssec_ok, dnssec_ok, "DO copied");
            assert_eq!(edns.flags().z, 0, "other flag bits clear");
            assert_eq!(a_addrs(&reply.answers), WWW_V4);
        }
    }
}

// ---------------------------------------------------------------------------
// 9. UDP truncation
// ---------------------------------------------------------------------------

/// Checks a truncated reply: TC=1, the question, no records.
fn assert_truncated(reply: &Message, request: &Message) {
    assert_response_header(reply, request);
    assert_eq!(reply.response_code, ResponseCode::NoError);
    assert!(reply.truncation, "TC=1");
    assert!(reply.authoritative, "AA kept");
    assert_eq!(reply.queries.len(), 1, "question kept");
    assert!(reply.answers.is_empty(), "no partial answer");
    assert!(reply.authorities.is_empty());
    assert!(reply.additionals.is_empty());
}

#[test]
fn udp_reply_too_large_for_512_bytes_is_truncated() {
    let node = Node::start(&large_txt_config());
    for qname in ["big.gslb.example.", "medium.gslb.example."] {
        let request = query(qname, RecordType::TXT);
        let raw = node
            .udp_raw(&request.to_vec().unwrap(), Duration::from_secs(5))
            .expect("a reply");
        assert!(
            raw.len() <= 512,
            "{qname}: {} bytes over plain UDP",
            raw.len()
        );
        let reply = Message::from_vec(&raw).unwrap();
        assert_truncated(&reply, &request);
        assert!(reply.edns.is_none(), "no OPT: the query had none");
    }
}

#[test]
fn udp_truncation_keeps_the_opt() {
    let node = Node::start(&large_txt_config());
    // `big` is over our 1232 limit whatever the client offers; `medium`
    // exceeds a 512-byte client buffer (and below-512 offers count as 512).
    for (qname, payload) in [
        ("big.gslb.example.", 4096u16),
        ("big.gslb.example.", 1232),
        ("medium.gslb.example.", 512),
        ("medium.gslb.example.", 100),
    ] {
        let request = query_edns(qname, RecordType::TXT, payload);
        let raw = node
            .udp_raw(&request.to_vec().unwrap(), Duration::from_secs(5))
            .expect("a reply");
        let reply = Message::from_vec(&raw).unwrap();
        assert_truncated(&reply, &request);
        let edns = reply
            .edns
            .as_ref()
            .unwrap_or_else(|| panic!("{qname} @{payload}: OPT kept when truncated"));
        assert_eq!(edns.max_payload(), 1232);
        assert_eq!(edns.version(), 0);
    }
}

#[test]
fn a_reply_larger_than_the_interface_is_truncated_not_fragmented() {
    let name = "dns::a_reply_larger_than_the_interface_is_truncated_not_fragmented";
    if !in_private_netns(name, &[&["link", "set", "lo", "up", "mtu", "1280"]]) {
        return;
    }
    // `big` (~2.3 kB) is within what the client offers and what we allow,
    // but not within the 1280-byte interface: the kernel would have
    // fragmented it; it must go out truncated instead, with the OPT.
    let text = large_txt_config().replace("udp_payload_max = 1232", "udp_payload_max = 4096");
    let node = Node::start(&text);
    let request = query_edns("big.gslb.example.", RecordType::TXT, 4096);
    let raw = node
        .udp_raw(&request.to_vec().unwrap(), Duration::from_secs(5))
        .expect("a reply, neither dropped nor lost in fragments");
    let reply = Message::from_vec(&raw).unwrap();
    assert_truncated(&reply, &request);
    let edns = reply.edns.as_ref().expect("the OPT kept");
    assert_eq!(edns.max_payload(), 4096, "our limit, as configured");
    assert_eq!(node.metric("meridian_dns_truncated_for_link_total"), 1.0);
    assert_eq!(node.tcp(&request).answers.len(), 20, "all of it over TCP");
    // What the interface carries goes out whole.
    let medium = query_edns("medium.gslb.example.", RecordType::TXT, 4096);
    assert_eq!(node.udp(&medium).answers.len(), 6);
    assert_eq!(node.metric("meridian_dns_truncated_for_link_total"), 1.0);
}

#[test]
fn udp_reply_within_the_edns_limit_is_not_truncated() {
    let node = Node::start(&large_txt_config());
    let request = query_edns("medium.gslb.example.", RecordType::TXT, 1232);
    let raw = node
        .udp_raw(&request.to_vec().unwrap(), Duration::from_secs(5))
        .expect("a reply");
    assert!(raw.len() > 512 && raw.len() <= 1232, "{} bytes", raw.len());
    let reply = Message::from_vec(&raw).unwrap();
    assert_response_header(&reply, &request);
    assert!(!reply.truncation);
    assert_eq!(reply.answers.len(), 6);
    assert!(reply.edns.is_some());
}

#[test]
fn truncated_query_gets_the_full_answer_over_tcp() {
    let node = Node::start(&large_txt_config());
    for request in [
        query("big.gslb.example.", RecordType::TXT),
        query_edns("big.gslb.example.", RecordType::TXT, 4096),
    ] {
        assert!(node.udp(&request).truncation, "UDP truncates");
        let reply = node.tcp(&request);
        assert_response_header(&reply, &request);
        assert_eq!(reply.response_code, ResponseCode::NoError);
        assert!(!reply.truncation, "TC clear over TCP");
        assert!(reply.authoritative);
        assert_eq!(reply.answers.len(), 20);
        let mut texts: Vec<String> = reply
            .answers
            .iter()
            .map(|r| match &r.data {
                RData::TXT(txt) => txt.to_string(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        texts.sort();
        for (i, text) in texts.iter().enumerate() {
            assert!(text.starts_with(&format!("record {i:02} ")), "{text}");
        }
        assert!(reply.answers.iter().all(|r| r.ttl == 300));
        assert_eq!(reply.edns.is_some(), request.edns.is_some());
    }
}

// ---------------------------------------------------------------------------
// 10. TCP
// ---------------------------------------------------------------------------

#[test]
fn tcp_answers_several_queries_on_one_connection_in_order() {
    let node = Node::start(&all_policy_example());
    let requests = [
        query_with(101, "www.gslb.example.", RecordType::A, true),
        query_with(102, "nope.gslb.example.", RecordType::A, false),
        query_with(103, "gslb.example.", RecordType::MX, true),
        query_with(104, "example.com.", RecordType::A, true),
        query_with(105, "mail.gslb.example.", RecordType::A, false),
    ];
    let expected = [
        ResponseCode::NoError,
        ResponseCode::NXDomain,
        ResponseCode::NoError,
        ResponseCode::Refused,
        ResponseCode::NoError,
    ];

    // Pipelined: every query written before any reply is read.
    let mut stream = node.tcp_connect();
    for request in &requests {
        tcp_send(&mut stream, &request.to_vec().unwrap());
    }
    for (request, rcode) in requests.iter().zip(expected) {
        let reply = tcp_recv(&mut stream);
        assert_response_header(&reply, request);
        assert_eq!(reply.response_code, rcode, "query {}", request.id);
    }

    // And one at a time on the same connection.
    for (request, rcode) in requests.iter().zip(expected).rev() {
        let reply = tcp_exchange(&mut stream, request);
        assert_response_header(&reply, request);
        assert_eq!(reply.response_code, rcode, "query {}", request.id);
    }
    let reply = tcp_exchange(&mut stream, &requests[0]);
    assert_eq!(a_addrs(&reply.answers), WWW_V4);
}

// ---------------------------------------------------------------------------
// 11. ANY
// ---------------------------------------------------------------------------

#[test]
fn any_gets_one_synthesized_hinfo() {
    let node = Node::start(&all_policy_example());
    for qname in ["gslb.example.", "www.gslb.example.", "GsLb.example."] {
        let request = query(qname, RecordType::ANY);
        for reply in [node.udp(&request), node.tcp(&request)] {
            assert_response_header(&reply, &request);
            assert_eq!(reply.response_code, ResponseCode::NoError);
            assert!(reply.authoritative);
            assert_eq!(reply.answers.len(), 1, "{qname}: {:?}", reply.answers);
            let hinfo = &reply.answers[0];
            assert_eq!(hinfo.name.to_ascii(), qname);
            assert_eq!(hinfo.ttl, 300);
            match &hinfo.data {
                RData::HINFO(h) => {
                    assert_eq!(&*h.cpu, b"RFC8482");
                    assert_eq!(&*h.os, b"");
                }
                other => panic!("{qname}: expected HINFO, got {other:?}"),
            }
            assert!(reply.authorities.is_empty());
            assert!(reply.additionals.is_empty());
        }
    }
    // ANY at an empty non-terminal: nothing to summarise, so NODATA.
    let reply = node.udp(&query("_udp.gslb.example.", RecordType::ANY));
    assert_eq!(reply.response_code, ResponseCode::NoError);
    assert!(reply.answers.is_empty());
    assert_negative_soa(&reply);
    let reply = node.udp(&query("nope.gslb.example.", RecordType::ANY));
    assert_eq!(reply.response_code, ResponseCode::NXDomain);
    assert_negative_soa(&reply);
}

// ---------------------------------------------------------------------------
// 12. Malformed packets
// ---------------------------------------------------------------------------

#[test]
fn packet_shorter_than_a_header_is_dropped() {
    let node = Node::start(&all_policy_example());
    for bytes in [
        &[0x12u8, 0x34, 0x01, 0x00, 0x00][..],
        &[0u8; 11][..],
        &[0xff][..],
    ] {
        assert_eq!(
            node.udp_raw(bytes, SILENCE),
            None,
            "{} bytes: no reply",
            bytes.len()
        );
    }
    assert_still_answers(&node);
}

#[test]
fn header_claiming_a_missing_question_gets_formerr() {
    let node = Node::start(&all_policy_example());
    // ID 0xabcd, RD, QDCOUNT=1, and nothing after the header.
    let bytes = [0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    let raw = node
        .udp_raw(&bytes, Duration::from_secs(5))
        .expect("a reply");
    let reply = Message::from_vec(&raw).expect("reply parses");
    assert_eq!(reply.id, 0xabcd, "ID echoed");
    assert_eq!(reply.message_type, MessageType::Response);
    assert_eq!(reply.op_code, OpCode::Query);
    assert_eq!(reply.response_code, ResponseCode::FormErr);
    assert!(reply.recursion_desired, "RD copied");
    assert!(!reply.authoritative && !reply.recursion_available);
    assert!(reply.answers.is_empty() && reply.authorities.is_empty());
    assert_still_answers(&node);
}

#[test]
fn packet_with_qr_set_is_dropped() {
    let node = Node::start(&all_policy_example());
    let mut bytes = query("www.gslb.example.", RecordType::A).to_vec().unwrap();
    bytes[2] |= 0x80;
    assert_eq!(
        node.udp_raw(&bytes, SILENCE),
        None,
        "responses get no reply"
    );
    // A complete response message, as a reflecting peer would send.
    let mut response = query("www.gslb.example.", RecordType::A);
    response.metadata.message_type = MessageType::Response;
    response.metadata.response_code = ResponseCode::NXDomain;
    assert_eq!(node.udp_raw(&response.to_vec().unwrap(), SILENCE), None);
    assert_still_answers(&node);
}

#[test]
fn compression_pointer_loop_in_the_question_is_rejected() {
    let node = Node::start(&all_policy_example());
    let header = [0x0b, 0xad, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    let tail = [0x00, 0x01, 0x00, 0x01]; // A IN
    let names: [&[u8]; 3] = [
        // A pointer to itself (offset 12).
        &[0xc0, 0x0c],
        // Two pointers to each other.
        &[0xc0, 0x0e, 0xc0, 0x0c],
        // A label, then a pointer back to the label.
        &[0x03, b'w', b'w', b'w', 0xc0, 0x0c],
    ];
    for name_bytes in names {
        let mut bytes = header.to_vec();
        bytes.extend_from_slice(name_bytes);
        bytes.extend_from_slice(&tail);
        if let Some(raw) = node.udp_raw(&bytes, SILENCE) {
            let reply = Message::from_vec(&raw).expect("reply parses");
            assert_eq!(reply.id, 0x0bad);
            assert_eq!(
                reply.response_code,
                ResponseCode::FormErr,
                "{name_bytes:02x?}: FORMERR or nothing"
            );
            assert!(reply.answers.is_empty());
        }
    }
    assert_still_answers(&node);
}

#[test]
fn two_opt_records_get_formerr() {
    let node = Node::start(&all_policy_example());
    let request = query_edns("www.gslb.example.", RecordType::A, 1232);
    let mut bytes = request.to_vec().unwrap();
    // The OPT without options is the last 11 bytes; add a second copy.
    let opt = bytes[bytes.len() - 11..].to_vec();
    assert_eq!(&opt[..3], &[0x00, 0x00, 41], "root name, type OPT");
    bytes.extend_from_slice(&opt);
    assert_eq!(&bytes[10..12], &[0, 1]);
    bytes[11] = 2; // ARCOUNT
    let reply = parse(node.udp_raw(&bytes, Duration::from_secs(5)));
    assert_eq!(reply.id, request.id);
    assert_eq!(reply.message_type, MessageType::Response);
    assert_eq!(reply.response_code, ResponseCode::FormErr);
    assert!(reply.answers.is_empty() && reply.authorities.is_empty());
    assert_still_answers(&node);
}

#[test]
fn two_questions_get_formerr() {
    let node = Node::start(&all_policy_example());
    let mut request = query("www.gslb.example.", RecordType::A);
    request.add_query(Query::query(name("mail.gslb.example."), RecordType::A));
    for reply in [node.udp(&request), node.tcp(&request)] {
        assert_eq!(reply.id, request.id);
        assert_eq!(reply.message_type, MessageType::Response);
        assert_eq!(reply.response_code, ResponseCode::FormErr);
        assert!(!reply.authoritative);
        assert!(reply.answers.is_empty(), "no answer to either question");
        assert!(reply.authorities.is_empty());
    }
    // QDCOUNT=0 is no question at all: FORMERR too.
    let mut empty = Message::query();
    empty.metadata.id = 0x5150;
    let reply = node.udp(&empty);
    assert_eq!(reply.response_code, ResponseCode::FormErr);
    assert!(reply.answers.is_empty());
    assert_still_answers(&node);
}

#[test]
fn node_survives_a_barrage_of_malformed_packets() {
    let node = Node::start(&all_policy_example());
    let valid = query("www.gslb.example.", RecordType::A).to_vec().unwrap();
    let mut garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0; 5],
        vec![0xff; 12],
        vec![0xff; 600],
        valid[..valid.len() - 3].to_vec(),
    ];
    // Every single-byte truncation and a few bit flips of a valid query.
    for cut in 0..valid.len() {
        garbage.push(valid[..cut].to_vec());
    }
    for i in 12..valid.len() {
        let mut flipped = valid.clone();
        flipped[i] ^= 0xff;
        garbage.push(flipped);
    }
    for bytes in &garbage {
        // Any reply is fine; only the node's survival matters here.
        let _ = node.udp_raw(bytes, Duration::from_millis(50));
    }
    assert_still_answers(&node);
    let reply = node.tcp(&query("mail.gslb.example.", RecordType::A));
    assert_eq!(a_addrs(&reply.answers), ["192.0.2.25"]);
}

// ---------------------------------------------------------------------------
// 13. Classes and zone transfers
// ---------------------------------------------------------------------------

#[test]
fn class_ch_and_hs_are_refused() {
    let node = Node::start(&all_policy_example());
    for (qname, qtype, class) in [
        ("www.gslb.example.", RecordType::A, DNSClass::CH),
        ("version.bind.", RecordType::TXT, DNSClass::CH),
        ("gslb.example.", RecordType::SOA, DNSClass::CH),
        ("www.gslb.example.", RecordType::A, DNSClass::HS),
    ] {
        let request = query_class(qname, qtype, class);
        for reply in [node.udp(&request), node.tcp(&request)] {
            assert_response_header(&reply, &request);
            assert_eq!(
                reply.response_code,
                ResponseCode::Refused,
                "{qname} {class}"
            );
            assert!(!reply.authoritative, "{qname} {class}: AA clear");
            assert!(reply.answers.is_empty());
            assert!(reply.authorities.is_empty());
            assert!(reply.additionals.is_empty());
        }
    }
}

#[test]
fn zone_transfers_are_refused() {
    let node = Node::start(&all_policy_example());
    for qtype in [RecordType::AXFR, RecordType::IXFR] {
        let request = query("gslb.example.", qtype);
        for reply in [node.tcp(&request), node.udp(&request)] {
            assert_response_header(&reply, &request);
            assert_eq!(reply.response_code, ResponseCode::Refused, "{qtype}");
            assert!(!reply.authoritative);
            assert!(reply.answers.is_empty(), "{qtype}: no records transferred");
            assert!(reply.authorities.is_empty());
        }
    }
}

// ---------------------------------------------------------------------------
// 14. Additional section
// ---------------------------------------------------------------------------

#[test]
fn mx_answer_carries_the_exchange_address() {
    let node = Node::start(&all_policy_example());
    let request = query("gslb.example.", RecordType::MX);
    for reply in [node.udp(&request), node.tcp(&request)] {
        assert_response_header(&reply, &request);
        assert_eq!(reply.response_code, ResponseCode::NoError);
        assert!(reply.authoritative);
        assert_eq!(reply.answers.len(), 1);
        let mx = &reply.answers[0];
        assert_eq!(mx.ttl, 300);
        match &mx.data {
            RData::MX(mx) => {
                assert_eq!(mx.preference, 10);
                assert_eq!(mx.exchange.to_ascii(), "mail.gslb.example.");
            }
            other => panic!("expected MX, got {other:?}"),
        }
        assert!(reply.authorities.is_empty());
        assert_eq!(owners(&reply.additionals), ["mail.gslb.example."]);
        assert_eq!(a_addrs(&reply.additionals), ["192.0.2.25"]);
        assert_eq!(reply.additionals[0].ttl, 300);
    }
}

#[test]
fn srv_answer_carries_the_target_address() {
    let node = Node::start(&all_policy_example());
    let reply = node.udp(&query("_sip._udp.gslb.example.", RecordType::SRV));
    assert_eq!(reply.response_code, ResponseCode::NoError);
    assert!(reply.authoritative);
    assert_eq!(reply.answers.len(), 1);
    match &reply.answers[0].data {
        RData::SRV(srv) => {
            assert_eq!((srv.priority, srv.weight, srv.port), (10, 5, 5060));
            assert_eq!(srv.target.to_ascii(), "mail.gslb.example.");
        }
        other => panic!("expected SRV, got {other:?}"),
    }
    assert_eq!(a_addrs(&reply.additionals), ["192.0.2.25"]);
}

#[test]
fn ns_answer_at_the_apex_carries_glue() {
    let node = Node::start(&all_policy_example());
    let request = query("gslb.example.", RecordType::NS);
    for reply in [node.udp(&request), node.tcp(&request)] {
        assert_response_header(&reply, &request);
        assert_eq!(reply.response_code, ResponseCode::NoError);
        assert!(reply.authoritative, "AA: the apex NS set is ours");
        let mut targets: Vec<String> = reply
            .answers
            .iter()
            .map(|r| match &r.data {
                RData::NS(ns) => ns.0.to_ascii(),
                other => panic!("expected NS, got {other:?}"),
            })
            .collect();
        targets.sort();
        assert_eq!(
            targets,
            [
                "ns-ap-south.gslb.example.",
                "ns-eu-west.gslb.example.",
                "ns-us-east.gslb.example.",
            ]
        );
        assert!(reply.answers.iter().all(|r| r.ttl == 300));
        assert!(reply.authorities.is_empty());
        let mut glue: Vec<(String, String)> = reply
            .additionals
            .iter()
            .map(|r| match &r.data {
                RData::A(a) => (r.name.to_ascii(), a.to_string()),
                other => panic!("expected glue A, got {other:?}"),
            })
            .collect();
        glue.sort();
        assert_eq!(
            glue,
            [
                ("ns-ap-south.gslb.example.".into(), "203.0.113.53".into()),
                ("ns-eu-west.gslb.example.".into(), "198.51.100.53".into()),
                ("ns-us-east.gslb.example.".into(), "192.0.2.53".into()),
            ]
        );
    }
}

#[test]
fn soa_query_at_the_apex_is_answered() {
    let node = Node::start(&all_policy_example());
    let request = query("gslb.example.", RecordType::SOA);
    let reply = node.udp(&request);
    assert_response_header(&reply, &request);
    assert_eq!(reply.response_code, ResponseCode::NoError);
    assert!(reply.authoritative);
    assert_eq!(reply.answers.len(), 1);
    assert_eq!(
        reply.answers[0].ttl, 3600,
        "the SOA's own TTL when asked for"
    );
    assert!(matches!(reply.answers[0].data, RData::SOA(_)));
    assert!(reply.authorities.is_empty());
}

/// Found by fuzzing: a query with many long questions got FORMERR with
/// every question echoed, a UDP reply over 512 bytes. Error replies to
/// such packets must stay small.
#[test]
fn many_questions_never_make_a_large_udp_reply() {
    let node = Node::start(&all_policy_example());
    let label = "a".repeat(60);
    let mut q = query(
        &format!("{label}.{label}.{label}.gslb.example."),
        RecordType::A,
    );
    for i in 0..20 {
        q.add_query(hickory_proto::op::Query::query(
            format!("{label}.{label}.{i}.gslb.example.")
                .parse()
                .unwrap(),
            RecordType::A,
        ));
    }
    for opcode_patch in [None, Some(5u8)] {
        let mut bytes = q.to_vec().unwrap();
        if let Some(op) = opcode_patch {
            bytes[2] = (bytes[2] & 0x87) | (op << 3);
        }
        let reply = node
            .udp_raw(&bytes, std::time::Duration::from_secs(2))
            .expect("a reply");
        assert!(reply.len() <= 512, "{} bytes", reply.len());
        let reply = hickory_proto::op::Message::from_vec(&reply).unwrap();
        assert!(matches!(
            reply.response_code,
            ResponseCode::FormErr | ResponseCode::NotImp
        ));
    }
}

#[test]
fn common_queries_take_the_fast_path_unless_it_is_off() {
    let node = Node::start(&all_policy_example());
    for i in 0..20u16 {
        let mut request = query_edns("wWw.gslb.example.", RecordType::A, 1232);
        request.metadata.id = i;
        let reply = node.udp(&request);
        assert_eq!(reply.metadata.id, i);
        assert_eq!(a_addrs(&reply.answers).len(), 3);
    }
    // A CNAME chain is the general path's work, on either setting.
    let reply = node.udp(&query("docs.gslb.example.", RecordType::A));
    assert_eq!(reply.answers[0].record_type(), RecordType::CNAME);
    let expected = if fast_path_on() { 20.0 } else { 0.0 };
    assert_eq!(node.metric("meridian_dns_fast_path_total"), expected);
}

#[test]
fn replies_sent_again_from_those_kept_are_counted() {
    let node = Node::start(&all_policy_example());
    // One client socket, so every ask reaches the same answering thread
    // (SO_REUSEPORT picks one by source), whose kept replies they are.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    socket.connect(node.dns).unwrap();
    let bytes = query("mail.gslb.example.", RecordType::A).to_vec().unwrap();
    let mut replies = Vec::new();
    for _ in 0..4 {
        socket.send(&bytes).unwrap();
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("a reply");
        replies.push(buf[..n].to_vec());
    }
    assert!(
        replies.windows(2).all(|w| w[0] == w[1]),
        "the same reply each time"
    );
    // Written the first two times, kept the second, sent again after.
    let expected = if fast_path_on() { 2.0 } else { 0.0 };
    assert_eq!(node.metric("meridian_dns_kept_replies_total"), expected);
    assert_eq!(
        node.metric("meridian_dns_fast_path_total"),
        2.0 * expected,
        "kept replies are fast-path replies too"
    );
}

#[test]
fn pipelined_tcp_queries_are_answered_in_order() {
    use std::io::{Read, Write};
    let node = Node::start(&example_with(CNAME_EXTRAS));
    // Fast-path and general-path shapes interleaved, sent in one write.
    let shapes = [
        ("www.gslb.example.", RecordType::A, ResponseCode::NoError),
        ("gslb.example.", RecordType::MX, ResponseCode::NoError),
        (
            "missing.gslb.example.",
            RecordType::AAAA,
            ResponseCode::NXDomain,
        ),
        ("docs.gslb.example.", RecordType::A, ResponseCode::NoError),
        ("www.elsewhere.test.", RecordType::A, ResponseCode::Refused),
    ];
    let mut bytes = Vec::new();
    for id in 0..300u16 {
        let (name, qtype, _) = shapes[usize::from(id) % shapes.len()];
        let mut request = query_edns(name, qtype, 1232);
        request.metadata.id = id;
        let wire = request.to_vec().unwrap();
        bytes.extend_from_slice(&(wire.len() as u16).to_be_bytes());
        bytes.extend_from_slice(&wire);
    }
    let mut stream = node.tcp_connect();
    stream.write_all(&bytes).unwrap();
    for id in 0..300u16 {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).expect("reply length");
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut reply).expect("reply body");
        let reply = Message::from_vec(&reply).unwrap();
        let (name, qtype, rcode) = shapes[usize::from(id) % shapes.len()];
        assert_eq!(reply.metadata.id, id, "replies come back in query order");
        assert_eq!(reply.metadata.response_code, rcode, "{name} {qtype}");
        assert_eq!(reply.queries[0].query_type(), qtype);
    }
}

// Every test above, again with the fast path switched off.
crate::also_on_general_path! {
    pipelined_tcp_queries_are_answered_in_order,
    common_queries_take_the_fast_path_unless_it_is_off,
    service_answers_with_every_endpoint_over_udp_and_tcp,
    header_sets_aa_never_ra_copies_rd_and_echoes_id,
    header_copies_cd,
    unknown_opcodes_get_notimp,
    nxdomain_carries_soa_with_negative_ttl,
    nodata_carries_soa_with_noerror,
    names_outside_the_domain_are_refused,
    cname_inside_the_domain_is_followed,
    cname_chain_is_followed_in_order,
    cname_query_type_returns_only_the_cname,
    cname_loop_terminates,
    cname_loop_lists_each_cname_once,
    cname_out_of_the_domain_returns_only_the_cname,
    cname_to_a_missing_name_is_nxdomain_with_the_cname,
    delegation_gets_a_referral_with_glue,
    ds_at_a_delegation_is_answered_by_the_parent,
    matching_ignores_case_and_keeps_the_query_spelling,
    edns_reply_advertises_our_payload_not_the_clients,
    edns_version_1_gets_badvers,
    edns_unknown_option_is_ignored_and_not_echoed,
    no_opt_in_the_query_means_no_opt_in_the_reply,
    edns_do_bit_is_copied,
    udp_reply_too_large_for_512_bytes_is_truncated,
    udp_truncation_keeps_the_opt,
    udp_reply_within_the_edns_limit_is_not_truncated,
    truncated_query_gets_the_full_answer_over_tcp,
    tcp_answers_several_queries_on_one_connection_in_order,
    any_gets_one_synthesized_hinfo,
    packet_shorter_than_a_header_is_dropped,
    header_claiming_a_missing_question_gets_formerr,
    packet_with_qr_set_is_dropped,
    compression_pointer_loop_in_the_question_is_rejected,
    two_opt_records_get_formerr,
    two_questions_get_formerr,
    node_survives_a_barrage_of_malformed_packets,
    class_ch_and_hs_are_refused,
    zone_transfers_are_refused,
    mx_answer_carries_the_exchange_address,
    srv_answer_carries_the_target_address,
    ns_answer_at_the_apex_carries_glue,
    soa_query_at_the_apex_is_answered,
    many_questions_never_make_a_large_udp_reply,
}

// ---------------------------------------------------------------------------
// Counting
// ---------------------------------------------------------------------------

/// Each UDP thread counts replies in cells of its own that `/metrics` adds
/// up, and TCP replies are counted in their runtime thread's cells: every
/// reply must show once, by transport, type and rcode, as soon as it is
/// answered (no flush to wait for, nothing counted twice).
#[test]
fn replies_are_counted_once_by_transport_as_soon_as_they_are_answered() {
    let node = Node::start(&all_policy_example());
    let series = [
        "meridian_dns_queries_total{transport=\"udp\",qtype=\"A\"}",
        "meridian_dns_queries_total{transport=\"tcp\",qtype=\"AAAA\"}",
        "meridian_dns_queries_total{transport=\"udp\",qtype=\"MX\"}",
        "meridian_dns_responses_total{rcode=\"NXDOMAIN\"}",
        "meridian_dns_fast_path_total",
    ];
    let read = || series.map(|s| node.series(s).unwrap_or_else(|| panic!("{s} is exported")));
    let before = read();
    for _ in 0..25 {
        let reply = node.udp(&query("www.gslb.example.", RecordType::A));
        assert_eq!(reply.response_code, ResponseCode::NoError);
    }
    for _ in 0..7 {
        node.tcp(&query("www.gslb.example.", RecordType::AAAA));
    }
    for _ in 0..3 {
        let reply = node.udp(&query("nope.gslb.example.", RecordType::MX));
        assert_eq!(reply.response_code, ResponseCode::NXDomain);
    }
    let after = read();
    let added: Vec<f64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    assert_eq!(added, [25.0, 7.0, 3.0, 3.0, 35.0], "{series:?}");
}
