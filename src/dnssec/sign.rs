//! Making RRSIGs: the validity window every node agrees on, and the cache
//! that makes a rebuild sign only what it has not signed before.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hickory_proto::rr::rdata::NULL;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::canonical;
use super::key::SigningKey;

/// Signatures start this long before their window does, for resolvers
/// whose clocks run behind ours.
const INCEPTION_SLACK: u64 = 3600;

/// When signatures made now are valid, in seconds since the epoch.
///
/// Computed from the clock rounded down to a multiple of the refresh
/// interval, so every node of a cluster (same config, clocks within the
/// slack) makes signatures with the same window, and a window changes only
/// when a refresh is due: until then rebuilds find their signatures cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    pub inception: u32,
    pub expiration: u32,
    /// Start of the next window: when the publisher must re-sign.
    pub next_refresh: u64,
}

impl Window {
    pub fn at(now_secs: u64, validity: Duration, refresh: Duration) -> Window {
        let period = refresh.as_secs().max(1);
        let start = now_secs / period * period;
        // RFC 4034 section 3.1.5: serial number arithmetic, modulo 2^32.
        Window {
            inception: start.saturating_sub(INCEPTION_SLACK) as u32,
            expiration: (start + validity.as_secs()) as u32,
            next_refresh: start + period,
        }
    }
}

/// Signatures made so far, by what they sign (the RRSIG fields and the
/// canonical set, which include the key and the window), shared by every
/// snapshot a node builds. A signature is only ever looked up at snapshot
/// build, under the mutex; the answer path reads the snapshot's own copy.
#[derive(Debug, Default)]
pub struct SignatureCache {
    entries: Mutex<CacheEntries>,
    /// Signatures made, for the `meridian_dnssec_signatures_total` metric
    /// and for tests that show the answer path signs nothing.
    made: AtomicU64,
}

#[derive(Debug, Default)]
struct CacheEntries {
    /// The window the entries were made for: a new window empties the
    /// cache, since no old signature can be reused.
    window: Option<(u32, u32)>,
    signatures: HashMap<Vec<u8>, Vec<u8>>,
}

impl SignatureCache {
    /// Signatures made since this cache was created.
    pub fn made(&self) -> u64 {
        self.made.load(Ordering::Relaxed)
    }

    /// Signatures held.
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.signatures.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One set to sign: its owner as configured (a wildcard keeps its `*`),
/// type, TTL and records.
pub struct SetToSign<'r> {
    pub owner: &'r Name,
    pub record_type: RecordType,
    pub ttl: u32,
    pub rdata: Vec<Vec<u8>>,
}

/// Signs sets with one key and window, through the cache.
pub struct Signer<'k> {
    pub key: &'k SigningKey,
    pub signer_name: &'k Name,
    pub window: Window,
    pub cache: &'k SignatureCache,
}

