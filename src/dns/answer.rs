//! Request bytes in, reply bytes out: the authoritative answer logic.
//!
//! This is the hot path's core and it is pure: it reads one [`Snapshot`],
//! takes no lock, does no I/O and never panics on input. The UDP and TCP
//! servers, tests and benchmarks all call the same [`answer`], so there is
//! one definition of what Meridian says.
//!
//! Behaviour follows what resolvers and registries expect of an
//! authoritative server (Knot DNS is the reference): AA on authoritative
//! data, RA never, RD copied and CD too on QUERY; REFUSED outside the
//! domain; class ANY answered as IN; SOA in the authority section of
//! NXDOMAIN and NODATA; wildcards per RFC 4592; CNAME chains followed
//! inside the domain; referrals with glue below delegations; EDNS(0) per
//! RFC 6891 (BADVERS for versions above 0, unknown options ignored, the
//! OPT kept on a FORMERR the options caused); TC=1 with the OPT kept when a
//! UDP reply does not fit; a minimal answer to ANY (RFC 8482); a server
//! cookie for a cookie with no question (RFC 7873 section 5.4); FORMERR or
//! silence for malformed packets.

use std::collections::HashSet;
use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption, NSIDPayload};
use hickory_proto::rr::rdata::{HINFO, TXT};
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};

use super::cookie::{self, CookieCheck};
use super::table::{Lookup, Node};
pub use super::wire::Transport;
use super::wire::{self, HEADER_LEN};
use crate::metrics::ReplyFacts;
use crate::routing::{AnswerAddresses, Client, answer_addresses, route};
use crate::snapshot::Snapshot;

/// CNAME hops followed before giving up (loops, or just long chains).
const MAX_CNAME_CHAIN: usize = 8;

/// A reply ready to send, with what the counters need to know about it.
#[derive(Debug, Clone)]
pub struct Reply {
    pub wire: Vec<u8>,
    pub facts: ReplyFacts,
    /// The service whose addresses the reply carries, if any.
    pub service: Option<ServiceHit>,
    /// The query returned a valid server cookie: its source address is
    /// real, so rate limiting does not apply.
    pub has_valid_cookie: bool,
}

/// A service answer: which endpoints it named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceHit {
    pub service: usize,
    pub endpoints: Vec<usize>,
}

/// What the answer depends on besides the question: who asked, and the
/// ECS option to echo.
struct Asker {
    /// The packet's source: cookies are bound to it, not to the ECS subnet.
    source: IpAddr,
    cookie: CookieCheck,
    client: Client,
    /// The query's ECS option, echoed with our scope.
    ecs: Option<ClientSubnet>,
    /// Every ECS option carries exactly the address bytes its prefix
    /// needs; hickory-proto drops surplus bytes, so this is read raw.
    ecs_lengths_are_exact: bool,
    /// The scope the answer actually used; 0 unless a service decided.
    scope: u8,
    hit: Option<ServiceHit>,
}

/// Answers one request. `None` means send nothing: the bytes were not a
/// DNS query we can reply to (too short for a header, or a response).
/// `source` is the packet's source address, used when the query carries
/// no client subnet.
pub fn answer(
    request: &[u8],
    transport: Transport,
    source: IpAddr,
    snapshot: &Snapshot,
) -> Option<Reply> {
    if request.len() < HEADER_LEN || request[2] & 0x80 != 0 {
        // No header to answer, or a response: replying to responses is how
        // reflection loops start.
        return None;
    }
    let opt_options = wire::opt_options(request);
    let message = match Message::from_vec(request) {
        Ok(message) => message,
        Err(_) => return Some(format_error(request, opt_options, transport, snapshot)),
    };
    let mut asker = Asker {
        source,
        cookie: CookieCheck::Absent,
        client: Client::from_source(source),
        ecs: None,
        ecs_lengths_are_exact: opt_options
            .is_none_or(|options| wire::ecs_lengths_are_exact(&request[options])),
        scope: 0,
        hit: None,
    };
    let reply = respond(&message, snapshot, &mut asker);
    let rcode = reply.metadata.response_code;
    let (wire, truncated) = encode(reply, &message, transport, snapshot)?;
    Some(Reply {
        wire,
        facts: ReplyFacts {
            qtype: message.queries.first().map(|q| u16::from(q.query_type())),
            rcode,
            truncated,
        },
        service: if truncated { None } else { asker.hit },
        has_valid_cookie: asker.cookie.is_valid(),
    })
}

