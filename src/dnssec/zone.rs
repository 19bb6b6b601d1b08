//! The domain signed at snapshot build: an RRSIG for every set an answer
//! can carry, and the NSEC chain that proves what does not exist.
//!
//! Every answer a snapshot can give is known when it is built: static sets
//! are fixed, and a service's answer for one family is the union of the
//! addresses of the endpoints a decision picks, which (health being frozen
//! in the snapshot) is one of the `answers`-sized subsets of the serving
//! endpoints, or the all-down answer. Each distinct set is signed here,
//! through the [`SignatureCache`], so the answer path only looks
//! signatures up.
//!
//! A service name's NSEC bitmap depends on the decision (a zone with no
//! IPv6 makes AAAA a NODATA there), so a service name gets one NSEC per
//! bitmap an answer may need: the full one, and one without A or AAAA when
//! some decision has none of that family.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::time::SystemTime;

use hickory_proto::rr::rdata::NULL;
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use super::canonical::{self, compare_names};
use super::denial::{FastDenial, LinkRecords};
use super::sign::{SetToSign, SignatureCache, Signer, Window};
use crate::config::{AllDown, Config, Policy};
use crate::dns::table::{DomainTable, Lookup, Node};
use crate::health::HealthView;

/// Decisions signed per service and family at most; past it, answers for
/// the sets left out go unsigned (and fail validation), and a warning says
/// so. 1,024 covers e.g. 2 answers out of 45 serving zones.
const MAX_SUBSETS: usize = 1024;

/// A set as the answer path finds its signature: owner, type and RDATA,
/// all canonical.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SetKey {
    owner: Vec<u8>,
    record_type: u16,
    rdata: Vec<Vec<u8>>,
}

impl SetKey {
    fn new<'r>(
        owner: &Name,
        record_type: RecordType,
        data: impl Iterator<Item = &'r RData>,
    ) -> Self {
        SetKey {
            owner: canonical::name_wire(owner),
            record_type: u16::from(record_type),
            rdata: canonical::sorted_rdata(data),
        }
    }
}

/// One name of the NSEC chain: its NSEC and that NSEC's RRSIG, and for a
/// service name the variants without A or without AAAA.
#[derive(Debug, Clone)]
pub struct Link {
    pub owner: Name,
    pub nsec: Record,
    pub rrsig: Record,
    /// (type left out of the bitmap, NSEC, RRSIG).
    variants: Vec<(RecordType, Record, Record)>,
}

impl Link {
    /// The NSEC (and RRSIG) whose bitmap does not have `absent`.
    pub fn without(&self, absent: RecordType) -> (&Record, &Record) {
        self.variants
            .iter()
            .find(|(t, ..)| *t == absent)
            .map_or((&self.nsec, &self.rrsig), |(_, n, s)| (n, s))
    }
}

/// Signatures and the NSEC chain of one snapshot.
#[derive(Debug)]
pub struct SignedDomain {
    signatures: HashMap<SetKey, Record>,
    /// Per service decision, its RRSIG encoded as the fast path appends it
    /// (owner: a pointer to the question), keyed by [`DecisionKey`].
    decisions: HashMap<DecisionKey, Vec<u8>, foldhash::fast::FixedState>,
    /// In canonical order, the apex first.
    chain: Vec<Link>,
    /// The chain and the negative SOA's RRSIG, encoded for the fast path.
    pub fast_denial: FastDenial,
    pub window: Window,
}

