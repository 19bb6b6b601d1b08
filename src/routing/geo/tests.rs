//! Reading tests: files of both layouts written with `mmdb-writer`, files
//! that must be refused, and the database shipped in `geo/`.

/// The test helper the end-to-end tests use, so the unit tests check it too.
#[path = "../../../tests/e2e/geodata.rs"]
mod geodata;

use super::*;

use geodata::{TestLayout, TestPlace, write_mmdb};
use testing::city_record;

const PLACES: &[TestPlace] = &[
    TestPlace {
        network: "10.1.0.0/16",
        latitude: 38.9,
        longitude: -77.4,
        country: "US",
        continent: "NA",
        region: Some("US-VA"),
    },
    TestPlace {
        network: "10.2.0.0/16",
        latitude: 50.1,
        longitude: 8.7,
        country: "DE",
        continent: "EU",
        region: None,
    },
    TestPlace {
        network: "2001:db8:1::/48",
        latitude: 35.7,
        longitude: 139.7,
        country: "JP",
        continent: "AS",
        region: Some("JP-13"),
    },
];

fn write(layout: TestLayout, places: &[TestPlace]) -> (tempdir::Dir, PathBuf) {
    let dir = tempdir::Dir::new();
    let path = dir.path().join("test.mmdb");
    write_mmdb(&path, places, layout);
    (dir, path)
}