/// FORMERR for a packet whose header we can read but whose body we cannot.
/// When the fault is in the OPT's options (the packet reads with them
/// left out), the reply carries our OPT and the question, so the client
/// can tell a bad option from a server without EDNS (RFC 6891 section 7);
/// otherwise it is the header alone.
fn format_error(
    request: &[u8],
    opt_options: Option<std::ops::Range<usize>>,
    transport: Transport,
    snapshot: &Snapshot,
) -> Reply {
    let without_options = opt_options.and_then(|options| {
        let mut bytes = request.to_vec();
        bytes.drain(options.clone());
        bytes[options.start - 2..options.start].copy_from_slice(&[0, 0]);
        Message::from_vec(&bytes).ok()
    });
    if let Some(parsed) = without_options.filter(|m| m.edns.is_some()) {
        let mut reply = Message::new(parsed.id, MessageType::Response, parsed.op_code);
        reply.metadata.recursion_desired = parsed.recursion_desired;
        if parsed.op_code == OpCode::Query {
            reply.metadata.checking_disabled = parsed.checking_disabled;
        }
        if let Some(edns) = &parsed.edns {
            reply.set_edns(reply_edns(edns, snapshot));
        }
        if parsed.queries.len() == 1 {
            reply.add_queries(parsed.queries.iter().cloned());
        }
        reply.metadata.response_code = ResponseCode::FormErr;
        if let Some((wire, truncated)) = encode(reply, &parsed, transport, snapshot) {
            return Reply {
                wire,
                facts: ReplyFacts {
                    qtype: parsed.queries.first().map(|q| u16::from(q.query_type())),
                    rcode: ResponseCode::FormErr,
                    truncated,
                },
                service: None,
                has_valid_cookie: false,
            };
        }
    }
    let mut wire = vec![0u8; HEADER_LEN];
    wire[0..2].copy_from_slice(&request[0..2]);
    // QR=1, opcode copied, RD copied; AA, TC clear.
    wire[2] = 0x80 | (request[2] & 0x78) | (request[2] & 0x01);
    wire[3] = ResponseCode::FormErr.low();
    Reply {
        wire,
        facts: ReplyFacts {
            qtype: None,
            rcode: ResponseCode::FormErr,
            truncated: false,
        },
        service: None,
        has_valid_cookie: false,
    }
}

/// The reply as a message, before size limits are applied.
fn respond(request: &Message, snapshot: &Snapshot, asker: &mut Asker) -> Message {
    let mut reply = Message::new(request.id, MessageType::Response, request.op_code);
    reply.metadata.recursion_desired = request.recursion_desired;
    // CD is a QUERY flag; to other opcodes only RD is copied (RFC 8906
    // section 8.1.4's expectations, as Knot does).
    if request.op_code == OpCode::Query {
        reply.metadata.checking_disabled = request.checking_disabled;
    }
    if let Some(edns) = &request.edns {
        reply.set_edns(reply_edns(edns, snapshot));
    }
    // Echo the question only when there is exactly one: a packet with many
    // is refused anyway, and echoing them all would amplify it.
    if request.queries.len() == 1 {
        reply.add_queries(request.queries.iter().cloned());
    }

    if request.op_code != OpCode::Query {
        reply.metadata.response_code = ResponseCode::NotImp;
        return reply;
    }
    // RFC 6891 section 6.1.3: a version we do not speak is BADVERS, with
    // the version we do, before anything else in the query is read (a
    // cookie-only query included).
    if let Some(edns) = &request.edns
        && edns.version() > 0
    {
        reply.metadata.response_code = ResponseCode::BADVERS;
        return reply;
    }
    if request.queries.is_empty()
        && let Some(edns) = &request.edns
        && edns.option(EdnsCode::Cookie).is_some()
    {
        // RFC 7873 section 5.4: no question, only a cookie, asks for a
        // server cookie: NOERROR with one.
        asker.cookie = query_cookie(edns, asker.source, snapshot);
        if asker.cookie == CookieCheck::Malformed {
            reply.metadata.response_code = ResponseCode::FormErr;
        } else {
            add_server_cookie(&mut reply, asker, snapshot);
        }
        return reply;
    }
    if request.queries.len() != 1 {
        reply.metadata.response_code = ResponseCode::FormErr;
        return reply;
    }
    let query = &request.queries[0];
    match query.query_type() {
        RecordType::OPT => {
            reply.metadata.response_code = ResponseCode::FormErr;
            return reply;
        }
        RecordType::AXFR | RecordType::IXFR => {
            // Zone transfers are not offered: the answers are computed.
            reply.metadata.response_code = ResponseCode::Refused;
            return reply;
        }
        _ => {}
    }
    if query.query_class() == DNSClass::CH && identify(&mut reply, query, snapshot) {
        return reply;
    }
    // Class ANY asks for every class; ours is IN, so it is answered as
    // IN (as Knot, NSD and PowerDNS do). The question keeps its class.
    if !matches!(query.query_class(), DNSClass::IN | DNSClass::ANY) {
        reply.metadata.response_code = ResponseCode::Refused;
        return reply;
    }
    if let Some(edns) = &request.edns {
        asker.cookie = query_cookie(edns, asker.source, snapshot);
        if asker.cookie == CookieCheck::Malformed {
            reply.metadata.response_code = ResponseCode::FormErr;
            return reply;
        }
        match client_subnet(edns) {
            Ok(None) => {}
            Ok(Some(ecs)) => {
                asker.client =
                    wire::routed_client(Some((ecs.addr(), ecs.source_prefix())), asker.source);
                asker.ecs = Some(ecs);
            }
            Err(()) => {
                reply.metadata.response_code = ResponseCode::FormErr;
                return reply;
            }
        }
        if !asker.ecs_lengths_are_exact {
            // RFC 7871 section 7.1.1: more address bytes than the source
            // prefix needs is malformed.
            asker.ecs = None;
            reply.metadata.response_code = ResponseCode::FormErr;
            return reply;
        }
    }
    resolve(&mut reply, query, snapshot, asker);
    if let Some(signed) = &snapshot.signed
        && request.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok)
    {
        super::secure::attach(
            &mut reply,
            query.name(),
            query.query_type(),
            &snapshot.table,
            signed,
        );
    }
    add_server_cookie(&mut reply, asker, snapshot);
    if let (Some(ecs), Some(edns)) = (&asker.ecs, reply.edns.as_mut()) {
        // RFC 7871 7.2.1: echo family, source prefix and address; the scope
        // says how widely the answer applies.
        let scope = wire::echoed_scope(asker.scope, ecs.source_prefix());
        edns.options_mut()
            .insert(EdnsOption::Subnet(ClientSubnet::new(
                ecs.addr(),
                ecs.source_prefix(),
                scope,
            )));
    }
    reply
}