impl SignedDomain {
    /// Signs `table` as `config` and `health` make it, or `None` when the
    /// config has no `[dnssec]`.
    pub fn build(
        config: &Config,
        table: &DomainTable,
        health: &HealthView,
        cache: &SignatureCache,
        now: SystemTime,
    ) -> Option<SignedDomain> {
        let settings = config.dnssec.as_ref()?;
        let now = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let apex = config.domain.name.clone();
        let signer = Signer {
            key: &settings.key,
            signer_name: &apex,
            window: Window::at(now, settings.validity, settings.refresh),
            cache,
        };
        let mut signed = SignedDomain {
            signatures: HashMap::new(),
            decisions: HashMap::default(),
            chain: Vec::new(),
            fast_denial: FastDenial::default(),
            window: signer.window,
        };
        // (owner, types, for a service: which families may be empty)
        let mut names: Vec<ChainName> = Vec::new();
        for (lower, node) in table.nodes() {
            let name = Name::from(lower);
            let at_cut = match table.lookup(lower) {
                Lookup::Delegated { cut } if is_cut_named(cut, lower) => true,
                Lookup::Delegated { .. } => continue, // glue: not ours to sign
                _ => false,
            };
            if at_cut {
                names.push((name, vec![RecordType::NS], [false; 2], None));
                continue;
            }
            let mut types: Vec<RecordType> = Vec::new();
            for set in node.rrsets() {
                let Some(first) = set.records.first() else {
                    continue;
                };
                types.push(set.record_type);
                signed.sign(
                    &signer,
                    &first.name,
                    set.record_type,
                    first.ttl,
                    &set.records,
                );
            }
            let mut may_be_empty = [false; 2];
            if let Some(service) = node.service() {
                for (f, record_type) in [RecordType::A, RecordType::AAAA].into_iter().enumerate() {
                    let decisions = service_sets(config, table, health, service, record_type);
                    if decisions.iter().any(|(_, set)| !set.is_empty()) {
                        types.push(record_type);
                    }
                    may_be_empty[f] = decisions.iter().any(|(_, set)| set.is_empty());
                    let ttl = config.services[service].ttl;
                    let owner = &config.services[service].name;
                    for (choice, set) in decisions.iter().filter(|(_, set)| !set.is_empty()) {
                        if let Some(rrsig) = signed.sign(&signer, owner, record_type, ttl, set)
                            && *choice != UNKEYED
                        {
                            let key = DecisionKey::new(service, record_type, *choice);
                            signed.decisions.insert(key, encode_for_fast_path(&rrsig));
                        }
                    }
                }
            }
            if !types.is_empty() || node.service().is_some() {
                names.push((name, types, may_be_empty, node.service()));
            }
        }
        names.sort_by(|a, b| compare_names(&a.0, &b.0));
        let ttl = table.negative_ttl();
        for i in 0..names.len() {
            let (owner, types, may_be_empty, _) = &names[i];
            let next = &names[(i + 1) % names.len()].0;
            let (nsec, rrsig) = signed.nsec(&signer, owner, next, types, ttl);
            let mut variants = Vec::new();
            for (f, family) in [RecordType::A, RecordType::AAAA].into_iter().enumerate() {
                if may_be_empty[f] && types.contains(&family) {
                    let fewer: Vec<RecordType> =
                        types.iter().copied().filter(|t| *t != family).collect();
                    let (n, s) = signed.nsec(&signer, owner, next, &fewer, ttl);
                    variants.push((family, n, s));
                }
            }
            signed.chain.push(Link {
                owner: owner.clone(),
                nsec,
                rrsig,
                variants,
            });
        }
        let mut service_links = vec![None; config.services.len()];
        for (i, (.., service)) in names.iter().enumerate() {
            if let Some(s) = service {
                service_links[*s] = Some(i);
            }
        }
        let soa = table.soa();
        let soa_rrsig = signed
            .rrsig(&soa.name, std::slice::from_ref(soa))
            .map(|(r, _)| r.clone());
        let links: Vec<LinkRecords<'_>> = signed
            .chain
            .iter()
            .map(|l| LinkRecords {
                owner: &l.owner,
                nsec: &l.nsec,
                rrsig: &l.rrsig,
                variants: l.variants.iter().map(|(t, n, s)| (*t, n, s)).collect(),
            })
            .collect();
        let fast_denial = FastDenial::build(
            &links,
            service_links,
            soa_rrsig.as_ref(),
            table.negative_ttl(),
        );
        signed.fast_denial = fast_denial;
        Some(signed)
    }

    fn sign(
        &mut self,
        signer: &Signer<'_>,
        owner: &Name,
        record_type: RecordType,
        ttl: u32,
        records: &[Record],
    ) -> Option<Record> {
        let key = SetKey::new(owner, record_type, records.iter().map(|r| &r.data));
        if let Some(rrsig) = self.signatures.get(&key) {
            return Some(rrsig.clone());
        }
        let set = SetToSign {
            owner,
            record_type,
            ttl,
            rdata: key.rdata.clone(),
        };
        let rrsig = signer.sign(&set)?;
        self.signatures.insert(key, rrsig.clone());
        Some(rrsig)
    }

