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
    root: &Spanned<DeTable<'_>>,
    problems: &mut Problems<'_>,
) -> Result<RawConfig, toml::de::Error> {
    let mut unknown: Vec<Vec<PathSegment>> = Vec::new();
    let deserializer = toml::de::Deserializer::from(root.clone());
    let raw: Result<RawConfig, _> =
        serde_ignored::deserialize(deserializer, |path| unknown.push(segments(&path)));
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
        problems.hint(
            span,
            format!("unknown key `{key}` in {}", describe_table(segs)),
            "check the spelling against the configuration reference in README.md, or remove it",
        );
    }
    raw
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
