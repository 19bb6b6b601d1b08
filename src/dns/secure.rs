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
    let is_minimal_any = qtype == RecordType::ANY
        && matches!(&reply.answers[..], [r] if r.record_type() == RecordType::HINFO);
    if (qtype == RecordType::NSEC && reply.answers.is_empty() || is_minimal_any)
        && let Some(link) = signed.matching(qname)
    {
        // The NSEC set itself, asked for by name: it exists, signed. For
        // ANY, it is the one set RFC 8482 section 4.1 lets us pick, in
        // place of the synthesized HINFO, which no signature covers.
        reply.answers.clear();
        reply.authorities.clear();
        reply.answers.push(owned(&link.nsec, qname, link.nsec.ttl));
        reply
            .answers
            .push(owned(&link.rrsig, qname, link.rrsig.ttl));
        return;
    }
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

#[cfg(test)]
mod tests {
    //! DO=1 replies of the general path, each signature verified with ring
    //! over the records the reply carries.

    use std::net::{IpAddr, Ipv4Addr};

    use hickory_proto::op::{Edns, Message, ResponseCode};
    use hickory_proto::rr::{Name, RecordType};

    use crate::dns::fixture::{query, snapshot};
    use crate::dns::{Transport, answer};
    use crate::dnssec::canonical::compare_names;
    use crate::dnssec::key::Dnskey;
    use crate::dnssec::testing::{nsecs, rrsig_fields, signed_config, verify_reply};
    use crate::snapshot::Snapshot;

    fn signed() -> (Snapshot, Dnskey) {
        let (config, key) = signed_config(
            "[[records]]\nname = \"sub\"\ntype = \"NS\"\ndata = \"ns.sub\"\n\
             [[records]]\nname = \"ns.sub\"\ntype = \"A\"\ndata = \"192.0.2.153\"\n",
        );
        (snapshot(config, &[]), key)
    }

    fn ask_do(snapshot: &Snapshot, name: &str, qtype: RecordType, dnssec_ok: bool) -> Message {
        let mut request = query(name, qtype, true);
        request.edns.as_mut().unwrap().set_dnssec_ok(dnssec_ok);
        let bytes = request.to_vec().unwrap();
        let source = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let reply = answer(&bytes, Transport::Tcp, source, snapshot).unwrap();
        Message::from_vec(&reply.wire).unwrap()
    }

    fn apex() -> Name {
        Name::from_ascii("gslb.example.").unwrap()
    }

    #[test]
    fn positive_answers_carry_verifiable_rrsigs_and_never_ad() {
        let (snapshot, key) = signed();
        for (name, qtype) in [
            ("www.gslb.example.", RecordType::A),
            ("WwW.GSLB.example.", RecordType::AAAA),
            ("gslb.example.", RecordType::DNSKEY),
            ("gslb.example.", RecordType::SOA),
            ("gslb.example.", RecordType::NS),
            ("static.gslb.example.", RecordType::TXT),
            ("split.apps.gslb.example.", RecordType::A),
            ("every.gslb.example.", RecordType::A),
        ] {
            let reply = ask_do(&snapshot, name, qtype, true);
            assert_eq!(reply.response_code, ResponseCode::NoError, "{name} {qtype}");
            assert!(!reply.metadata.authentic_data, "AD is never ours to set");
            assert!(reply.edns.as_ref().unwrap().flags().dnssec_ok);
            let checked = verify_reply(&reply, &key, &apex());
            assert!(checked >= 1, "{name} {qtype}: signed");
        }
        // The checker fails a reply whose data was changed after signing.
        let mut forged = ask_do(&snapshot, "www.gslb.example.", RecordType::A, true);
        forged.answers[0].data = hickory_proto::rr::RData::A(Ipv4Addr::new(192, 0, 2, 66).into());
        let caught = std::panic::catch_unwind(|| verify_reply(&forged, &key, &apex()));
        assert!(caught.is_err(), "a forged address does not verify");
        // ANY with DO=1: the name's NSEC set, signed, instead of HINFO.
        let reply = ask_do(&snapshot, "www.gslb.example.", RecordType::ANY, true);
        assert_eq!(nsecs(&reply.answers).len(), 1, "{reply:?}");
        assert_eq!(verify_reply(&reply, &key, &apex()), 1);
        // An NSEC asked for by name is answered, signed.
        let reply = ask_do(&snapshot, "static.gslb.example.", RecordType::NSEC, true);
        assert_eq!(nsecs(&reply.answers).len(), 1, "{reply:?}");
        verify_reply(&reply, &key, &apex());
        // The DNSKEY set holds the signing key.
        let reply = ask_do(&snapshot, "gslb.example.", RecordType::DNSKEY, true);
        assert_eq!(reply.answers.len(), 2, "one key and its RRSIG");
    }

    #[test]
    fn do_0_gets_no_signatures() {
        let (snapshot, _) = signed();
        let reply = ask_do(&snapshot, "www.gslb.example.", RecordType::A, false);
        assert!(
            reply
                .answers
                .iter()
                .all(|r| r.record_type() == RecordType::A)
        );
        let reply = ask_do(&snapshot, "nope.gslb.example.", RecordType::A, false);
        assert_eq!(reply.authorities.len(), 1, "the SOA alone");
    }

