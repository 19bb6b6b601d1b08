//! The snapshot's answer data pre-encoded for the fast path.
//!
//! Built once per snapshot ([`FastTable::build`], called by the snapshot
//! build), never changed afterwards: every record set the fast path may
//! answer with is encoded here as the bytes a reply carries, with the
//! question's name as owner (a compression pointer), so answering is
//! copying. Names are keyed in lower-case wire form, as the fast path reads
//! them from a query.
//!
//! Invariants the fast path relies on: a name is `Answerable` only if it
//! has no CNAME and lies at or below no delegation (those need the general
//! path's chain following and referrals); record data is written with
//! names in full, so the bytes are valid after any question. Because every
//! answer's owner is a pointer to the question, a wildcard's node (`*.x`)
//! answers for any name it covers without re-encoding.
//!
//! This module reads the domain table and the config and nothing above
//! them: the snapshot imports it, so it must not import the snapshot.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use super::names::{Key, NameIndex};
use super::table::{DomainTable, ServiceRecords, Unchanged};
use super::wire::{HEADER_LEN, NAME_MAX};
use crate::config::Config;
use crate::dnssec::SignedDomain;

/// A compression pointer to the question's name, which always starts right
/// after the header: every answer's owner is the name as the client wrote it.
const OWNER_IS_QNAME: [u8; 2] = [0xC0, HEADER_LEN as u8];

/// Resource records of one set, encoded with the question's name as owner.
/// Shared (an `Arc`, read through as directly as a `Box`) so an unchanged
/// service's sets pass to the next snapshot without a copy.
#[derive(Debug, Clone, Default)]
pub(super) struct EncodedSet {
    pub(super) count: u16,
    pub(super) wire: Arc<[u8]>,
}

impl EncodedSet {
    /// Records answering the question: their owner is the question's name.
    fn encode(records: &[Record]) -> EncodedSet {
        EncodedSet::encode_each(records.iter(), |_, wire| {
            wire.extend_from_slice(&OWNER_IS_QNAME)
        })
    }

    /// Addresses of `record_type` (A or AAAA) answering the question
    /// with `ttl`, class IN. An empty set is the one shared empty buffer:
    /// a service of three endpoints with IPv4 addresses only and no
    /// fallback has 8 empty sets of its 14.
    fn encode_addresses(record_type: RecordType, ttl: u32, addresses: &[IpAddr]) -> EncodedSet {
        static EMPTY: std::sync::LazyLock<Arc<[u8]>> = std::sync::LazyLock::new(|| Arc::from([]));
        if addresses.is_empty() {
            return EncodedSet {
                count: 0,
                wire: EMPTY.clone(),
            };
        }
        SCRATCH.with_borrow_mut(|(wire, _)| {
            wire.clear();
            for address in addresses {
                let octets: &[u8] = match address {
                    IpAddr::V4(v4) => &v4.octets(),
                    IpAddr::V6(v6) => &v6.octets(),
                };
                wire.extend_from_slice(&OWNER_IS_QNAME);
                wire.extend_from_slice(&u16::from(record_type).to_be_bytes());
                wire.extend_from_slice(&u16::from(DNSClass::IN).to_be_bytes());
                wire.extend_from_slice(&ttl.to_be_bytes());
                wire.extend_from_slice(&(octets.len() as u16).to_be_bytes());
                wire.extend_from_slice(octets);
            }
            EncodedSet {
                count: addresses.len() as u16,
                wire: Arc::from(&wire[..]),
            }
        })
    }

    /// Records under their own names (additional data), written in full.
    fn encode_owned(records: &[&Record]) -> EncodedSet {
        EncodedSet::encode_each(records.iter().copied(), |r, wire| {
            write_wire_name(&r.name, wire)
        })
    }

