//! The fast path: the common query shapes answered straight from bytes.
//!
//! Nearly all of the load on a GSLB is one shape: a single IN question for
//! A or AAAA of a service, with or without an OPT record carrying an EDNS
//! Client Subnet. The general path ([`super::answer::answer`]) parses every
//! query into a `Message`, builds the reply as records and encodes it: a
//! dozen allocations and most of the CPU per query. Here the question is
//! read in place, the routing decision comes from the thread's
//! [`DecisionMemo`], and the reply is assembled into a reused buffer from
//! record bytes encoded once, when the snapshot was built
//! ([`super::encoded`]).
//!
//! A reply that depends on the query's bytes alone (static data, NODATA,
//! NXDOMAIN, REFUSED) is kept per thread and sent again to the same bytes
//! without reading them (`replies`, through [`answer_or_send_kept`],
//! which the sockets' loops call).
//!
//! Answering is three steps: `parse` reads the query in place, `plan`
//! decides what the reply says (its rcode, which records, the cookie and
//! the routing decision), and `write` lays that out as bytes. None of them
//! allocates once the memo knows the client's network and the buffer has
//! grown.
//!
//! The fast path answers only what it fully understands: data types (the
//! record set with its additional data, or NODATA) at names with no CNAME
//! and no delegation above them, NXDOMAIN or the covering wildcard's answer
//! (RFC 4592, found by [`super::encoded::FastTable::wildcard_for`]) where
//! the domain has no delegations, REFUSED outside the domain, with at most an OPT of version
//! 0 whose options are a well-formed ECS and a DNS cookie (the shapes
//! resolvers send). For anything else it declines (`None`) and the caller
//! uses the general path, which stays the reference: the two are compared
//! reply by reply in `dns::differential` (tests) and in the `request` fuzz
//! target, and the wire suite runs against each. The rules they share are
//! in [`super::wire`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use super::cookie::{self, CookieCheck};
use super::encoded::{EncodedAnswer, FastNode};
use super::wire::{
    self, CLASS_IN, HEADER_LEN, NAME_MAX, OPTION_COOKIE, OPTION_ECS, TYPE_A, TYPE_AAAA, TYPE_OPT,
    Transport,
};
use crate::dnssec::SignedDomain;
use crate::dnssec::zone::DecisionKey;
use crate::metrics::ReplyFacts;
use crate::routing::memo::{DecisionMemo, Remembered};
use crate::routing::{AnswerAddresses, answer_addresses};
use crate::snapshot::Snapshot;

mod denial;
mod replies;

use denial::{Denial, denial};
pub use replies::{ReplyCache, ThreadCaches, answer_or_send_kept};

/// The EDNS Client Subnet of a query, as sent.
#[derive(Debug, Clone, Copy)]
struct QueryEcs {
    family: u16,
    source_prefix: u8,
    addr: IpAddr,
    /// Address bytes sent: the source prefix rounded up to bytes.
    addr_len: u8,
}

