//! Authoritative DNS behaviour over the wire.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

use crate::harness::*;

#[test]
fn service_answers_with_every_endpoint_over_udp_and_tcp() {
    let node = Node::start_example();
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
