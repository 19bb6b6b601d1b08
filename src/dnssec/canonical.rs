//! RFC 4034 section 6: the canonical forms that make a signature
//! reproducible. Names lower-cased and uncompressed, names inside the RDATA
//! of the types that carry them lower-cased too, records of a set sorted
//! by their RDATA bytes, and names ordered label by label from the right.

use std::cmp::Ordering;

use hickory_proto::rr::rdata::{CNAME, MX, NS, PTR, SOA, SRV};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

/// The name in canonical wire form: labels lower-cased, uncompressed.
pub fn name_wire(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out
}

/// The RRSIG Labels field: the owner's labels, a leading `*` not counted
/// (RFC 4034 section 3.1.3), so a validator can tell a wildcard expansion.
pub fn signed_labels(owner: &Name) -> u8 {
    // hickory-proto's count already leaves a leading `*` out.
    owner.num_labels()
}

/// Canonical name order (RFC 4034 section 6.1): compare labels from the
/// rightmost, each as lower-cased octets; a name that runs out of labels
/// first sorts first.
pub fn compare_names(a: &Name, b: &Name) -> Ordering {
    let mut left = a.iter().rev();
    let mut right = b.iter().rev();
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let x = x.iter().map(u8::to_ascii_lowercase);
                let y = y.iter().map(u8::to_ascii_lowercase);
                match x.cmp(y) {
                    Ordering::Equal => {}
                    other => return other,
                }
            }
        }
    }
}

/// RDATA in canonical form (RFC 4034 section 6.2, as narrowed by RFC 6840
/// section 5.1): the names in the types this domain can hold lower-cased,
/// nothing compressed.
pub fn rdata_wire(data: &RData) -> Vec<u8> {
    let lowered = match data {
        RData::NS(ns) => Some(RData::NS(NS(ns.0.to_lowercase()))),
        RData::CNAME(c) => Some(RData::CNAME(CNAME(c.0.to_lowercase()))),
        RData::PTR(p) => Some(RData::PTR(PTR(p.0.to_lowercase()))),
        RData::MX(mx) => Some(RData::MX(MX::new(
            mx.preference,
            mx.exchange.to_lowercase(),
        ))),
        RData::SRV(srv) => Some(RData::SRV(SRV::new(
            srv.priority,
            srv.weight,
            srv.port,
            srv.target.to_lowercase(),
        ))),
        RData::SOA(soa) => Some(RData::SOA(SOA::new(
            soa.mname.to_lowercase(),
            soa.rname.to_lowercase(),
            soa.serial,
            soa.refresh,
            soa.retry,
            soa.expire,
            soa.minimum,
        ))),
        _ => None,
    };
    let data = lowered.as_ref().unwrap_or(data);
    let mut out = Vec::new();
    let mut encoder = BinEncoder::new(&mut out);
    encoder.set_canonical_form(true);
    // Every RData the table holds encodes; an error would be a bug in the
    // encoder, and an empty RDATA then fails validation visibly.
    let _ = data.emit(&mut encoder);
    out
}

/// The RDATA of a set, each in canonical form, sorted and without
/// duplicates: the order the signature covers (RFC 4034 section 6.3).
pub fn sorted_rdata<'r>(records: impl Iterator<Item = &'r RData>) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = records.map(rdata_wire).collect();
    out.sort();
    out.dedup();
    out
}

/// The NSEC type bitmap (RFC 4034 section 4.1.2): per window of 256
/// types, as many bytes as the highest type present needs.
pub fn type_bitmap(types: &[RecordType]) -> Vec<u8> {
    let mut codes: Vec<u16> = types.iter().map(|t| u16::from(*t)).collect();
    codes.sort_unstable();
    codes.dedup();
    let mut out = Vec::new();
    let mut index = 0;
    while index < codes.len() {
        let window = (codes[index] >> 8) as u8;
        let mut bits = [0u8; 32];
        let mut used = 0;
        while index < codes.len() && (codes[index] >> 8) as u8 == window {
            let low = (codes[index] & 0xff) as usize;
            bits[low / 8] |= 0x80 >> (low % 8);
            used = used.max(low / 8 + 1);
            index += 1;
        }
        out.push(window);
        out.push(used as u8);
        out.extend_from_slice(&bits[..used]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::A;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    #[test]
    fn names_sort_as_rfc_4034_section_6_1_lists_them() {
        // The RFC's own example, in its order (labels as raw octets, since
        // \001 and \200 are not host names).
        let ordered: [&[&[u8]]; 9] = [
            &[b"example"],
            &[b"a", b"example"],
            &[b"yljkjljk", b"a", b"example"],
            &[b"Z", b"a", b"example"],
            &[b"zABC", b"a", b"EXAMPLE"],
            &[b"z", b"example"],
            &[b"\x01", b"z", b"example"],
            &[b"*", b"z", b"example"],
            &[b"\x80", b"z", b"example"],
        ];
        let ordered: Vec<Name> = ordered
            .iter()
            .map(|labels| Name::from_labels(labels.iter().copied()).unwrap())
            .collect();
        let mut names: Vec<Name> = ordered.iter().rev().cloned().collect();
        names.sort_by(compare_names);
        assert_eq!(names, ordered);
        assert_eq!(
            compare_names(&name("A.example."), &name("a.EXAMPLE.")),
            Ordering::Equal
        );
    }

    #[test]
    fn canonical_rdata_lowers_embedded_names_and_sorts_the_set() {
        let mx = RData::MX(MX::new(10, name("Mail.Example.")));
        assert_eq!(
            rdata_wire(&mx),
            [&[0u8, 10][..], &name_wire(&name("mail.example."))].concat()
        );
        let b = RData::A(A([192, 0, 2, 2].into()));
        let a = RData::A(A([192, 0, 2, 1].into()));
        let sorted = sorted_rdata([&b, &a, &b].into_iter());
        assert_eq!(sorted, vec![vec![192, 0, 2, 1], vec![192, 0, 2, 2]]);
        assert_eq!(name_wire(&name("A.b.")), [1, b'a', 1, b'b', 0]);
        assert_eq!(signed_labels(&name("*.apps.example.")), 2);
        assert_eq!(signed_labels(&name("www.example.")), 2);
    }

    #[test]
    fn type_bitmaps_match_rfc_4034_section_4_3() {
        // The RFC's example: A MX RRSIG NSEC and type 1234.
        let bitmap = type_bitmap(&[
            RecordType::A,
            RecordType::MX,
            RecordType::RRSIG,
            RecordType::NSEC,
            RecordType::Unknown(1234),
        ]);
        assert_eq!(
            bitmap,
            [
                0x00, 0x06, 0x40, 0x01, 0x00, 0x00, 0x00, 0x03, 0x04, 0x1b, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20
            ]
        );
    }
}
