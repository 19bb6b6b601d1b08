//! The shape pass: the parsed TOML into the raw types, every unknown key
//! reported at its own position.
//!
//! serde stops at the first unknown key with `deny_unknown_fields`, so keys
//! nothing reads are collected with `serde_ignored` instead, and their place
//! in the file is found again by walking the parsed document.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::config::error::Problems;
use crate::config::raw::RawConfig;

/// The raw config, with every unknown key reported to `problems`; a value
/// of the wrong type is the error, for the caller to report.
pub(super) fn read(
    text: &str,
    root: Spanned<DeTable<'_>>,
    problems: &mut Problems<'_>,
) -> Result<RawConfig, toml::de::Error> {
    let mut unknown: Vec<Vec<PathSegment>> = Vec::new();
    // The document is consumed rather than cloned: at 10,000 services a
    // clone was 50 MiB more at the peak of every reload. The rare config
    // with unknown keys is parsed a second time to find where they are.
    let deserializer = toml::de::Deserializer::from(root);
    let raw: Result<RawConfig, _> =
        serde_ignored::deserialize(deserializer, |path| unknown.push(segments(&path)));
    if unknown.is_empty() {
        return raw;
    }
    let Ok(root) = DeTable::parse(text) else {
        return raw;
    };
    for segs in &unknown {
        let key = segs
            .iter()
            .rev()
            .find_map(|s| match s {
                PathSegment::Key(k) => Some(k.as_str()),
                PathSegment::Index(_) => None,
            })
            .unwrap_or("?");
        let span = span_of_key(root.get_ref(), segs).unwrap_or(0..0);
        let hint = match closest_key(key) {
            Some(known) => format!("did you mean `{known}`?"),
            None => {
                "check the spelling against the configuration reference in README.md, or remove it"
                    .to_string()
            }
        };
        problems.hint(
            span,
            format!("unknown key `{key}` in {}", describe_table(segs)),
            hint,
        );
    }
    raw
}

/// Every key the config reads, in any table (a test keeps it complete), to
/// suggest the one an unknown key was probably meant to be.
const KNOWN_KEYS: &[&str] = &[
    "addresses",
    "admin",
    "admin_token",
    "admin_token_file",
    "algorithm",
    "all_down",
    "answers",
    "body_contains",
    "check",
    "cidr_rules",
    "cluster",
    "continent",
    "continents",
    "cookie_secret",
    "cookie_secret_file",
    "countries",
    "country",
    "data",
    "default",
    "dns",
    "dnskey_ttl",
    "dnssec",
    "domain",
    "endpoints",
    "expect_status",
    "expire",
    "fall",
    "fallback",
    "fast_path",
    "files",
    "geo",
    "geoip",
    "host",
    "id_server",
    "identity",
    "insecure",
    "interval",
    "key_file",
    "kind",
    "latency_margin",
    "latency_margin_ms",
    "latency_max_age",
    "latitude",
    "longitude",
    "min_healthy",
    "minimum",
    "mname",
    "name",
    "nameservers",
    "networks",
    "nodes",
    "nsid",
    "order",
    "path",
    "policy",
    "port",
    "probe_concurrency",
    "probe_metrics",
    "publish",
    "pull_interval",
    "pull_timeout",
    "quorum",
    "records",
    "refresh",
    "region",
    "regions",
    "retry",
    "rise",
    "rname",
    "routing",
    "rrl_responses_per_second",
    "rrl_slip",
    "serial",
    "server",
    "service_ttl",
    "services",
    "soa",
    "stale_after",
    "state_file",
    "tcp_idle_timeout",
    "tcp_max_connections",
    "tcp_max_connections_per_source",
    "tcp_max_queries",
    "tcp_read_timeout",
    "this_zone",
    "timeout",
    "token",
    "token_file",
    "ttl",
    "type",
    "udp_payload_max",
    "udp_sockets",
    "validity",
    "watch_interval",
    "weight",
    "zone",
    "zones",
];

/// The known key nearest to `key` by edit distance, if near enough to be a
/// typo: at most a third of its length, and at least one edit.
fn closest_key(key: &str) -> Option<&'static str> {
    let key = key.to_ascii_lowercase();
    let limit = (key.chars().count() / 3).max(1);
    KNOWN_KEYS
        .iter()
        .map(|known| (edit_distance(&key, known), *known))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, known)| known)
}

/// Levenshtein distance, with a swap of neighbours counting as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_the_raw_types_read_is_known() {
        let sources = [include_str!("../raw.rs")];
        for source in sources {
            for line in source.lines() {
                let Some(rest) = line.trim().strip_prefix("pub ") else {
                    continue;
                };
                let Some((field, _)) = rest.split_once(':') else {
                    continue;
                };
                if field
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
                    && field != "record_type"
                {
                    assert!(KNOWN_KEYS.contains(&field), "add `{field}` to KNOWN_KEYS");
                }
            }
        }
    }

    #[test]
    fn a_typo_gets_the_key_it_was_meant_to_be() {
        assert_eq!(closest_key("lattitude"), Some("latitude"));
        assert_eq!(closest_key("state_flie"), Some("state_file"));
        assert_eq!(closest_key("completely_different"), None);
    }
}

#[derive(Debug, Clone)]
enum PathSegment {
    Key(String),
    Index(usize),
}

fn segments(path: &serde_ignored::Path<'_>) -> Vec<PathSegment> {
    use serde_ignored::Path as P;
    let mut out = match path {
        P::Root => return Vec::new(),
        P::Seq { parent, .. }
        | P::Map { parent, .. }
        | P::Some { parent }
        | P::NewtypeStruct { parent }
        | P::NewtypeVariant { parent } => segments(parent),
    };
    match path {
        P::Seq { index, .. } => out.push(PathSegment::Index(*index)),
        // Spanned<T> shows up as a map with private keys; it is not the
        // operator's structure.
        P::Map { key, .. } if key.starts_with("$__serde_spanned") => {}
        P::Map { key, .. } => out.push(PathSegment::Key(key.clone())),
        _ => {}
    }
    out
}

fn describe_table(segs: &[PathSegment]) -> String {
    let mut parts = Vec::new();
    for seg in &segs[..segs.len().saturating_sub(1)] {
        match seg {
            PathSegment::Key(k) => parts.push(k.clone()),
            PathSegment::Index(i) => {
                if let Some(last) = parts.last_mut() {
                    *last = format!("{last}[{i}]");
                }
            }
        }
    }
    if parts.is_empty() {
        "the top level".to_string()
    } else {
        format!("[{}]", parts.join("."))
    }
}

/// The span of the last key in `segs`, found by walking the parsed document.
fn span_of_key(root: &DeTable<'_>, segs: &[PathSegment]) -> Option<Range<usize>> {
    let (PathSegment::Key(last), parents) = segs.split_last()? else {
        return None;
    };
    let mut table = root;
    let mut i = 0;
    while i < parents.len() {
        let PathSegment::Key(key) = &parents[i] else {
            return None;
        };
        let value = table.get(key.as_str())?;
        let mut value = value.get_ref();
        if let Some(PathSegment::Index(index)) = parents.get(i + 1) {
            value = value.as_array()?.get(*index)?.get_ref();
            i += 1;
        }
        table = match value {
            DeValue::Table(t) => t,
            _ => return None,
        };
        i += 1;
    }
    table
        .keys()
        .find(|k| k.get_ref().as_ref() == last.as_str())
        .map(|k| k.span())
}
