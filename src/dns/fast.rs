//! The fast path: the common query shapes answered straight from bytes.
//!
//! Nearly all of the load on a GSLB is one shape: a single IN question for
//! A or AAAA of a service, with or without an OPT record carrying an EDNS
//! Client Subnet. The general path ([`super::answer::answer`]) parses every
//! query into a `Message`, builds the reply as records and encodes it: a
//! dozen allocations and most of the CPU per query. Here the question is
//! read in place, the routing decision comes from the thread's
//! [`DecisionMemo`], and the reply is assembled into a reused buffer from
//! record bytes encoded once, when the snapshot was built.
//!
//! The fast path answers only what it fully understands: data types (the
//! record set with its additional data, or NODATA) at names with no CNAME
//! and no delegation above them, NXDOMAIN where the domain has no
//! delegations, REFUSED outside the domain, with at most an OPT of version 0 whose options are a
//! well-formed ECS and a DNS cookie (the shapes resolvers send). For
//! anything else it declines (`None`) and the caller uses the general
//! path, which stays the reference: the two are compared reply by reply in
//! the tests below and in the `request` fuzz target, and the wire suite
//! runs against each.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use super::answer::{Transport, cookie_secret};
use super::cookie::{self, CookieCheck};
use super::table::{DomainTable, ServiceRecords};
use crate::config::Config;
use crate::metrics::ReplyFacts;
use crate::routing::Client;
use crate::routing::memo::{DecisionMemo, Remembered};
use crate::snapshot::Snapshot;

const HEADER_LEN: usize = 12;
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;
const OPTION_ECS: u16 = 8;
const OPTION_COOKIE: u16 = 10;
/// A compression pointer to the question's name, which always starts right
/// after the header: every answer's owner is the name as the client wrote it.
const OWNER_IS_QNAME: [u8; 2] = [0xC0, HEADER_LEN as u8];
/// The largest UDP reply to a client without EDNS (RFC 1035).
const PLAIN_UDP_MAX: usize = 512;

/// Resource records of one set, encoded with the question's name as owner.
#[derive(Debug, Clone, Default)]
struct EncodedSet {
    count: u16,
    wire: Box<[u8]>,
}

impl EncodedSet {
    /// Records answering the question: their owner is the question's name.
    fn encode(records: &[Record]) -> EncodedSet {
        EncodedSet::encode_each(records.iter(), |_| OWNER_IS_QNAME.to_vec())
    }

    /// Records under their own names (additional data), written in full.
    fn encode_owned(records: &[&Record]) -> EncodedSet {
        EncodedSet::encode_each(records.iter().copied(), |r| wire_name(&r.name))
    }

    fn encode_each<'r>(
        records: impl Iterator<Item = &'r Record>,
        owner: impl Fn(&Record) -> Vec<u8>,
    ) -> EncodedSet {
        let mut wire = Vec::new();
        let mut count = 0u16;
        for record in records {
            let Some(rdata) = rdata_bytes(&record.data) else {
                continue;
            };
            wire.extend_from_slice(&owner(record));
            wire.extend_from_slice(&u16::from(record.record_type()).to_be_bytes());
            wire.extend_from_slice(&u16::from(record.dns_class).to_be_bytes());
            wire.extend_from_slice(&record.ttl.to_be_bytes());
            wire.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            wire.extend_from_slice(&rdata);
            count += 1;
        }
        EncodedSet {
            count,
            wire: wire.into_boxed_slice(),
        }
    }
}

/// Record data with any names in it written in full, so the bytes can
/// follow any question.
fn rdata_bytes(data: &RData) -> Option<Vec<u8>> {
    let mut rdata = Vec::new();
    let mut encoder = BinEncoder::new(&mut rdata);
    encoder.set_name_encoding(NameEncoding::Uncompressed);
    data.emit(&mut encoder).ok()?;
    Some(rdata)
}

