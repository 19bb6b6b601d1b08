//! DNSSEC: every answer signed, nothing signed per query.
//!
//! Everything a snapshot can answer is known when it is built, so it is
//! signed then (`zone`), through a cache that lives across snapshots
//! (`sign`), and the answer paths only attach what is already made.
//!
//! - [`key`]: key files, DNSKEY, key tags and DS records.
//! - [`canonical`]: RFC 4034 section 6's canonical names, RDATA and order.
//! - [`sign`]: RRSIGs, the validity window every node agrees on, the cache.
//! - [`zone`]: the signed domain a snapshot carries, and its NSEC chain.
//! - [`denial`]: that chain encoded for the fast path's DO=1 negatives.
//! - [`tools`]: what `meridian dnssec keygen` and `ds` do.

pub mod canonical;
pub mod denial;
pub mod key;
pub mod sign;
#[cfg(test)]
pub(crate) mod testing;
pub mod tools;
pub mod zone;

pub use sign::{SignatureCache, Window};
pub use zone::SignedDomain;