#[derive(Debug, Clone, Copy)]
struct QueryEdns {
    payload: u16,
    dnssec_ok: bool,
    ecs: Option<QueryEcs>,
    /// Where the COOKIE option's payload is, and its length.
    cookie: Option<(u16, u16)>,
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

/// Reads the request if it has the common shape; `None` otherwise.
/// Inlined wherever called: keeping a reply reads the query too, and
/// with that second caller it was left out of line, which cost a routed
/// answer 60 instructions.
#[inline(always)]
fn parse(request: &[u8]) -> Option<Question> {
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
        // general path, as are names over 255 bytes (below).
        if len > 63 {
            return None;
        }
        at += len;
    }
    let name_len = at - HEADER_LEN;
    if name_len > NAME_MAX {
        return None;
    }
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

/// The head of an IPv4 ECS option for a /24, as one word: code 8, length
/// 7, family 1, source prefix 24, scope 0.
const ECS_V4_24_HEAD: u64 = u64::from_be_bytes([0, 8, 0, 7, 0, 1, 24, 0]);

/// An OPT record at `at` that ends the packet: version 0, no extended
/// rcode, and no option but one well-formed ECS and one COOKIE.
#[inline(always)]
fn parse_opt(request: &[u8], at: usize) -> Option<QueryEdns> {
    // The fixed part in one bounds check: name (root), type, payload,
    // extended rcode, version, flags, rdlength.
    let opt: &[u8; 11] = request.get(at..at + 11)?.try_into().ok()?;
    let word = |i: usize| u16::from_be_bytes([opt[i], opt[i + 1]]);
    let rdlen = usize::from(word(9));
    if opt[0] != 0
        || word(1) != TYPE_OPT
        || opt[5] != 0
        || opt[6] != 0
        || request.len() != at + 11 + rdlen
    {
        return None;
    }
    let (mut ecs, mut cookie) = (None, None);
    let mut cursor = at + 11;
    // The option resolvers send most, alone: an IPv4 ECS of a /24 (code
    // 8, length 7, family 1, source 24, scope 0, three address bytes), its
    // head read as one word. Its address has no bits past the prefix to
    // check.
    if let Some(&[h0, h1, h2, h3, h4, h5, h6, h7, a, b, c]) = request.get(cursor..)
        && u64::from_be_bytes([h0, h1, h2, h3, h4, h5, h6, h7]) == ECS_V4_24_HEAD
    {
        ecs = Some(QueryEcs {
            family: 1,
            source_prefix: 24,
            addr: IpAddr::V4(Ipv4Addr::new(a, b, c, 0)),
            addr_len: 3,
        });
        cursor = request.len();
    }
    while cursor < request.len() {
        let head: &[u8; 4] = request.get(cursor..cursor + 4)?.try_into().ok()?;
        let code = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let data = request.get(cursor + 4..cursor + 4 + len)?;
        match code {
            OPTION_ECS if ecs.is_none() => ecs = Some(parse_ecs(data)?),
            OPTION_COOKIE if cookie.is_none() => cookie = Some(((cursor + 4) as u16, len as u16)),
            _ => return None,
        }
        cursor += 4 + len;
    }
    Some(QueryEdns {
        payload: word(3),
        dnssec_ok: opt[7] & 0x80 != 0,
        ecs,
        cookie,
    })
}

/// ECS per RFC 7871 7.1.1, written as the general path would accept it;
/// anything questionable goes to the general path, which answers FORMERR
/// where that is due. `data` is the option's payload.
#[inline(always)]
fn parse_ecs(data: &[u8]) -> Option<QueryEcs> {
    let (head, bytes) = data.split_first_chunk::<4>()?;
    let family = u16::from_be_bytes([head[0], head[1]]);
    let (source_prefix, scope) = (head[2], head[3]);
    let width = wire::ecs_family_bits(family)?;
    let addr_len = wire::ecs_address_len(source_prefix);
    // A scope is the server's to set, and the prefix must fit the family
    // (checked before the address is read); else FORMERR, the general
    // path's to give.
    if scope != 0 || source_prefix > width || bytes.len() != addr_len {
        return None;
    }
    // The address as sent, its bits past the prefix zero (RFC 7871
    // 7.1.1, the rule `wire::is_valid_query_ecs` applies for the general
    // path), read as bits so the IPv4 case needs no copy.
    let addr = if family == 1 {
        let bits = match *bytes {
            [a, b, c] => u32::from_be_bytes([a, b, c, 0]),
            [a, b, c, d] => u32::from_be_bytes([a, b, c, d]),
            [a, b] => u32::from_be_bytes([a, b, 0, 0]),
            [a] => u32::from_be_bytes([a, 0, 0, 0]),
            _ => 0,
        };
        if !wire::is_zero_past_prefix(u128::from(bits) << 96, source_prefix) {
            return None;
        }
        IpAddr::V4(Ipv4Addr::from(bits))
    } else {
        let mut octets = [0u8; 16];
        octets[..addr_len].copy_from_slice(bytes);
        let bits = u128::from_be_bytes(octets);
        if !wire::is_zero_past_prefix(bits, source_prefix) {
            return None;
        }
        IpAddr::V6(Ipv6Addr::from(bits))
    };
    Some(QueryEcs {
        family,
        source_prefix,
        addr,
        addr_len: addr_len as u8,
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
    /// Sent again as kept for the same query bytes (`fast::replies`).
    pub is_kept: bool,
}

/// Answers `request` into `out` if it has a shape the fast path handles;
/// `None` leaves `out` unspecified and the query to the general path.
/// A UDP reply that would not fit is declined, not truncated. Out of
/// line: its layout is tuned for the routed answer (`benches/load.sh`),
/// and the caller's work around it must not move it.
#[inline(never)]
pub fn answer<'m>(
    request: &[u8],
    transport: Transport,
    source: IpAddr,
    snapshot: &Snapshot,
    memo: &'m mut DecisionMemo,
    out: &mut Vec<u8>,
) -> Option<FastReply<'m>> {
    let question = parse(request)?;
    let signed = snapshot
        .signed
        .as_ref()
        .filter(|_| question.edns.as_ref().is_some_and(|e| e.dnssec_ok));
    if signed.is_some()
        && matches!(
            RecordType::from(question.qtype),
            RecordType::NSEC | RecordType::RRSIG
        )
    {
        // DNSSEC's own types are the general path's.
        return None;
    }
    // The node is found with the name as written, and the domain test
    // ignores case too; the lower-cased copy is made only for what needs
    // it: a wildcard search or a signed answer's proofs.
    let raw = &request[HEADER_LEN..HEADER_LEN + question.name_len];
    let node = snapshot.fast.node(raw);
    let mut buffer;
    let lower = if signed.is_some() || (node.is_none() && snapshot.fast.has_wildcards()) {
        // Length bytes are below 64, so lower-casing the whole name
        // leaves them alone.
        buffer = [0u8; NAME_MAX];
        buffer[..raw.len()].copy_from_slice(raw);
        buffer[..raw.len()].make_ascii_lowercase();
        Some(&buffer[..raw.len()])
    } else {
        None
    };
    let mut plan = plan(&question, node, raw, lower, request, source, snapshot, memo)?;
    if let Some(signed) = signed {
        let name = lower.expect("lower-cased when signed");
        plan.denial = denial(&plan, name, question.qtype, snapshot, signed)?;
        plan.signed = Some(signed);
    }
    write(&question, &plan, request, transport, source, snapshot, out)?;
    Some(FastReply {
        facts: ReplyFacts {
            qtype: Some(question.qtype),
            rcode: plan.rcode,
            truncated: false,
        },
        has_valid_cookie: plan.cookie.is_valid(),
        service: match plan.records {
            Records::Service { service, decision } => Some((service, &*decision.endpoints)),
            _ => None,
        },
        is_kept: false,
    })
}

/// What the reply to a [`Question`] says, decided before a byte of it
/// is written.
struct Plan<'s, 'm> {
    /// The name is the apex or below it: the reply is authoritative (AA)
    /// and a reply with no answer carries the SOA.
    in_domain: bool,
    /// The name does not exist; a wildcard answers for it (signed, that
    /// needs an NSEC proof, which only the general path gives).
    is_wildcard: bool,
    /// DO=1 to a signed domain: the answer carries its RRSIG.
    signed: Option<&'s SignedDomain>,
    /// With `signed`, the NSEC links (and the type a NODATA lacks) the
    /// authority section proves absence with.
    denial: Denial,
    rcode: ResponseCode,
    cookie: CookieCheck,
    records: Records<'s, 'm>,
}

/// Where the answer section comes from.
enum Records<'s, 'm> {
    /// No records at this name: REFUSED or NXDOMAIN.
    Empty,
    /// The name's record set of the asked type, with its additional data;
    /// `None` is NODATA.
    Set(Option<&'s EncodedAnswer>),
    /// A service's addresses, as routing decided.
    Service {
        service: usize,
        decision: &'m Remembered,
    },
}

impl Plan<'_, '_> {
    /// The ECS scope the answer holds for: 0 unless routing decided it.
    fn scope(&self) -> u8 {
        match self.records {
            Records::Service { decision, .. } => decision.scope,
            _ => 0,
        }
    }
}

/// Decides the reply to a parsed query whose name is `raw` as written
/// and `lower` lower-cased (made when the domain has wildcards), and
/// whose node is `node`; `None` declines it.
#[allow(clippy::too_many_arguments)]
fn plan<'s, 'm>(
    question: &Question,
    mut node: Option<&'s FastNode>,
    raw: &[u8],
    lower: Option<&[u8]>,
    request: &[u8],
    source: IpAddr,
    snapshot: &'s Snapshot,
    memo: &'m mut DecisionMemo,
) -> Option<Plan<'s, 'm>> {
    let fast = &snapshot.fast;
    // Every node is in the domain, so only a miss needs the suffix test.
    // Names outside the domain are refused (after the cookie and ECS
    // checks, as on the general path): floods of random names stay cheap.
    let in_domain = node.is_some() || fast.is_in_domain(raw);
    let is_wildcard = node.is_none() && in_domain && fast.has_wildcards();
    if is_wildcard && !fast.has_delegations() {
        // A wildcard answers exactly as its own name would, under the
        // query's name: the encoded owner is a pointer to the question.
        node = fast.wildcard_for(lower?);
    }
    // Cookies are bound to the packet's source, not to the ECS subnet.
    let cookie = match question.edns.as_ref().and_then(|e| e.cookie) {
        None => CookieCheck::Absent,
        Some((at, len)) => {
            let secret = cookie::secret(snapshot.config.server.cookie_secret);
            let (at, len) = (usize::from(at), usize::from(len));
            match cookie::check(&request[at..at + len], source, &secret) {
                // FORMERR is the general path's to give.
                CookieCheck::Malformed => return None,
                check => check,
            }
        }
    };
    let (rcode, records) = match node {
        _ if !in_domain => (ResponseCode::Refused, Records::Empty),
        Some(FastNode::Declined) => return None,
        None if fast.has_delegations() => return None,
        None => (ResponseCode::NXDomain, Records::Empty),
        Some(FastNode::Answerable { service, sets }) => match (service, question.qtype) {
            (Some(service), TYPE_A | TYPE_AAAA) => {
                let ecs = question.edns.as_ref().and_then(|e| e.ecs.as_ref());
                let client = wire::routed_client(ecs.map(|e| (e.addr, e.source_prefix)), source);
                let decision = memo.decide(
                    snapshot.id,
                    &snapshot.config,
                    &snapshot.health,
                    &snapshot.router,
                    *service,
                    client,
                );
                let service = *service;
                (
                    ResponseCode::NoError,
                    Records::Service { service, decision },
                )
            }
            (_, qtype) => (
                ResponseCode::NoError,
                Records::Set(sets.iter().find(|set| set.record_type == qtype)),
            ),
        },
    };
    Some(Plan {
        in_domain,
        is_wildcard,
        signed: None,
        denial: [None, None],
        rcode,
        cookie,
        records,
    })
}

/// Writes the planned reply into `out`; `None` when a UDP reply would not
/// fit (the general path truncates).
fn write(
    question: &Question,
    plan: &Plan,
    request: &[u8],
    transport: Transport,
    source: IpAddr,
    snapshot: &Snapshot,
    out: &mut Vec<u8>,
) -> Option<()> {
    let fast = &snapshot.fast;
    out.clear();
    // The query's header and question in one copy; the header is written
    // over it at the end, when its counts are known.
    out.extend_from_slice(&request[..question.end]);
    let mut count = 0u16;
    let mut additionals = None;
    let mut service_denial = None;
    match plan.records {
        Records::Empty | Records::Set(None) => {}
        Records::Set(Some(set)) => {
            out.extend_from_slice(&set.answers.wire);
            count = set.answers.count;
            if plan.signed.is_some() {
                out.extend_from_slice(&set.rrsig);
                count += 1;
            }
            additionals = Some(&set.additionals);
        }
        Records::Service { service, decision } => {
            let is_v6 = question.qtype == TYPE_AAAA;
            let encoded = fast.service(service);
            let chosen = match answer_addresses(&decision.endpoints, decision.is_all_down) {
                AnswerAddresses::Fallback => {
                    let set = encoded.fallback(is_v6);
                    out.extend_from_slice(&set.wire);
                    count = set.count;
                    None
                }
                AnswerAddresses::Endpoints {
                    endpoints,
                    usable_only,
                } => {
                    for &e in endpoints {
                        if let Some(set) = encoded.endpoint(e, is_v6, usable_only) {
                            out.extend_from_slice(&set.wire);
                            count += set.count;
                        }
                    }
                    Some((endpoints, usable_only))
                }
            };
            if let Some(signed) = plan.signed {
                // The set's RRSIG, made at snapshot build, or for a NODATA
                // the service name's NSEC without the type; a decision not
                // signed goes to the general path.
                if count == 0 {
                    let link = signed.fast_denial.service_link(service)?;
                    service_denial = Some((link, Some(RecordType::from(question.qtype))));
                } else {
                    let key = DecisionKey::of(service, is_v6, chosen)?;
                    out.extend_from_slice(signed.decision_rrsig(key)?);
                    count += 1;
                }
            }
        }
    }
    let mut authority = u16::from(count == 0 && plan.in_domain);
    let mut additional = 0;
    if authority == 1 {
        // NXDOMAIN or NODATA: the SOA with the negative TTL.
        out.extend_from_slice(fast.negative_soa());
        if let Some(signed) = plan.signed {
            // Its RRSIG and the NSEC proofs, in the general path's order.
            let chain = &signed.fast_denial;
            if chain.soa_rrsig().is_empty() {
                return None;
            }
            out.extend_from_slice(chain.soa_rrsig());
            authority += 1;
            let [first, second] = plan.denial;
            for (link, absent) in [first, second, service_denial].into_iter().flatten() {
                out.extend_from_slice(chain.proof(link, absent));
                authority += 2;
            }
        }
    } else if let Some(set) = additionals
        && set.count > 0
    {
        out.extend_from_slice(&set.wire);
        additional = set.count;
    }
    additional += u16::from(question.edns.is_some());
    let [an, an_low] = count.to_be_bytes();
    let [ns, ns_low] = authority.to_be_bytes();
    let [ar, ar_low] = additional.to_be_bytes();
    // QR, AA inside the domain, RD copied; CD copied; RA never.
    let flags = 0x80 | if plan.in_domain { 0x04 } else { 0 } | (request[2] & 0x01);
    let rcode = (request[3] & 0x10) | wire::rcode_low(plan.rcode);
    let header = [
        request[0], request[1], flags, rcode, 0, 1, an, an_low, ns, ns_low, ar, ar_low,
    ];
    out[..HEADER_LEN].copy_from_slice(&header);
    if let Some(edns) = &question.edns {
        let cookie_reply = plan.cookie.client_cookie().map(|client| {
            let secret = cookie::secret(snapshot.config.server.cookie_secret);
            cookie::reply(client, source, &secret)
        });
        write_opt(
            out,
            edns,
            plan.scope(),
            cookie_reply,
            fast.udp_payload_max(),
        );
    }
    let limit = wire::reply_limit(
        transport,
        question.edns.as_ref().map(|e| e.payload),
        fast.udp_payload_max(),
    );
    (out.len() <= limit).then_some(())
}

/// Our OPT: our payload size, version 0, DO copied (RFC 3225), and the
/// query's ECS echoed with the scope the answer used (RFC 7871 7.2.1).
/// Each fixed-size part is one copy the compiler lays out inline.
fn write_opt(
    out: &mut Vec<u8>,
    edns: &QueryEdns,
    scope: u8,
    cookie: Option<[u8; cookie::REPLY_LEN]>,
    payload: u16,
) {
    let cookie_len = cookie.map_or(0, |c| 4 + c.len());
    let ecs_len = edns
        .ecs
        .as_ref()
        .map_or(0, |ecs| 8 + usize::from(ecs.addr_len));
    let [rdlen, rdlen_low] = ((cookie_len + ecs_len) as u16).to_be_bytes();
    let [size, size_low] = payload.to_be_bytes();
    let [opt, opt_low] = TYPE_OPT.to_be_bytes();
    let dnssec_ok = if edns.dnssec_ok { 0x80 } else { 0 };
    let fixed = [
        0, opt, opt_low, size, size_low, 0, 0, dnssec_ok, 0, rdlen, rdlen_low,
    ];
    // The common reply, an IPv4 ECS echoed without a cookie, in one copy.
    if let (
        None,
        Some(QueryEcs {
            family: 1,
            source_prefix,
            addr: IpAddr::V4(v4),
            addr_len,
        }),
    ) = (cookie, edns.ecs)
    {
        let mut bytes = [0u8; 23];
        bytes[..11].copy_from_slice(&fixed);
        bytes[11..19].copy_from_slice(&ecs_head(1, source_prefix, addr_len, scope));
        bytes[19..].copy_from_slice(&v4.octets());
        out.extend_from_slice(&bytes);
        out.truncate(out.len() - (4 - usize::from(addr_len)));
        return;
    }
    out.extend_from_slice(&fixed);
    if let Some(cookie) = cookie {
        let [code, code_low] = OPTION_COOKIE.to_be_bytes();
        out.extend_from_slice(&[code, code_low, 0, cookie.len() as u8]);
        out.extend_from_slice(&cookie);
    }
    if let Some(ecs) = &edns.ecs {
        out.extend_from_slice(&ecs_head(
            ecs.family,
            ecs.source_prefix,
            ecs.addr_len,
            scope,
        ));
        // The address as sent: its bytes past the prefix are zero, so the
        // parsed address's first bytes are the ones sent. Copied whole
        // (a fixed-size copy, inline) and cut to length.
        let cut = match ecs.addr {
            IpAddr::V4(v4) => {
                out.extend_from_slice(&v4.octets());
                4 - usize::from(ecs.addr_len)
            }
            IpAddr::V6(v6) => {
                out.extend_from_slice(&v6.octets());
                16 - usize::from(ecs.addr_len)
            }
        };
        out.truncate(out.len() - cut);
    }
}

/// The echoed ECS option up to its address: code, length, family, the
/// query's source prefix and the scope the answer holds for, never longer
/// than that prefix (RFC 7871 7.2.1).
#[inline(always)]
fn ecs_head(family: u16, source_prefix: u8, addr_len: u8, scope: u8) -> [u8; 8] {
    let [code, code_low] = OPTION_ECS.to_be_bytes();
    let [family, family_low] = family.to_be_bytes();
    let scope = wire::echoed_scope(scope, source_prefix);
    [
        code,
        code_low,
        0,
        4 + addr_len,
        family,
        family_low,
        source_prefix,
        scope,
    ]
}

#[cfg(test)]
mod tests {
    //! Shapes the fast path must decline (the general path answers them;
    //! `dns::differential` checks the ones it takes), and the promise that
    //! answering allocates nothing once the memo knows the network.

    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    use super::*;
    use crate::dns::fixture::{config, query, snapshot};
    use hickory_proto::op::{Edns, Message, Query};
    use hickory_proto::rr::Name;
    use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};