/// One record set's answer and the additional data that goes with it.
#[derive(Debug)]
struct EncodedAnswer {
    record_type: u16,
    answers: EncodedSet,
    additionals: EncodedSet,
}

/// What a name in the domain allows the fast path to do.
#[derive(Debug)]
enum FastNode {
    /// No CNAME, not at or below a delegation: every data type is
    /// answered here from its record set or with NODATA (a service's A
    /// and AAAA by routing).
    Answerable {
        service: Option<usize>,
        sets: Vec<EncodedAnswer>,
    },
    /// Left to the general path.
    Declined,
}

/// One service's address records per endpoint, encoded.
#[derive(Debug, Default)]
struct FastService {
    /// Per endpoint: A usable, A all, AAAA usable, AAAA all.
    endpoints: Vec<[EncodedSet; 4]>,
    fallback_a: EncodedSet,
    fallback_aaaa: EncodedSet,
}

impl FastService {
    fn build(records: &ServiceRecords) -> FastService {
        let endpoints = (0..records.a.len())
            .map(|e| {
                [
                    EncodedSet::encode(records.records(RecordType::A, e, true)),
                    EncodedSet::encode(records.records(RecordType::A, e, false)),
                    EncodedSet::encode(records.records(RecordType::AAAA, e, true)),
                    EncodedSet::encode(records.records(RecordType::AAAA, e, false)),
                ]
            })
            .collect();
        FastService {
            endpoints,
            fallback_a: EncodedSet::encode(records.fallback(RecordType::A)),
            fallback_aaaa: EncodedSet::encode(records.fallback(RecordType::AAAA)),
        }
    }

    fn endpoint(&self, endpoint: usize, is_v6: bool, usable_only: bool) -> Option<&EncodedSet> {
        let sets = self.endpoints.get(endpoint)?;
        Some(&sets[usize::from(is_v6) * 2 + usize::from(!usable_only)])
    }
}

/// The snapshot's data in the form the fast path reads.
#[derive(Debug)]
pub struct FastTable {
    /// The apex in lower-case wire form.
    apex: Box<[u8]>,
    nodes: HashMap<Box<[u8]>, FastNode, foldhash::fast::FixedState>,
    /// With delegations, a missing name may lie below a cut (a referral,
    /// not NXDOMAIN): the general path decides those.
    has_delegations: bool,
    services: Vec<FastService>,
    /// The SOA of negative answers, names written in full as configured.
    negative_soa: Box<[u8]>,
    udp_payload_max: u16,
}

impl FastTable {
    pub fn build(config: &Config, table: &DomainTable) -> FastTable {
        let mut nodes = HashMap::with_hasher(foldhash::fast::FixedState::default());
        let cuts: Vec<Vec<u8>> = table
            .nodes()
            .filter(|(_, node)| node.is_delegation())
            .map(|(name, _)| lower_wire(&Name::from(name)))
            .collect();
        for (name, node) in table.nodes() {
            let wire = lower_wire(&Name::from(name));
            let below_cut = cuts.iter().any(|cut| is_at_or_below(&wire, cut));
            let entry = if below_cut || node.cname().is_some() {
                FastNode::Declined
            } else {
                let sets = node
                    .rrsets()
                    .iter()
                    .map(|set| EncodedAnswer {
                        record_type: u16::from(set.record_type),
                        answers: EncodedSet::encode(&set.records),
                        additionals: EncodedSet::encode_owned(&table.additional_for(&set.records)),
                    })
                    .collect();
                FastNode::Answerable {
                    service: node.service(),
                    sets,
                }
            };
            nodes.insert(wire.into_boxed_slice(), entry);
        }
        FastTable {
            apex: lower_wire(&Name::from(table.apex())).into_boxed_slice(),
            nodes,
            has_delegations: !cuts.is_empty(),
            services: table.services.iter().map(FastService::build).collect(),
            negative_soa: negative_soa(table),
            udp_payload_max: config.server.udp_payload_max,
        }
    }
}

