//! The DNSSEC family of `/metrics`: signatures made. Every one is made at
//! snapshot build (the answer paths only attach them), so a count that
//! does not move under load shows that nothing is signed per query.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use super::counter;

#[derive(Debug, Default)]
pub struct DnssecCounters {
    /// The signature cache's own count, copied after each build.
    signatures: AtomicU64,
}

impl DnssecCounters {
    /// Records the signature cache's count of signatures made.
    pub fn signatures_made(&self, total: u64) {
        self.signatures.store(total, Relaxed);
    }

    pub(super) fn render(&self, out: &mut String) {
        counter(
            out,
            "meridian_dnssec_signatures_total",
            "DNSSEC signatures made, all at snapshot build (reused ones not counted).",
            &self.signatures,
        );
    }
}