impl Signer<'_> {
    /// The RRSIG RDATA up to the signature (RFC 4034 section 3.1).
    fn rrsig_head(&self, set: &SetToSign<'_>) -> Vec<u8> {
        let mut out = Vec::with_capacity(18 + self.signer_name.len() + 2);
        out.extend_from_slice(&u16::from(set.record_type).to_be_bytes());
        out.push(self.key.algorithm().number());
        out.push(canonical::signed_labels(set.owner));
        out.extend_from_slice(&set.ttl.to_be_bytes());
        out.extend_from_slice(&self.window.expiration.to_be_bytes());
        out.extend_from_slice(&self.window.inception.to_be_bytes());
        out.extend_from_slice(&self.key.dnskey().key_tag().to_be_bytes());
        out.extend_from_slice(&canonical::name_wire(self.signer_name));
        out
    }

    /// What the signature covers (RFC 4034 section 3.1.8.1): the RRSIG
    /// head, then each record as owner, type, class IN, original TTL and
    /// RDATA, in canonical order.
    pub fn signed_data(&self, set: &SetToSign<'_>) -> (Vec<u8>, Vec<u8>) {
        let head = self.rrsig_head(set);
        let owner = canonical::name_wire(set.owner);
        let mut data = head.clone();
        for rdata in &set.rdata {
            data.extend_from_slice(&owner);
            data.extend_from_slice(&u16::from(set.record_type).to_be_bytes());
            data.extend_from_slice(&1u16.to_be_bytes());
            data.extend_from_slice(&set.ttl.to_be_bytes());
            data.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            data.extend_from_slice(rdata);
        }
        (head, data)
    }

    /// The RRSIG record for `set`, from the cache or freshly signed.
    /// `None` only if the random source fails.
    pub fn sign(&self, set: &SetToSign<'_>) -> Option<Record> {
        let (head, data) = self.signed_data(set);
        let signature = {
            let mut entries = self.cache.entries.lock().ok()?;
            let window = (self.window.inception, self.window.expiration);
            if entries.window != Some(window) {
                entries.signatures.clear();
                entries.window = Some(window);
            }
            match entries.signatures.get(&data) {
                Some(signature) => signature.clone(),
                None => {
                    let signature = self.key.sign(&data)?;
                    self.cache.made.fetch_add(1, Ordering::Relaxed);
                    entries.signatures.insert(data, signature.clone());
                    signature
                }
            }
        };
        let mut rdata = head;
        rdata.extend_from_slice(&signature);
        Some(Record::from_rdata(
            set.owner.clone(),
            set.ttl,
            RData::Unknown {
                code: RecordType::RRSIG,
                rdata: NULL::with(rdata),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dnssec::key::Algorithm;

    const DAY: u64 = 86_400;

    #[test]
    fn every_moment_of_a_refresh_period_gets_the_same_window() {
        let validity = Duration::from_secs(14 * DAY);
        let refresh = Duration::from_secs(7 * DAY);
        let start = 2_000 * 7 * DAY;
        let first = Window::at(start, validity, refresh);
        assert_eq!(first, Window::at(start + 7 * DAY - 1, validity, refresh));
        assert_eq!(u64::from(first.inception), start - 3600);
        assert_eq!(u64::from(first.expiration), start + 14 * DAY);
        assert_eq!(first.next_refresh, start + 7 * DAY);
        let next = Window::at(first.next_refresh, validity, refresh);
        assert_ne!(first, next);
        // However late in a window it is signed, half the validity is left.
        assert!(u64::from(first.expiration) - (first.next_refresh - 1) >= 7 * DAY);
    }

    #[test]
    fn a_set_is_signed_once_per_window_and_the_signature_verifies() {
        let (_, key) = SigningKey::generate(Algorithm::EcdsaP256Sha256).unwrap();
        let cache = SignatureCache::default();
        let apex = Name::from_ascii("gslb.example.").unwrap();
        let owner = Name::from_ascii("WWW.gslb.example.").unwrap();
        let window = Window::at(
            1_000_000_000,
            Duration::from_secs(DAY),
            Duration::from_secs(DAY / 2),
        );
        let signer = Signer {
            key: &key,
            signer_name: &apex,
            window,
            cache: &cache,
        };
        let set = SetToSign {
            owner: &owner,
            record_type: RecordType::A,
            ttl: 30,
            rdata: vec![vec![192, 0, 2, 1], vec![192, 0, 2, 2]],
        };
        let first = signer.sign(&set).unwrap();
        let again = signer.sign(&set).unwrap();
        assert_eq!(cache.made(), 1, "the second came from the cache");
        assert_eq!(first, again);
        let RData::Unknown { rdata, .. } = &first.data else {
            panic!("an RRSIG's bytes");
        };
        let bytes = &rdata.anything;
        let (head, data) = signer.signed_data(&set);
        assert_eq!(&bytes[..head.len()], &head[..]);
        assert!(key.dnskey().verify(&data, &bytes[head.len()..]));
        // Another set, or the same set in another window, is signed anew.
        let other = SetToSign {
            rdata: vec![vec![192, 0, 2, 1]],
            ..set
        };
        signer.sign(&other).unwrap();
        assert_eq!(cache.made(), 2);
        let later = Signer {
            window: Window::at(
                window.next_refresh,
                Duration::from_secs(DAY),
                Duration::from_secs(DAY / 2),
            ),
            ..signer
        };
        later.sign(&other).unwrap();
        assert_eq!(cache.made(), 3);
        assert_eq!(cache.len(), 1, "the old window's entries are gone");
    }
}
