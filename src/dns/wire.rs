//! Wire rules both answer paths share, written once.
//!
//! Meridian answers a query on one of two paths: the fast path
//! (`dns/fast.rs`) reads bytes in place and copies pre-encoded records,
//! the general path (`dns/answer.rs`) parses into hickory-proto's
//! `Message`. They must say the same thing, so every rule that is not
//! about how bytes are read or written lives here and both call it: the
//! header and UDP size limits, which ECS options a query may carry
//! (RFC 7871 section 7.1.1), which client a query is routed for, and the
//! scope echoed back.
//!
//! This module knows nothing of the snapshot: it is plain data in, plain
//! data out, so the pre-encoded tables (`dns/encoded.rs`) can use it too.

use std::net::IpAddr;

use hickory_proto::op::ResponseCode;

use crate::routing::Client;

/// Bytes of the DNS header (RFC 1035 section 4.1.1).
pub const HEADER_LEN: usize = 12;
/// The largest UDP reply to a client without EDNS (RFC 1035 section 2.3.4);
/// also the least an EDNS client may advertise (RFC 6891 section 6.2.5).
pub const PLAIN_UDP_MAX: usize = 512;
/// Names in wire form are at most this long (RFC 1035 section 3.1).
pub const NAME_MAX: usize = 255;

pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_OPT: u16 = 41;
pub const CLASS_IN: u16 = 1;
pub const OPTION_ECS: u16 = 8;
pub const OPTION_COOKIE: u16 = 10;

/// How the request arrived; decides the size limit of the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// The largest reply we may send: over UDP the client's EDNS payload size
/// (`None` without EDNS), never below 512 nor above our own
/// `udp_payload_max`; over TCP whatever the length prefix can carry.
#[inline]
pub fn reply_limit(transport: Transport, edns_payload: Option<u16>, udp_payload_max: u16) -> usize {
    match (transport, edns_payload) {
        (Transport::Tcp, _) => usize::from(u16::MAX),
        (Transport::Udp, Some(payload)) => {
            usize::from(payload).clamp(PLAIN_UDP_MAX, usize::from(udp_payload_max))
        }
        (Transport::Udp, None) => PLAIN_UDP_MAX,
    }
}

/// The low four bits of an rcode, as the header carries them. The fast
/// path's three are written out so the hot path makes no call for them.
#[inline]
pub fn rcode_low(rcode: ResponseCode) -> u8 {
    match rcode {
        ResponseCode::NoError => 0,
        ResponseCode::NXDomain => 3,
        ResponseCode::Refused => 5,
        other => other.low(),
    }
}

/// Address bits of an ECS family (RFC 7871 section 6, IANA address
/// family numbers): 1 is IPv4, 2 is IPv6; other families are not served.
#[inline]
pub fn ecs_family_bits(family: u16) -> Option<u8> {
    match family {
        1 => Some(32),
        2 => Some(128),
        _ => None,
    }
}

/// Bytes of address an ECS option carries for a source prefix: the prefix
/// rounded up to whole bytes (RFC 7871 section 6).
#[inline]
pub const fn ecs_address_len(source_prefix: u8) -> usize {
    (source_prefix as usize).div_ceil(8)
}