/// The query's DNS cookie, checked against this node's secret.
fn query_cookie(edns: &Edns, source: IpAddr, snapshot: &Snapshot) -> CookieCheck {
    match edns.option(EdnsCode::Cookie) {
        None => CookieCheck::Absent,
        Some(EdnsOption::Unknown(_, data)) => cookie::check(data, source, &cookie_secret(snapshot)),
        Some(_) => CookieCheck::Malformed,
    }
}

/// Our server cookie for the query's client cookie, in the reply's OPT.
fn add_server_cookie(reply: &mut Message, asker: &Asker, snapshot: &Snapshot) {
    if let (Some(client), Some(edns)) = (asker.cookie.client_cookie(), reply.edns.as_mut()) {
        let payload = cookie::reply(client, asker.source, &cookie_secret(snapshot));
        edns.options_mut().insert(EdnsOption::Unknown(
            u16::from(EdnsCode::Cookie),
            payload.to_vec(),
        ));
    }
}

fn cookie_secret(snapshot: &Snapshot) -> [u8; 16] {
    cookie::secret(snapshot.config.server.cookie_secret)
}

/// The query's client subnet, checked per RFC 7871 section 7.1.1
/// ([`wire::is_valid_query_ecs`]); `Err` is FORMERR.
fn client_subnet(edns: &Edns) -> Result<Option<ClientSubnet>, ()> {
    let Some(option) = edns.option(EdnsCode::Subnet) else {
        return Ok(None);
    };
    let EdnsOption::Subnet(ecs) = option else {
        return Err(());
    };
    if !wire::is_valid_query_ecs(ecs.addr(), ecs.source_prefix(), ecs.scope_prefix()) {
        return Err(());
    }
    Ok(Some(*ecs))
}

fn reply_edns(request: &Edns, snapshot: &Snapshot) -> Edns {
    let server = &snapshot.config.server;
    let mut edns = Edns::new();
    edns.set_max_payload(server.udp_payload_max);
    edns.set_version(0);
    // RFC 3225: DO is copied; signatures, if the domain is signed, are
    // added by `secure`.
    edns.set_dnssec_ok(request.flags().dnssec_ok);
    // RFC 5001: a query that carries an (empty) NSID option asks which
    // server answered; every reply to it says, errors included.
    if server.nsid
        && request.option(EdnsCode::NSID).is_some()
        && let Some(payload) = server
            .identity
            .as_ref()
            .and_then(|id| NSIDPayload::new(id.as_bytes().to_vec()).ok())
    {
        edns.options_mut().insert(EdnsOption::NSID(payload));
    }
    edns
}

/// `id.server` and `hostname.bind` (RFC 4892) in class CH: the node's
/// identity as a TXT record, so an operator can ask which node of the NS
/// set answered (`dig CH TXT id.server @...`). Returns whether the query
/// was one of those.
fn identify(reply: &mut Message, query: &Query, snapshot: &Snapshot) -> bool {
    let server = &snapshot.config.server;
    let Some(identity) = server.identity.as_ref().filter(|_| server.id_server) else {
        return false;
    };
    let name = query.name().to_lowercase();
    let asked = ["id.server.", "hostname.bind."]
        .iter()
        .any(|n| name.to_ascii() == *n);
    if !asked {
        return false;
    }
    reply.metadata.authoritative = true;
    if matches!(query.query_type(), RecordType::TXT | RecordType::ANY) {
        let mut record = Record::from_rdata(
            query.name().clone(),
            0,
            RData::TXT(TXT::new(vec![identity.clone()])),
        );
        record.dns_class = DNSClass::CH;
        reply.add_answer(record);
    }
    true
}

