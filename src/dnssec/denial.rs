//! The NSEC chain as the fast path reads it: owners in lower-case wire
//! form, ordered canonically, and each link's NSEC and RRSIG encoded as
//! the authority section carries them, so a DO=1 NXDOMAIN or NODATA is
//! answered by two binary searches and copies, without allocating.

use std::cmp::Ordering;

use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::canonical;

/// One link of the chain as the signed domain holds it.
pub(super) struct LinkRecords<'r> {
    pub owner: &'r Name,
    pub nsec: &'r Record,
    pub rrsig: &'r Record,
    /// (type left out, NSEC, RRSIG).
    pub variants: Vec<(RecordType, &'r Record, &'r Record)>,
}

/// Labels a name can have at most (255 bytes, two per label).
const MAX_LABELS: usize = 128;

/// The fast path's copy of the chain.
#[derive(Debug, Default)]
pub struct FastDenial {
    /// Link owners, lower-case wire form, in canonical order.
    owners: Vec<Box<[u8]>>,
    /// Per link: its NSEC and RRSIG, owners written in full.
    proofs: Vec<Box<[u8]>>,
    /// Per link: (type left out, NSEC and RRSIG) for a service name.
    variants: Vec<Vec<(RecordType, Box<[u8]>)>>,
    /// Per service (config order), its link.
    service_links: Vec<Option<usize>>,
    /// The negative SOA's RRSIG, owner in full, negative TTL.
    soa_rrsig: Box<[u8]>,
}

impl FastDenial {
    pub(super) fn build(
        chain: &[LinkRecords<'_>],
        services: Vec<Option<usize>>,
        soa_rrsig: Option<&Record>,
        negative_ttl: u32,
    ) -> FastDenial {
        let pair = |nsec: &Record, rrsig: &Record| -> Box<[u8]> {
            let mut out = encode(nsec, nsec.ttl);
            out.extend(encode(rrsig, rrsig.ttl));
            out.into_boxed_slice()
        };
        FastDenial {
            owners: chain
                .iter()
                .map(|l| canonical::name_wire(l.owner).into_boxed_slice())
                .collect(),
            proofs: chain.iter().map(|l| pair(l.nsec, l.rrsig)).collect(),
            variants: chain
                .iter()
                .map(|l| {
                    l.variants
                        .iter()
                        .map(|(t, n, s)| (*t, pair(n, s)))
                        .collect()
                })
                .collect(),
            service_links: services,
            soa_rrsig: soa_rrsig
                .map(|r| encode(r, negative_ttl).into_boxed_slice())
                .unwrap_or_default(),
        }
    }

    /// The link owned by a lower-case wire name.
    #[inline]
    pub fn matching(&self, name: &[u8]) -> Option<usize> {
        self.owners.binary_search_by(|o| compare_wire(o, name)).ok()
    }

    /// The link whose span holds a lower-case wire name.
    #[inline]
    pub fn covering(&self, name: &[u8]) -> Option<usize> {
        let at = self
            .owners
            .partition_point(|o| compare_wire(o, name) == Ordering::Less);
        if self.owners.is_empty() {
            return None;
        }
        Some(if at == 0 {
            self.owners.len() - 1
        } else {
            at - 1
        })
    }

    /// A service name's link.
    #[inline]
    pub fn service_link(&self, service: usize) -> Option<usize> {
        self.service_links.get(service).copied().flatten()
    }

    /// A link's NSEC and RRSIG, the variant without `absent` if it has one.
    #[inline]
    pub fn proof(&self, link: usize, absent: Option<RecordType>) -> &[u8] {
        absent
            .and_then(|t| self.variants[link].iter().find(|(v, _)| *v == t))
            .map_or(&self.proofs[link], |(_, p)| p)
    }

    /// The RRSIG of the negative SOA (empty if the SOA was not signed).
    #[inline]
    pub fn soa_rrsig(&self) -> &[u8] {
        &self.soa_rrsig
    }
}

/// A record with its owner in full (lower case) and `ttl`.
fn encode(record: &Record, ttl: u32) -> Vec<u8> {
    let RData::Unknown { code, rdata } = &record.data else {
        return Vec::new();
    };
    let mut out = canonical::name_wire(&record.name);
    out.extend_from_slice(&u16::from(*code).to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(rdata.anything.len() as u16).to_be_bytes());
    out.extend_from_slice(&rdata.anything);
    out
}

/// Label start offsets of a wire name (root label excluded); `None` for
/// a malformed one.
fn labels(name: &[u8], starts: &mut [u8; MAX_LABELS]) -> Option<usize> {
    let mut count = 0;
    let mut at = 0;
    loop {
        let len = usize::from(*name.get(at)?);
        if len == 0 {
            return Some(count);
        }
        *starts.get_mut(count)? = at as u8;
        count += 1;
        at += len + 1;
    }
}

/// Canonical order (RFC 4034 section 6.1) of two lower-case wire names.
pub fn compare_wire(a: &[u8], b: &[u8]) -> Ordering {
    let (mut sa, mut sb) = ([0u8; MAX_LABELS], [0u8; MAX_LABELS]);
    let (Some(na), Some(nb)) = (labels(a, &mut sa), labels(b, &mut sb)) else {
        return a.cmp(b);
    };
    for i in 1..=na.min(nb) {
        let (x, y) = (usize::from(sa[na - i]), usize::from(sb[nb - i]));
        let label_a = &a[x + 1..x + 1 + usize::from(a[x])];
        let label_b = &b[y + 1..y + 1 + usize::from(b[y])];
        match label_a.cmp(label_b) {
            Ordering::Equal => {}
            other => return other,
        }
    }
    na.cmp(&nb)
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::Name;

    use super::*;

    #[test]
    fn wire_order_is_the_canonical_order() {
        let names = [
            "example.",
            "a.example.",
            "yljkjljk.a.example.",
            "z.a.example.",
            "zabc.a.example.",
            "z.example.",
            "*.z.example.",
            "zz.example.",
            "a.zz.example.",
        ];
        for a in names {
            for b in names {
                let (x, y) = (Name::from_ascii(a).unwrap(), Name::from_ascii(b).unwrap());
                assert_eq!(
                    compare_wire(&canonical::name_wire(&x), &canonical::name_wire(&y)),
                    canonical::compare_names(&x, &y),
                    "{a} {b}"
                );
            }
        }
    }
}