    /// Writes each record into a buffer kept per thread and copies the
    /// result out once: a snapshot of 10,000 services encodes some 60,000
    /// sets, and with a buffer for each record's owner, its data and the
    /// growing set, those allocations were most of the fast table's build
    /// (about 7,300 instructions a service, callgrind over reloads).
    fn encode_each<'r>(
        records: impl Iterator<Item = &'r Record>,
        owner: impl Fn(&Record, &mut Vec<u8>),
    ) -> EncodedSet {
        SCRATCH.with_borrow_mut(|(wire, rdata)| {
            wire.clear();
            let mut count = 0u16;
            for record in records {
                if !rdata_into(&record.data, rdata) {
                    continue;
                }
                owner(record, wire);
                wire.extend_from_slice(&u16::from(record.record_type()).to_be_bytes());
                wire.extend_from_slice(&u16::from(record.dns_class).to_be_bytes());
                wire.extend_from_slice(&record.ttl.to_be_bytes());
                wire.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
                wire.extend_from_slice(rdata);
                count += 1;
            }
            EncodedSet {
                count,
                wire: Arc::from(&wire[..]),
            }
        })
    }
}

thread_local! {
    /// A set's records and one record's data, written before the set is
    /// copied out (see [`EncodedSet::encode_each`]).
    static SCRATCH: std::cell::RefCell<(Vec<u8>, Vec<u8>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Writes record data into `out` (emptied first) with any names in it in
/// full, so the bytes can follow any question; false if it cannot be
/// written. Addresses, nearly every record here, are copied as they are.
fn rdata_into(data: &RData, out: &mut Vec<u8>) -> bool {
    out.clear();
    match data {
        RData::A(a) => out.extend_from_slice(&a.0.octets()),
        RData::AAAA(aaaa) => out.extend_from_slice(&aaaa.0.octets()),
        _ => {
            let mut encoder = BinEncoder::new(out);
            encoder.set_name_encoding(NameEncoding::Uncompressed);
            return data.emit(&mut encoder).is_ok();
        }
    }
    true
}

/// One record set's answer and the additional data that goes with it.
#[derive(Debug)]
pub(super) struct EncodedAnswer {
    pub(super) record_type: u16,
    pub(super) answers: EncodedSet,
    pub(super) additionals: EncodedSet,
    /// The set's RRSIG for DO=1 when the domain is signed; else empty.
    pub(super) rrsig: Box<[u8]>,
}

/// What a name in the domain allows the fast path to do.
#[derive(Debug)]
pub(super) enum FastNode {
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

/// One service's address records per endpoint, encoded. Cloning it is
/// three reference counts: the next snapshot takes an unchanged
/// service's as it is.
#[derive(Debug, Default, Clone)]
pub(super) struct FastService {
    /// Per endpoint: A usable, A all, AAAA usable, AAAA all.
    endpoints: Arc<[[EncodedSet; 4]]>,
    fallback_a: EncodedSet,
    fallback_aaaa: EncodedSet,
}

impl FastService {
    fn build(records: &ServiceRecords) -> FastService {
        let set = |t, addresses: &[IpAddr]| EncodedSet::encode_addresses(t, records.ttl, addresses);
        let endpoints = (0..records.endpoints())
            .map(|e| {
                // Usually every address is usable: then the two sets are
                // one.
                let usable_and_all = |t| {
                    let (usable, all) = (
                        records.addresses(t, e, true),
                        records.addresses(t, e, false),
                    );
                    let usable_set = set(t, usable);
                    let all_set = if usable == all {
                        usable_set.clone()
                    } else {
                        set(t, all)
                    };
                    (usable_set, all_set)
                };
                let (a, all_a) = usable_and_all(RecordType::A);
                let (aaaa, all_aaaa) = usable_and_all(RecordType::AAAA);
                [a, all_a, aaaa, all_aaaa]
            })
            .collect();
        FastService {
            endpoints,
            fallback_a: set(RecordType::A, records.fallback(RecordType::A)),
            fallback_aaaa: set(RecordType::AAAA, records.fallback(RecordType::AAAA)),
        }
    }

    /// One endpoint's A (or AAAA) records: its usable addresses, or all.
    #[inline]
    pub(super) fn endpoint(
        &self,
        endpoint: usize,
        is_v6: bool,
        usable_only: bool,
    ) -> Option<&EncodedSet> {
        let sets = self.endpoints.get(endpoint)?;
        Some(&sets[usize::from(is_v6) * 2 + usize::from(!usable_only)])
    }

    /// The all-down fallback's A (or AAAA) records.
    #[inline]
    pub(super) fn fallback(&self, is_v6: bool) -> &EncodedSet {
        if is_v6 {
            &self.fallback_aaaa
        } else {
            &self.fallback_a
        }
    }
}

/// The snapshot's data in the form the fast path reads.
#[derive(Debug)]
pub struct FastTable {
    /// The apex, compared with names in any letter case.
    apex: Key,
    /// By lower-case wire name (found in any case); only names at or
    /// below the apex.
    nodes: NameIndex<FastNode>,
    /// With delegations, a missing name may lie below a cut (a referral,
    /// not NXDOMAIN): the general path decides those.
    has_delegations: bool,
    /// With wildcards, a missing name may be covered by one (an answer,
    /// not NXDOMAIN): [`FastTable::wildcard_for`] finds it.
    has_wildcards: bool,
    /// Built with RRSIGs: the next snapshot signs anew.
    is_signed: bool,
    services: Vec<FastService>,
    /// The SOA of negative answers, names written in full as configured.
    negative_soa: Box<[u8]>,
    udp_payload_max: u16,
}

impl FastTable {
    /// Encodes `table` (the snapshot's domain table, built from `config`),
    /// with each set's RRSIG from `signed` when the domain is signed.
    pub fn build(config: &Config, table: &DomainTable, signed: Option<&SignedDomain>) -> FastTable {
        FastTable::build_after(config, table, signed, None)
    }

    /// [`FastTable::build`], taking the encoded records of the services
    /// `unchanged` names from `previous`, the fast table built beside
    /// `unchanged.table`.
    pub fn build_after(
        config: &Config,
        table: &DomainTable,
        signed: Option<&SignedDomain>,
        previous: Option<(&FastTable, Unchanged<'_>)>,
    ) -> FastTable {
        let apex = lower_wire(&Name::from(table.apex()));
        // Unsigned, over the same names as the table `previous` was built
        // beside: its names encode to the same bytes.
        let shared = previous.filter(|(fast, unchanged)| {
            signed.is_none() && !fast.is_signed && table.shares_names_with(unchanged.table)
        });
        let (nodes, has_delegations) = match shared {
            Some((fast, _)) => (fast.nodes.clone(), fast.has_delegations),
            None => encode_nodes(table, &apex, signed),
        };
        FastTable {
            apex: Key::new(&apex),
            nodes,
            has_delegations,
            is_signed: signed.is_some(),
            has_wildcards: table.has_wildcards(),
            services: table
                .services
                .iter()
                .enumerate()
                .map(|(i, records)| {
                    previous
                        .and_then(|(fast, unchanged)| fast.services.get(unchanged.previous(i)?))
                        .cloned()
                        .unwrap_or_else(|| FastService::build(records))
                })
                .collect(),
            negative_soa: negative_soa(table),
            udp_payload_max: config.server.udp_payload_max,
        }
    }
}

impl FastTable {
    /// Whether the two share their names' encoding.
    #[cfg(test)]
    pub(crate) fn shares_names_with(&self, other: &FastTable) -> bool {
        self.nodes.is_shared_with(&other.nodes)
    }

    /// The node at a wire name (in any letter case), if the domain has
    /// one there. Every node is the apex or below it: finding a name
    /// proves it is in the domain.
    #[inline(always)]
    pub(super) fn node(&self, name: &[u8]) -> Option<&FastNode> {
        self.nodes.get(name)
    }

    /// Whether a wire name (in any letter case) is the apex or lies
    /// below it.
    #[inline]
    pub(super) fn is_in_domain(&self, name: &[u8]) -> bool {
        name.len()
            .checked_sub(self.apex.len())
            .is_some_and(|at| self.apex.matches(&name[at..]) && is_label_start(name, at))
    }

    /// Whether the domain has delegations: then a missing name may lie
    /// below a cut (a referral, not NXDOMAIN).
    #[inline]
    pub(super) fn has_delegations(&self) -> bool {
        self.has_delegations
    }

    /// Whether the domain has wildcard names: then a missing name may be
    /// covered by one.
    #[inline]
    pub(super) fn has_wildcards(&self) -> bool {
        self.has_wildcards
    }

    /// For a lower-case wire name in the domain that has no node, the
    /// wildcard covering it (RFC 4592 section 3.3.1): `*.` its closest
    /// encloser, the longest suffix that is a node. Every ancestor of a
    /// node is a node, so the first suffix found is the closest. `None`
    /// is NXDOMAIN. Only meaningful without delegations, where no cut
    /// can lie between the name and its encloser.
    pub(super) fn wildcard_for(&self, lower_name: &[u8]) -> Option<&FastNode> {
        let mut at = 0;
        while at < lower_name.len() {
            at += usize::from(lower_name[at]) + 1;
            let suffix = lower_name.get(at..)?;
            if self.nodes.get(suffix).is_some() {
                // `\x01*` and the encloser: shorter than the name, whose
                // first label took at least two bytes.
                let mut source = [0u8; NAME_MAX];
                source[..2].copy_from_slice(b"\x01*");
                source[2..2 + suffix.len()].copy_from_slice(suffix);
                return self.nodes.get(&source[..2 + suffix.len()]);
            }
        }
        None
    }

    #[inline]
    pub(super) fn service(&self, service: usize) -> &FastService {
        &self.services[service]
    }

    /// The SOA record of negative answers, with the negative TTL.
    #[inline]
    pub(super) fn negative_soa(&self) -> &[u8] {
        &self.negative_soa
    }

    /// The EDNS payload size we advertise and the most a UDP reply may take.
    #[inline]
    pub(super) fn udp_payload_max(&self) -> u16 {
        self.udp_payload_max
    }
}

/// Every name of `table` (whose apex is `apex`) as the fast path reads
/// it, and whether any is a delegation.
fn encode_nodes(
    table: &DomainTable,
    apex: &[u8],
    signed: Option<&SignedDomain>,
) -> (NameIndex<FastNode>, bool) {
    let mut nodes = Vec::new();
    let cuts: Vec<Vec<u8>> = table
        .nodes()
        .filter(|(_, node)| node.is_delegation())
        .map(|(name, _)| lower_wire(&Name::from(name)))
        .collect();
    for (name, node) in table.nodes() {
        let wire = lower_wire(&Name::from(name));
        if !is_at_or_below(&wire, apex) {
            // The table holds only names in the domain; were one
            // outside, finding it must still not make it ours.
            continue;
        }
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
                    rrsig: signed
                        .and_then(|s| s.rrsig_for_fast_path(&set.records))
                        .unwrap_or_default()
                        .into_boxed_slice(),
                })
                .collect();
            FastNode::Answerable {
                service: node.service(),
                sets,
            }
        };
        nodes.push((wire.into_boxed_slice(), entry));
    }
    (NameIndex::build(nodes), !cuts.is_empty())
}

/// Whether `at` is where a label starts in wire name `name`.
fn is_label_start(name: &[u8], at: usize) -> bool {
    let mut cursor = 0;
    while cursor < at {
        cursor += usize::from(name[cursor]) + 1;
    }
    cursor == at
}

fn negative_soa(table: &DomainTable) -> Box<[u8]> {
    let mut soa = table.soa().clone();
    soa.ttl = table.negative_ttl();
    Box::from(&*EncodedSet::encode_owned(&[&soa]).wire)
}

/// Appends a name to `wire` as length-prefixed labels, as spelled, root
/// included.
fn write_wire_name(name: &Name, wire: &mut Vec<u8>) {
    for label in name.iter() {
        wire.push(label.len() as u8);
        wire.extend_from_slice(label);
    }
    wire.push(0);
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