/// A directory removed on drop, without a dependency for it.
mod tempdir {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU32, Ordering};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> Dir {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "meridian-geo-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

#[test]
fn city_layout_reads_back() {
    let (_dir, path) = write(TestLayout::City, PLACES);
    let db = GeoDb::open(std::slice::from_ref(&path)).unwrap();

    let found = db.lookup(ip("10.1.2.3"));
    assert_eq!(found.network, net("10.1.0.0/16"));
    assert_eq!(
        found.location,
        Some(Location {
            latitude: 38.9,
            longitude: -77.4,
            country: Some("US".into()),
            continent: Some("NA".into()),
            region: Some("US-VA".into()),
            city: None,
        })
    );

    let de = db.lookup(ip("10.2.255.255")).location.unwrap();
    assert_eq!(de.country.as_deref(), Some("DE"));
    assert_eq!(de.region, None);

    let jp = db.lookup(ip("2001:db8:1:2::1"));
    assert_eq!(jp.network, net("2001:db8:1::/48"));
    let jp = jp.location.unwrap();
    assert_eq!(jp.region.as_deref(), Some("JP-13"));
    assert_eq!(jp.continent.as_deref(), Some("AS"));
    assert_eq!(db.attribution(), None);
}

#[test]
fn dbip_flat_layout_reads_back() {
    let (_dir, path) = write(TestLayout::DbIpFlat, PLACES);
    let db = GeoDb::open(std::slice::from_ref(&path)).unwrap();

    let found = db.lookup(ip("10.1.2.3"));
    assert_eq!(found.network, net("10.1.0.0/16"));
    let us = found.location.unwrap();
    // Single-precision coordinates come back as the decimal written.
    assert_eq!((us.latitude, us.longitude), (38.9, -77.4));
    assert_eq!(us.country.as_deref(), Some("US"));
    // The flat layout has no continent: it comes from the country.
    assert_eq!(us.continent.as_deref(), Some("NA"));
    // ... and no subdivision code.
    assert_eq!(us.region, None);

    let jp = db.lookup(ip("2001:db8:1::53")).location.unwrap();
    assert_eq!(jp.continent.as_deref(), Some("AS"));
    assert_eq!(db.attribution(), Some(DBIP_ATTRIBUTION));
    assert!(db.description().ends_with("; IP Geolocation by DB-IP"));
}

#[test]
fn address_in_no_record_gets_the_enclosing_empty_network() {
    for layout in [TestLayout::City, TestLayout::DbIpFlat] {
        let (_dir, path) = write(layout, PLACES);
        let db = GeoDb::open(&[path]).unwrap();

        let miss = db.lookup(ip("10.3.0.1"));
        assert_eq!(miss.location, None);
        // 10.0.0.0/15 holds both records; 10.3/16 sits next to them empty.
        assert_eq!(miss.network, net("10.3.0.0/16"));
        assert!(miss.network.contains(&ip("10.3.0.1")));

        let far = db.lookup(ip("192.0.2.1"));
        assert_eq!(far.location, None);
        assert_eq!(far.network, net("128.0.0.0/1"));

        let v6_miss = db.lookup(ip("2001:db8:2::1"));
        assert_eq!(v6_miss.location, None);
        assert!(v6_miss.network.contains(&ip("2001:db8:2::1")));
        assert!(!v6_miss.network.contains(&ip("2001:db8:1::1")));
    }
}

#[test]
fn ipv4_mapped_addresses_are_looked_up_as_ipv4() {
    let (_dir, path) = write(TestLayout::City, PLACES);
    let db = GeoDb::open(&[path]).unwrap();
    let mapped = db.lookup(ip("::ffff:10.1.2.3"));
    assert_eq!(mapped.location, db.lookup(ip("10.1.2.3")).location);
    assert_eq!(mapped.network, net("::ffff:10.1.0.0/112"));
    let (key, network) = db.record_key(ip("::ffff:10.1.2.3"));
    assert_eq!(network, mapped.network);
    assert_eq!(key, db.record_key(ip("10.1.9.9")).0);
}

#[test]
fn every_load_has_its_own_id() {
    let (_dir, path) = write(TestLayout::City, PLACES);
    let first = GeoDb::open(std::slice::from_ref(&path)).unwrap();
    let second = GeoDb::open(std::slice::from_ref(&path)).unwrap();
    assert_ne!(first.load_id(), 0);
    assert_ne!(second.load_id(), 0);
    assert_ne!(first.load_id(), second.load_id());
    drop(first);
    let third = GeoDb::open(&[path]).unwrap();
    assert!(third.load_id() > second.load_id());
}

#[test]
fn record_keys_follow_records() {
    let (_dir, path) = write(TestLayout::City, PLACES);
    let db = GeoDb::open(&[path]).unwrap();
    let (us, us_net) = db.record_key(ip("10.1.2.3"));
    assert_eq!(us_net, net("10.1.0.0/16"));
    assert!(us.is_some());
    assert_eq!(us, db.record_key(ip("10.1.200.1")).0);
    assert_ne!(us, db.record_key(ip("10.2.0.1")).0);
    assert_eq!(db.record_key(ip("10.3.0.1")), (None, net("10.3.0.0/16")));
}

#[test]
fn separate_ipv4_and_ipv6_files_in_either_order() {
    let dir = tempdir::Dir::new();
    let v4 = dir.path().join("dbip-city-ipv4.mmdb");
    let v6 = dir.path().join("dbip-city-ipv6.mmdb");
    write_family_file(&v4, mmdb_writer::IpVersion::V4, "10.1.0.0/16", "NL");
    write_family_file(&v6, mmdb_writer::IpVersion::V6, "2001:db8::/32", "JP");
    for paths in [[v4.clone(), v6.clone()], [v6.clone(), v4.clone()]] {
        let db = GeoDb::open(&paths).unwrap();
        let nl = db.lookup(ip("10.1.0.1")).location.unwrap();
        assert_eq!(nl.country.as_deref(), Some("NL"));
        assert_eq!(nl.continent.as_deref(), Some("EU"));
        let jp = db.lookup(ip("2001:db8::1")).location.unwrap();
        assert_eq!(jp.country.as_deref(), Some("JP"));
        let mapped = db.lookup(ip("::ffff:10.1.0.1"));
        assert_eq!(mapped.location.unwrap().country.as_deref(), Some("NL"));
        // The file names say DB-IP even though the metadata does not.
        assert_eq!(db.attribution(), Some(DBIP_ATTRIBUTION));
        let description = db.description();
        assert!(description.contains("dbip-city-ipv4.mmdb: city ipv4 (db-ip flat layout, IPv4,"));
        assert!(description.contains("(db-ip flat layout, IPv6, built "));
    }

    let err = GeoDb::open(std::slice::from_ref(&v4)).unwrap_err();
    assert!(matches!(
        err,
        GeoError::MissingFamily {
            missing: "IPv6",
            ..
        }
    ));
    assert!(err.to_string().contains("dbip-city-ipv6.mmdb"), "{err}");
    let err = GeoDb::open(std::slice::from_ref(&v6)).unwrap_err();
    assert!(matches!(
        err,
        GeoError::MissingFamily {
            missing: "IPv4",
            ..
        }
    ));
    let err = GeoDb::open(&[v4.clone(), v4.clone()]).unwrap_err();
    assert!(
        matches!(err, GeoError::SameFamily { family: "IPv4", .. }),
        "{err}"
    );
}

/// A DB-IP style single-family file: flat records, metadata as on npm.
fn write_family_file(path: &Path, version: mmdb_writer::IpVersion, network: &str, cc: &str) {
    use mmdb_writer::{Value, Writer};
    let kind = if version == mmdb_writer::IpVersion::V4 {
        "city ipv4"
    } else {
        "city ipv6"
    };
    let mut writer = Writer::builder(kind)
        .ip_version(version)
        .ipv4_aliasing(mmdb_writer::Ipv4Aliasing::Disabled)
        .build();
    let record = Value::map([
        ("country_code", Value::from(cc)),
        ("city", Value::from("")),
        ("latitude", Value::from(1.5_f32)),
        ("longitude", Value::from(2.5_f32)),
    ]);
    writer.insert_value(net(network), record).unwrap();
    std::fs::write(path, writer.to_bytes().unwrap()).unwrap();
}

#[test]
fn refuses_files_it_cannot_use() {
    let dir = tempdir::Dir::new();

    let garbage = dir.path().join("garbage.mmdb");
    std::fs::write(&garbage, b"this is not a database").unwrap();
    let err = GeoDb::open(std::slice::from_ref(&garbage)).unwrap_err();
    assert!(matches!(err, GeoError::Invalid { .. }));
    let message = err.to_string();
    assert!(message.starts_with(&format!("{} is not a valid", garbage.display())));
    assert!(std::error::Error::source(&err).is_none());

    let missing = dir.path().join("missing.mmdb");
    let err = GeoDb::open(std::slice::from_ref(&missing)).unwrap_err();
    assert!(matches!(err, GeoError::Read { .. }));
    assert_eq!(err.path(), Some(missing.as_path()));
    // The cause is in the message, once, and so not also the source.
    let cause = std::fs::read(&missing).unwrap_err().to_string();
    assert_eq!(err.to_string().matches(&cause).count(), 1, "{err}");
    assert!(std::error::Error::source(&err).is_none());

    assert!(matches!(GeoDb::open(&[]), Err(GeoError::NoFiles)));
    let three = vec![garbage.clone(), garbage.clone(), garbage];
    assert!(matches!(
        GeoDb::open(&three),
        Err(GeoError::TooManyFiles { count: 3 })
    ));

    use mmdb_writer::{Value, Writer};
    let write = |name: &str, record: Option<Value>| {
        let mut writer = Writer::new("Test-Other");
        if let Some(record) = record {
            writer.insert_value(net("10.0.0.0/8"), record).unwrap();
        }
        let path = dir.path().join(name);
        std::fs::write(&path, writer.to_bytes().unwrap()).unwrap();
        path
    };

    let asn = write(
        "asn.mmdb",
        Some(Value::map([(
            "autonomous_system_number",
            Value::from(64_512_u32),
        )])),
    );
    let err = GeoDb::open(&[asn]).unwrap_err();
    assert!(matches!(err, GeoError::UnknownLayout { .. }));
    assert!(
        err.to_string().contains("autonomous_system_number"),
        "{err}"
    );

    let country_only = write(
        "country.mmdb",
        Some(Value::map([
            ("country", Value::map([("iso_code", Value::from("NL"))])),
            ("continent", Value::map([("code", Value::from("EU"))])),
        ])),
    );
    let err = GeoDb::open(&[country_only]).unwrap_err();
    assert!(matches!(err, GeoError::NoCoordinates { .. }), "{err}");

    let empty = write("empty.mmdb", None);
    assert!(matches!(GeoDb::open(&[empty]), Err(GeoError::Empty { .. })));
}

#[test]
fn lookups_of_odd_records_do_not_panic() {
    use mmdb_writer::{Value, Writer};
    let mut writer = Writer::new("Test-City");
    let good = Value::map([(
        "location",
        Value::map([
            ("latitude", Value::from(1.0)),
            ("longitude", Value::from(2.0)),
        ]),
    )]);
    writer.insert_value(net("10.0.0.0/16"), good).unwrap();
    let out_of_range = Value::map([(
        "location",
        Value::map([
            ("latitude", Value::from(91.0)),
            ("longitude", Value::from(2.0)),
        ]),
    )]);
    writer
        .insert_value(net("10.1.0.0/16"), out_of_range)
        .unwrap();
    let wrong_type = Value::map([("location", Value::from("somewhere"))]);
    writer.insert_value(net("10.2.0.0/16"), wrong_type).unwrap();
    let bad_country = city_record("ZZ", 1.0, 2.0);
    writer
        .insert_value(net("10.3.0.0/16"), bad_country)
        .unwrap();
    let db = GeoDb::open_bytes(vec![("odd.mmdb".into(), writer.to_bytes().unwrap())]).unwrap();

    let good = db.lookup(ip("10.0.0.1")).location.unwrap();
    assert_eq!((good.latitude, good.longitude), (1.0, 2.0));
    assert_eq!(good.country, None);
    assert_eq!(db.lookup(ip("10.1.0.1")).location, None);
    assert_eq!(db.lookup(ip("10.2.0.1")).location, None);
    let unknown = db.lookup(ip("10.3.0.1")).location.unwrap();
    assert_eq!((unknown.country, unknown.continent), (None, None));
    for text in [
        "0.0.0.0",
        "255.255.255.255",
        "::",
        "ffff::1",
        "::ffff:0.0.0.0",
    ] {
        let found = db.lookup(ip(text));
        assert!(found.network.contains(&ip(text)), "{text}: {found:?}");
    }
}

#[test]
fn distances_are_great_circle() {
    // Paris to London is about 344 km.
    let d = distance_km(48.8566, 2.3522, 51.5074, -0.1278);
    assert!((d - 343.5).abs() < 1.0, "{d}");
    assert_eq!(distance_km(10.0, 20.0, 10.0, 20.0), 0.0);
    // Antipodes: half the circumference.
    let half = distance_km(0.0, 0.0, 0.0, 180.0);
    // Half the mean circumference, worked out by hand: pi x 6371.0088 km.
    assert!((half - 20_015.115).abs() < 0.01, "{half}");
}

// ---- the database shipped in geo/ ------------------------------------

fn shipped() -> GeoDb {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/geo/default.mmdb"));
    GeoDb::open(&[path]).expect("geo/default.mmdb opens (rebuild with geo/build-default.sh)")
}

fn country_and_continent(db: &GeoDb, address: &str) -> (String, String) {
    let location = db
        .lookup(ip(address))
        .location
        .unwrap_or_else(|| panic!("{address} has a location"));
    (location.country.unwrap(), location.continent.unwrap())
}

#[test]
fn shipped_database_routes_well_known_addresses() {
    let db = shipped();
    let cases = [
        ("8.8.8.8", "US", "NA"),
        ("193.0.0.1", "NL", "EU"),
        ("193.0.7.254", "NL", "EU"),
        ("202.12.27.33", "JP", "AS"),
        ("1.0.16.1", "JP", "AS"),
        ("2001:67c:2e8::1", "NL", "EU"),
        ("::ffff:8.8.4.4", "US", "NA"),
    ];
    for (address, country, continent) in cases {
        assert_eq!(
            country_and_continent(&db, address),
            (country.to_owned(), continent.to_owned()),
            "{address}"
        );
    }
    // Country centroids: the US one lies inside the contiguous states.
    let us = db.lookup(ip("8.8.8.8")).location.unwrap();
    assert!((25.0..49.0).contains(&us.latitude), "{us:?}");
    assert!((-125.0..-67.0).contains(&us.longitude), "{us:?}");
    assert_eq!(us.region, None);
    assert_eq!(us.city, None);
}

#[test]
fn shipped_database_leaves_reserved_space_empty() {
    let db = shipped();
    for address in ["10.1.2.3", "127.0.0.1", "192.168.1.1", "fe80::1"] {
        let found = db.lookup(ip(address));
        assert_eq!(found.location, None, "{address}");
        assert!(found.network.contains(&ip(address)));
    }
    assert_eq!(db.attribution(), Some(DBIP_ATTRIBUTION));
    assert!(
        db.description().contains("IPv4+IPv6"),
        "{}",
        db.description()
    );
}

/// The record offset and network as the reader itself reports them.
fn by_reader(db: &GeoDb, ip: IpAddr) -> (Option<RecordKey>, IpNet) {
    let (index, query) = db.route(ip);
    let Ok(result) = db.files[index].reader.lookup(query) else {
        return (None, host_network(ip));
    };
    let key = result.offset().map(|offset| RecordKey {
        file: index as u8,
        offset,
    });
    (key, reported_network(&result, query, ip))
}

/// A database split into an IPv4 and an IPv6 file (10.1.0.0/16 in NL,
/// 2001:db8::/32 in JP), with the directory that holds them.
fn family_pair() -> (tempdir::Dir, GeoDb) {
    let dir = tempdir::Dir::new();
    let (v4, v6) = (dir.path().join("v4.mmdb"), dir.path().join("v6.mmdb"));
    write_family_file(&v4, mmdb_writer::IpVersion::V4, "10.1.0.0/16", "NL");
    write_family_file(&v6, mmdb_writer::IpVersion::V6, "2001:db8::/32", "JP");
    let db = GeoDb::open(&[v4, v6]).unwrap();
    (dir, db)
}

/// The shipped database, a generated City one and a separate IPv4/IPv6
/// pair: the layouts the tree walk must read as the reader does.
fn three_layouts() -> ([tempdir::Dir; 2], [GeoDb; 3]) {
    let (city_dir, generated) = write(TestLayout::City, PLACES);
    let (pair_dir, pair) = family_pair();
    let dbs = [shipped(), GeoDb::open(&[generated]).unwrap(), pair];
    ([city_dir, pair_dir], dbs)
}

#[test]
fn the_direct_walk_finds_what_the_reader_finds() {
    let mut rng = crate::test_rng::Rng(0x51a7_e0f1_2b3c_4d5e);
    let (_dirs, dbs) = three_layouts();
    for db in dbs {
        for i in 0..20_000u32 {
            let random = u128::from(rng.next()) << 64 | u128::from(rng.next());
            let ip = match i % 4 {
                0 => IpAddr::V4(Ipv4Addr::from(random as u32)),
                // Near the test networks, so records are hit.
                1 => IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (random as u32 & 0x03ff_ffff))),
                2 => IpAddr::V6(Ipv6Addr::from(random)),
                _ => IpAddr::V6(Ipv4Addr::from(random as u32).to_ipv6_mapped()),
            };
            let placed = db.place(ip, None);
            assert_eq!((placed.record, placed.network), by_reader(&db, ip), "{ip}");
            assert_eq!(placed.uniform_len, placed.network.prefix_len(), "{ip}");
        }
    }
}

