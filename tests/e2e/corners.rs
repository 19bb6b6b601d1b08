//! RFC corners a conformance run found, over the wire on both paths: a
//! FORMERR caused by EDNS keeps the OPT (RFC 6891 section 7), surplus ECS
//! address bytes are FORMERR (RFC 7871 section 7.1.1), a cookie without a
//! question gets a server cookie (RFC 7873 section 5.4) unless its EDNS
//! version is one we do not speak (BADVERS first), other opcodes get
//! RD back but not CD, and class ANY is answered as IN. And replies leave
//! from the address each query was sent to when the node is bound to a
//! wildcard address.

use std::time::Duration;

use hickory_proto::op::{Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, Name, RecordType};

use crate::harness::*;

/// A `www` A query with an OPT (payload 1232) whose options are `options`,
/// written raw so hickory-proto's own checks cannot fix them on the way.
fn with_raw_options(options: &[u8]) -> Vec<u8> {
    let mut bytes = query_edns("www.gslb.example.", RecordType::A, 1232)
        .to_vec()
        .unwrap();
    // The OPT is last and has no options: its RDLENGTH ends the packet.
    let rdlen_at = bytes.len() - 2;
    assert_eq!(bytes[rdlen_at..], [0, 0], "an OPT without options");
    bytes[rdlen_at..].copy_from_slice(&(options.len() as u16).to_be_bytes());
    bytes.extend_from_slice(options);
    bytes
}

fn ask_raw(node: &Node, bytes: &[u8]) -> Vec<u8> {
    node.udp_raw(bytes, Duration::from_secs(5))
        .expect("a reply over UDP")
}

/// Asserts a FORMERR that carries our OPT (version 0, our payload) and
/// the question, over UDP and TCP.
fn assert_formerr_with_opt(node: &Node, bytes: &[u8], what: &str) {
    for raw in [ask_raw(node, bytes), node.tcp_raw(bytes)] {
        assert!(raw.len() > 12, "{what}: more than a bare header");
        assert_eq!(raw[..2], bytes[..2], "{what}: the ID");
        let reply = Message::from_vec(&raw).expect("the reply parses");
        assert_eq!(reply.response_code, ResponseCode::FormErr, "{what}");
        let edns = reply
            .edns
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: an OPT"));
        assert_eq!(edns.version(), 0);
        assert_eq!(edns.max_payload(), 1232);
        assert!(reply.answers.is_empty(), "{what}");
        assert_eq!(
            reply.queries[0].name().to_ascii(),
            "www.gslb.example.",
            "{what}"
        );
    }
}

#[test]
fn a_formerr_caused_by_edns_carries_the_opt() {
    let node = Node::start(&all_policy_example());
    // ECS cut short: a family and no prefix, and a prefix with an address
    // longer than the option.
    for options in [&[0, 8, 0, 2, 0, 1][..], &[0, 8, 0, 3, 0, 1, 24][..]] {
        let bytes = with_raw_options(options);
        assert!(
            Message::from_vec(&bytes).is_err(),
            "the premise: hickory-proto cannot read {options:?}"
        );
        assert_formerr_with_opt(&node, &bytes, &format!("{options:?}"));
    }
    // Garbage outside the OPT is still the bare header.
    let mut bad_name = query("www.gslb.example.", RecordType::A).to_vec().unwrap();
    bad_name[12] = 0x7f;
    let raw = ask_raw(&node, &bad_name);
    assert_eq!(raw.len(), 12, "{raw:?}");
    assert_eq!(raw[3] & 0x0f, 1, "FORMERR");
}

#[test]
fn surplus_ecs_address_bytes_get_formerr() {
    let node = Node::start(&all_policy_example());
    // 193.0.0.0/24 written with four address bytes instead of three.
    let surplus = with_raw_options(&[0, 8, 0, 8, 0, 1, 24, 0, 193, 0, 0, 0]);
    assert!(
        Message::from_vec(&surplus).is_ok(),
        "the premise: hickory-proto reads it"
    );
    assert_formerr_with_opt(&node, &surplus, "a /24 in four bytes");
    // The same subnet in three bytes is answered.
    let exact = with_raw_options(&[0, 8, 0, 7, 0, 1, 24, 0, 193, 0, 0]);
    let reply = Message::from_vec(&ask_raw(&node, &exact)).unwrap();
    assert_eq!(reply.response_code, ResponseCode::NoError);
    assert_eq!(reply.answers.len(), 3);
}

#[test]
fn a_cookie_without_a_question_gets_a_server_cookie() {
    let node = Node::start(&all_policy_example());
    let client = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];
    let mut message = query_edns("www.gslb.example.", RecordType::A, 1232);
    message.queries.clear();
    message.metadata.id = 0x7873;
    message
        .edns
        .as_mut()
        .unwrap()
        .options_mut()
        .insert(EdnsOption::Unknown(
            u16::from(EdnsCode::Cookie),
            client.to_vec(),
        ));
    for reply in [node.udp(&message), node.tcp(&message)] {
        assert_eq!(reply.id, 0x7873);
        assert_eq!(reply.response_code, ResponseCode::NoError);
        assert!(reply.queries.is_empty() && reply.answers.is_empty());
        let edns = reply.edns.as_ref().expect("an OPT");
        let Some(EdnsOption::Unknown(_, cookie)) = edns.option(EdnsCode::Cookie) else {
            panic!("a cookie in {edns:?}");
        };
        assert_eq!(cookie[..8], client, "the client cookie echoed");
        assert!(cookie.len() >= 16, "with a server cookie: {cookie:?}");
    }
    // Without a cookie, no question is still FORMERR.
    let mut empty = query_edns("www.gslb.example.", RecordType::A, 1232);
    empty.queries.clear();
    assert_eq!(node.udp(&empty).response_code, ResponseCode::FormErr);
}

