//! DO=1 on the general path: the reply the rest of `answer` built, with
//! the signatures and denial proofs the snapshot already holds attached.
//!
//! Nothing is signed here. Every RRset in the answer gets its RRSIG (a
//! set synthesized from a wildcard gets the wildcard's, and an NSEC proving
//! the name asked for does not exist, RFC 4035 section 3.1.3.3); a negative
//! answer gets its SOA's RRSIG and the NSECs RFC 4035 section 3.1.3 asks
//! for; a referral gets the NSEC proving the child has no DS. The AD bit is
//! never set: an authoritative server vouches for nothing by it.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use super::table::{DomainTable, Lookup};
use crate::dnssec::zone::{Link, SignedDomain};

/// Adds signatures and proofs to `reply`, the answer to `qname`/`qtype`.
pub fn attach(
    reply: &mut Message,
    qname: &Name,
    qtype: RecordType,
    table: &DomainTable,
    signed: &SignedDomain,
) {
    let mut proofs: Vec<Record> = Vec::new();
    let answers = std::mem::take(&mut reply.answers);
    let mut start = 0;
    while start < answers.len() {
        let first = &answers[start];
        let end = start
            + answers[start..]
                .iter()
                .take_while(|r| {
                    r.record_type() == first.record_type()
                        && LowerName::new(&r.name) == LowerName::new(&first.name)
                })
                .count();
        let set = &answers[start..end];
        reply.answers.extend(set.iter().cloned());
        if let Some((rrsig, wildcard)) = signed.rrsig(&first.name, set) {
            reply.answers.push(owned(rrsig, &first.name, first.ttl));
            if wildcard.is_some()
                && let Some(link) = signed.covering(&first.name)
            {
                push_link(&mut proofs, link.nsec.clone(), link.rrsig.clone());
            }
        }
        start = end;
    }
    let final_name = chain_end(qname, &reply.answers);
    let is_referral = !reply.metadata.authoritative;
    let mut authority = std::mem::take(&mut reply.authorities);
    let mut extra: Vec<Record> = Vec::new();
    for record in &authority {
        match record.record_type() {
            RecordType::SOA => {
                let set = std::slice::from_ref(record);
                if let Some((rrsig, _)) = signed.rrsig(&record.name, set) {
                    extra.push(owned(rrsig, &record.name, record.ttl));
                }
                negative_proofs(reply, &final_name, qtype, table, signed, &mut proofs);
            }
            RecordType::NS if is_referral => {
                // RFC 4035 section 3.1.4: an unsigned delegation's NSEC,
                // which shows there is no DS.
                if let Some(link) = signed.matching(&record.name) {
                    push_link(&mut proofs, link.nsec.clone(), link.rrsig.clone());
                }
            }
            _ => {}
        }
    }
    authority.extend(extra);
    for proof in proofs {
        if !authority.contains(&proof) {
            authority.push(proof);
        }
    }
    reply.authorities = authority;
}

/// NXDOMAIN: the NSEC covering the name and the one covering the wildcard
/// at its closest encloser. NODATA: the NSEC at the name (or, for an
/// empty non-terminal, the one covering it), and for a wildcard match
/// both the name's cover and the wildcard's own NSEC.
fn negative_proofs(
    reply: &Message,
    name: &Name,
    qtype: RecordType,
    table: &DomainTable,
    signed: &SignedDomain,
    proofs: &mut Vec<Record>,
) {
    let cover = |proofs: &mut Vec<Record>, name: &Name| {
        if let Some(link) = signed.covering(name) {
            push_link(proofs, link.nsec.clone(), link.rrsig.clone());
        }
    };
    let at = |proofs: &mut Vec<Record>, link: Option<&Link>| {
        if let Some(link) = link {
            let (nsec, rrsig) = link.without(qtype);
            push_link(proofs, nsec.clone(), rrsig.clone());
        }
    };
    if reply.metadata.response_code == ResponseCode::NXDomain {
        cover(proofs, name);
        if let Some(wildcard) = wildcard_of(&closest_encloser(table, name)) {
            cover(proofs, &wildcard);
        }
        return;
    }
    match table.lookup(&LowerName::new(name)) {
        Lookup::Found(node) if node.is_empty() => cover(proofs, name),
        Lookup::Found(_) | Lookup::Delegated { .. } => at(proofs, signed.matching(name)),
        Lookup::Wildcard(_) => {
            cover(proofs, name);
            if let Some(wildcard) = wildcard_of(&closest_encloser(table, name)) {
                at(proofs, signed.matching(&wildcard));
            }
        }
        Lookup::NxDomain | Lookup::OutOfDomain => {}
    }
}

/// The deepest existing ancestor of a name that does not exist.
fn closest_encloser(table: &DomainTable, name: &Name) -> Name {
    let mut ancestor = name.base_name();
    while LowerName::new(&ancestor) != *table.apex() && !ancestor.is_root() {
        if matches!(table.lookup(&LowerName::new(&ancestor)), Lookup::Found(_)) {
            return ancestor;
        }
        ancestor = ancestor.base_name();
    }
    ancestor
}

fn wildcard_of(encloser: &Name) -> Option<Name> {
    Name::from_ascii("*").ok()?.append_domain(encloser).ok()
}

/// Where the answer's CNAME chain from `qname` ends.
fn chain_end(qname: &Name, answers: &[Record]) -> Name {
    let mut name = qname.clone();
    for _ in 0..answers.len() {
        let next = answers.iter().find_map(|r| match &r.data {
            RData::CNAME(target) if LowerName::new(&r.name) == LowerName::new(&name) => {
                Some(target.0.clone())
            }
            _ => None,
        });
        match next {
            Some(target) => name = target,
            None => break,
        }
    }
    name
}

/// An RRSIG under the owner and TTL the set has in this reply.
fn owned(rrsig: &Record, owner: &Name, ttl: u32) -> Record {
    let mut rrsig = rrsig.clone();
    rrsig.name = owner.clone();
    rrsig.ttl = ttl;
    rrsig
}

fn push_link(proofs: &mut Vec<Record>, nsec: Record, rrsig: Record) {
    if !proofs.contains(&nsec) {
        proofs.push(nsec);
        proofs.push(rrsig);
    }
}
