//! Request bytes in, reply bytes out: the authoritative answer logic.
//!
//! This is the hot path's core and it is pure: it reads one [`Snapshot`],
//! takes no lock, does no I/O and never panics on input. The UDP and TCP
//! servers, tests and benchmarks all call the same [`answer`], so there is
//! one definition of what Meridian says.
//!
//! Behaviour follows what resolvers and registries expect of an
//! authoritative server (Knot DNS is the reference): AA on authoritative
//! data, RA never, RD and CD copied; REFUSED outside the domain; SOA in the
//! authority section of NXDOMAIN and NODATA; CNAME chains followed inside
//! the domain; referrals with glue below delegations; EDNS(0) per RFC 6891
//! (BADVERS for versions above 0, unknown options ignored); TC=1 with the
//! OPT kept when a UDP reply does not fit; a minimal answer to ANY
//! (RFC 8482); FORMERR or silence for malformed packets.

use std::collections::HashSet;
use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::HINFO;
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
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
    let message = match Message::from_vec(request) {
        Ok(message) => message,
        Err(_) => {
            return Some(Reply {
                wire: format_error(request),
                facts: ReplyFacts {
                    qtype: None,
                    rcode: ResponseCode::FormErr,
                    truncated: false,
                },
                service: None,
                has_valid_cookie: false,
            });
        }
    };
    let mut asker = Asker {
        source,
        cookie: CookieCheck::Absent,
        client: Client::from_source(source),
        ecs: None,
        scope: 0,
        hit: None,
    };
    let reply = respond(&message, snapshot, &mut asker);
    let rcode = reply.metadata.response_code;
    let (wire, truncated) = encode(reply, &message, transport, snapshot)?;
    Some(Reply {
        wire,
        facts: ReplyFacts {
            qtype: message.queries.first().map(|q| q.query_type()),
            rcode,
            truncated,
        },
        service: if truncated { None } else { asker.hit },
        has_valid_cookie: asker.cookie.is_valid(),
    })
}

/// FORMERR for a packet whose header we can read but whose body we cannot.
fn format_error(request: &[u8]) -> Vec<u8> {
    let mut reply = vec![0u8; HEADER_LEN];
    reply[0..2].copy_from_slice(&request[0..2]);
    // QR=1, opcode copied, RD copied; AA, TC clear.
    reply[2] = 0x80 | (request[2] & 0x78) | (request[2] & 0x01);
    reply[3] = ResponseCode::FormErr.low();
    reply
}

/// The reply as a message, before size limits are applied.
fn respond(request: &Message, snapshot: &Snapshot, asker: &mut Asker) -> Message {
    let mut reply = Message::new(request.id, MessageType::Response, request.op_code);
    reply.metadata.recursion_desired = request.recursion_desired;
    reply.metadata.checking_disabled = request.checking_disabled;
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
    if request.queries.len() != 1 {
        reply.metadata.response_code = ResponseCode::FormErr;
        return reply;
    }
    if let Some(edns) = &request.edns
        && edns.version() > 0
    {
        // RFC 6891 section 6.1.3: answer with the version we speak.
        reply.metadata.response_code = ResponseCode::BADVERS;
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
    if query.query_class() != DNSClass::IN {
        reply.metadata.response_code = ResponseCode::Refused;
        return reply;
    }
    if let Some(edns) = &request.edns {
        asker.cookie = match edns.option(EdnsCode::Cookie) {
            None => CookieCheck::Absent,
            Some(EdnsOption::Unknown(_, data)) => {
                cookie::check(data, asker.source, &cookie_secret(snapshot))
            }
            Some(_) => CookieCheck::Malformed,
        };
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
    }
    resolve(&mut reply, query, snapshot, asker);
    if let (Some(client), Some(edns)) = (asker.cookie.client_cookie(), reply.edns.as_mut()) {
        let payload = cookie::reply(client, asker.source, &cookie_secret(snapshot));
        edns.options_mut().insert(EdnsOption::Unknown(
            u16::from(EdnsCode::Cookie),
            payload.to_vec(),
        ));
    }
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
    let mut edns = Edns::new();
    edns.set_max_payload(snapshot.config.server.udp_payload_max);
    edns.set_version(0);
    // RFC 3225: DO is copied; we have no signatures to add.
    edns.set_dnssec_ok(request.flags().dnssec_ok);
    edns
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
            Lookup::Found(node) => {
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
            push_owned(&mut reply.answers, records.fallback(qtype), name);
        }
        AnswerAddresses::Endpoints {
            endpoints,
            usable_only,
        } => {
            for &e in endpoints {
                push_owned(
                    &mut reply.answers,
                    records.records(qtype, e, usable_only),
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
