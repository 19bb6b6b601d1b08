//! The `[cluster]` section: the domain's nodes and how they share what they
//! see, as written and as checked.
//!
//! Which node a process is does not come from the file (see
//! `Config::for_node`), so every node runs the very same file and the
//! config digests the nodes publish can be compared.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::values::parse_duration;
use crate::config::error::Problems;
use crate::config::raw::RawCluster;
use crate::config::{ClusterNode, ClusterSettings};

/// Shortest token accepted: guessable tokens protect nothing.
const TOKEN_MIN: usize = 16;

/// Checks `[cluster]`; `None` only when a problem was reported.
pub(super) fn check(
    raw: Option<RawCluster>,
    zones: &[&str],
    config_dir: &Path,
    problems: &mut Problems<'_>,
) -> Option<ClusterSettings> {
    let Some(raw) = raw else {
        return Some(ClusterSettings::default());
    };
    let mut settings = ClusterSettings::default();
    let mut ok = true;
    let mut duration = |raw: &Option<Spanned<String>>, default: Duration| match raw {
        None => Some(default),
        Some(text) => match parse_duration(text.get_ref()) {
            Some(d) if !d.is_zero() => Some(d),
            _ => {
                problems.hint(
                    text.span(),
                    format!("`{}` is not a duration", text.get_ref()),
                    "write a positive number with a unit: `500ms`, `2s`, `1m`",
                );
                None
            }
        },
    };
    let pull_interval = duration(&raw.pull_interval, settings.pull_interval);
    let pull_timeout = duration(&raw.pull_timeout, settings.pull_timeout);
    let stale_after = duration(&raw.stale_after, settings.stale_after);
    match (pull_interval, pull_timeout, stale_after) {
        (Some(interval), Some(timeout), Some(stale)) => {
            settings.pull_interval = interval;
            settings.pull_timeout = timeout;
            settings.stale_after = stale;
            if stale <= interval {
                let span = raw
                    .stale_after
                    .as_ref()
                    .or(raw.pull_interval.as_ref())
                    .map_or(0..0, Spanned::span);
                problems.hint(
                    span,
                    "cluster.stale_after must be longer than cluster.pull_interval",
                    "give peers a few pulls before their observations stop counting, e.g. pull_interval = \"250ms\", stale_after = \"2s\"",
                );
                ok = false;
            }
        }
        _ => ok = false,
    }

    let mut names: Vec<(String, Range<usize>)> = Vec::new();
    for node in &raw.nodes {
        let name = node.name.get_ref().trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            problems.hint(
                node.name.span(),
                format!("node name `{}` is not valid", node.name.get_ref()),
                "use letters, digits, `-`, `_` and `.`, e.g. `us-east-1`",
            );
            ok = false;
        } else if names.iter().any(|(n, _)| n == name) {
            problems.hint(
                node.name.span(),
                format!("node `{name}` is defined twice"),
                "give every node its own name",
            );
            ok = false;
        }
        names.push((name.to_string(), node.name.span()));
        let zone = zones.iter().position(|z| *z == node.zone.get_ref().trim());
        if zone.is_none() {
            problems.hint(
                node.zone.span(),
                format!("zone `{}` is not defined", node.zone.get_ref()),
                format!("use one of: {}", zones.join(", ")),
            );
            ok = false;
        }
        let admin = parse_admin_url(node.admin.get_ref());
        if admin.is_none() {
            problems.hint(
                node.admin.span(),
                format!("`{}` is not an admin URL", node.admin.get_ref()),
                "write the node's admin endpoint as http://ADDRESS:PORT, e.g. \"http://192.0.2.10:8053\" or \"http://[2001:db8::10]:8053\"",
            );
            ok = false;
        }
        if let (Some(zone), Some(admin)) = (zone, admin) {
            settings.nodes.push(ClusterNode {
                name: name.to_string(),
                zone,
                admin,
            });
        }
    }

    settings.token = match (&raw.token, &raw.token_file) {
        (Some(t), Some(_)) => {
            problems.hint(
                t.span(),
                "cluster.token and cluster.token_file are both set",
                "keep one: token_file keeps the secret out of this file",
            );
            ok = false;
            None
        }
        (Some(t), None) => Some((t.get_ref().clone(), t.span())),
        (None, Some(f)) => {
            let path = config_dir.join(f.get_ref());
            match std::fs::read_to_string(&path) {
                Ok(text) => Some((text.trim().to_string(), f.span())),
                Err(err) => {
                    problems.hint(
                        f.span(),
                        format!("cannot read cluster.token_file {}: {err}", path.display()),
                        "check the path (relative paths are relative to this file) and its permissions",
                    );
                    ok = false;
                    None
                }
            }
        }
        (None, None) => None,
    }
    .and_then(|(token, span)| {
        if token.len() < TOKEN_MIN || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            problems.hint(
                span,
                format!("cluster token must be at least {TOKEN_MIN} characters with no spaces"),
                "generate one, e.g. `openssl rand -hex 24`, and give every node the same",
            );
            ok = false;
            return None;
        }
        Some(token)
    });
    if settings.nodes.len() > 1 && settings.token.is_none() && ok {
        problems.hint(
            0..0,
            "[cluster] with several nodes needs cluster.token or cluster.token_file",
            "nodes authenticate their requests to each other with it; set the same token on every node",
        );
        ok = false;
    }
    if let Some(q) = &raw.quorum {
        let n = raw.nodes.len().max(1);
        if (1..=n).contains(q.get_ref()) {
            settings.quorum = Some(*q.get_ref());
        } else {
            problems.hint(
                q.span(),
                format!("cluster.quorum must be from 1 to the number of nodes ({n})"),
                "leave it out for a majority of the nodes whose observations are fresh",
            );
            ok = false;
        }
    }
    ok.then_some(settings)
}

/// `http://ADDR:PORT` with an IP address (a name would need DNS, which may
/// be what is failing).
fn parse_admin_url(text: &str) -> Option<SocketAddr> {
    let rest = text.trim().strip_prefix("http://")?;
    rest.trim_end_matches('/').parse().ok()
}

#[cfg(test)]
mod tests {
    use super::parse_admin_url;

    #[test]
    fn admin_urls_are_http_with_an_address_and_port() {
        assert_eq!(
            parse_admin_url("http://127.0.0.1:8053")
                .unwrap()
                .to_string(),
            "127.0.0.1:8053"
        );
        assert_eq!(
            parse_admin_url("http://[::1]:8053/").unwrap().to_string(),
            "[::1]:8053"
        );
        assert!(parse_admin_url("https://127.0.0.1:8053").is_none());
        assert!(parse_admin_url("http://node-a:8053").is_none());
        assert!(parse_admin_url("127.0.0.1:8053").is_none());
    }
}
