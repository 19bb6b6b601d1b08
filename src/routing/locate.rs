//! GeoIP lookups for the answer path, cached per database record.
//!
//! A full lookup decodes the record and allocates its strings; the same few
//! thousand records (one per country, or per city) serve every query. So
//! each thread keeps its own map from record to decoded location: no lock
//! and no sharing, and a miss costs one ordinary lookup. The map belongs to
//! one database: when a snapshot brings another (a reload), it starts
//! over. It is bounded, and simply cleared when full.
//!
//! Invariant: the map is tagged with the [`GeoDb::load_id`] of the database
//! its entries came from, never with the database's address. Record keys
//! are offsets into one file, so entries from another database would be
//! plausible and wrong; and once a database is dropped its address may be
//! handed to the next one opened, so an address cannot tell them apart.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::geo::{GeoDb, Location, RecordKey, UniformNodes};

/// Records cached per thread before the cache starts over.
const CAPACITY: usize = 1 << 16;

/// Where a client is, and the database network that says so.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    pub location: Option<Arc<Location>>,
    pub network: IpNet,
    /// The database record that placed the client, for callers that
    /// cache per record (none where nothing is recorded).
    pub record: Option<RecordKey>,
    /// Prefix length of the widest block around the client in which every
    /// address ranks alike (per the [`UniformNodes`] given to [`locate`]);
    /// `network`'s length without them.
    pub uniform_len: u8,
}

struct Cache {
    /// [`GeoDb::load_id`] of the database the entries came from; 0, which
    /// no database has, before the first lookup.
    db: u64,
    /// Keys are record offsets, few and bounded, hashed quickly.
    records: HashMap<RecordKey, Option<Arc<Location>>, foldhash::fast::RandomState>,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache {
        db: 0,
        records: HashMap::default(),
    });
}

/// Looks `addr` up in `db`, decoding each record at most once per thread,
/// and finds the widest block around it that `uniform` marks, in the same
/// walk of the tree.
pub fn locate(db: &Arc<GeoDb>, uniform: Option<&UniformNodes>, addr: IpAddr) -> Located {
    let placed = db.place(addr, uniform);
    let (network, uniform_len) = (placed.network, placed.uniform_len);
    let Some(key) = placed.record else {
        return Located {
            location: None,
            network,
            record: None,
            uniform_len,
        };
    };
    let id = db.load_id();
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
    Located {
        location,
        network,
        record: Some(key),
        uniform_len,
    }
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
                let cached = locate(&db, None, addr);
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
            locate(&other, None, addr).location.as_deref(),
            db.lookup(addr).location.as_ref()
        );
        CACHE.with(|c| assert_eq!(c.borrow().db, other.load_id()));
    }

    /// A one-record City database placing 10.1.0.0/16 in `country`.
    fn one_place(country: &str, latitude: f64, longitude: f64) -> GeoDb {
        use crate::routing::geo::testing::city_record;
        use mmdb_writer::Writer;
        let mut writer = Writer::new("Test-City");
        let record = city_record(country, latitude, longitude);
        writer
            .insert_value("10.1.0.0/16".parse::<IpNet>().unwrap(), record)
            .unwrap();
        GeoDb::open_bytes(vec![("one.mmdb".into(), writer.to_bytes().unwrap())]).unwrap()
    }

    #[test]
    fn a_new_database_at_an_old_address_is_not_served_from_the_old_cache() {
        let addr: IpAddr = "10.1.2.3".parse().unwrap();
        let mut db = Arc::new(one_place("US", 38.9, -77.4));
        let us = locate(&db, None, addr)
            .location
            .expect("located in the first database");
        assert_eq!(us.country.as_deref(), Some("US"));

        // The second database puts the same address under the same record
        // key, with other data: only the database tells the entries apart.
        let second = one_place("DE", 50.1, 8.7);
        assert_eq!(db.record_key(addr).0, second.record_key(addr).0);
        assert_ne!(db.load_id(), second.load_id());

        // Replace the first database in place: the second now lives at the
        // very address the first had, as it may after a reload frees it.
        let address = Arc::as_ptr(&db);
        *Arc::get_mut(&mut db).expect("no other handle") = second;
        assert_eq!(Arc::as_ptr(&db), address);

        let de = locate(&db, None, addr)
            .location
            .expect("located in the second database");
        assert_eq!(
            de.country.as_deref(),
            Some("DE"),
            "served from the old cache"
        );
        assert_eq!((de.latitude, de.longitude), (50.1, 8.7));
    }
}
