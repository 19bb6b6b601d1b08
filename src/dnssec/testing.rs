//! Test helpers: a signed fixture config, and a checker that verifies
//! every RRSIG of a reply against the key with ring, rebuilding the signed
//! data from the reply's own records as a validator would.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinDecodable;

use super::canonical;
use super::key::{Algorithm, Dnskey, SigningKey};
use crate::config::Config;

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A fresh key of `algorithm` in a file of its own; the path is absolute.
pub fn key_file(algorithm: Algorithm) -> (PathBuf, Dnskey) {
    let (pem, key) = SigningKey::generate(algorithm).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "meridian-dnssec-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("key.pem");
    std::fs::write(&path, pem).unwrap();
    (path, key.dnskey().clone())
}

/// The answer fixture's config, signed with a fresh key; `extra` is added
/// before the `[dnssec]` table.
pub fn signed_config(extra: &str) -> (Arc<Config>, Dnskey) {
    let (path, dnskey) = key_file(Algorithm::EcdsaP256Sha256);
    let config = crate::dns::fixture::config(&format!(
        "{extra}\n[dnssec]\nkey_file = \"{}\"\n",
        path.display()
    ));
    (config, dnskey)
}

/// RRSIG fields a test looks at.
#[derive(Debug)]
pub struct Rrsig {
    pub covered: RecordType,
    pub labels: u8,
    pub original_ttl: u32,
    pub key_tag: u16,
}

pub fn rrsig_fields(record: &Record) -> Option<Rrsig> {
    let RData::Unknown { code, rdata } = &record.data else {
        return None;
    };
    if *code != RecordType::RRSIG {
        return None;
    }
    let b = &rdata.anything;
    Some(Rrsig {
        covered: RecordType::from(u16::from_be_bytes([b[0], b[1]])),
        labels: b[3],
        original_ttl: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        key_tag: u16::from_be_bytes([b[16], b[17]]),
    })
}

/// Verifies every RRSIG in the answer and authority sections over the set
/// it covers in the same section; returns how many were checked. Panics
/// naming the set whose signature does not verify, or a set left unsigned.
pub fn verify_reply(reply: &Message, key: &Dnskey, apex: &Name) -> usize {
    let mut checked = 0;
    for section in [&reply.answers, &reply.authorities] {
        for record in section.iter() {
            if record.record_type() == RecordType::RRSIG {
                verify_one(record, section, key, apex);
                checked += 1;
            } else {
                let signed = section.iter().any(|s| {
                    s.name == record.name
                        && rrsig_fields(s).is_some_and(|f| f.covered == record.record_type())
                });
                let is_delegation =
                    record.record_type() == RecordType::NS && !reply.metadata.authoritative;
                assert!(
                    signed || is_delegation,
                    "{} {} has no RRSIG",
                    record.name,
                    record.record_type()
                );
            }
        }
    }
    checked
}

fn verify_one(rrsig: &Record, section: &[Record], key: &Dnskey, apex: &Name) {
    let RData::Unknown { rdata, .. } = &rrsig.data else {
        unreachable!("checked by the caller");
    };
    let bytes = &rdata.anything;
    let fields = rrsig_fields(rrsig).unwrap();
    let signer = canonical::name_wire(apex);
    let head_len = 18 + signer.len();
    assert_eq!(&bytes[18..head_len], &signer[..], "signer is the apex");
    assert_eq!(fields.key_tag, key.key_tag());
    // A wildcard expansion is signed under `*.` and the owner's last labels.
    let owner = if fields.labels < rrsig.name.num_labels() {
        Name::from_ascii("*")
            .unwrap()
            .append_domain(&rrsig.name.trim_to(fields.labels as usize))
            .unwrap()
    } else {
        rrsig.name.clone()
    };
    let set: Vec<&Record> = section
        .iter()
        .filter(|r| r.name == rrsig.name && r.record_type() == fields.covered)
        .collect();
    assert!(!set.is_empty(), "an RRSIG over nothing at {}", rrsig.name);
    let mut data = bytes[..head_len].to_vec();
    for rdata in canonical::sorted_rdata(set.iter().map(|r| &r.data)) {
        data.extend(canonical::name_wire(&owner));
        data.extend(u16::from(fields.covered).to_be_bytes());
        data.extend(1u16.to_be_bytes());
        data.extend(fields.original_ttl.to_be_bytes());
        data.extend((rdata.len() as u16).to_be_bytes());
        data.extend(rdata);
    }
    assert!(
        key.verify(&data, &bytes[head_len..]),
        "the RRSIG over {} {} does not verify",
        rrsig.name,
        fields.covered
    );
}

/// The NSEC records of a section: (owner, next name, types).
pub fn nsecs(section: &[Record]) -> Vec<(Name, Name, Vec<RecordType>)> {
    section
        .iter()
        .filter_map(|r| match &r.data {
            RData::Unknown { code, rdata } if *code == RecordType::NSEC => {
                let b = &rdata.anything;
                let mut decoder = hickory_proto::serialize::binary::BinDecoder::new(b);
                let next = Name::read(&mut decoder).unwrap();
                let mut at = b.len() - decoder.len();
                let mut types = Vec::new();
                while at < b.len() {
                    let (window, len) = (b[at], b[at + 1] as usize);
                    for (i, byte) in b[at + 2..at + 2 + len].iter().enumerate() {
                        for bit in 0..8 {
                            if byte & (0x80 >> bit) != 0 {
                                let code = (u16::from(window) << 8) | (i * 8 + bit) as u16;
                                types.push(RecordType::from(code));
                            }
                        }
                    }
                    at += 2 + len;
                }
                Some((r.name.clone(), next, types))
            }
            _ => None,
        })
        .collect()
}