/// Whether a query's ECS option is well formed per RFC 7871 section
/// 7.1.1: no scope (that is the server's to set), a source prefix no
/// longer than the address, and no address bits set past the source
/// prefix. A query that breaks any of these gets FORMERR.
#[inline]
pub fn is_valid_query_ecs(addr: IpAddr, source_prefix: u8, scope: u8) -> bool {
    let (bits, width) = match addr {
        IpAddr::V4(a) => (u128::from(u32::from(a)) << 96, 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    };
    scope == 0 && source_prefix <= width && is_zero_past_prefix(bits, source_prefix)
}

/// Whether no address bit is set past the source prefix, for an address
/// given left-aligned in 128 bits (an IPv4 address in the top 32). The
/// fast path, which reads the address as bits, asks this directly.
#[inline]
pub fn is_zero_past_prefix(bits: u128, source_prefix: u8) -> bool {
    // Shifting the prefix out leaves the bits past it; a shift by the
    // whole width (a full-length prefix) leaves none.
    bits.checked_shl(u32::from(source_prefix))
        .is_none_or(|rest| rest == 0)
}

/// The client a query is routed for: its ECS subnet when it has one with
/// a source prefix, else the packet's source. A source prefix of 0 is the
/// resolver asking us not to use its clients' addresses (RFC 7871 section
/// 7.1.2); the packet's source is all there is then.
#[inline]
pub fn routed_client(ecs: Option<(IpAddr, u8)>, source: IpAddr) -> Client {
    match ecs {
        Some((addr, source_prefix)) if source_prefix > 0 => Client {
            addr,
            source_prefix,
        },
        _ => Client::from_source(source),
    }
}

/// The client an ECS option names when it ends `datagram`, judged by
/// its shape alone for the source prefixes resolvers send (/24, /56,
/// /48) and no scope: a guess at whom a query not yet read is for, to
/// warm caches with. Nothing else is checked, so it must never decide an
/// answer; a query with a cookie after its ECS, or none, gives `None`.
/// It runs for every query of a busy batch, so each shape is one compare
/// of the option's first eight bytes.
#[inline(always)]
pub fn trailing_ecs_client(datagram: &[u8]) -> Option<Client> {
    /// (family, source prefix) of the shapes looked for.
    const SHAPES: [(u16, u8); 3] = [(1, 24), (2, 56), (2, 48)];
    for (family, source_prefix) in SHAPES {
        let addr_len = ecs_address_len(source_prefix);
        // Code, length, family, source and scope (0) prefixes, as the
        // option's first eight bytes read big-endian.
        let head = u64::from(OPTION_ECS) << 48
            | ((4 + addr_len) as u64) << 32
            | u64::from(family) << 16
            | u64::from(source_prefix) << 8;
        let Some(at) = datagram.len().checked_sub(8 + addr_len) else {
            continue;
        };
        let (option, addr) = datagram[at..].split_at(8);
        if u64::from_be_bytes(option.try_into().ok()?) != head {
            continue;
        }
        let addr = if family == 1 {
            let mut v4 = [0; 4];
            v4[..addr_len].copy_from_slice(addr);
            IpAddr::from(v4)
        } else {
            let mut v6 = [0; 16];
            v6[..addr_len].copy_from_slice(addr);
            IpAddr::from(v6)
        };
        return Some(Client {
            addr,
            source_prefix,
        });
    }
    None
}

/// The scope echoed in a reply's ECS (RFC 7871 section 7.2.1): how widely
/// the answer applies, never longer than the query's source prefix.
#[inline]
pub fn echoed_scope(decision_scope: u8, source_prefix: u8) -> u8 {
    decision_scope.min(source_prefix)
}

/// Where the first OPT record's data (its options) lies in a request,
/// as `start..end`, read without trusting anything but the lengths: the
/// general path needs it when hickory-proto cannot read the options (a
/// FORMERR caused by EDNS carries an OPT, RFC 6891 section 7) or reads
/// them too kindly (surplus ECS address bytes). `None` when there is no
/// OPT or the sections before it do not read.
pub fn opt_options(request: &[u8]) -> Option<std::ops::Range<usize>> {
    let count = |at: usize| usize::from(u16::from_be_bytes([request[at], request[at + 1]]));
    if request.len() < HEADER_LEN {
        return None;
    }
    let (questions, answers, authorities, additionals) = (count(4), count(6), count(8), count(10));
    let mut at = HEADER_LEN;
    for _ in 0..questions {
        at = skip_name(request, at)? + 4;
    }
    for record in 0..answers + authorities + additionals {
        at = skip_name(request, at)?;
        let fixed = request.get(at..at + 10)?;
        let record_type = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let data = at + 10;
        request.get(data..data + rdlen)?;
        if record >= answers + authorities && record_type == TYPE_OPT {
            return Some(data..data + rdlen);
        }
        at = data + rdlen;
    }
    None
}

/// Bytes of an OPT record before its options: the root owner (one byte),
/// type, class (the payload size), TTL (the flags) and rdata length.
const OPT_HEAD_LEN: usize = 11;

/// Rewrites, in place, a UDP reply larger than the link can carry into
/// the one a client retries over TCP for: its header with TC=1, its
/// question, and its OPT (the client still learns our EDNS parameters),
/// every record dropped. Gives the new length, or `None` for a reply
/// without exactly one question or that does not read. In place because
/// the send path calls it: no allocation.
pub fn truncate_for_tcp(reply: &mut [u8]) -> Option<usize> {
    if reply.len() < HEADER_LEN || reply[4..6] != [0, 1] {
        return None;
    }
    let question_end = question_end(reply)?;
    let mut end = question_end;
    let opt = opt_options(reply).map(|options| options.start - OPT_HEAD_LEN..options.end);
    if let Some(opt) = &opt {
        if reply[opt.start] != 0 {
            // An OPT's owner is the root (RFC 6891 section 6.1.2).
            return None;
        }
        reply.copy_within(opt.clone(), question_end);
        end += opt.len();
    }
    reply[2] |= 0x02;
    reply[6..10].fill(0);
    reply[10..12].copy_from_slice(&u16::from(opt.is_some()).to_be_bytes());
    Some(end)
}

/// Where the question right after the header ends (its name, type and
/// class), if all of it is there. The header's count is the caller's to
/// check.
pub fn question_end(message: &[u8]) -> Option<usize> {
    let end = skip_name(message, HEADER_LEN)? + 4;
    (end <= message.len()).then_some(end)
}

/// The end of the name starting at `at`: labels up to the root, or up to
/// a compression pointer (which ends a name in place).
fn skip_name(bytes: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *bytes.get(at)?;
        match len {
            0 => return Some(at + 1),
            0xC0..=0xFF => return bytes.get(at + 1).map(|_| at + 2),
            64..=0xBF => return None,
            _ => at += 1 + usize::from(len),
        }
    }
}

