//! Reading a config again, reusing what the previous read made of every
//! `[[services]]` entry whose text is unchanged.
//!
//! At 10,000 services, parsing and checking the whole file took well over
//! 100 ms, most of a reload, though a reload usually changes a few lines.
//! So the file is cut into its service entries (`config::sections`); an
//! entry whose exact text the previous read also had, checked against the
//! same domain and zones, is taken from the previous config; the others
//! are parsed and checked on their own, in parallel over the cores; the
//! rest of the file (every other table, with the entries blanked out so
//! byte offsets stay those of the file) is parsed and checked as before,
//! and the checks across services (duplicates, clashes with records) run
//! on the whole. Any problem at all, and the file is read again the
//! ordinary way, so what an operator is told is exactly what `meridian
//! check` says, positions included.

use std::collections::HashMap;
use std::collections::HashSet;
use std::hash::BuildHasher;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use hickory_proto::rr::Name;
use toml::de::DeTable;

use super::names::Names;
use super::{Checker, plain, shape};
use crate::config::error::Problems;
use crate::config::{Config, Domain, Problem, Service, Zone, sections};

/// What a read kept to let the next one reuse its services: the text of
/// each entry, by hash, and what its check depended on.
pub(crate) struct ServiceIndex {
    /// The file's text as read, which the ranges index.
    text: String,
    /// Each service's entry in `text`, in the order of `Config::services`.
    ranges: Vec<Range<usize>>,
    /// Hash of an entry's text to its index; on a collision the first.
    by_hash: HashMap<u64, usize>,
    /// Names in an entry noted as suspicious, by index (rare, so sparse).
    suspicious: HashMap<usize, Vec<String>>,
    /// What every entry was checked against (see [`context`]).
    context: String,
}

impl std::fmt::Debug for ServiceIndex {
    /// Without the text: two reads of one file have equal indexes, and a
    /// config's debug output should not carry the whole file.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServiceIndex({} entries)", self.ranges.len())
    }
}

fn hash(text: &str) -> u64 {
    foldhash::fast::FixedState::with_seed(0x7365_7276_6963_6573).hash_one(text)
}

impl ServiceIndex {
    /// The file's text outside the service entries, piece by piece.
    fn outside(&self) -> impl Iterator<Item = &str> {
        let ends = std::iter::once(0).chain(self.ranges.iter().map(|r| r.end));
        let starts = self.ranges.iter().map(|r| r.start).chain([self.text.len()]);
        ends.zip(starts).map(|(from, to)| &self.text[from..to])
    }

    /// Whether the two reads' files are the same outside their service
    /// entries, and have as many: then everything but the services was
    /// read from the same text.
    pub(crate) fn same_outside_services(&self, other: &ServiceIndex) -> bool {
        self.ranges.len() == other.ranges.len() && self.outside().eq(other.outside())
    }

    /// The index of the previous read's service whose entry is exactly
    /// `text`, whose [`hash`] is `hashed`.
    fn find(&self, text: &str, hashed: u64) -> Option<usize> {
        let i = *self.by_hash.get(&hashed)?;
        (self.text[self.ranges[i].clone()] == *text).then_some(i)
    }
}

/// What a service's check reads besides its own entry: the apex (names are
/// resolved against it), the default TTL, the zones (by name and index),
/// and where the file is. An entry is reused only under the same context.
fn context(
    config_dir: &Path,
    apex: &Name,
    domain: Option<&Domain>,
    zones: &[(Zone, Range<usize>)],
) -> String {
    let zones: Vec<&Zone> = zones.iter().map(|(z, _)| z).collect();
    format!(
        "{}\n{apex}\n{:?}\n{zones:?}",
        config_dir.display(),
        domain.map(|d| d.service_ttl)
    )
}

/// Reads `text` as [`super::parse`] does, reusing `previous`'s services
/// where their text is unchanged; the result is the same config, digest
/// included (and, on any problem, the same problems, from
/// [`super::parse`] itself).
pub(crate) fn parse_after(
    text: &str,
    path: &Path,
    previous: Option<&Config>,
) -> Result<Config, Vec<Problem>> {
    let read = || match try_parse(text, path, previous) {
        Some(config) => Ok(config),
        None => super::parse(text, path),
    };
    // Digesting 10,000 services' text takes a few ms: a text that large
    // is digested beside the read.
    let (config, digest) = if text.len() < DIGEST_BESIDE_FROM {
        (read(), crate::config::digest(text))
    } else {
        let digest = || crate::config::digest(text);
        std::thread::scope(|scope| {
            // Without a thread to spare, digested here after the read.
            let digesting = std::thread::Builder::new().spawn_scoped(scope, digest);
            let config = read();
            let digest = match digesting {
                Ok(digesting) => digesting.join().expect("digesting does not panic"),
                Err(_) => digest(),
            };
            (config, digest)
        })
    };
    let mut config = config?;
    config.digest = digest;
    Ok(config)
}