#[test]
fn other_opcodes_get_rd_back_but_not_cd() {
    let node = Node::start(&all_policy_example());
    for opcode in [OpCode::Status, OpCode::Notify, OpCode::Update] {
        let mut request = query("gslb.example.", RecordType::SOA);
        request.metadata.op_code = opcode;
        request.metadata.recursion_desired = true;
        request.metadata.checking_disabled = true;
        for reply in [node.udp(&request), node.tcp(&request)] {
            assert_eq!(reply.response_code, ResponseCode::NotImp, "{opcode:?}");
            assert!(reply.recursion_desired, "{opcode:?}: RD copied");
            assert!(!reply.checking_disabled, "{opcode:?}: CD not copied");
        }
    }
    // A QUERY still gets its CD back.
    let mut request = query("www.gslb.example.", RecordType::A);
    request.metadata.checking_disabled = true;
    assert!(node.udp(&request).checking_disabled);
}

#[test]
fn class_any_is_answered_as_in() {
    let node = Node::start(&all_policy_example());
    let ask = |qname: &str, qtype: RecordType| {
        let mut message = Message::query();
        message.metadata.recursion_desired = true;
        let mut q = Query::query(Name::from_ascii(qname).unwrap(), qtype);
        q.set_query_class(DNSClass::ANY);
        message.add_query(q);
        let udp = node.udp(&message);
        let tcp = node.tcp(&message);
        assert_eq!(udp.answers, tcp.answers);
        assert_eq!(udp.queries, message.queries, "the question as asked");
        udp
    };
    let reply = ask("www.gslb.example.", RecordType::A);
    assert_eq!(reply.response_code, ResponseCode::NoError);
    assert!(reply.authoritative);
    assert_eq!(reply.answers.len(), 3);
    assert!(reply.answers.iter().all(|r| r.dns_class == DNSClass::IN));
    let reply = ask("gslb.example.", RecordType::SOA);
    assert_eq!(reply.answers[0].record_type(), RecordType::SOA);
    let reply = ask("nope.gslb.example.", RecordType::A);
    assert_eq!(reply.response_code, ResponseCode::NXDomain);
    assert!(reply.authoritative);
    assert_eq!(reply.authorities[0].record_type(), RecordType::SOA);
    // Outside the domain, REFUSED as in class IN.
    let reply = ask("www.other.example.", RecordType::A);
    assert_eq!(reply.response_code, ResponseCode::Refused);
}

#[test]
fn a_node_bound_to_0_0_0_0_answers_from_the_address_asked() {
    let text = all_policy_example();
    let dir = private_dir();
    let config = meridian::config::Config::parse(&text, &dir.join("test.toml")).unwrap();
    let dns = meridian::dns::DnsSockets::bind(&["0.0.0.0:0".parse().unwrap()], 2).unwrap();
    let port = dns.local_addrs()[0].port();
    let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    admin.set_nonblocking(true).unwrap();
    let node = Node::start_on(
        config,
        meridian::Listeners {
            dns,
            admin: Some(admin),
        },
    );
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 4096];
    for (round, target) in ["127.0.0.2", "127.0.0.3", "127.0.0.1", "127.0.0.3"]
        .iter()
        .enumerate()
    {
        let target: std::net::SocketAddr = format!("{target}:{port}").parse().unwrap();
        let mut request = query_edns("www.gslb.example.", RecordType::A, 1232);
        request.metadata.id = 0x5000 + round as u16;
        client.send_to(&request.to_vec().unwrap(), target).unwrap();
        let (len, from) = client.recv_from(&mut buf).expect("a reply");
        assert_eq!(from, target, "the reply leaves from the address asked");
        let reply = Message::from_vec(&buf[..len]).unwrap();
        assert_eq!(reply.id, request.metadata.id);
        assert_eq!(reply.answers.len(), 3);
    }
    drop(node);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_edns_version_we_do_not_speak_is_badvers_even_without_a_question() {
    let node = Node::start(&all_policy_example());
    let cookie_only = |version: u8| {
        let mut message = query_edns("www.gslb.example.", RecordType::A, 1232);
        message.queries.clear();
        let edns = message.edns.as_mut().unwrap();
        edns.set_version(version);
        edns.options_mut().insert(EdnsOption::Unknown(
            u16::from(EdnsCode::Cookie),
            vec![0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88],
        ));
        message
    };
    for reply in [node.udp(&cookie_only(1)), node.tcp(&cookie_only(1))] {
        // RFC 6891 section 6.1.3: the version is checked before the
        // cookie-only rule of RFC 7873 section 5.4 applies. hickory reads
        // 16 as BADSIG (TSIG shares the number): compare the number.
        assert_eq!(
            u16::from(reply.response_code),
            u16::from(ResponseCode::BADVERS)
        );
        let edns = reply.edns.as_ref().expect("an OPT with our version");
        assert_eq!(edns.version(), 0);
        assert!(edns.option(EdnsCode::Cookie).is_none(), "no server cookie");
    }
    // Version 0 is still the cookie-only query it was.
    assert_eq!(
        node.udp(&cookie_only(0)).response_code,
        ResponseCode::NoError
    );
}

crate::also_on_general_path! {
    a_node_bound_to_0_0_0_0_answers_from_the_address_asked,
    a_formerr_caused_by_edns_carries_the_opt,
    surplus_ecs_address_bytes_get_formerr,
    a_cookie_without_a_question_gets_a_server_cookie,
    an_edns_version_we_do_not_speak_is_badvers_even_without_a_question,
    other_opcodes_get_rd_back_but_not_cd,
    class_any_is_answered_as_in,
}
