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
    /// In canonical order, the apex first.
    chain: Vec<Link>,
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
            chain: Vec::new(),
            window: signer.window,
        };
        // (owner, types, for a service: which families may be empty)
        let mut names: Vec<(Name, Vec<RecordType>, [bool; 2])> = Vec::new();
        for (lower, node) in table.nodes() {
            let name = Name::from(lower);
            let at_cut = match table.lookup(lower) {
                Lookup::Delegated { cut } if is_cut_named(cut, lower) => true,
                Lookup::Delegated { .. } => continue, // glue: not ours to sign
                _ => false,
            };
            if at_cut {
                names.push((name, vec![RecordType::NS], [false; 2]));
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
                    let (sets, has_empty) =
                        service_sets(config, table, health, service, record_type);
                    if !sets.is_empty() {
                        types.push(record_type);
                    }
                    may_be_empty[f] = has_empty;
                    let ttl = config.services[service].ttl;
                    let owner = &config.services[service].name;
                    for set in sets {
                        signed.sign(&signer, owner, record_type, ttl, &set);
                    }
                }
            }
            if !types.is_empty() || node.service().is_some() {
                names.push((name, types, may_be_empty));
            }
        }
        names.sort_by(|a, b| compare_names(&a.0, &b.0));
        let ttl = table.negative_ttl();
        for i in 0..names.len() {
            let (owner, types, may_be_empty) = &names[i];
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
        Some(signed)
    }

    fn sign(
        &mut self,
        signer: &Signer<'_>,
        owner: &Name,
        record_type: RecordType,
        ttl: u32,
        records: &[Record],
    ) {
        let key = SetKey::new(owner, record_type, records.iter().map(|r| &r.data));
        if self.signatures.contains_key(&key) {
            return;
        }
        let set = SetToSign {
            owner,
            record_type,
            ttl,
            rdata: key.rdata.clone(),
        };
        if let Some(rrsig) = signer.sign(&set) {
            self.signatures.insert(key, rrsig);
        }
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

    /// RRsets signed.
    pub fn signature_count(&self) -> usize {
        self.signatures.len()
    }

    /// Names in the NSEC chain.
    pub fn chain_len(&self) -> usize {
        self.chain.len()
    }
}

fn is_cut_named(cut: &Node, name: &LowerName) -> bool {
    cut.rrset(RecordType::NS)
        .and_then(|s| s.records.first())
        .is_some_and(|r| LowerName::new(&r.name) == *name)
}

/// Every distinct answer set of `record_type` a decision for `service`
/// can give in this snapshot, and whether some decision has none.
fn service_sets(
    config: &Config,
    table: &DomainTable,
    health: &HealthView,
    service: usize,
    record_type: RecordType,
) -> (Vec<Vec<Record>>, bool) {
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
    let mut sets: Vec<Vec<Record>> = Vec::new();
    let mut has_empty = false;
    let mut add = |set: Vec<Record>| {
        if set.is_empty() {
            has_empty = true;
        } else {
            sets.push(set);
        }
    };
    if serving.is_empty() {
        match &svc.all_down {
            AllDown::Fallback(_) => add(records.fallback(record_type).to_vec()),
            AllDown::FailOpen => add((0..svc.endpoints.len())
                .flat_map(|e| records.records(record_type, e, false).iter().cloned())
                .collect()),
        }
    } else {
        let size = if matches!(svc.policy, Policy::All) {
            serving.len()
        } else {
            svc.answers.min(serving.len())
        };
        let mut subsets = 0;
        let complete = for_each_subset(&serving, size, &mut |chosen| {
            subsets += 1;
            if subsets > MAX_SUBSETS {
                return false;
            }
            add(chosen
                .iter()
                .flat_map(|e| records.records(record_type, *e, true).iter().cloned())
                .collect());
            true
        });
        if !complete {
            tracing::warn!(
                service = %svc.name,
                limit = MAX_SUBSETS,
                "too many possible answers to sign them all; some answers will not validate"
            );
        }
    }
    sets.sort_by_key(|s| canonical::sorted_rdata(s.iter().map(|r| &r.data)));
    sets.dedup_by_key(|s| canonical::sorted_rdata(s.iter().map(|r| &r.data)));
    (sets, has_empty)
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