    /// An NSEC at `owner` pointing at `next` with `types` (RRSIG and NSEC
    /// added), and its signature.
    fn nsec(
        &mut self,
        signer: &Signer<'_>,
        owner: &Name,
        next: &Name,
        types: &[RecordType],
        ttl: u32,
    ) -> (Record, Record) {
        let mut all = types.to_vec();
        all.extend([RecordType::RRSIG, RecordType::NSEC]);
        let mut rdata = canonical::name_wire(next);
        rdata.extend(canonical::type_bitmap(&all));
        let nsec = Record::from_rdata(
            owner.clone(),
            ttl,
            RData::Unknown {
                code: RecordType::NSEC,
                rdata: NULL::with(rdata),
            },
        );
        let set = SetToSign {
            owner,
            record_type: RecordType::NSEC,
            ttl,
            rdata: canonical::sorted_rdata(std::iter::once(&nsec.data)),
        };
        let rrsig = signer.sign(&set).unwrap_or_else(|| nsec.clone());
        (nsec, rrsig)
    }

    /// The RRSIG over `records` (one set) at `owner`; failing that, the one
    /// over the same set at a wildcard `*.ancestor` of `owner`, with that
    /// wildcard's name, for an answer synthesized from it.
    pub fn rrsig(&self, owner: &Name, records: &[Record]) -> Option<(&Record, Option<Name>)> {
        let first = records.first()?;
        let data = || records.iter().map(|r| &r.data);
        let key = SetKey::new(owner, first.record_type(), data());
        if let Some(sig) = self.signatures.get(&key) {
            return Some((sig, None));
        }
        let star = Name::from_ascii("*").ok()?;
        let mut ancestor = owner.base_name();
        loop {
            let wildcard = star.clone().append_domain(&ancestor).ok()?;
            let key = SetKey::new(&wildcard, first.record_type(), data());
            if let Some(sig) = self.signatures.get(&key) {
                return Some((sig, Some(wildcard)));
            }
            if ancestor.is_root() {
                return None;
            }
            ancestor = ancestor.base_name();
        }
    }

    /// The NSEC owned by `name`, if `name` is in the chain.
    pub fn matching(&self, name: &Name) -> Option<&Link> {
        self.chain
            .binary_search_by(|l| compare_names(&l.owner, name))
            .ok()
            .map(|i| &self.chain[i])
    }

    /// The NSEC whose span holds `name`: the last owner before it in
    /// canonical order (the chain wraps to the apex).
    pub fn covering(&self, name: &Name) -> Option<&Link> {
        let at = self
            .chain
            .partition_point(|l| compare_names(&l.owner, name) == Ordering::Less);
        match at {
            0 => self.chain.last(),
            i => self.chain.get(i - 1),
        }
    }

    /// The RRSIG over the answer a service decision gives, encoded to be
    /// appended to a fast-path reply; `None` when that decision was not
    /// signed (more endpoints than a key names, or past `MAX_SUBSETS`).
    #[inline]
    pub fn decision_rrsig(&self, key: DecisionKey) -> Option<&[u8]> {
        self.decisions.get(&key).map(Vec::as_slice)
    }

    /// The RRSIG over a static set (owner: its first record's), encoded to
    /// follow the set in a fast-path answer.
    pub fn rrsig_for_fast_path(&self, records: &[Record]) -> Option<Vec<u8>> {
        let first = records.first()?;
        let (rrsig, wildcard) = self.rrsig(&first.name, records)?;
        wildcard.is_none().then(|| encode_for_fast_path(rrsig))
    }

    /// RRsets signed.
    pub fn signature_count(&self) -> usize {
        self.signatures.len()
    }

    /// Names in the NSEC chain.
    pub fn chain_len(&self) -> usize {
        self.chain.len()
    }
}

/// A name of the NSEC chain while it is built: owner, types, whether a
/// decision may lack A or AAAA there, and the service it is.
type ChainName = (Name, Vec<RecordType>, [bool; 2], Option<usize>);

fn is_cut_named(cut: &Node, name: &LowerName) -> bool {
    cut.rrset(RecordType::NS)
        .and_then(|s| s.records.first())
        .is_some_and(|r| LowerName::new(&r.name) == *name)
}

/// One service decision as the fast path knows it: the service, the
/// family, and which records: the bit of each chosen endpoint, bit 63 for
/// "every address, usable or not" (fail-open), or all ones for the
/// fallback addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecisionKey {
    service: u32,
    is_v6: bool,
    choice: u64,
}

/// Endpoints a decision key can name (bit 63 is the fail-open flag).
pub const MAX_KEYED_ENDPOINTS: usize = 63;

/// The choice of a decision no key can name: never signed for the fast path.
const UNKEYED: u64 = u64::MAX - 1;

impl DecisionKey {
    fn new(service: usize, record_type: RecordType, choice: u64) -> DecisionKey {
        DecisionKey {
            service: service as u32,
            is_v6: record_type == RecordType::AAAA,
            choice,
        }
    }