/// From this size of text on, [`parse_after`] digests it on a thread of
/// its own.
const DIGEST_BESIDE_FROM: usize = 256 * 1024;

/// The incremental read; `None` when it cannot be done this way or found
/// any problem (the ordinary read then says which).
fn try_parse(text: &str, path: &Path, previous: Option<&Config>) -> Option<Config> {
    let started = std::time::Instant::now();
    let ranges = sections::service_ranges(text)?;
    let rest = blank_out(text, &ranges);
    let mut problems = Problems::new(path, text);
    let root = DeTable::parse(&rest).ok()?;
    let raw = shape::read(&rest, root, &mut problems).ok()?;
    if !problems.is_empty() || !raw.services.is_empty() {
        return None;
    }
    let rest_read = started.elapsed();
    let config_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    // Once per entry, for the look-up here and the next read's index.
    let hashes: Vec<u64> = ranges.iter().map(|r| hash(&text[r.clone()])).collect();
    let previous = previous.and_then(|p| Some((p, p.service_index.as_deref()?)));
    let mut kept: Option<(Vec<Option<Vec<String>>>, String)> = None;
    let mut entries_read = None;
    let mut config = Checker {
        problems: &mut problems,
        config_dir: config_dir.clone(),
    }
    .check(raw, path, |_, _, names, zones, domain| {
        let context = context(&config_dir, &names.apex, domain, zones);
        let previous = previous.filter(|(_, index)| index.context == context);
        let mut found: Vec<Option<Found>> = ranges
            .iter()
            .zip(&hashes)
            .map(|(r, &hashed)| {
                let (config, index) = previous?;
                let i = index.find(&text[r.clone()], hashed)?;
                Some(Found {
                    service: config.services[i].clone(),
                    span: 0..0,
                    suspicious: index.suspicious.get(&i).cloned().unwrap_or_default(),
                })
            })
            .collect();
        let missing: Vec<usize> = (0..ranges.len()).filter(|&i| found[i].is_none()).collect();
        let around = Around {
            path,
            config_dir: &config_dir,
            apex: &names.apex,
            zones,
            domain,
        };
        let (reused, read_at) = (ranges.len() - missing.len(), started.elapsed());
        let read = read_entries(text, &ranges, &missing, &around);
        entries_read = Some((reused, read_at, started.elapsed()));
        for (i, entry) in missing.into_iter().zip(read) {
            found[i] = entry;
        }
        // An entry with a problem, or a name defined twice: the ordinary
        // read reports it. Names hash and compare without regard to case
        // (as `LowerName`s do), so none is copied to be lowercased.
        let mut seen: HashSet<&Name, foldhash::fast::RandomState> =
            HashSet::with_capacity_and_hasher(ranges.len(), Default::default());
        for entry in &found {
            match entry {
                Some(entry) if seen.insert(&entry.service.name) => {}
                _ => return Vec::new(),
            }
        }
        drop(seen);
        let mut services = Vec::with_capacity(ranges.len());
        let mut suspicious = Vec::with_capacity(ranges.len());
        for (entry, range) in found.into_iter().zip(&ranges) {
            let Some(entry) = entry else {
                return Vec::new();
            };
            names
                .suspicious
                .borrow_mut()
                .extend(entry.suspicious.iter().cloned());
            suspicious.push((!entry.suspicious.is_empty()).then_some(entry.suspicious));
            let span = entry.span.start + range.start..entry.span.end + range.start;
            services.push((entry.service, span));
        }
        kept = Some((suspicious, context));
        services
    })?;
    let (suspicious, context) = kept?;
    if !problems.is_empty() || config.services.len() != ranges.len() {
        return None;
    }
    let checked = started.elapsed();
    config.warnings = problems.warnings();
    let by_hash = hashes
        .iter()
        .enumerate()
        .rev()
        .map(|(i, &h)| (h, i))
        .collect();
    config.service_index = Some(Arc::new(ServiceIndex {
        text: text.to_string(),
        ranges,
        by_hash,
        suspicious: suspicious
            .into_iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i, s?)))
            .collect(),
        context,
    }));
    if let Some((reused, read_at, entries_done)) = entries_read {
        tracing::debug!(
            entries = config.services.len(),
            reused,
            ?rest_read,
            entries_from = ?read_at,
            ?entries_done,
            ?checked,
            indexed = ?started.elapsed(),
            "config read: the rest, the changed entries, the checks across them, the index"
        );
    }
    Some(config)
}