/// Fills in the answer for a well-formed IN query.
fn resolve(reply: &mut Message, query: &Query, snapshot: &Snapshot, asker: &mut Asker) {
    let table = &snapshot.table;
    let qtype = query.query_type();
    // The owner name of answers is the query's own spelling, so a resolver
    // using 0x20 case randomisation sees its case come back.
    let mut name: Name = query.name().clone();
    let mut visited: HashSet<LowerName> = HashSet::new();
    for hop in 0..=MAX_CNAME_CHAIN {
        let lower = LowerName::new(&name);
        match table.lookup(&lower) {
            Lookup::OutOfDomain => {
                if hop == 0 {
                    reply.metadata.response_code = ResponseCode::Refused;
                }
                // A CNAME leading out of the domain: the resolver follows it.
                return;
            }
            Lookup::Delegated { cut } => {
                if hop == 0 && qtype == RecordType::DS && cut_name_is(&lower, cut) {
                    // DS lives on the parent side of the cut (RFC 4035
                    // 3.1.4.1): we are authoritative, and have none.
                    reply.metadata.authoritative = true;
                    negative(reply, snapshot);
                } else if hop == 0 {
                    referral(reply, cut, snapshot);
                }
                return;
            }
            Lookup::NxDomain => {
                reply.metadata.authoritative = true;
                reply.metadata.response_code = ResponseCode::NXDomain;
                negative(reply, snapshot);
                return;
            }
            // A wildcard's records answer under the name asked for: every
            // record is copied under `name` (RFC 4592 section 3.4.1).
            Lookup::Found(node) | Lookup::Wildcard(node) => {
                reply.metadata.authoritative = true;
                if qtype == RecordType::ANY {
                    if hop == 0 {
                        minimal_any(reply, &name, node, snapshot);
                    }
                    return;
                }
                if qtype != RecordType::CNAME
                    && let Some(target) = node.cname()
                {
                    let cname = node.rrset(RecordType::CNAME).expect("cname() found one");
                    push_owned(&mut reply.answers, &cname.records, &name);
                    visited.insert(lower);
                    if hop == MAX_CNAME_CHAIN || visited.contains(&LowerName::new(target)) {
                        return;
                    }
                    name = target.clone();
                    continue;
                }
                if let (Some(service), RecordType::A | RecordType::AAAA) = (node.service(), qtype) {
                    service_answer(reply, &name, qtype, service, snapshot, asker);
                    return;
                }
                match node.rrset(qtype) {
                    Some(set) => {
                        push_owned(&mut reply.answers, &set.records, &name);
                        let glue = snapshot.table.additional_for(&set.records);
                        reply.additionals.extend(glue.into_iter().cloned());
                    }
                    None => negative(reply, snapshot),
                }
                return;
            }
        }
    }
}

/// A load-balanced name: route, then answer with the chosen endpoints'
/// addresses of the asked type.
fn service_answer(
    reply: &mut Message,
    name: &Name,
    qtype: RecordType,
    service: usize,
    snapshot: &Snapshot,
    asker: &mut Asker,
) {
    let decision = route(
        &snapshot.config,
        &snapshot.health,
        &snapshot.router,
        service,
        asker.client,
    );
    asker.scope = decision.scope;
    let records = &snapshot.table.services[service];
    match answer_addresses(&decision.endpoints, decision.is_all_down) {
        AnswerAddresses::Fallback => {
            push_addresses(
                &mut reply.answers,
                records.fallback(qtype),
                records.ttl,
                name,
            );
        }
        AnswerAddresses::Endpoints {
            endpoints,
            usable_only,
        } => {
            for &e in endpoints {
                push_addresses(
                    &mut reply.answers,
                    records.addresses(qtype, e, usable_only),
                    records.ttl,
                    name,
                );
            }
        }
    }
    if reply.answers.iter().all(|r| r.record_type() != qtype) {
        negative(reply, snapshot);
    }
    asker.hit = Some(ServiceHit {
        service,
        endpoints: decision.endpoints,
    });
}

fn cut_name_is(name: &LowerName, cut: &Node) -> bool {
    cut.rrset(RecordType::NS)
        .and_then(|s| s.records.first())
        .is_some_and(|r| LowerName::new(&r.name) == *name)
}

/// A service's addresses as records in a section, under the owner name as
/// the client spelled it.
fn push_addresses(section: &mut Vec<Record>, addresses: &[IpAddr], ttl: u32, owner: &Name) {
    section.extend(
        addresses
            .iter()
            .map(|a| crate::dns::table::address_record(owner.clone(), ttl, *a)),
    );
}

/// Copies records into a section under the owner name as the client spelled it.
fn push_owned(section: &mut Vec<Record>, records: &[Record], owner: &Name) {
    section.extend(records.iter().map(|r| {
        let mut r = r.clone();
        r.name = owner.clone();
        r
    }));
}

/// NXDOMAIN and NODATA: the SOA in the authority section with the
/// negative TTL, so resolvers know how long to cache the absence.
fn negative(reply: &mut Message, snapshot: &Snapshot) {
    let mut soa = snapshot.table.soa().clone();
    soa.ttl = snapshot.table.negative_ttl();
    reply.authorities.push(soa);
}

/// Below a delegation: not authoritative, the child's NS set in authority
/// and any glue we hold in additional.
fn referral(reply: &mut Message, cut: &Node, snapshot: &Snapshot) {
    reply.metadata.authoritative = false;
    if let Some(ns) = cut.rrset(RecordType::NS) {
        reply.authorities.extend(ns.records.iter().cloned());
        for record in &ns.records {
            if let RData::NS(target) = &record.data {
                reply
                    .additionals
                    .extend(snapshot.table.addresses(&target.0).cloned());
            }
        }
    }
}

/// RFC 8482: one small synthesized HINFO instead of every record set.
fn minimal_any(reply: &mut Message, name: &Name, node: &Node, snapshot: &Snapshot) {
    if node.is_empty() {
        negative(reply, snapshot);
        return;
    }
    reply.answers.push(Record::from_rdata(
        name.clone(),
        snapshot.config.domain.ttl,
        RData::HINFO(HINFO::new("RFC8482".to_string(), String::new())),
    ));
}

