//! From raw TOML to a checked [`Config`], collecting every problem.
//!
//! Three passes, each feeding the same problem list: TOML syntax (fatal, the
//! rest cannot be read), shape (types; unknown keys are collected, not fatal,
//! see `shape`), and meaning (names, references, addresses, duplicates), one
//! file per section of the config. A section's check returns `None` exactly
//! when it reported a problem; the config is built only when none did.
//! Defaults come from `config::defaults`.

mod cidr;
mod cluster;
mod conflicts;
mod dnssec;
mod domain;
mod geoip;
mod health_check;
pub(crate) mod incremental;
mod names;
mod plain;
mod policy;
mod records;
mod routing;
mod server;
mod services;
mod shape;
mod values;
mod zones;

use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;
use toml::de::DeTable;

use super::error::Problems;
use super::raw::{RawConfig, RawService};
use super::{Config, Domain, Problem, Service, Zone};
use names::Names;

pub(crate) use values::{parse_duration, parse_hex16};

use values::Complaint;

pub(super) fn parse(text: &str, path: &Path) -> Result<Config, Vec<Problem>> {
    let mut problems = Problems::new(path, text);

    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(err) => {
            problems.hint(
                err.span().unwrap_or(0..0),
                format!("invalid TOML: {}", err.message().trim()),
                "fix the syntax; nothing else in the file is checked until it parses",
            );
            return Err(problems.into_vec());
        }
    };

    let raw = shape::read(text, root, &mut problems);
    let raw = match raw {
        Ok(raw) => raw,
        Err(err) => {
            problems.hint(
                err.span().unwrap_or(0..0),
                err.message().trim().to_string(),
                "fix this value's type; the rest of the file is checked once it reads",
            );
            return Err(problems.into_vec());
        }
    };

    let config = Checker {
        problems: &mut problems,
        config_dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
    }
    .check(raw, path, |checker, raw, names, zones, domain| {
        let services = checker.services(raw, names, zones, domain);
        services
            .into_iter()
            .map(|(s, r)| (Arc::new(s), r))
            .collect()
    });
    if problems.is_empty() {
        let mut config = config.expect("a config without problems is complete");
        config.warnings = problems.warnings();
        Ok(config)
    } else {
        Err(problems.into_vec())
    }
}

/// The meaning pass: each section's check is a method in that section's file.
struct Checker<'p, 'a> {
    problems: &'p mut Problems<'a>,
    /// Relative file names in the config are relative to this.
    config_dir: PathBuf,
}

impl<'p, 'a> Checker<'p, 'a> {
    /// Builds the config; `None` only when a problem was reported.
    /// `services` reads the `[[services]]` entries, given what they are
    /// checked against: [`Checker::services`], or a reuse of a previous
    /// read's (`incremental`).
    fn check(
        mut self,
        raw: RawConfig,
        path: &Path,
        services: impl FnOnce(
            &mut Checker<'p, 'a>,
            Vec<RawService>,
            &Names,
            &[(Zone, Range<usize>)],
            Option<&Domain>,
        ) -> Vec<(Arc<Service>, Range<usize>)>,
    ) -> Option<Config> {
        let server = self.server(raw.server);
        let Some(raw_domain) = raw.domain else {
            self.err(
                0..0,
                "missing [domain] table",
                "add a [domain] table with at least `name = \"gslb.example.\"` and a [[domain.nameservers]] entry",
            );
            return None;
        };
        let domain_span = raw_domain.span();
        let raw_domain = raw_domain.into_inner();
        let names = Names::new(self.apex(&raw_domain.name)?);
        let domain = self.domain(raw_domain, domain_span, &names);
        let records = self.records(raw.records, &names, domain.as_ref());
        let zones = self.zones(raw.zones);
        let services = services(&mut self, raw.services, &names, &zones, domain.as_ref());
        if let Some((_, span)) = services.get(crate::routing::memo::MAX_SERVICES) {
            self.err(
                span.clone(),
                format!(
                    "more than {} services in one domain",
                    crate::routing::memo::MAX_SERVICES
                ),
                "serve the rest from a second domain (another Meridian config)",
            );
            return None;
        }
        let geoip = self.geoip(raw.geoip);
        let routing = self.routing(raw.routing, &zones);
        let cidr_rules = self.cidr_rules(raw.cidr_rules, &zones);
        let zone_names: Vec<&str> = zones.iter().map(|(z, _)| z.name.as_str()).collect();
        let cluster = cluster::check(raw.cluster, &zone_names, &self.config_dir, self.problems);
        let dnssec = self.dnssec(raw.dnssec, domain.as_ref());
        self.conflicts(&records, &services, domain.as_ref());
        for text in names.suspicious.take() {
            // Found again in the text: names reach the resolver without
            // their spans. The first quoted occurrence is where it was written.
            let span = self
                .problems
                .text()
                .find(&format!("\"{text}\""))
                .or_else(|| self.problems.text().find(&text))
                .map_or(0..0, |at| at..at + text.len());
            let (message, hint) = names.warning(&text);
            self.problems.warn(span, message, hint);
        }
        Some(Config {
            source: path.to_path_buf(),
            server: server?,
            domain: domain?,
            records: records.into_iter().map(|(r, _)| r).collect(),
            zones: zones.into_iter().map(|(z, _)| z).collect(),
            services: services.into_iter().map(|(s, _)| s).collect(),
            geoip: geoip?,
            routing: routing?,
            cidr_rules: cidr_rules?,
            cluster: cluster?,
            dnssec: dnssec?,
            digest: String::new(),
            warnings: Vec::new(),
            service_index: None,
        })
    }