fn negative_soa(table: &DomainTable) -> Box<[u8]> {
    let mut soa = table.soa().clone();
    soa.ttl = table.negative_ttl();
    EncodedSet::encode_owned(&[&soa]).wire
}

/// A name as length-prefixed labels, as spelled, root included.
fn wire_name(name: &Name) -> Vec<u8> {
    let mut wire = Vec::with_capacity(name.len() + 1);
    for label in name.iter() {
        wire.push(label.len() as u8);
        wire.extend_from_slice(label);
    }
    wire.push(0);
    wire
}

/// A name as length-prefixed labels, ASCII lower-cased, root included.
fn lower_wire(name: &Name) -> Vec<u8> {
    let mut wire = Vec::with_capacity(name.len() + 1);
    for label in name.iter() {
        wire.push(label.len() as u8);
        wire.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    wire.push(0);
    wire
}

/// Whether wire name `name` equals `ancestor` or lies below it.
fn is_at_or_below(name: &[u8], ancestor: &[u8]) -> bool {
    let mut at = 0;
    while at < name.len() {
        if &name[at..] == ancestor {
            return true;
        }
        at += usize::from(name[at]) + 1;
    }
    false
}

/// The EDNS Client Subnet of a query, as sent.
#[derive(Debug, Clone, Copy)]
struct QueryEcs {
    family: u16,
    source_prefix: u8,
    addr: IpAddr,
    /// Where the address bytes (source prefix rounded up to bytes) are.
    addr_at: usize,
    addr_len: usize,
}

#[derive(Debug, Clone, Copy)]
struct QueryEdns {
    payload: u16,
    dnssec_ok: bool,
    ecs: Option<QueryEcs>,
    /// Where the COOKIE option's payload is, and its length.
    cookie: Option<(usize, usize)>,
}

/// A query of the shape the fast path answers.
struct Question {
    /// Bytes of the question (name, type, class) in the request.
    end: usize,
    /// Length of the name in wire form (root label included).
    name_len: usize,
    qtype: u16,
    edns: Option<QueryEdns>,
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

/// Names in wire form are at most this long (RFC 1035 section 3.1).
const NAME_MAX: usize = 255;

/// Reads the request if it has the common shape, with the question's name
/// lower-cased into `lower`; `None` otherwise.
fn parse(request: &[u8], lower: &mut [u8; NAME_MAX]) -> Option<Question> {
    let header = request.get(..HEADER_LEN)?;
    // A query (QR=0) with opcode QUERY; one question, nothing else but an
    // optional OPT.
    if header[2] & 0xF8 != 0
        || header[4..10] != [0, 1, 0, 0, 0, 0]
        || header[10] != 0
        || header[11] > 1
    {
        return None;
    }
    let mut at = HEADER_LEN;
    loop {
        let len = usize::from(*request.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        // Compression pointers and extended label types are left to the
        // general path, as are names over 255 bytes.
        if len > 63 || at + len - HEADER_LEN >= NAME_MAX {
            return None;
        }
        at += len;
    }
    let name_len = at - HEADER_LEN;
    let name = request.get(HEADER_LEN..at)?;
    // Length bytes are below 64, so lower-casing the whole name leaves
    // them alone.
    lower[..name_len].copy_from_slice(name);
    lower[..name_len].make_ascii_lowercase();
    let qtype = read_u16(request, at)?;
    if !is_data_type(qtype) || read_u16(request, at + 2)? != CLASS_IN {
        return None;
    }
    let end = at + 4;
    let edns = if header[11] == 1 {
        Some(parse_opt(request, end)?)
    } else if request.len() != end {
        return None;
    } else {
        None
    };
    Some(Question {
        end,
        name_len,
        qtype,
        edns,
    })
}

/// Types the fast path answers: data types, whose answer is the record
/// set or NODATA. OPT in a question, the meta and query types (AXFR, ANY,
/// ...) have rules of their own and go to the general path.
fn is_data_type(qtype: u16) -> bool {
    matches!(qtype, 1..=127 | 256..=260) && qtype != TYPE_OPT
}

/// An OPT record at `at` that ends the packet: version 0, no extended
/// rcode, and no option but one well-formed ECS.
fn parse_opt(request: &[u8], at: usize) -> Option<QueryEdns> {
    if *request.get(at)? != 0 || read_u16(request, at + 1)? != TYPE_OPT {
        return None;
    }
    let payload = read_u16(request, at + 3)?;
    let (ext_rcode, version) = (*request.get(at + 5)?, *request.get(at + 6)?);
    let flags = read_u16(request, at + 7)?;
    let rdlen = usize::from(read_u16(request, at + 9)?);
    let options_at = at + 11;
    if ext_rcode != 0 || version != 0 || request.len() != options_at + rdlen {
        return None;
    }
    let (mut ecs, mut cookie) = (None, None);
    let mut cursor = options_at;
    while cursor < request.len() {
        let code = read_u16(request, cursor)?;
        let len = usize::from(read_u16(request, cursor + 2)?);
        let data_at = cursor + 4;
        request.get(data_at..data_at + len)?;
        match code {
            OPTION_ECS if ecs.is_none() => ecs = Some(parse_ecs(request, data_at, len)?),
            OPTION_COOKIE if cookie.is_none() => cookie = Some((data_at, len)),
            _ => return None,
        }
        cursor = data_at + len;
    }
    Some(QueryEdns {
        payload,
        dnssec_ok: flags & 0x8000 != 0,
        ecs,
        cookie,
    })
}

/// ECS per RFC 7871 7.1.1 (no scope in a query, no bits past the source
/// prefix); anything questionable goes to the general path, which answers
/// FORMERR where that is due.
fn parse_ecs(request: &[u8], at: usize, len: usize) -> Option<QueryEcs> {
    let family = read_u16(request, at)?;
    let source_prefix = *request.get(at + 2)?;
    let scope = *request.get(at + 3)?;
    let max = match family {
        1 => 32,
        2 => 128,
        _ => return None,
    };
    let addr_len = usize::from(source_prefix).div_ceil(8);
    if scope != 0 || source_prefix > max || len != 4 + addr_len {
        return None;
    }
    let bytes = &request[at + 4..at + 4 + addr_len];
    if let Some(&last) = bytes.last() {
        let spare = (addr_len * 8) - usize::from(source_prefix);
        if last & ((1u16 << spare) - 1) as u8 != 0 {
            return None;
        }
    }
    let addr = if family == 1 {
        let mut octets = [0u8; 4];
        octets[..addr_len].copy_from_slice(bytes);
        IpAddr::V4(Ipv4Addr::from(octets))
    } else {
        let mut octets = [0u8; 16];
        octets[..addr_len].copy_from_slice(bytes);
        IpAddr::V6(Ipv6Addr::from(octets))
    };
    Some(QueryEcs {
        family,
        source_prefix,
        addr,
        addr_at: at + 4,
        addr_len,
    })
}

/// A fast-path reply written into the caller's buffer.
#[derive(Debug)]
pub struct FastReply<'m> {
    pub facts: ReplyFacts,
    /// The query returned a valid server cookie: its source address is
    /// real, so rate limiting does not apply.
    pub has_valid_cookie: bool,
    /// The service answered and the endpoints named, for the counters.
    pub service: Option<(usize, &'m [usize])>,
}

/// Answers `request` into `out` if it has a shape the fast path handles;
/// `None` leaves `out` unspecified and the query to the general path.
/// A UDP reply that would not fit is declined, not truncated.
pub fn answer<'m>(
    request: &[u8],
    transport: Transport,
    source: IpAddr,
    snapshot: &Snapshot,
    memo: &'m mut DecisionMemo,
    out: &mut Vec<u8>,
) -> Option<FastReply<'m>> {
    let fast = &snapshot.fast;
    let mut lower = [0u8; NAME_MAX];
    let question = parse(request, &mut lower)?;
    let name = &lower[..question.name_len];
    // Names outside the domain are refused (after the cookie and ECS
    // checks, as on the general path): floods of random names stay cheap.
    let in_domain = question
        .name_len
        .checked_sub(fast.apex.len())
        .is_some_and(|at| name[at..] == *fast.apex && is_label_start(name, at));
    // Cookies are bound to the packet's source, not to the ECS subnet.
    let cookie = match question.edns.and_then(|e| e.cookie) {
        None => CookieCheck::Absent,
        Some((at, len)) => {
            let secret = cookie_secret(snapshot);
            match cookie::check(&request[at..at + len], source, &secret) {
                // FORMERR is the general path's to give.
                CookieCheck::Malformed => return None,
                check => check,
            }
        }
    };
    let mut decided: Option<(usize, &Remembered)> = None;
    let mut scope = 0;
    let (rcode, answers): (ResponseCode, Option<&EncodedAnswer>) = match fast.nodes.get(name) {
        _ if !in_domain => (ResponseCode::Refused, None),
        Some(FastNode::Declined) => return None,
        None if fast.has_delegations => return None,
        None => (ResponseCode::NXDomain, None),
        Some(FastNode::Answerable { service, sets }) => match (service, question.qtype) {
            (Some(service), TYPE_A | TYPE_AAAA) => {
                let client = match question.edns.and_then(|e| e.ecs) {
                    Some(ecs) if ecs.source_prefix > 0 => Client {
                        addr: ecs.addr,
                        source_prefix: ecs.source_prefix,
                    },
                    _ => Client::from_source(source),
                };
                let decision = memo.decide(
                    snapshot.id,
                    &snapshot.config,
                    &snapshot.health,
                    &snapshot.router,
                    *service,
                    client,
                );
                scope = decision.scope;
                decided = Some((*service, decision));
                // Several sets: assembled below, in decision order.
                (ResponseCode::NoError, None)
            }
            (_, qtype) => (
                ResponseCode::NoError,
                sets.iter().find(|set| set.record_type == qtype),
            ),
        },
    };

    out.clear();
    out.extend_from_slice(&request[..2]);
    // QR, AA inside the domain, RD copied; CD copied; RA never.
    out.push(0x80 | if in_domain { 0x04 } else { 0 } | (request[2] & 0x01));
    out.push((request[3] & 0x10) | rcode.low());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&request[HEADER_LEN..question.end]);
    let mut count = 0u16;
    if let Some((service, decision)) = decided {
        let is_v6 = question.qtype == TYPE_AAAA;
        let encoded = &fast.services[service];
        if decision.is_all_down && decision.endpoints.is_empty() {
            let set = if is_v6 {
                &encoded.fallback_aaaa
            } else {
                &encoded.fallback_a
            };
            out.extend_from_slice(&set.wire);
            count = set.count;
        } else {
            for &e in &decision.endpoints {
                if let Some(set) = encoded.endpoint(e, is_v6, !decision.is_all_down) {
                    out.extend_from_slice(&set.wire);
                    count += set.count;
                }
            }
        }
    } else if let Some(set) = answers {
        out.extend_from_slice(&set.answers.wire);
        count = set.answers.count;
    }
    let authority = u16::from(count == 0 && in_domain);
    let mut additional = 0;
    if authority == 1 {
        // NXDOMAIN or NODATA: the SOA with the negative TTL.
        out.extend_from_slice(&fast.negative_soa);
    } else if let Some(set) = answers {
        out.extend_from_slice(&set.additionals.wire);
        additional = set.additionals.count;
    }
    out[6..8].copy_from_slice(&count.to_be_bytes());
    out[8..10].copy_from_slice(&authority.to_be_bytes());
    additional += u16::from(question.edns.is_some());
    out[10..12].copy_from_slice(&additional.to_be_bytes());
    let udp_limit = match question.edns {
        Some(edns) => {
            let cookie_reply = cookie
                .client_cookie()
                .map(|client| cookie::reply(client, source, &cookie_secret(snapshot)));
            write_opt(
                out,
                request,
                edns,
                scope,
                cookie_reply,
                fast.udp_payload_max,
            );
            usize::from(edns.payload).clamp(PLAIN_UDP_MAX, usize::from(fast.udp_payload_max))
        }
        None => PLAIN_UDP_MAX,
    };
    let limit = match transport {
        Transport::Udp => udp_limit,
        Transport::Tcp => usize::from(u16::MAX),
    };
    if out.len() > limit {
        // The general path truncates.
        return None;
    }
    Some(FastReply {
        facts: ReplyFacts {
            qtype: Some(RecordType::from(question.qtype)),
            rcode,
            truncated: false,
        },
        has_valid_cookie: cookie.is_valid(),
        service: decided.map(|(s, d)| (s, &*d.endpoints)),
    })
}