    /// The key of the answer to a decision: `endpoints` with whether only
    /// their usable addresses answer, or `None` for the fallback. `None`
    /// when an endpoint index is past what a key can name.
    #[inline]
    pub fn of(service: usize, is_v6: bool, endpoints: Option<(&[usize], bool)>) -> Option<Self> {
        let choice = match endpoints {
            None => u64::MAX,
            Some((endpoints, usable_only)) => {
                let mut mask = if usable_only { 0 } else { 1 << 63 };
                for &e in endpoints {
                    if e >= MAX_KEYED_ENDPOINTS {
                        return None;
                    }
                    mask |= 1 << e;
                }
                mask
            }
        };
        Some(DecisionKey {
            service: service as u32,
            is_v6,
            choice,
        })
    }
}

/// An RRSIG record as wire bytes, its owner a pointer to the question.
fn encode_for_fast_path(rrsig: &Record) -> Vec<u8> {
    let RData::Unknown { rdata, .. } = &rrsig.data else {
        return Vec::new();
    };
    let mut out = vec![0xc0, 0x0c];
    out.extend_from_slice(&u16::from(RecordType::RRSIG).to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&rrsig.ttl.to_be_bytes());
    out.extend_from_slice(&(rdata.anything.len() as u16).to_be_bytes());
    out.extend_from_slice(&rdata.anything);
    out
}

/// Every answer of `record_type` a decision for `service` can give in this
/// snapshot, with the decision's choice (see [`DecisionKey`]); an empty
/// set is a NODATA.
fn service_sets(
    config: &Config,
    table: &DomainTable,
    health: &HealthView,
    service: usize,
    record_type: RecordType,
) -> Vec<(u64, Vec<Record>)> {
    let svc = &config.services[service];
    let records = &table.services[service];
    let views = health
        .endpoints
        .get(service)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let serving: Vec<usize> = (0..svc.endpoints.len())
        .filter(|e| views.get(*e).is_none_or(|v| v.is_serving()))
        .collect();
    let union = |endpoints: &[usize], usable_only: bool| -> (u64, Vec<Record>) {
        let choice = DecisionKey::of(service, false, Some((endpoints, usable_only)))
            .map_or(UNKEYED, |k| k.choice);
        let set = endpoints
            .iter()
            .flat_map(|e| {
                records
                    .addresses(record_type, *e, usable_only)
                    .iter()
                    .map(|a| records.record(*a))
            })
            .collect();
        (choice, set)
    };
    let mut decisions = Vec::new();
    if serving.is_empty() {
        match &svc.all_down {
            AllDown::Fallback(_) => {
                let fallback = records.fallback(record_type).iter();
                decisions.push((u64::MAX, fallback.map(|a| records.record(*a)).collect()));
            }
            AllDown::FailOpen => {
                let every: Vec<usize> = (0..svc.endpoints.len()).collect();
                decisions.push(union(&every, false));
            }
        }
        return decisions;
    }
    let size = if matches!(svc.policy, Policy::All) {
        serving.len()
    } else {
        svc.answers.min(serving.len())
    };
    let complete = for_each_subset(&serving, size, &mut |chosen| {
        if decisions.len() >= MAX_SUBSETS {
            return false;
        }
        decisions.push(union(chosen, true));
        true
    });
    if !complete {
        tracing::warn!(
            service = %svc.name,
            limit = MAX_SUBSETS,
            "too many possible answers to sign them all; some answers will not validate"
        );
    }
    decisions
}

/// Calls `each` with every `size`-element subset of `items`, in order,
/// until it returns `false`; returns whether every subset was visited.
fn for_each_subset(items: &[usize], size: usize, each: &mut dyn FnMut(&[usize]) -> bool) -> bool {
    fn walk(
        items: &[usize],
        size: usize,
        chosen: &mut Vec<usize>,
        each: &mut dyn FnMut(&[usize]) -> bool,
    ) -> bool {
        if chosen.len() == size {
            return each(chosen);
        }
        for (i, item) in items.iter().enumerate() {
            if items.len() - i < size - chosen.len() {
                break;
            }
            chosen.push(*item);
            let go_on = walk(&items[i + 1..], size, chosen, each);
            chosen.pop();
            if !go_on {
                return false;
            }
        }
        true
    }
    walk(items, size, &mut Vec::with_capacity(size), each)
}

#[cfg(test)]
#[path = "zone_tests.rs"]
mod tests;
