//! What the README promises about answer contents and the UDP socket set
//! beyond the shipped example's defaults: configured TTLs (domain, record,
//! service, negative), AAAA, PTR and CAA data, a `udp_payload_max` other
//! than 1232, the truncation and drop counters, and `udp_sockets`.

use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use meridian::Listeners;
use meridian::config::Config;

use crate::harness::*;

/// A domain with non-default TTLs everywhere: `domain.ttl` 1234,
/// `service_ttl` 17, SOA `ttl` `soa_ttl` and `minimum` `minimum`, one
/// record and one service with their own TTL. `server` goes into
/// `[server]`.
fn ttl_config(soa_ttl: u32, minimum: u32, server: &str) -> String {
    format!(
        r#"
[server]
{server}

[domain]
name = "gslb.test."
ttl = 1234
service_ttl = 17

[domain.soa]
ttl = {soa_ttl}
minimum = {minimum}

[[domain.nameservers]]
name = "ns1"
addresses = ["192.0.2.53"]

[[records]]
name = "mail"
type = "A"
data = "192.0.2.25"

[[records]]
name = "brief"
type = "A"
data = "192.0.2.26"
ttl = 77

[[records]]
name = "mail"
type = "AAAA"
data = "2001:db8::25"

[[records]]
name = "host-25"
type = "PTR"
data = "mail"

[[records]]
name = "host-26"
type = "PTR"
data = "mail.example.org."

[[records]]
name = "@"
type = "CAA"
data = ['0 issue "ca.example"', '128 iodef "mailto:security@example.org"']

[[records]]
name = "fill"
type = "TXT"
data = [{fill}]

[[zones]]
name = "zone-a"
latitude = 0.0
longitude = 0.0

[[services]]
name = "www"
policy = "all"
ttl = 45
[services.check]
kind = "none"
[[services.endpoints]]
zone = "zone-a"
addresses = ["192.0.2.10", "2001:db8:1::10"]

[[services]]
name = "api"
policy = "all"
[services.check]
kind = "none"
[[services.endpoints]]
zone = "zone-a"
addresses = ["192.0.2.11"]
"#,
        fill = fill_strings()
    )
}