fn is_label_start(name: &[u8], at: usize) -> bool {
    let mut cursor = 0;
    while cursor < at {
        cursor += usize::from(name[cursor]) + 1;
    }
    cursor == at
}

/// Our OPT: our payload size, version 0, DO copied (RFC 3225), and the
/// query's ECS echoed with the scope the answer used (RFC 7871 7.2.1).
fn write_opt(
    out: &mut Vec<u8>,
    request: &[u8],
    edns: QueryEdns,
    scope: u8,
    cookie: Option<[u8; cookie::REPLY_LEN]>,
    payload: u16,
) {
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&payload.to_be_bytes());
    out.extend_from_slice(&[0, 0, if edns.dnssec_ok { 0x80 } else { 0 }, 0]);
    let rdlen_at = out.len();
    out.extend_from_slice(&[0, 0]);
    if let Some(cookie) = cookie {
        out.extend_from_slice(&OPTION_COOKIE.to_be_bytes());
        out.extend_from_slice(&(cookie.len() as u16).to_be_bytes());
        out.extend_from_slice(&cookie);
    }
    if let Some(ecs) = edns.ecs {
        let len = 4 + ecs.addr_len as u16;
        out.extend_from_slice(&OPTION_ECS.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&ecs.family.to_be_bytes());
        out.push(ecs.source_prefix);
        out.push(scope.min(ecs.source_prefix));
        out.extend_from_slice(&request[ecs.addr_at..ecs.addr_at + ecs.addr_len]);
    }
    let rdlen = (out.len() - rdlen_at - 2) as u16;
    out[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
}