    fn err(&mut self, span: Range<usize>, message: impl Into<String>, hint: impl Into<String>) {
        self.problems.hint(span, message, hint);
    }

    /// The shape of most keys: `default` when the key is absent; else
    /// `read` turns the value into what the config holds, or complains,
    /// and the complaint is reported at the value and gives `None`.
    fn setting<T, U>(
        &mut self,
        raw: Option<&Spanned<T>>,
        default: U,
        read: impl FnOnce(&T) -> Result<U, Complaint>,
    ) -> Option<U> {
        let Some(raw) = raw else {
            return Some(default);
        };
        match read(raw.get_ref()) {
            Ok(value) => Some(value),
            Err((message, hint)) => {
                self.err(raw.span(), message, hint);
                None
            }
        }
    }

    /// [`Checker::setting`] for a key whose value is used as written once
    /// `is_valid` accepts it.
    fn checked<T: Clone>(
        &mut self,
        raw: Option<&Spanned<T>>,
        default: T,
        is_valid: impl FnOnce(&T) -> bool,
        complaint: impl FnOnce(&T) -> Complaint,
    ) -> Option<T> {
        self.setting(raw, default, |value| {
            if is_valid(value) {
                Ok(value.clone())
            } else {
                Err(complaint(value))
            }
        })
    }

    /// A count that must be positive.
    fn at_least_one(
        &mut self,
        raw: Option<&Spanned<usize>>,
        key: &str,
        default: usize,
    ) -> Option<usize> {
        self.checked(
            raw,
            default,
            |v| *v > 0,
            |_| {
                (
                    format!("{key} must be at least 1"),
                    format!("use e.g. {default}"),
                )
            },
        )
    }

    /// A positive duration with a unit (see [`parse_duration`]).
    fn duration(&mut self, raw: Option<&Spanned<String>>, default: Duration) -> Option<Duration> {
        self.setting(raw, default, |text| {
            parse_duration(text)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    (
                        format!("`{text}` is not a duration"),
                        "write a positive number with a unit: `500ms`, `2s`, `1m`".to_string(),
                    )
                })
        })
    }

    /// A list of IP addresses, each once; `None` when any is wrong (every
    /// wrong one is reported).
    fn addresses(&mut self, raw: &[Spanned<String>]) -> Option<Vec<IpAddr>> {
        let mut out = Vec::with_capacity(raw.len());
        let mut ok = true;
        for addr in raw {
            match addr.get_ref().trim().parse::<IpAddr>() {
                Ok(a) if out.contains(&a) => {
                    self.err(
                        addr.span(),
                        format!("address `{a}` is listed twice"),
                        "remove the duplicate",
                    );
                    ok = false;
                }
                Ok(a) => out.push(a),
                Err(_) => {
                    self.err(
                        addr.span(),
                        format!("`{}` is not an IP address", addr.get_ref()),
                        "write an IPv4 address like `192.0.2.10` or an IPv6 address like `2001:db8::10`, without a port",
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }
}
