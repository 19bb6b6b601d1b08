//! GeoIP lookups for the answer path, cached per database record.
//!
//! A full lookup decodes the record and allocates its strings; the same few
//! thousand records (one per country, or per city) serve every query. So
//! each thread keeps its own map from record to decoded location: no lock
//! and no sharing, and a miss costs one ordinary lookup. The map belongs to
//! one database: when a snapshot brings another (a reload), it starts
//! over. It is bounded, and simply cleared when full.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::geo::{GeoDb, Location, RecordKey};

/// Records cached per thread before the cache starts over.
const CAPACITY: usize = 1 << 16;

/// Where a client is, and the database network that says so.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    pub location: Option<Arc<Location>>,
    pub network: IpNet,
}

struct Cache {
    /// Address of the database the entries came from.
    db: usize,
    records: HashMap<RecordKey, Option<Arc<Location>>>,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache { db: 0, records: HashMap::new() });
}

/// Looks `addr` up in `db`, decoding each record at most once per thread.
pub fn locate(db: &Arc<GeoDb>, addr: IpAddr) -> Located {
    let (key, network) = db.record_key(addr);
    let Some(key) = key else {
        return Located {
            location: None,
            network,
        };
    };
    let id = Arc::as_ptr(db) as usize;
    let location = CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.db != id || cache.records.len() >= CAPACITY {
            cache.db = id;
            cache.records.clear();
        }
        cache
            .records
            .entry(key)
            .or_insert_with(|| db.lookup(addr).location.map(Arc::new))
            .clone()
    });
    Located { location, network }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_lookups_agree_with_direct_ones_and_follow_a_new_database() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("geo/default.mmdb");
        let db =
            Arc::new(GeoDb::open(std::slice::from_ref(&path)).expect("shipped database opens"));
        for addr in [
            "8.8.8.8",
            "193.0.0.1",
            "202.12.27.33",
            "8.8.4.4",
            "10.0.0.1",
        ] {
            let addr: IpAddr = addr.parse().unwrap();
            let direct = db.lookup(addr);
            for _ in 0..2 {
                let cached = locate(&db, addr);
                assert_eq!(
                    cached.location.as_deref(),
                    direct.location.as_ref(),
                    "{addr}"
                );
                assert_eq!(cached.network, direct.network, "{addr}");
            }
        }
        let other = Arc::new(GeoDb::open(&[path]).unwrap());
        let addr: IpAddr = "8.8.8.8".parse().unwrap();
        assert_eq!(
            locate(&other, addr).location.as_deref(),
            db.lookup(addr).location.as_ref()
        );
        CACHE.with(|c| assert_eq!(c.borrow().db, Arc::as_ptr(&other) as usize));
    }
}