#[cfg(test)]
mod tests {
    //! The general path is the reference: every reply the fast path gives
    //! must say the same as the general path's reply to the same bytes.

    use super::*;
    use crate::config::Config;
    use crate::dns::answer::answer as general_answer;
    use crate::health::HealthView;
    use crate::health::drains::Drains;
    use crate::metrics::Metrics;
    use crate::routing::geo::GeoDb;
    use hickory_proto::op::{Edns, Message, Query};
    use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
    use std::collections::HashMap as StdMap;
    use std::path::Path;
    use std::sync::Arc;

    /// Services beside the example's `www`, for every policy and all-down rule.
    const EXTRA_SERVICES: &str = r#"
[[services]]
name = "api"
policy = "failover"
order = ["eu-west", "us-east", "ap-south"]
all_down = "fallback"
fallback = ["192.0.2.99", "2001:db8::99"]
[services.check]
kind = "none"
[[services.endpoints]]
zone = "us-east"
addresses = ["192.0.2.20", "192.0.2.21"]
[[services.endpoints]]
zone = "eu-west"
addresses = ["198.51.100.20"]
[[services.endpoints]]
zone = "ap-south"
addresses = ["2001:db8:3::20"]

[[services]]
name = "split.apps"
policy = "weighted"
answers = 2
[services.check]
kind = "none"
[[services.endpoints]]
zone = "us-east"
addresses = ["192.0.2.30"]
weight = 5
[[services.endpoints]]
zone = "eu-west"
addresses = ["198.51.100.30", "2001:db8:2::30"]
weight = 3
[[services.endpoints]]
zone = "ap-south"
addresses = ["203.0.113.30"]
weight = 2

[[services]]
name = "every"
policy = "all"
[services.check]
kind = "none"
[[services.endpoints]]
zone = "us-east"
addresses = ["192.0.2.40", "2001:db8:1::40"]
[[services.endpoints]]
zone = "eu-west"
addresses = ["198.51.100.40"]

[[records]]
name = "static"
type = "A"
data = "192.0.2.50"
[[records]]
name = "static"
type = "TXT"
data = "a static name"
[[records]]
name = "deep.empty.nonterminal"
type = "AAAA"
data = "2001:db8::50"

[[cidr_rules]]
networks = ["10.20.30.128/25"]
zones = ["ap-south"]
"#;