/// A service entry as read: the service, its name's span within the
/// entry, and the names it noted as suspicious.
struct Found {
    service: Arc<Service>,
    span: Range<usize>,
    suspicious: Vec<String>,
}

/// The text with every range overwritten by blanks (one line of them per
/// entry), so the rest parses on its own with the file's byte offsets.
/// Blanks rather than a comment: the TOML parser checks every character
/// of a comment, and at 10,000 entries that was most of parsing the rest.
fn blank_out(text: &str, ranges: &[Range<usize>]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for r in ranges {
        let body = &mut bytes[r.clone()];
        let ends_line = body.last() == Some(&b'\n');
        body.fill(b' ');
        if ends_line {
            *body.last_mut().expect("an entry is not empty") = b'\n';
        }
    }
    String::from_utf8(bytes).expect("whole lines replaced by ASCII")
}

/// What an entry is read and checked within: the file, the apex, the
/// zones and the domain's defaults.
struct Around<'a> {
    path: &'a Path,
    config_dir: &'a Path,
    apex: &'a Name,
    zones: &'a [(Zone, Range<usize>)],
    domain: Option<&'a Domain>,
}

/// Reads the entries `which` on their own, spread over the cores when
/// there are many.
fn read_entries(
    text: &str,
    ranges: &[Range<usize>],
    which: &[usize],
    around: &Around<'_>,
) -> Vec<Option<Found>> {
    let read = |part: &[usize]| -> Vec<Option<Found>> {
        part.iter()
            .map(|&i| read_entry(&text[ranges[i].clone()], around))
            .collect()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Below this, starting threads costs more than it saves.
    const PER_THREAD: usize = 256;
    if threads < 2 || which.len() < 2 * PER_THREAD {
        return read(which);
    }
    let per = which.len().div_ceil(threads);
    std::thread::scope(|scope| {
        // This thread reads the first part itself rather than wait idle.
        let mut parts = which.chunks(per);
        let first = parts.next().unwrap_or_default();
        // A part no thread could be started for is read here too.
        let others: Vec<_> = parts
            .map(|part| {
                let thread = std::thread::Builder::new().spawn_scoped(scope, move || read(part));
                (part, thread)
            })
            .collect();
        // Sized up front: 10,000 entries grown by doubling were copied
        // and faulted in again several times over.
        let mut out = Vec::with_capacity(which.len());
        out.extend(read(first));
        for (part, thread) in others {
            match thread {
                Ok(thread) => out.extend(thread.join().expect("reading a service does not panic")),
                Err(_) => out.extend(read(part)),
            }
        }
        out
    })
}

/// One `[[services]]` entry parsed and checked alone; `None` on any
/// problem or warning. Read by `plain` when it is written plainly, else by
/// the TOML crate as the whole file is.
fn read_entry(entry: &str, around: &Around<'_>) -> Option<Found> {
    let mut problems = Problems::new(around.path, entry);
    let raw = match plain::read(entry) {
        Some(service) => vec![service],
        None => {
            let root = DeTable::parse(entry).ok()?;
            let raw = shape::read(entry, root, &mut problems).ok()?;
            if !problems.is_clean() || raw.services.len() != 1 {
                return None;
            }
            raw.services
        }
    };
    let names = Names::new(around.apex.clone());
    let mut services = Checker {
        problems: &mut problems,
        config_dir: around.config_dir.to_path_buf(),
    }
    .services(raw, &names, around.zones, around.domain);
    if !problems.is_clean() {
        return None;
    }
    let (service, span) = services.pop()?;
    Some(Found {
        service: Arc::new(service),
        span,
        suspicious: names.suspicious.into_inner(),
    })
}