    #[test]
    fn nxdomain_proves_the_name_and_the_wildcard_absent() {
        let (snapshot, key) = signed();
        let reply = ask_do(&snapshot, "nope.gslb.example.", RecordType::A, true);
        assert_eq!(reply.response_code, ResponseCode::NXDomain);
        verify_reply(&reply, &key, &apex());
        let proofs = nsecs(&reply.authorities);
        let covers = |name: &str| {
            let name = Name::from_ascii(name).unwrap();
            proofs.iter().any(|(owner, next, _)| {
                compare_names(owner, &name).is_lt()
                    && (compare_names(&name, next).is_lt() || *next == apex())
            })
        };
        assert!(covers("nope.gslb.example."), "{proofs:?}");
        assert!(covers("*.gslb.example."), "{proofs:?}");
    }

    #[test]
    fn nodata_shows_the_names_types_without_the_one_asked() {
        let (snapshot, key) = signed();
        for (name, qtype) in [
            ("static.gslb.example.", RecordType::MX),
            ("www.gslb.example.", RecordType::TXT),
            // api fails over to eu-west, which has no IPv6.
            ("api.gslb.example.", RecordType::AAAA),
        ] {
            let reply = ask_do(&snapshot, name, qtype, true);
            assert_eq!(reply.response_code, ResponseCode::NoError, "{name}");
            assert!(reply.answers.is_empty(), "{name} {qtype}");
            verify_reply(&reply, &key, &apex());
            let proofs = nsecs(&reply.authorities);
            let at = proofs
                .iter()
                .find(|(owner, ..)| *owner == Name::from_ascii(name).unwrap())
                .unwrap_or_else(|| panic!("{name}: an NSEC at the name: {proofs:?}"));
            assert!(
                !at.2.contains(&qtype),
                "{name}: {qtype} is not in {:?}",
                at.2
            );
        }
        // An empty non-terminal: the NSEC before it, pointing below it.
        let reply = ask_do(&snapshot, "nonterminal.gslb.example.", RecordType::A, true);
        verify_reply(&reply, &key, &apex());
        let proofs = nsecs(&reply.authorities);
        assert!(
            proofs
                .iter()
                .any(|(_, next, _)| next.to_ascii() == "deep.empty.nonterminal.gslb.example."),
            "{proofs:?}"
        );
    }

    #[test]
    fn wildcard_answers_are_signed_as_the_wildcard_with_the_name_proved_absent() {
        let (snapshot, key) = signed();
        let reply = ask_do(&snapshot, "host.apps.gslb.example.", RecordType::A, true);
        verify_reply(&reply, &key, &apex());
        let rrsig = reply
            .answers
            .iter()
            .find_map(rrsig_fields)
            .expect("an RRSIG");
        assert_eq!(rrsig.labels, 3, "*.apps.gslb.example. less the `*`");
        let proofs = nsecs(&reply.authorities);
        let host = Name::from_ascii("host.apps.gslb.example.").unwrap();
        assert!(
            proofs
                .iter()
                .any(|(owner, next, _)| compare_names(owner, &host).is_lt()
                    && compare_names(&host, next).is_lt()),
            "{proofs:?}"
        );
        // NODATA at a wildcard: the name's cover and the wildcard's NSEC.
        let reply = ask_do(&snapshot, "x.wild.gslb.example.", RecordType::A, true);
        verify_reply(&reply, &key, &apex());
        let proofs = nsecs(&reply.authorities);
        assert!(proofs.iter().any(
            |(owner, _, types)| owner.to_ascii() == "*.wild.gslb.example."
                && types.contains(&RecordType::TXT)
                && !types.contains(&RecordType::A)
        ));
        // A wildcard CNAME, then the target's own signed set.
        let reply = ask_do(&snapshot, "a.wild-alias.gslb.example.", RecordType::A, true);
        assert_eq!(verify_reply(&reply, &key, &apex()), 3, "CNAME, A, NSEC");
    }

    #[test]
    fn a_referral_proves_the_child_unsigned() {
        let (snapshot, key) = signed();
        let reply = ask_do(&snapshot, "host.sub.gslb.example.", RecordType::A, true);
        assert!(!reply.metadata.authoritative);
        verify_reply(&reply, &key, &apex());
        let proofs = nsecs(&reply.authorities);
        let (_, _, types) = proofs
            .iter()
            .find(|(owner, ..)| owner.to_ascii() == "sub.gslb.example.")
            .expect("the cut's NSEC");
        assert!(types.contains(&RecordType::NS) && !types.contains(&RecordType::DS));
        // DS at the cut: NODATA from the parent side, proved the same way.
        let reply = ask_do(&snapshot, "sub.gslb.example.", RecordType::DS, true);
        assert!(reply.metadata.authoritative);
        verify_reply(&reply, &key, &apex());
        assert!(!nsecs(&reply.authorities).is_empty());
    }

    #[test]
    fn a_signed_reply_too_large_for_udp_is_truncated_with_the_opt() {
        let (snapshot, _) = signed();
        let mut request = query("gslb.example.", RecordType::DNSKEY, true);
        let mut edns = Edns::new();
        edns.set_max_payload(512);
        edns.set_dnssec_ok(true);
        request.set_edns(edns);
        request.queries.clear();
        request.add_query(hickory_proto::op::Query::query(
            Name::from_ascii("nope.gslb.example.").unwrap(),
            RecordType::A,
        ));
        let bytes = request.to_vec().unwrap();
        let source = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let full = answer(&bytes, Transport::Tcp, source, &snapshot).unwrap();
        assert!(full.wire.len() > 512, "the signed NXDOMAIN is large");
        let udp = answer(&bytes, Transport::Udp, source, &snapshot).unwrap();
        let reply = Message::from_vec(&udp.wire).unwrap();
        assert!(reply.metadata.truncation && udp.wire.len() <= 512);
        assert!(reply.edns.as_ref().unwrap().flags().dnssec_ok, "OPT kept");
    }
}