    /// The system allocator, counting allocations per thread so tests
    /// running at the same time do not see each other's.
    struct Counting;

    thread_local! {
        static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    }

    // SAFETY: every call is passed to the system allocator unchanged; the
    // counter is a const-initialised thread local, which never allocates.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
            // SAFETY: the caller's contract is the system allocator's.
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: as above.
            unsafe { System.dealloc(ptr, layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
            // SAFETY: as above.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;

    fn allocations() -> u64 {
        ALLOCATIONS.with(Cell::get)
    }

    /// Heap allocations made answering every one of `requests`, `rounds`
    /// times over, each answered by the fast path.
    fn allocations_answering(
        requests: &[Vec<u8>],
        rounds: usize,
        source: IpAddr,
        snapshot: &Snapshot,
        memo: &mut DecisionMemo,
        out: &mut Vec<u8>,
    ) -> u64 {
        let before = allocations();
        for _ in 0..rounds {
            for request in requests {
                let reply = answer(request, Transport::Udp, source, snapshot, memo, out);
                assert!(reply.is_some(), "the fast path answers");
            }
        }
        allocations() - before
    }

    #[test]
    fn signed_service_answers_come_with_their_rrsig_and_allocate_nothing() {
        let (config, _) = crate::dnssec::testing::signed_config("");
        let snapshot = snapshot(config, &[]);
        let source: IpAddr = "192.0.2.77".parse().unwrap();
        let mut requests = Vec::new();
        for (name, qtype) in [
            ("www.gslb.example.", RecordType::A),
            ("www.gslb.example.", RecordType::AAAA),
            ("api.gslb.example.", RecordType::A),
            ("split.apps.gslb.example.", RecordType::A),
            // eu-west has no IPv6: NODATA, the NSEC without AAAA.
            ("api.gslb.example.", RecordType::AAAA),
            // Static sets, with the RRSIG encoded beside them.
            ("static.gslb.example.", RecordType::A),
            ("gslb.example.", RecordType::DNSKEY),
            ("gslb.example.", RecordType::MX),
        ] {
            let mut signed = query(name, qtype, true);
            let edns = signed.edns.as_mut().unwrap();
            edns.set_dnssec_ok(true);
            edns.options_mut()
                .insert(EdnsOption::Subnet(ClientSubnet::new(
                    "193.0.0.0".parse().unwrap(),
                    24,
                    0,
                )));
            requests.push(signed.to_vec().unwrap());
        }
        let mut memo = DecisionMemo::new();
        let mut out = Vec::with_capacity(4096);
        for request in &requests {
            answer(
                request,
                Transport::Udp,
                source,
                &snapshot,
                &mut memo,
                &mut out,
            )
            .expect("the fast path answers a signed service query");
            let reply = hickory_proto::op::Message::from_vec(&out).unwrap();
            let last = reply.answers.last().or(reply.authorities.last()).unwrap();
            assert_eq!(last.record_type(), RecordType::RRSIG, "{reply:?}");
        }
        assert_eq!(
            allocations_answering(&requests, 50, source, &snapshot, &mut memo, &mut out),
            0,
            "allocations on signed answers"
        );
        // With wildcards in the domain a missing name needs wildcard
        // proofs, the general path's (NXDOMAIN and NODATA are the fast
        // path's when the domain has none: the next test).
        for (name, qtype) in [
            ("nope.gslb.example.", RecordType::A),
            ("host.apps.gslb.example.", RecordType::A),
        ] {
            let mut signed = query(name, qtype, true);
            signed.edns.as_mut().unwrap().set_dnssec_ok(true);
            let bytes = signed.to_vec().unwrap();
            let reply = answer(
                &bytes,
                Transport::Udp,
                source,
                &snapshot,
                &mut memo,
                &mut out,
            );
            assert!(reply.is_none(), "{name} {qtype} is declined");
        }
    }

    #[test]
    fn signed_negative_answers_carry_their_proofs_and_allocate_nothing() {
        // The shipped example has no wildcard: NXDOMAIN and NODATA with
        // DO=1 are the fast path's.
        let (path, key) =
            crate::dnssec::testing::key_file(crate::dnssec::key::Algorithm::EcdsaP256Sha256);
        let text = std::fs::read_to_string("zones/example.toml").unwrap();
        let text = format!("{text}\n[dnssec]\nkey_file = \"{}\"\n", path.display());
        let config =
            crate::config::Config::parse(&text, std::path::Path::new("zones/example.toml"))
                .unwrap_or_else(|e| panic!("{e}"));
        let snapshot = snapshot(std::sync::Arc::new(config), &[]);
        let source: IpAddr = "192.0.2.77".parse().unwrap();
        let apex = Name::from_ascii("gslb.example.").unwrap();
        let mut requests = Vec::new();
        for (name, qtype, nsecs) in [
            ("nope.gslb.example.", RecordType::A, 2),
            ("zzz.nope.gslb.example.", RecordType::A, 2),
            ("mail.gslb.example.", RecordType::AAAA, 1),
            ("www.gslb.example.", RecordType::MX, 1),
        ] {
            let mut signed = query(name, qtype, true);
            signed.edns.as_mut().unwrap().set_dnssec_ok(true);
            let bytes = signed.to_vec().unwrap();
            let mut memo = DecisionMemo::new();
            let mut out = Vec::new();
            answer(
                &bytes,
                Transport::Udp,
                source,
                &snapshot,
                &mut memo,
                &mut out,
            )
            .unwrap_or_else(|| panic!("{name} {qtype}: the fast path answers"));
            let reply = Message::from_vec(&out).unwrap();
            let proofs = crate::dnssec::testing::nsecs(&reply.authorities);
            assert!(
                proofs.len() <= nsecs && !proofs.is_empty(),
                "{name}: {proofs:?}"
            );
            assert!(crate::dnssec::testing::verify_reply(&reply, &key, &apex) >= 2);
            requests.push(bytes);
        }
        let mut memo = DecisionMemo::new();
        let mut out = Vec::with_capacity(4096);
        // Warm up: the tables grow on first use.
        allocations_answering(&requests, 1, source, &snapshot, &mut memo, &mut out);
        assert_eq!(
            allocations_answering(&requests, 50, source, &snapshot, &mut memo, &mut out),
            0,
            "allocations on signed negatives"
        );
    }

    #[test]
    fn answering_allocates_nothing_once_the_memo_knows_the_network() {
        let snapshot = snapshot(config(""), &[]);
        let source: IpAddr = "192.0.2.77".parse().unwrap();
        let mut requests = Vec::new();
        for (name, qtype) in [
            ("www.gslb.example.", RecordType::A),
            ("www.gslb.example.", RecordType::AAAA),
            ("api.gslb.example.", RecordType::A),
            ("bg.gslb.example.", RecordType::A),
            ("mail.gslb.example.", RecordType::A),
            ("gslb.example.", RecordType::MX),
            ("nope.gslb.example.", RecordType::A),
            ("www.other.example.", RecordType::A),
        ] {
            requests.push(query(name, qtype, false).to_vec().unwrap());
            let mut with_ecs = query(name, qtype, true);
            let edns = with_ecs.edns.as_mut().unwrap();
            edns.options_mut()
                .insert(EdnsOption::Subnet(ClientSubnet::new(
                    "193.0.0.0".parse().unwrap(),
                    24,
                    0,
                )));
            edns.options_mut()
                .insert(EdnsOption::Unknown(10, vec![7; 8]));
            requests.push(with_ecs.to_vec().unwrap());
        }
        let mut memo = DecisionMemo::new();
        let mut out = Vec::with_capacity(4096);
        // The first round fills the memo.
        for request in &requests {
            assert!(
                answer(
                    request,
                    Transport::Udp,
                    source,
                    &snapshot,
                    &mut memo,
                    &mut out
                )
                .is_some()
            );
        }
        assert_eq!(
            allocations_answering(&requests, 50, source, &snapshot, &mut memo, &mut out),
            0,
            "allocations on memo hits"
        );

        // Misses: every query a new /24 (a random-subnet flood). The first
        // pass grows the memo's and the workspace's tables; a new snapshot
        // (same database and zones, so the id alone changes) empties them,
        // and the second pass misses on every query without allocating.
        let flood: Vec<Vec<u8>> = (0..1000u32)
            .map(|i| {
                let n = i.wrapping_mul(0x9E37_79B1) >> 8;
                let net = Ipv4Addr::from(n << 8);
                // Half for a service whose zones hold several endpoints.
                let name = ["www.gslb.example.", "bg.gslb.example."][i as usize % 2];
                let mut m = query(name, RecordType::A, true);
                m.edns
                    .as_mut()
                    .unwrap()
                    .options_mut()
                    .insert(EdnsOption::Subnet(ClientSubnet::new(
                        IpAddr::V4(net),
                        24,
                        0,
                    )));
                m.to_vec().unwrap()
            })
            .collect();
        let mut snapshot = snapshot;
        for pass in 0..2 {
            snapshot.id += 1_000_000;
            let (_, misses_before) = memo.counts();
            let before = allocations();
            for request in &flood {
                let reply = answer(
                    request,
                    Transport::Udp,
                    source,
                    &snapshot,
                    &mut memo,
                    &mut out,
                );
                assert!(reply.is_some());
            }
            let (_, misses) = memo.counts();
            assert_eq!(misses - misses_before, 1000, "every query missed");
            if pass == 1 {
                assert_eq!(allocations() - before, 0, "allocations on memo misses");
            }
        }
        // The counter does count: a miss (a new network) allocates.
        let mut fresh = DecisionMemo::new();
        let before = allocations();
        answer(
            &requests[0],
            Transport::Udp,
            source,
            &snapshot,
            &mut fresh,
            &mut out,
        );
        assert!(allocations() > before, "a memo miss allocates");
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

    /// Asks `snapshot` for `name` A under `id`, with `options` in its OPT,
    /// through the loops' entry, and reads the reply.
    fn ask(
        name: &str,
        id: u16,
        options: &[EdnsOption],
        source: IpAddr,
        snapshot: &Snapshot,
        caches: &mut ThreadCaches,
    ) -> (Vec<u8>, Message) {
        let mut message = query(name, RecordType::A, true);
        message.metadata.id = id;
        for option in options {
            message
                .edns
                .as_mut()
                .unwrap()
                .options_mut()
                .insert(option.clone());
        }
        let bytes = message.to_vec().unwrap();
        let mut out = Vec::new();
        answer_or_send_kept(&bytes, Transport::Udp, source, snapshot, caches, &mut out)
            .expect("the fast path answers");
        (bytes, Message::from_vec(&out).unwrap())
    }

    /// Asks for `static` A twice: its reply is kept the second time, not
    /// the first.
    fn ask_static_twice(source: IpAddr, snapshot: &Snapshot, caches: &mut ThreadCaches) {
        for id in [1, 2] {
            let (bytes, _) = ask("static.gslb.example.", id, &[], source, snapshot, caches);
            assert_eq!(caches.has_kept(snapshot.id, &bytes), id == 2, "asked {id}");
        }
    }

    #[test]
    fn a_kept_reply_answers_the_same_bytes_until_the_snapshot_changes() {
        let before = snapshot(config(""), &[]);
        let added = "[[records]]\nname = \"added\"\ntype = \"A\"\ndata = \"192.0.2.51\"\n";
        let mut after = snapshot(config(added), &[]);
        let source: IpAddr = "192.0.2.77".parse().unwrap();
        let mut caches = ThreadCaches::new();
        let name = "added.gslb.example.";
        // Asked once, a query leaves only its hash among the recently
        // seen; asked again, its reply is kept.
        let (bytes, first) = ask(name, 1, &[], source, &before, &mut caches);
        assert_eq!(first.metadata.response_code, ResponseCode::NXDomain);
        assert!(!caches.has_kept(before.id, &bytes), "kept when asked once");
        ask(name, 2, &[], source, &before, &mut caches);
        assert!(caches.has_kept(before.id, &bytes), "an NXDOMAIN is kept");
        // Sent again to another ID: the kept reply, with that ID.
        let (_, again) = ask(name, 3, &[], source, &before, &mut caches);
        assert_eq!(again.metadata.id, 3);
        let mut expected = first.clone();
        expected.metadata.id = 3;
        assert_eq!(again, expected);
        // A snapshot that says otherwise under the same id would get the
        // kept reply (it is what names it); under its own, its own answer.
        let id = after.id;
        after.id = before.id;
        let (_, stale) = ask(name, 4, &[], source, &after, &mut caches);
        assert_eq!(stale.metadata.response_code, ResponseCode::NXDomain);
        after.id = id;
        // Written afresh, and kept at once: these bytes were asked before.
        let (bytes, fresh) = ask(name, 5, &[], source, &after, &mut caches);
        assert_eq!(fresh.metadata.response_code, ResponseCode::NoError);
        assert_eq!(fresh.answers.len(), 1);
        assert!(caches.has_kept(after.id, &bytes));
        let (_, again) = ask(name, 6, &[], source, &after, &mut caches);
        assert_eq!(again.answers, fresh.answers);
        // The name's case is part of the bytes: a reply keeps the query's.
        for id in [7, 8] {
            let (bytes, upper) = ask("ADDED.gslb.example.", id, &[], source, &after, &mut caches);
            assert_eq!(upper.queries[0].name().to_ascii(), "ADDED.gslb.example.");
            assert_eq!(upper.answers[0].name.to_ascii(), "ADDED.gslb.example.");
            assert_eq!(caches.has_kept(after.id, &bytes), id == 8);
        }
    }

    #[test]
    fn names_asked_once_displace_no_kept_reply() {
        // A random-subdomain flood: every name new, each leaves only its
        // hash among the recently seen, and a reply kept before is still
        // sent.
        let snapshot = snapshot(config(""), &[]);
        let source: IpAddr = "192.0.2.77".parse().unwrap();
        let mut caches = ThreadCaches::new();
        ask_static_twice(source, &snapshot, &mut caches);
        let kept = caches.replies.kept(snapshot.id);
        for n in 0..2_000 {
            let junk = format!("j{n:05}.gslb.example.");
            let (_, reply) = ask(&junk, 1, &[], source, &snapshot, &mut caches);
            assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
        }
        assert_eq!(
            caches.replies.kept(snapshot.id),
            kept,
            "none kept, none lost"
        );
        let (_, reply) = ask(
            "static.gslb.example.",
            9,
            &[],
            source,
            &snapshot,
            &mut caches,
        );
        assert_eq!(reply.answers.len(), 1);
    }

    #[test]
    fn routed_answers_and_answers_to_cookies_are_not_kept() {
        let snapshot = snapshot(config(""), &[]);
        let mut caches = ThreadCaches::new();
        // Without ECS the packet's source routes: two clients, two answers.
        let [(bytes, us), (_, asia)] = ["8.8.8.8", "202.12.27.33"].map(|client| {
            let source = client.parse().unwrap();
            ask("www.gslb.example.", 1, &[], source, &snapshot, &mut caches)
        });
        assert_ne!(us.answers, asia.answers);
        assert!(!caches.has_kept(snapshot.id, &bytes));
        assert_eq!(caches.replies.kept(snapshot.id), 0);
        // A server cookie is bound to the source and the time. (This one
        // ends in two zero bytes, as an OPT without options does.)
        let cookie = [EdnsOption::Unknown(10, vec![7, 7, 7, 7, 7, 7, 0, 0])];
        let source = "192.0.2.77".parse().unwrap();
        let (_, reply) = ask(
            "static.gslb.example.",
            1,
            &cookie,
            source,
            &snapshot,
            &mut caches,
        );
        assert_eq!(reply.answers.len(), 1);
        assert_eq!(caches.replies.kept(snapshot.id), 0, "nothing kept");
        // The same static query without a cookie is, asked twice.
        ask_static_twice(source, &snapshot, &mut caches);
    }
}