#[test]
fn records_found_by_the_tree_are_every_record_the_reader_lists() {
    let (_dirs, dbs) = three_layouts();
    for db in dbs {
        let mut listed = std::collections::HashMap::new();
        for (index, file) in db.files.iter().enumerate() {
            for item in file.reader.networks(Default::default()).unwrap() {
                let item = item.unwrap();
                let key = RecordKey {
                    file: index as u8,
                    offset: item.offset().unwrap(),
                };
                listed.insert(key, file.layout.decode(&item).ok().flatten());
            }
        }
        let found: std::collections::HashMap<_, _> = db.records().into_iter().collect();
        assert!(!found.is_empty());
        assert_eq!(found, listed);
    }
}

/// A database of `count` random networks in both families (IPv4 ones
/// mostly inside 10.0.0.0/8, so walks go deep), each one of a few
/// records, written with `size`-bit records.
fn random_networks(rng: &mut crate::test_rng::Rng, size: mmdb_writer::RecordSize) -> GeoDb {
    use mmdb_writer::Writer;
    let mut writer = Writer::builder("Meridian-Test-City")
        .record_size(size)
        .build();
    for i in 0..400 {
        let random = u128::from(rng.next()) << 64 | u128::from(rng.next());
        let network = if i % 3 == 2 {
            let len = 20 + rng.below(100) as u8;
            IpNet::V6(
                Ipv6Net::new(Ipv6Addr::from(0x2001_0db8u128 << 96 | random >> 32), len).unwrap(),
            )
        } else {
            let len = 8 + rng.below(25) as u8;
            let bits = if i % 3 == 0 {
                random as u32
            } else {
                0x0a00_0000 | (random as u32 & 0x00ff_ffff)
            };
            IpNet::V4(Ipv4Net::new(Ipv4Addr::from(bits), len).unwrap())
        };
        let country = ["US", "NL", "JP", "BR"][rng.below(4) as usize];
        let record = city_record(country, rng.below(90) as f64, rng.below(180) as f64);
        writer.insert_value(network.trunc(), record).unwrap();
    }
    GeoDb::open_bytes(vec![("random.mmdb".into(), writer.to_bytes().unwrap())]).unwrap()
}