/// Encodes the reply within the transport's size limit: over UDP a reply
/// that does not fit is replaced by its header, question and OPT with TC=1,
/// so the client retries over TCP and still learns our EDNS parameters.
fn encode(
    mut reply: Message,
    request: &Message,
    transport: Transport,
    snapshot: &Snapshot,
) -> Option<(Vec<u8>, bool)> {
    let limit = wire::reply_limit(
        transport,
        request.edns.as_ref().map(Edns::max_payload),
        snapshot.config.server.udp_payload_max,
    );
    if let Ok(bytes) = reply.to_vec()
        && bytes.len() <= limit
    {
        return Some((bytes, false));
    }
    reply.answers.clear();
    reply.authorities.clear();
    reply.additionals.clear();
    reply.metadata.truncation = true;
    match reply.to_vec() {
        Ok(bytes) if bytes.len() <= limit => Some((bytes, true)),
        Ok(_) => {
            // Only a pathological question is this large: send the header
            // (and OPT) alone rather than exceed the limit.
            reply.queries.clear();
            reply.to_vec().ok().map(|bytes| (bytes, true))
        }
        Err(err) => {
            tracing::warn!(%err, "cannot encode even a truncated reply; dropping it");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    //! The general path's reply shapes, one rule per test, on the example
    //! domain with the fixture's extra services and records.

    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    use hickory_proto::rr::rdata::{A, CNAME};

    use super::*;
    use crate::dns::fixture::{config, query, snapshot, snapshot_observed};
    use crate::health::AddressKey;
    use crate::health::state::Observed;

    /// A CNAME chain, a CNAME loop, a CNAME out of the domain, a
    /// delegation with glue, and a set too large for 512 bytes.
    const EXTRA: &str = r#"
[[records]]
name = "alias"
type = "CNAME"
data = "docs"
[[records]]
name = "loop1"
type = "CNAME"
data = "loop2"
[[records]]
name = "loop2"
type = "CNAME"
data = "loop1"
[[records]]
name = "away"
type = "CNAME"
data = "www.other.example."
[[records]]
name = "sub"
type = "NS"
data = "ns.sub"
[[records]]
name = "ns.sub"
type = "A"
data = "192.0.2.153"
[[records]]
name = "big"
type = "TXT"
data = [
  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
  "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
  "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
  "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
]
"#;

    fn source() -> IpAddr {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }

    fn example() -> Snapshot {
        snapshot(config(EXTRA), &[])
    }

    /// The reply to `request` over UDP from the loopback, parsed, with its facts.
    fn ask(snapshot: &Snapshot, request: &Message) -> (Message, Reply) {
        ask_bytes(snapshot, &request.to_vec().unwrap(), Transport::Udp)
    }

    fn ask_bytes(snapshot: &Snapshot, request: &[u8], transport: Transport) -> (Message, Reply) {
        let reply = answer(request, transport, source(), snapshot).expect("a reply");
        let message = Message::from_vec(&reply.wire).expect("the reply parses");
        (message, reply)
    }

    fn a(record: &Record) -> Ipv4Addr {
        match &record.data {
            RData::A(A(addr)) => *addr,
            other => panic!("not an A record: {other:?}"),
        }
    }

    fn cname(record: &Record) -> String {
        match &record.data {
            RData::CNAME(CNAME(target)) => target.to_ascii(),
            other => panic!("not a CNAME: {other:?}"),
        }
    }

    /// NXDOMAIN and NODATA: one SOA of the apex in authority, with the
    /// negative TTL (min of the SOA's TTL, 3600, and `minimum`, 60).
    fn assert_negative_soa(reply: &Message) {
        assert!(reply.answers.is_empty(), "{:?}", reply.answers);
        assert_eq!(reply.authorities.len(), 1, "{:?}", reply.authorities);
        let soa = &reply.authorities[0];
        assert_eq!(soa.record_type(), RecordType::SOA);
        assert_eq!(soa.name.to_ascii(), "gslb.example.");
        assert_eq!(soa.ttl, 60);
    }

    #[test]
    fn static_data_is_authoritative_in_the_querys_spelling() {
        let snapshot = example();
        let request = query("MAIL.Gslb.example.", RecordType::A, false);
        let (reply, facts) = ask(&snapshot, &request);
        assert_eq!(reply.id, request.id);
        assert_eq!(reply.message_type, MessageType::Response);
        assert_eq!(reply.response_code, ResponseCode::NoError);
        assert!(reply.authoritative, "AA on our own data");
        assert!(reply.recursion_desired, "RD copied");
        assert!(!reply.recursion_available, "RA never");
        assert_eq!(reply.answers.len(), 1);
        assert_eq!(a(&reply.answers[0]), Ipv4Addr::new(192, 0, 2, 25));
        assert_eq!(reply.answers[0].name.to_ascii(), "MAIL.Gslb.example.");
        assert_eq!(reply.answers[0].ttl, 300, "the domain's TTL");
        assert!(reply.edns.is_none(), "no OPT asked, none given");
        assert_eq!(facts.facts.rcode, ResponseCode::NoError);
        assert_eq!(facts.facts.qtype, Some(u16::from(RecordType::A)));
        assert!(facts.service.is_none());
    }

    #[test]
    fn a_missing_name_is_nxdomain_with_the_soa() {
        let snapshot = example();
        let (reply, facts) = ask(&snapshot, &query("nope.gslb.example.", RecordType::A, true));
        assert_eq!(reply.response_code, ResponseCode::NXDomain);
        assert_eq!(facts.facts.rcode, ResponseCode::NXDomain);
        assert!(reply.authoritative);
        assert_negative_soa(&reply);
        // Below a name that does not exist, too.
        let (reply, _) = ask(
            &snapshot,
            &query("x.nope.gslb.example.", RecordType::A, true),
        );
        assert_eq!(reply.response_code, ResponseCode::NXDomain);
        assert_negative_soa(&reply);
    }

    #[test]
    fn a_name_without_the_type_is_nodata_with_the_soa() {
        let snapshot = example();
        for (name, qtype) in [
            ("mail.gslb.example.", RecordType::TXT),
            // A service has addresses only.
            ("www.gslb.example.", RecordType::MX),
            // An empty non-terminal exists, with no data.
            ("nonterminal.gslb.example.", RecordType::A),
            ("empty.nonterminal.gslb.example.", RecordType::AAAA),
        ] {
            let (reply, _) = ask(&snapshot, &query(name, qtype, true));
            assert_eq!(reply.response_code, ResponseCode::NoError, "{name} {qtype}");
            assert!(reply.authoritative, "{name} {qtype}");
            assert_negative_soa(&reply);
        }
    }

    #[test]
    fn names_outside_the_domain_are_refused_without_aa() {
        let snapshot = example();
        for name in ["www.other.example.", "example.", "xgslb.example.", "."] {
            let (reply, facts) = ask(&snapshot, &query(name, RecordType::A, true));
            assert_eq!(reply.response_code, ResponseCode::Refused, "{name}");
            assert_eq!(facts.facts.rcode, ResponseCode::Refused);
            assert!(!reply.authoritative, "{name}");
            assert!(reply.answers.is_empty() && reply.authorities.is_empty());
        }
    }

    #[test]
    fn a_cname_chain_is_followed_to_the_service() {
        let snapshot = example();
        let (reply, facts) = ask(
            &snapshot,
            &query("alias.gslb.example.", RecordType::A, true),
        );
        assert_eq!(reply.response_code, ResponseCode::NoError);
        assert!(reply.authoritative);
        let owners: Vec<String> = reply.answers.iter().map(|r| r.name.to_ascii()).collect();
        assert_eq!(
            owners,
            [
                "alias.gslb.example.",
                "docs.gslb.example.",
                "www.gslb.example."
            ]
        );
        assert_eq!(cname(&reply.answers[0]), "docs.gslb.example.");
        assert_eq!(cname(&reply.answers[1]), "www.gslb.example.");
        // From the loopback, unlocated: the configured order, us-east first.
        assert_eq!(a(&reply.answers[2]), Ipv4Addr::new(192, 0, 2, 10));
        assert_eq!(reply.answers[2].ttl, 30, "the service's TTL");
        let hit = facts.service.expect("the service answered");
        assert_eq!((hit.service, hit.endpoints), (0, vec![0]));
        // Asked for the CNAME itself: only it.
        let (reply, _) = ask(
            &snapshot,
            &query("alias.gslb.example.", RecordType::CNAME, true),
        );
        assert_eq!(reply.answers.len(), 1);
        assert_eq!(cname(&reply.answers[0]), "docs.gslb.example.");
    }

    #[test]
    fn cname_loops_end_and_cnames_out_of_the_domain_are_left_to_the_resolver() {
        let snapshot = example();
        let (reply, _) = ask(
            &snapshot,
            &query("loop1.gslb.example.", RecordType::A, true),
        );
        assert_eq!(reply.response_code, ResponseCode::NoError);
        let targets: Vec<String> = reply.answers.iter().map(cname).collect();
        assert_eq!(targets, ["loop2.gslb.example.", "loop1.gslb.example."]);
        let (reply, _) = ask(&snapshot, &query("away.gslb.example.", RecordType::A, true));
        assert_eq!(reply.response_code, ResponseCode::NoError);
        assert!(reply.authoritative);
        assert_eq!(reply.answers.len(), 1);
        assert_eq!(cname(&reply.answers[0]), "www.other.example.");
        assert!(reply.authorities.is_empty(), "no SOA: the chain left us");
    }

    #[test]
    fn below_a_delegation_is_a_referral_with_glue() {
        let snapshot = example();
        for name in ["host.sub.gslb.example.", "sub.gslb.example."] {
            let (reply, _) = ask(&snapshot, &query(name, RecordType::A, true));
            assert_eq!(reply.response_code, ResponseCode::NoError, "{name}");
            assert!(!reply.authoritative, "{name}: the child is authoritative");
            assert!(reply.answers.is_empty());
            assert_eq!(reply.authorities.len(), 1);
            let ns = &reply.authorities[0];
            assert_eq!(ns.name.to_ascii(), "sub.gslb.example.");
            assert!(matches!(&ns.data, RData::NS(t) if t.0.to_ascii() == "ns.sub.gslb.example."));
            assert_eq!(reply.additionals.len(), 1, "the glue");
            assert_eq!(a(&reply.additionals[0]), Ipv4Addr::new(192, 0, 2, 153));
        }
        // DS is the parent's: answered here, authoritatively, with none.
        let (reply, _) = ask(&snapshot, &query("sub.gslb.example.", RecordType::DS, true));
        assert!(reply.authoritative);
        assert_negative_soa(&reply);
    }

    #[test]
    fn garbage_gets_formerr_and_non_queries_get_nothing() {
        let snapshot = example();
        // A header promising a question that is not there.
        let garbage = [0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
        let reply = answer(&garbage, Transport::Udp, source(), &snapshot).expect("FORMERR");
        assert_eq!(reply.wire.len(), HEADER_LEN, "the header alone");
        assert_eq!(reply.wire[..2], [0xab, 0xcd], "the id copied");
        assert_eq!(reply.wire[2], 0x81, "QR, RD copied");
        assert_eq!(reply.wire[3] & 0x0f, ResponseCode::FormErr.low());
        assert_eq!(reply.facts.rcode, ResponseCode::FormErr);
        assert_eq!(reply.facts.qtype, None);
        // Too short for a header, or a response: silence.
        assert!(answer(&garbage[..11], Transport::Udp, source(), &snapshot).is_none());
        let mut response = query("www.gslb.example.", RecordType::A, false)
            .to_vec()
            .unwrap();
        response[2] |= 0x80;
        assert!(answer(&response, Transport::Udp, source(), &snapshot).is_none());
        // Two questions: FORMERR, and neither is echoed.
        let mut two = query("www.gslb.example.", RecordType::A, false);
        two.add_query(Query::query(
            Name::from_ascii("mail.gslb.example.").unwrap(),
            RecordType::A,
        ));
        let (reply, _) = ask(&snapshot, &two);
        assert_eq!(reply.response_code, ResponseCode::FormErr);
        assert!(reply.queries.is_empty());
    }

    #[test]
    fn edns_versions_above_0_get_badvers_in_version_0() {
        let snapshot = example();
        let mut request = query("www.gslb.example.", RecordType::A, true);
        request.edns.as_mut().unwrap().set_version(1);
        let (reply, facts) = ask(&snapshot, &request);
        // BADVERS is 16: the OPT carries the high bits (hickory reads 16
        // as BADSIG, which shares the number).
        assert_eq!(u16::from(reply.response_code), 16);
        assert_eq!(u16::from(facts.facts.rcode), 16);
        let edns = reply.edns.as_ref().expect("an OPT");
        assert_eq!(edns.version(), 0);
        assert_eq!(edns.rcode_high(), 1);
        assert_eq!(edns.max_payload(), 1232, "our payload, not the client's");
        assert!(reply.answers.is_empty());
        assert!(facts.service.is_none());
    }

    #[test]
    fn service_answers_follow_the_decision_and_the_all_down_rule() {
        // `api` fails over eu-west, us-east, ap-south, with a fallback.
        let up = example();
        let (reply, facts) = ask(&up, &query("api.gslb.example.", RecordType::A, true));
        let addrs: Vec<Ipv4Addr> = reply.answers.iter().map(a).collect();
        assert_eq!(addrs, [Ipv4Addr::new(198, 51, 100, 20)]);
        assert_eq!(facts.service.unwrap().endpoints, [1]);
        // eu-west has no AAAA: NODATA, not another zone's address.
        let (reply, _) = ask(&up, &query("api.gslb.example.", RecordType::AAAA, true));
        assert_negative_soa(&reply);

        let down = snapshot(config(EXTRA), &["us-east", "eu-west", "ap-south"]);
        let (reply, facts) = ask(&down, &query("api.gslb.example.", RecordType::A, true));
        let addrs: Vec<Ipv4Addr> = reply.answers.iter().map(a).collect();
        assert_eq!(addrs, [Ipv4Addr::new(192, 0, 2, 99)], "the fallback");
        assert_eq!(facts.service.unwrap().endpoints, Vec::<usize>::new());
        let (reply, _) = ask(&down, &query("api.gslb.example.", RecordType::AAAA, true));
        assert!(
            matches!(&reply.answers[..], [r] if r.data.ip_addr() == Some("2001:db8::99".parse().unwrap()))
        );
        // `www` fails open: every endpoint, every address.
        let (reply, facts) = ask(&down, &query("www.gslb.example.", RecordType::A, true));
        let addrs: Vec<Ipv4Addr> = reply.answers.iter().map(a).collect();
        assert_eq!(
            addrs,
            [
                Ipv4Addr::new(192, 0, 2, 10),
                Ipv4Addr::new(198, 51, 100, 10),
                Ipv4Addr::new(203, 0, 113, 10)
            ]
        );
        assert_eq!(facts.service.unwrap().endpoints, [0, 1, 2]);
    }

    #[test]
    fn fail_open_answers_with_addresses_the_probes_see_down() {
        // Every address of `www` (service 0) down, none drained: nothing
        // serves, so fail-open names every address, down or not.
        let config = config(EXTRA);
        let mut observed = HashMap::new();
        for (endpoint, e) in config.services[0].endpoints.iter().enumerate() {
            for address in 0..e.addresses.len() {
                let key = AddressKey {
                    service: 0,
                    endpoint,
                    address,
                };
                observed.insert(key, Observed::Down);
            }
        }
        let down = snapshot_observed(config, &observed, &[]);
        let (reply, facts) = ask(&down, &query("www.gslb.example.", RecordType::A, true));
        let addrs: Vec<Ipv4Addr> = reply.answers.iter().map(a).collect();
        assert_eq!(
            addrs,
            [
                Ipv4Addr::new(192, 0, 2, 10),
                Ipv4Addr::new(198, 51, 100, 10),
                Ipv4Addr::new(203, 0, 113, 10)
            ]
        );
        assert_eq!(facts.service.unwrap().endpoints, [0, 1, 2]);
        // One address back up: only its endpoint serves, and only it.
        observed.insert(
            AddressKey {
                service: 0,
                endpoint: 2,
                address: 0,
            },
            Observed::Up,
        );
        let one = snapshot_observed(down.config.clone(), &observed, &[]);
        let (reply, _) = ask(&one, &query("www.gslb.example.", RecordType::A, true));
        let addrs: Vec<Ipv4Addr> = reply.answers.iter().map(a).collect();
        assert_eq!(addrs, [Ipv4Addr::new(203, 0, 113, 10)]);
        let (reply, _) = ask(&one, &query("www.gslb.example.", RecordType::AAAA, true));
        assert_negative_soa(&reply);
    }

    #[test]
    fn ecs_is_echoed_with_the_decisions_scope_and_malformed_ecs_is_formerr() {
        let snapshot = example();
        let with_ecs = |addr: &str, source_prefix: u8, scope: u8| {
            let mut request = query("www.gslb.example.", RecordType::A, true);
            request
                .edns
                .as_mut()
                .unwrap()
                .options_mut()
                .insert(EdnsOption::Subnet(ClientSubnet::new(
                    addr.parse().unwrap(),
                    source_prefix,
                    scope,
                )));
            request
        };
        // A European resolver's clients go to eu-west.
        let (reply, _) = ask(&snapshot, &with_ecs("193.0.0.0", 24, 0));
        assert_eq!(reply.response_code, ResponseCode::NoError);
        assert_eq!(a(&reply.answers[0]), Ipv4Addr::new(198, 51, 100, 10));
        let edns = reply.edns.as_ref().unwrap();
        let Some(EdnsOption::Subnet(echoed)) = edns.option(EdnsCode::Subnet) else {
            panic!("the ECS option is echoed");
        };
        assert_eq!(echoed.addr(), "193.0.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(echoed.source_prefix(), 24);
        assert!(
            (1..=24).contains(&echoed.scope_prefix()),
            "a GeoIP decision has a scope, within the source prefix: {}",
            echoed.scope_prefix()
        );
        // Source prefix 0: routed by the packet's source, scope 0.
        let (reply, _) = ask(&snapshot, &with_ecs("0.0.0.0", 0, 0));
        assert_eq!(a(&reply.answers[0]), Ipv4Addr::new(192, 0, 2, 10));
        let edns = reply.edns.as_ref().unwrap();
        assert!(
            matches!(edns.option(EdnsCode::Subnet), Some(EdnsOption::Subnet(s)) if s.scope_prefix() == 0)
        );
        // A scope in the query, or bits past the source prefix: FORMERR.
        for (addr, prefix, scope) in [("193.0.0.0", 24, 8), ("193.0.1.0", 23, 0)] {
            let (reply, _) = ask(&snapshot, &with_ecs(addr, prefix, scope));
            assert_eq!(
                reply.response_code,
                ResponseCode::FormErr,
                "{addr}/{prefix}"
            );
            assert!(reply.answers.is_empty());
        }
    }

    #[test]
    fn udp_replies_too_large_are_truncated_and_keep_the_opt() {
        let snapshot = example();
        let plain = query("big.gslb.example.", RecordType::TXT, false)
            .to_vec()
            .unwrap();
        let (reply, facts) = ask_bytes(&snapshot, &plain, Transport::Udp);
        assert!(reply.truncation, "over 512 bytes without EDNS");
        assert!(facts.facts.truncated);
        assert!(facts.wire.len() <= 512);
        assert!(reply.answers.is_empty());
        assert_eq!(reply.queries.len(), 1, "the question is kept");
        let (reply, facts) = ask_bytes(&snapshot, &plain, Transport::Tcp);
        assert!(!reply.truncation && !facts.facts.truncated);
        assert_eq!(reply.answers.len(), 4);
        // With EDNS and a payload of 512, still truncated, OPT kept.
        let mut small = query("big.gslb.example.", RecordType::TXT, true);
        small.edns.as_mut().unwrap().set_max_payload(512);
        let (reply, _) = ask(&snapshot, &small);
        assert!(reply.truncation);
        assert_eq!(reply.edns.as_ref().map(Edns::max_payload), Some(1232));
        // A payload of 1232 takes it whole.
        let (reply, _) = ask(
            &snapshot,
            &query("big.gslb.example.", RecordType::TXT, true),
        );
        assert!(!reply.truncation);
        assert_eq!(reply.answers.len(), 4);
    }

    #[test]
    fn meta_queries_get_their_own_answers() {
        let snapshot = example();
        // RFC 8482: ANY gets one synthesized HINFO.
        let (reply, _) = ask(&snapshot, &query("gslb.example.", RecordType::ANY, true));
        assert_eq!(reply.answers.len(), 1);
        assert_eq!(reply.answers[0].record_type(), RecordType::HINFO);
        // Transfers are not offered.
        let (reply, _) = ask(&snapshot, &query("gslb.example.", RecordType::AXFR, true));
        assert_eq!(reply.response_code, ResponseCode::Refused);
        assert!(reply.answers.is_empty());
    }
}