    fn config(extra: &str) -> Arc<Config> {
        let text = std::fs::read_to_string("zones/example.toml").expect("example config");
        let config = Config::parse(
            &format!("{text}\n{EXTRA_SERVICES}\n{extra}"),
            Path::new("zones/example.toml"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Arc::new(config)
    }

    fn snapshot(config: Arc<Config>, drained: &[&str]) -> Snapshot {
        let geo = config
            .geoip
            .as_ref()
            .map(|g| Arc::new(GeoDb::open(&g.files).expect("shipped GeoIP database")));
        let mut drains = Drains::default();
        for zone in drained {
            drains.set_zone(zone, true);
        }
        let mut snapshot = Snapshot::initial(
            config.clone(),
            drains.clone(),
            geo,
            Metrics::default().answer_counters(&config),
        );
        // Rebuild with the drains in the health view.
        snapshot.health = HealthView::build(&config, &StdMap::new(), &drains);
        let table = DomainTable::build(&config, &snapshot.health);
        snapshot.fast = FastTable::build(&config, &table);
        snapshot.table = table;
        snapshot
    }

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
                        cookie::reply(client, source, &cookie_secret(snapshot)).to_vec()
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
        memo: &mut DecisionMemo,
    ) -> Option<Answered> {
        let mut out = Vec::new();
        let fast = answer(request, transport, source, snapshot, memo, &mut out)?;
        let mut slow = general_answer(request, transport, source, snapshot).expect("a reply");
        let fast_msg = Message::from_vec(&out).expect("the fast reply parses");
        let mut slow_msg = Message::from_vec(&slow.wire).unwrap();
        if fast_msg != slow_msg {
            // Server cookies carry the time in seconds: a second may have
            // ended between the two answers.
            slow = general_answer(request, transport, source, snapshot).unwrap();
            slow_msg = Message::from_vec(&slow.wire).unwrap();
        }
        assert_eq!(fast.has_valid_cookie, slow.has_valid_cookie);
        assert_eq!(fast_msg, slow_msg, "request {request:02x?} from {source}");
        assert_eq!(fast.facts.rcode, slow.facts.rcode);
        assert_eq!(fast.facts.qtype, slow.facts.qtype);
        assert!(!slow.facts.truncated);
        let slow_hit = slow.service.map(|h| (h.service, h.endpoints));
        assert_eq!(fast.service.map(|(s, e)| (s, e.to_vec())), slow_hit);
        Some(Answered {
            refused: fast.facts.rcode == ResponseCode::Refused,
            with_additionals: !fast_msg.additionals.is_empty(),
            with_valid_cookie: fast.has_valid_cookie,
            with_ecs_scope: has_ecs_scope(&fast_msg),
        })
    }

    /// What kind of reply the fast path gave, so tests know it took them all.
    struct Answered {
        refused: bool,
        with_additionals: bool,
        with_valid_cookie: bool,
        with_ecs_scope: bool,
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
    }

    fn differential(snapshot: &Snapshot, seed: u64, rounds: usize) -> Tally {
        let mut cases = Cases(seed);
        let mut memo = DecisionMemo::new();
        let mut tally = Tally::default();
        for _ in 0..rounds {
            let (request, source) = query(&mut cases, snapshot);
            let transport = if cases.one_in(4) {
                Transport::Tcp
            } else {
                Transport::Udp
            };
            if let Some(answered) = compare(snapshot, transport, &request, source, &mut memo) {
                tally.answered += 1;
                tally.refused += usize::from(answered.refused);
                tally.with_additionals += usize::from(answered.with_additionals);
                tally.with_valid_cookie += usize::from(answered.with_valid_cookie);
                tally.with_ecs_scope += usize::from(answered.with_ecs_scope);
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
    fn delegations_and_tiny_payloads_are_left_to_the_general_path() {
        let extra = "[[records]]\nname = \"sub\"\ntype = \"NS\"\ndata = \"ns.sub\"\n\
                     [[records]]\nname = \"ns.sub\"\ntype = \"A\"\ndata = \"192.0.2.53\"\n";
        let snapshot = snapshot(config(extra), &[]);
        differential(&snapshot, 0xde1e, 5_000);
        let mut memo = DecisionMemo::new();
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
            answer(
                &below_cut,
                Transport::Udp,
                source,
                &snapshot,
                &mut memo,
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
            answer(
                &missing,
                Transport::Udp,
                source,
                &snapshot,
                &mut memo,
                &mut out
            )
            .is_none()
        );
    }

    #[test]
    fn malformed_and_unusual_shapes_are_declined_not_answered() {
        let snapshot = snapshot(config(""), &[]);
        let mut memo = DecisionMemo::new();
        let mut out = Vec::new();
        let source: IpAddr = "127.0.0.1".parse().unwrap();
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_ascii("www.gslb.example.").unwrap(),
            RecordType::A,
        ));
        let good = m.to_vec().unwrap();
        assert!(
            answer(
                &good,
                Transport::Udp,
                source,
                &snapshot,
                &mut memo,
                &mut out
            )
            .is_some()
        );
        // Every truncation of a good query, and trailing junk.
        for len in 0..good.len() {
            assert!(
                answer(
                    &good[..len],
                    Transport::Udp,
                    source,
                    &snapshot,
                    &mut memo,
                    &mut out
                )
                .is_none(),
                "{len}"
            );
        }
        let mut junk = good.clone();
        junk.push(0);
        assert!(
            answer(
                &junk,
                Transport::Udp,
                source,
                &snapshot,
                &mut memo,
                &mut out
            )
            .is_none()
        );
        // A response, an opcode other than QUERY, a second question count.
        for (at, value) in [(2, 0x80), (2, 0x10), (5, 2)] {
            let mut bad = good.clone();
            bad[at] |= value;
            assert!(
                answer(&bad, Transport::Udp, source, &snapshot, &mut memo, &mut out).is_none(),
                "{at}"
            );
        }
        // ECS with bits beyond its source prefix, or a scope: FORMERR is
        // the general path's to give.
        // (8.8.9.0/23 goes on the wire as 8.8.9: its last bit is past the prefix.)
        for (net, scope) in [("8.8.9.0/23", 0u8), ("8.8.8.0/24", 8)] {
            let net: ipnet::IpNet = net.parse().unwrap();
            let mut m = m.clone();
            let mut edns = Edns::new();
            edns.options_mut()
                .insert(EdnsOption::Subnet(ClientSubnet::new(
                    net.addr(),
                    net.prefix_len(),
                    scope,
                )));
            m.set_edns(edns);
            let bytes = m.to_vec().unwrap();
            assert!(
                answer(
                    &bytes,
                    Transport::Udp,
                    source,
                    &snapshot,
                    &mut memo,
                    &mut out
                )
                .is_none(),
                "{net}/{scope}"
            );
        }
    }
}