/// Whether every ECS option among `options` (an OPT's data) carries
/// exactly the address bytes its source prefix needs (RFC 7871 section
/// 6): a /24 with four bytes is malformed (section 7.1.1), though a
/// lenient parser may drop the surplus.
pub fn ecs_lengths_are_exact(options: &[u8]) -> bool {
    let mut at = 0;
    while let Some(head) = options.get(at..at + 4) {
        let code = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        if code == OPTION_ECS
            && let Some(prefix) = options.get(at + 6)
            && len != 4 + ecs_address_len(*prefix)
        {
            return false;
        }
        at += 4 + len;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_opt_is_found_after_any_section_and_ecs_lengths_are_checked() {
        use hickory_proto::op::{Edns, Message, Query};
        use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
        use hickory_proto::rr::{Name, RecordType};
        let mut message = Message::query();
        message.add_query(Query::query(
            Name::from_ascii("www.gslb.example.").unwrap(),
            RecordType::A,
        ));
        assert_eq!(opt_options(&message.to_vec().unwrap()), None, "no OPT");
        let mut edns = Edns::new();
        edns.options_mut()
            .insert(EdnsOption::Subnet(ClientSubnet::new(
                ip("193.0.0.0"),
                24,
                0,
            )));
        message.set_edns(edns);
        let bytes = message.to_vec().unwrap();
        let range = opt_options(&bytes).expect("the OPT");
        let options = &bytes[range.clone()];
        assert_eq!(options[..2], OPTION_ECS.to_be_bytes());
        assert!(ecs_lengths_are_exact(options));
        // The same /24 with a fourth address byte.
        let mut surplus = options.to_vec();
        surplus[3] += 1;
        surplus.push(0);
        assert!(!ecs_lengths_are_exact(&surplus));
        // Cut short anywhere: no OPT found, and no panic.
        for len in 0..bytes.len() {
            let _ = opt_options(&bytes[..len]);
        }
        assert_eq!(opt_options(&bytes[..range.start - 1]), None);
    }

    /// `www` A with the given EDNS options, as hickory-proto writes it.
    fn query_with_options(options: &[hickory_proto::rr::rdata::opt::EdnsOption]) -> Vec<u8> {
        use hickory_proto::op::{Edns, Message, Query};
        use hickory_proto::rr::{Name, RecordType};
        let mut message = Message::query();
        message.add_query(Query::query(
            Name::from_ascii("www.gslb.example.").unwrap(),
            RecordType::A,
        ));
        let mut edns = Edns::new();
        for option in options {
            edns.options_mut().insert(option.clone());
        }
        message.set_edns(edns);
        message.to_vec().unwrap()
    }

    #[test]
    fn a_trailing_ecs_names_its_client_for_the_usual_prefix_lengths() {
        use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
        for (addr, prefix) in [
            ("193.0.7.0", 24),
            ("2001:db8:aa:bb00::", 56),
            ("2001:db8:aa::", 48),
        ] {
            let ecs = EdnsOption::Subnet(ClientSubnet::new(ip(addr), prefix, 0));
            let guess = trailing_ecs_client(&query_with_options(&[ecs]));
            let guess = guess.unwrap_or_else(|| panic!("{addr}/{prefix}"));
            assert_eq!((guess.addr, guess.source_prefix), (ip(addr), prefix));
        }
        // Lengths it does not look for, no ECS, or no EDNS at all.
        for (addr, prefix) in [("8.8.8.8", 32), ("2001:db8::", 32), ("8.0.0.0", 8)] {
            let ecs = EdnsOption::Subnet(ClientSubnet::new(ip(addr), prefix, 0));
            assert!(trailing_ecs_client(&query_with_options(&[ecs])).is_none());
        }
        assert!(trailing_ecs_client(&query_with_options(&[])).is_none());
        let plain = query_with_options(&[]);
        assert!(trailing_ecs_client(&plain[..plain.len() - 11]).is_none());
    }

    #[test]
    fn a_trailing_ecs_guess_never_panics_and_fails_on_shapes_that_are_not_ecs() {
        use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
        let ecs = EdnsOption::Subnet(ClientSubnet::new(ip("193.0.7.0"), 24, 0));
        let bytes = query_with_options(&[ecs]);
        // Every prefix of the datagram, and its tail alone.
        for len in 0..bytes.len() {
            let _ = trailing_ecs_client(&bytes[..len]);
            let _ = trailing_ecs_client(&bytes[len..]);
        }
        // A wrong code, length, family, or a prefix the bytes do not fit.
        let tail = bytes.len() - 11;
        for (at, value) in [(1, 9), (3, 8), (5, 3), (6, 32), (6, 16)] {
            let mut changed = bytes.clone();
            changed[tail + at] = value;
            assert!(
                trailing_ecs_client(&changed).is_none(),
                "byte {at} = {value}"
            );
        }
        // An IPv4 family with an IPv6-sized address is not read as IPv4.
        let v6 = EdnsOption::Subnet(ClientSubnet::new(ip("2001:db8:aa:bb00::"), 56, 0));
        let mut bytes = query_with_options(&[v6]);
        let family = bytes.len() - 7 - 3;
        bytes[family] = 1;
        assert!(trailing_ecs_client(&bytes).is_none());
    }

    /// A reply to `www` A with three answers, an authority, glue and,
    /// when `edns`, an OPT carrying ECS; hickory-proto writes the OPT last.
    fn reply_with_every_section(edns: bool) -> Vec<u8> {
        use hickory_proto::op::{Edns, Message, OpCode, Query};
        use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
        use hickory_proto::rr::rdata::{A, NS};
        use hickory_proto::rr::{Name, RData, Record, RecordType};
        let www = Name::from_ascii("www.gslb.example.").unwrap();
        let ns = Name::from_ascii("ns1.gslb.example.").unwrap();
        let mut reply = Message::response(0x4d2e, OpCode::Query);
        reply.add_query(Query::query(www.clone(), RecordType::A));
        for last in 1..=3 {
            let a = RData::A(A::new(192, 0, 2, last));
            reply.add_answer(Record::from_rdata(www.clone(), 30, a));
        }
        let apex = Name::from_ascii("gslb.example.").unwrap();
        reply.add_authority(Record::from_rdata(apex, 300, RData::NS(NS(ns.clone()))));
        reply.add_additional(Record::from_rdata(ns, 300, RData::A(A::new(192, 0, 2, 53))));
        if edns {
            let mut opt = Edns::new();
            opt.set_max_payload(1232);
            opt.options_mut()
                .insert(EdnsOption::Subnet(ClientSubnet::new(
                    ip("198.51.100.0"),
                    24,
                    16,
                )));
            reply.set_edns(opt);
        }
        reply.to_vec().unwrap()
    }

    #[test]
    fn a_reply_truncated_for_tcp_keeps_its_id_question_and_opt_only() {
        use hickory_proto::op::Message;
        for edns in [true, false] {
            let full = reply_with_every_section(edns);
            let mut bytes = full.clone();
            let len = truncate_for_tcp(&mut bytes).expect("a reply that reads");
            assert!(len < full.len());
            let cut = Message::from_vec(&bytes[..len]).expect("the truncated reply reads");
            let whole = Message::from_vec(&full).unwrap();
            assert_eq!(cut.metadata.id, whole.metadata.id);
            assert!(cut.metadata.truncation, "TC=1");
            assert_eq!(cut.queries, whole.queries);
            assert!(cut.answers.is_empty() && cut.authorities.is_empty());
            assert!(cut.additionals.is_empty(), "glue dropped");
            assert_eq!(cut.edns, whole.edns, "the OPT as it was");
            assert_eq!(cut.edns.is_some(), edns);
            assert!(!whole.answers.is_empty() && !whole.additionals.is_empty());
        }
    }

    #[test]
    fn only_a_reply_with_one_question_is_truncated_for_tcp() {
        let full = reply_with_every_section(true);
        let mut two = full.clone();
        two[5] = 2;
        assert_eq!(truncate_for_tcp(&mut two), None);
        let mut none = full.clone();
        none[5] = 0;
        assert_eq!(truncate_for_tcp(&mut none), None);
        assert_eq!(truncate_for_tcp(&mut vec![0; 70_000]), None, "no question");
        // Cut short anywhere: a length or `None`, never a panic.
        for len in 0..full.len() {
            let mut short = full[..len].to_vec();
            if let Some(n) = truncate_for_tcp(&mut short) {
                assert!(n <= len);
            }
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn udp_replies_fit_the_clients_payload_within_our_bounds() {
        assert_eq!(reply_limit(Transport::Udp, None, 1232), 512);
        assert_eq!(reply_limit(Transport::Udp, Some(100), 1232), 512);
        assert_eq!(reply_limit(Transport::Udp, Some(1000), 1232), 1000);
        assert_eq!(reply_limit(Transport::Udp, Some(4096), 1232), 1232);
        assert_eq!(reply_limit(Transport::Tcp, None, 1232), 65535);
        assert_eq!(reply_limit(Transport::Tcp, Some(512), 1232), 65535);
    }

    #[test]
    fn ecs_in_a_query_has_no_scope_and_no_bits_past_its_prefix() {
        assert!(is_valid_query_ecs(ip("8.8.8.0"), 24, 0));
        assert!(is_valid_query_ecs(ip("0.0.0.0"), 0, 0));
        assert!(is_valid_query_ecs(ip("8.8.8.8"), 32, 0));
        assert!(is_valid_query_ecs(ip("2001:db8::"), 32, 0));
        assert!(!is_valid_query_ecs(ip("8.8.8.0"), 24, 8), "a scope");
        assert!(!is_valid_query_ecs(ip("8.8.9.0"), 23, 0), "a bit past /23");
        assert!(!is_valid_query_ecs(ip("1.0.0.0"), 0, 0), "a bit past /0");
        assert!(
            !is_valid_query_ecs(ip("8.8.8.8"), 33, 0),
            "longer than IPv4"
        );
        assert!(!is_valid_query_ecs(ip("2001:db8::1"), 64, 0));
        assert!(!is_valid_query_ecs(ip("::"), 129, 0));
    }

    #[test]
    fn rcodes_keep_their_numbers() {
        for rcode in [
            ResponseCode::NoError,
            ResponseCode::FormErr,
            ResponseCode::NXDomain,
            ResponseCode::Refused,
            ResponseCode::BADVERS,
        ] {
            assert_eq!(rcode_low(rcode), rcode.low(), "{rcode:?}");
        }
        assert_eq!(rcode_low(ResponseCode::NXDomain), 3);
    }

    #[test]
    fn ecs_families_and_address_lengths() {
        assert_eq!(ecs_family_bits(1), Some(32));
        assert_eq!(ecs_family_bits(2), Some(128));
        assert_eq!(ecs_family_bits(3), None);
        assert_eq!(ecs_address_len(0), 0);
        assert_eq!(ecs_address_len(1), 1);
        assert_eq!(ecs_address_len(24), 3);
        assert_eq!(ecs_address_len(25), 4);
        assert_eq!(ecs_address_len(56), 7);
    }

    #[test]
    fn the_routed_client_is_the_subnet_unless_its_prefix_is_zero() {
        let source = ip("127.0.0.1");
        assert_eq!(
            routed_client(Some((ip("193.0.0.0"), 24)), source),
            Client {
                addr: ip("193.0.0.0"),
                source_prefix: 24
            }
        );
        assert_eq!(
            routed_client(Some((ip("0.0.0.0"), 0)), source),
            Client::from_source(source)
        );
        assert_eq!(routed_client(None, source), Client::from_source(source));
        // A mapped IPv4 source is routed as IPv4.
        assert_eq!(
            routed_client(None, ip("::ffff:202.12.27.33")),
            Client {
                addr: ip("202.12.27.33"),
                source_prefix: 32
            }
        );
    }

    #[test]
    fn the_echoed_scope_never_exceeds_the_source_prefix() {
        assert_eq!(echoed_scope(16, 24), 16);
        assert_eq!(echoed_scope(24, 16), 16);
        assert_eq!(echoed_scope(24, 0), 0);
    }
}