#[test]
fn the_jump_tables_walk_as_the_tree_does_bit_by_bit() {
    // The tables start a walk 16 levels down, with the depth of any
    // uniform mark on the way: every field of the walk must be what a
    // walk from the root finds, with marks and without, for both walks,
    // every record size, and leaves above and below the table's depth.
    let mut rng = crate::test_rng::Rng(0x7ab1_e5ee_d000_0016);
    let (_dir, pair) = family_pair();
    let mut dbs = vec![shipped(), pair];
    for size in [
        mmdb_writer::RecordSize::Bits24,
        mmdb_writer::RecordSize::Bits28,
        mmdb_writer::RecordSize::Bits32,
    ] {
        dbs.push(random_networks(&mut rng, size));
    }
    let mut marked = 0;
    for db in &dbs {
        // Classes from the record offsets: some records share one, so
        // some nodes above them are marked, at many depths.
        let classes: HashMap<RecordKey, u32> = db
            .records()
            .into_iter()
            .map(|(key, _)| (key, (key.offset % 3) as u32))
            .collect();
        let empty = rng.below(4) as u32;
        let uniform = db.uniform_nodes(&classes, empty);
        for i in 0..20_000u32 {
            let random = u128::from(rng.next()) << 64 | u128::from(rng.next());
            let ip = match i % 4 {
                0 => IpAddr::V4(Ipv4Addr::from(random as u32)),
                1 => IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (random as u32 & 0x00ff_ffff))),
                2 => IpAddr::V6(Ipv6Addr::from(0x2001_0db8u128 << 96 | random >> 32)),
                _ => IpAddr::V6(Ipv6Addr::from(random)),
            };
            let (index, query) = db.route(ip);
            let file = &db.files[index];
            let (bits, len) = match query {
                IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, 32),
                IpAddr::V6(v6) => (u128::from(v6), 128),
            };
            let buf = file.bytes.as_ref();
            for marks in [None, Some(&uniform.files[index])] {
                let fast = file.shape.walk(buf, bits, len, marks);
                let slow = file.shape.walk_bit_by_bit(buf, bits, len, marks);
                assert_eq!(fast, slow, "{ip} marks {}", marks.is_some());
                if let (Ok(w), Some(_)) = (fast, marks) {
                    marked += usize::from(w.uniform < w.depth);
                }
            }
        }
    }
    assert!(
        marked > 1000,
        "only {marked} walks met a mark above their leaf"
    );
}