/// Nine TXT strings of ~100 bytes: a reply of about 1,100 bytes, over a
/// `udp_payload_max` of 1000 and within the default 1232.
fn fill_strings() -> String {
    (0..9)
        .map(|i| format!("\"fill {i} {}\"", "y".repeat(90)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

/// Every record's TTL, asserting the set is not empty.
fn ttls(records: &[Record]) -> Vec<u32> {
    assert!(!records.is_empty(), "no records");
    records.iter().map(|r| r.ttl).collect()
}

#[test]
fn ttls_follow_the_domain_record_and_service_settings() {
    let node = Node::start(&ttl_config(100, 500, ""));
    for transport in ["udp", "tcp"] {
        let ask = |qname: &str, qtype: RecordType| -> Message {
            let q = query(qname, qtype);
            let reply = if transport == "udp" {
                node.udp(&q)
            } else {
                node.tcp(&q)
            };
            assert_eq!(reply.response_code, ResponseCode::NoError, "{qname}");
            reply
        };
        // Static records without their own TTL: domain.ttl.
        let mail = ask("mail.gslb.test.", RecordType::A);
        assert_eq!(ttls(&mail.answers), [1234], "{transport}: domain.ttl");
        let ns = ask("gslb.test.", RecordType::NS);
        assert_eq!(ttls(&ns.answers), [1234], "{transport}: the NS set");
        assert_eq!(ttls(&ns.additionals), [1234], "{transport}: glue");
        // A record's own TTL.
        let brief = ask("brief.gslb.test.", RecordType::A);
        assert_eq!(ttls(&brief.answers), [77], "{transport}: record ttl");
        // A service's own TTL, and service_ttl for one without.
        let www = ask("www.gslb.test.", RecordType::A);
        assert_eq!(ttls(&www.answers), [45], "{transport}: service ttl");
        let www6 = ask("www.gslb.test.", RecordType::AAAA);
        assert_eq!(ttls(&www6.answers), [45], "{transport}: service ttl");
        let api = ask("api.gslb.test.", RecordType::A);
        assert_eq!(ttls(&api.answers), [17], "{transport}: service_ttl");
        // The SOA itself carries its own ttl.
        let soa = ask("gslb.test.", RecordType::SOA);
        assert_eq!(ttls(&soa.answers), [100], "{transport}: SOA ttl");
    }
}

/// The SOA of a negative answer and its TTL, for NXDOMAIN and NODATA.
fn negative_soa_ttls(node: &Node) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for (qname, qtype, rcode) in [
        ("nope.gslb.test.", RecordType::A, ResponseCode::NXDomain),
        ("mail.gslb.test.", RecordType::TXT, ResponseCode::NoError),
    ] {
        let q = query(qname, qtype);
        for reply in [node.udp(&q), node.tcp(&q)] {
            assert_eq!(reply.response_code, rcode, "{qname} {qtype}");
            assert!(reply.answers.is_empty(), "{qname} {qtype}");
            assert_eq!(reply.authorities.len(), 1, "{qname} {qtype}");
            let soa = &reply.authorities[0];
            assert_eq!(soa.name, name("gslb.test."));
            let RData::SOA(data) = &soa.data else {
                panic!("authority holds {:?}, not an SOA", soa.data);
            };
            out.push((soa.ttl, data.minimum));
        }
    }
    out
}

#[test]
fn negative_answers_carry_the_soa_with_the_smaller_of_ttl_and_minimum() {
    // minimum above the SOA ttl: the SOA ttl bounds the negative TTL.
    let node = Node::start(&ttl_config(100, 500, ""));
    assert_eq!(negative_soa_ttls(&node), [(100, 500); 4]);
    // minimum below it: minimum.
    let node = Node::start(&ttl_config(900, 500, ""));
    assert_eq!(negative_soa_ttls(&node), [(500, 500); 4]);
}

#[test]
fn aaaa_ptr_and_caa_answers_carry_their_data() {
    let node = Node::start(&ttl_config(100, 500, ""));
    let both: [fn(&Node, &Message) -> Message; 2] = [Node::udp, Node::tcp];
    for reply_of in both {
        let reply = reply_of(&node, &query("mail.gslb.test.", RecordType::AAAA));
        let got: Vec<(Name, Ipv6Addr)> = reply
            .answers
            .iter()
            .map(|r| match &r.data {
                RData::AAAA(a) => (r.name.clone(), a.0),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            [(name("mail.gslb.test."), "2001:db8::25".parse().unwrap())]
        );

        // A relative PTR target is completed with the domain; an absolute
        // one is kept.
        for (owner, target) in [
            ("host-25.gslb.test.", "mail.gslb.test."),
            ("host-26.gslb.test.", "mail.example.org."),
        ] {
            let reply = reply_of(&node, &query(owner, RecordType::PTR));
            let got: Vec<Name> = reply
                .answers
                .iter()
                .map(|r| match &r.data {
                    RData::PTR(p) => p.0.clone(),
                    other => panic!("unexpected {other:?}"),
                })
                .collect();
            assert_eq!(got, [name(target)], "{owner}");
            assert_eq!(reply.answers[0].ttl, 1234);
        }

        let reply = reply_of(&node, &query("gslb.test.", RecordType::CAA));
        let mut got: Vec<(bool, String, String)> = reply
            .answers
            .iter()
            .map(|r| match &r.data {
                RData::CAA(caa) => (
                    caa.issuer_critical,
                    caa.tag.clone(),
                    String::from_utf8(caa.value.clone()).unwrap(),
                ),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                (false, "issue".to_string(), "ca.example".to_string()),
                (
                    true,
                    "iodef".to_string(),
                    "mailto:security@example.org".to_string()
                ),
            ]
        );
    }
}

/// The advertised UDP payload size of a reply's OPT.
fn advertised(reply: &Message) -> u16 {
    reply
        .edns
        .as_ref()
        .expect("an OPT in the reply")
        .max_payload()
}

#[test]
fn udp_payload_max_sets_where_udp_replies_are_truncated() {
    let node = Node::start(&ttl_config(100, 500, "udp_payload_max = 1000"));
    let big = query_edns("fill.gslb.test.", RecordType::TXT, 4096);
    // The fixture sits between the configured size and the default.
    let full = node.tcp(&big);
    assert_eq!(full.answers.len(), 9);
    let size = full.to_vec().unwrap().len();
    assert!(
        size > 1000 && size <= 1232,
        "the TXT set makes a {size}-byte reply"
    );
    for payload in [4096, 1232] {
        let reply = node.udp(&query_edns("fill.gslb.test.", RecordType::TXT, payload));
        assert!(reply.truncation, "{size} bytes > 1000: TC=1");
        assert!(reply.answers.is_empty(), "a truncated reply has no answer");
        assert_eq!(advertised(&reply), 1000, "our limit is advertised");
    }
    // A reply within the limit is whole and advertises the limit.
    let small = node.udp(&query_edns("mail.gslb.test.", RecordType::A, 4096));
    assert!(!small.truncation);
    assert_eq!(small.answers.len(), 1);
    assert_eq!(advertised(&small), 1000);
    // Every TC=1 sent over UDP is counted, nothing else.
    wait_until("two truncations counted", Duration::from_secs(5), || {
        node.metric("meridian_dns_truncated_total") == 2.0
    });

    // The same reply fits the default limit.
    let default = Node::start(&ttl_config(100, 500, ""));
    let reply = default.udp(&big);
    assert!(!reply.truncation);
    assert_eq!(reply.answers.len(), 9);
    assert_eq!(advertised(&reply), 1232);
    assert_eq!(default.metric("meridian_dns_truncated_total"), 0.0);
}

#[test]
fn packets_that_get_no_reply_are_counted_as_dropped() {
    let node = Node::start(&ttl_config(100, 500, ""));
    let wait = Duration::from_millis(500);
    // A response sent as a query, and a packet shorter than a header.
    let mut response = query("mail.gslb.test.", RecordType::A).to_vec().unwrap();
    response[2] |= 0x80;
    assert_eq!(node.udp_raw(&response, wait), None, "QR=1 gets no reply");
    assert_eq!(node.udp_raw(&[0, 1, 2, 3, 4], wait), None, "short packet");
    // An answered query is not counted.
    assert_eq!(
        node.udp(&query("mail.gslb.test.", RecordType::A))
            .answers
            .len(),
        1
    );
    wait_until("two drops counted", Duration::from_secs(5), || {
        node.metric("meridian_dns_dropped_total") == 2.0
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(node.metric("meridian_dns_dropped_total"), 2.0);
}

/// Binds the config's addresses (127.0.0.1 on ephemeral ports) as the
/// binary does, so `udp_sockets` decides how many UDP sockets there are.
fn bind_as_the_binary(text: &str) -> (Config, Listeners) {
    let dir = private_dir();
    let mut config = Config::parse(text, &dir.join("test.toml")).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    config.server.dns = vec![any];
    config.server.admin = Some(any);
    let listeners = Listeners::bind(&config).expect("bind");
    (config, listeners)
}

#[test]
fn udp_sockets_binds_that_many_sockets_and_every_one_answers() {
    let (_, one) = bind_as_the_binary(&ttl_config(100, 500, "udp_sockets = 1"));
    assert_eq!(one.dns.udp.len(), 1);
    drop(one);

    let (config, listeners) = bind_as_the_binary(&ttl_config(100, 500, "udp_sockets = 3"));
    assert_eq!(listeners.dns.udp.len(), 3, "udp_sockets = 3");
    let port = listeners.dns.local_addrs()[0];
    for socket in &listeners.dns.udp {
        assert_eq!(socket.local_addr().unwrap(), port, "one port, shared");
    }
    let node = Node::start_on(config, listeners);
    // The kernel spreads sources over the group by their port: from 60
    // different ports each socket gets some (all three miss one with
    // probability 3 x (2/3)^60, about 1e-10). A socket nobody serves
    // would leave its share unanswered, and `udp` panics on no reply.
    let q = query("mail.gslb.test.", RecordType::A);
    for _ in 0..60 {
        assert_eq!(node.udp(&q).answers.len(), 1);
    }
}

// The answer tests again with the fast path switched off.
crate::also_on_general_path! {
    ttls_follow_the_domain_record_and_service_settings,
    negative_answers_carry_the_soa_with_the_smaller_of_ttl_and_minimum,
    aaaa_ptr_and_caa_answers_carry_their_data,
    udp_payload_max_sets_where_udp_replies_are_truncated,
    packets_that_get_no_reply_are_counted_as_dropped,
    udp_sockets_binds_that_many_sockets_and_every_one_answers,
}
