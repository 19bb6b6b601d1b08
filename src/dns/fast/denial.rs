//! The NSEC proofs a fast-path reply to a DO=1 query of a signed domain
//! carries (RFC 4035 section 3.1.3): which links of the domain's chain
//! prove a name or a type absent. Apart from the answering because only
//! signed replies to DO=1 queries come here.

use hickory_proto::rr::RecordType;

use super::super::wire::NAME_MAX;
use super::{Plan, Records};
use crate::dnssec::SignedDomain;
use crate::snapshot::Snapshot;

/// Up to two NSEC links of the fast chain, each with the type a NODATA
/// lacks (which picks a service name's bitmap without it).
pub(super) type Denial = [Option<(usize, Option<RecordType>)>; 2];

/// The NSEC proofs a DO=1 reply planned for a signed domain needs, or
/// `None` to leave it to the general path: a wildcard's answer, a
/// delegation. A service's NODATA is found in `write`, once the decision's
/// records are known.
pub(super) fn denial(
    plan: &Plan,
    name: &[u8],
    qtype: u16,
    snapshot: &Snapshot,
    signed: &SignedDomain,
) -> Option<Denial> {
    let chain = &signed.fast_denial;
    if plan.is_wildcard {
        return None;
    }
    match plan.records {
        Records::Service { .. } => Some([None, None]),
        Records::Empty if !plan.in_domain => Some([None, None]),
        Records::Empty => {
            // NXDOMAIN: the name's cover, and the cover of the wildcard at
            // its closest encloser (the longest suffix that is a node; no
            // delegation lies between, or `plan` would have declined).
            let mut at = 0;
            let encloser = loop {
                at += usize::from(*name.get(at)?) + 1;
                let suffix = name.get(at..)?;
                if snapshot.fast.node(suffix).is_some() {
                    break suffix;
                }
            };
            let mut wildcard = [0u8; NAME_MAX];
            wildcard[..2].copy_from_slice(b"\x01*");
            wildcard[2..2 + encloser.len()].copy_from_slice(encloser);
            let name_cover = chain.covering(name)?;
            let wildcard_cover = chain.covering(&wildcard[..2 + encloser.len()])?;
            let second = (wildcard_cover != name_cover).then_some((wildcard_cover, None));
            Some([Some((name_cover, None)), second])
        }
        Records::Set(None) => {
            // NODATA: the name's own NSEC, or for an empty non-terminal
            // the one covering it.
            let proof = match chain.matching(name) {
                Some(link) => (link, Some(RecordType::from(qtype))),
                None => (chain.covering(name)?, None),
            };
            Some([Some(proof), None])
        }
        // A static set: its RRSIG was encoded with it.
        Records::Set(Some(set)) => (!set.rrsig.is_empty()).then_some([None, None]),
    }
}
