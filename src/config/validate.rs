//! From raw TOML to a checked [`Config`], collecting every problem.
//!
//! Three passes, each feeding the same problem list: TOML syntax (fatal, the
//! rest cannot be read), shape (types; unknown keys are collected, not fatal),
//! and meaning (names, references, addresses, duplicates).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use hickory_proto::rr::rdata::{CNAME, MX, NS, PTR, SRV, TXT};
use hickory_proto::rr::{LowerName, Name, RData, RecordType};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::Problems;
use super::raw::*;
use super::*;

const DEFAULT_DNS_LISTEN: &str = "127.0.0.1:5300";
const DEFAULT_UDP_PAYLOAD_MAX: u16 = 1232;
const DEFAULT_TTL: u32 = 300;
const DEFAULT_SERVICE_TTL: u32 = 30;
const CONTINENTS: &[&str] = &["AF", "AN", "AS", "EU", "NA", "OC", "SA"];
const RECORD_TYPES: &[RecordType] = &[
    RecordType::A,
    RecordType::AAAA,
    RecordType::CNAME,
    RecordType::TXT,
    RecordType::MX,
    RecordType::SRV,
    RecordType::CAA,
    RecordType::NS,
    RecordType::PTR,
];

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
    .check(raw, path);
    if problems.is_empty() {
        Ok(config.expect("a config without problems is complete"))
    } else {
        Err(problems.into_vec())
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

struct Checker<'p, 'a> {
    problems: &'p mut Problems<'a>,
    /// Relative file names in the config are relative to this.
    config_dir: std::path::PathBuf,
}

/// Names as written in the config, resolved against the apex.
struct Names {
    apex: Name,
}

impl Names {
    /// An owner name: `@` is the apex, a name without a trailing dot is
    /// relative to it, an absolute name must be inside the domain.
    fn owner(&self, text: &str) -> Result<Name, (String, String)> {
        let name = self.any(text)?;
        if !self.apex.zone_of(&name) {
            return Err((
                format!("`{text}` is outside the domain `{}`", self.apex),
                format!(
                    "write it relative to the domain (without a trailing dot) or as a name ending in `{}`",
                    self.apex
                ),
            ));
        }
        Ok(name)
    }

    /// Any name: relative names are completed with the apex.
    fn any(&self, text: &str) -> Result<Name, (String, String)> {
        let text = text.trim();
        if text == "@" {
            return Ok(self.apex.clone());
        }
        if text.is_empty() || text.contains(char::is_whitespace) || text.contains("..") {
            return Err((
                format!("`{text}` is not a domain name"),
                "use dot-separated labels of letters, digits and hyphens".to_string(),
            ));
        }
        let name = Name::from_ascii(text).map_err(|e| {
            (
                format!("`{text}` is not a domain name: {e}"),
                "use dot-separated labels of letters, digits and hyphens".to_string(),
            )
        })?;
        if name.is_fqdn() {
            Ok(name)
        } else {
            name.append_domain(&self.apex).map_err(|e| {
                (
                    format!("`{text}` is too long once the domain is appended: {e}"),
                    "shorten the name".to_string(),
                )
            })
        }
    }

    fn absolutize(&self, name: Name) -> Name {
        if name.is_fqdn() {
            name
        } else {
            name.clone().append_domain(&self.apex).unwrap_or(name)
        }
    }
}

impl Checker<'_, '_> {
    fn err(&mut self, span: Range<usize>, message: impl Into<String>, hint: impl Into<String>) {
        self.problems.hint(span, message, hint);
    }

    /// Builds the config; `None` only when a problem was reported.
    fn check(mut self, raw: RawConfig, path: &Path) -> Option<Config> {
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
        let apex = match Name::from_ascii(raw_domain.name.get_ref().trim()) {
            Ok(name) if name.is_fqdn() && !name.is_root() => name,
            Ok(name) if !name.is_fqdn() => {
                self.err(
                    raw_domain.name.span(),
                    format!(
                        "domain name `{}` is not fully qualified",
                        raw_domain.name.get_ref()
                    ),
                    format!("end it with a dot: `{}.`", raw_domain.name.get_ref()),
                );
                return None;
            }
            Ok(_) => {
                self.err(
                    raw_domain.name.span(),
                    "the domain cannot be the root",
                    "name the subdomain delegated to Meridian, e.g. `gslb.example.com.`",
                );
                return None;
            }
            Err(e) => {
                self.err(
                    raw_domain.name.span(),
                    format!(
                        "domain name `{}` is not valid: {e}",
                        raw_domain.name.get_ref()
                    ),
                    "use dot-separated labels ending in a dot, e.g. `gslb.example.com.`",
                );
                return None;
            }
        };
        let names = Names { apex };
        let domain = self.domain(raw_domain, domain_span, &names);
        let records = self.records(raw.records, &names, domain.as_ref());
        let zones = self.zones(raw.zones);
        let services = self.services(raw.services, &names, &zones, domain.as_ref());
        let geoip = self.geoip(raw.geoip);
        let routing = self.routing(raw.routing, &zones);
        let cidr_rules = self.cidr_rules(raw.cidr_rules, &zones);
        let zone_names: Vec<&str> = zones.iter().map(|(z, _)| z.name.as_str()).collect();
        let cluster =
            super::cluster::check(raw.cluster, &zone_names, &self.config_dir, self.problems);
        self.conflicts(&records, &services, domain.as_ref());
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
            digest: String::new(),
        })
    }

    fn server(&mut self, raw: RawServer) -> Option<ServerSettings> {
        let mut ok = true;
        let mut dns = Vec::new();
        match raw.dns {
            None => dns.push(DEFAULT_DNS_LISTEN.parse().expect("default address parses")),
            Some(list) => {
                let mut seen = HashSet::new();
                for addr in list {
                    match addr.get_ref().parse::<SocketAddr>() {
                        Ok(a) if !seen.insert(a) => {
                            self.err(
                                addr.span(),
                                format!("DNS address `{a}` is listed twice"),
                                "remove the duplicate",
                            );
                            ok = false;
                        }
                        Ok(a) => dns.push(a),
                        Err(_) => {
                            self.err(
                                addr.span(),
                                format!("`{}` is not an address and port", addr.get_ref()),
                                "write it as `127.0.0.1:5300` or `[::1]:5300`",
                            );
                            ok = false;
                        }
                    }
                }
            }
        }
        let admin = match raw.admin {
            None => None,
            Some(addr) => match addr.get_ref().parse::<SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    self.err(
                        addr.span(),
                        format!("`{}` is not an address and port", addr.get_ref()),
                        "write it as `127.0.0.1:8053`; keep it on loopback unless a token protects it",
                    );
                    ok = false;
                    None
                }
            },
        };
        let udp_payload_max = match raw.udp_payload_max {
            None => DEFAULT_UDP_PAYLOAD_MAX,
            Some(v) if (512..=4096).contains(v.get_ref()) => *v.get_ref(),
            Some(v) => {
                self.err(
                    v.span(),
                    format!("udp_payload_max {} is out of range", v.get_ref()),
                    "use a value between 512 and 4096; 1232 avoids fragmentation",
                );
                ok = false;
                DEFAULT_UDP_PAYLOAD_MAX
            }
        };
        let tcp_idle_timeout = self
            .duration(raw.tcp_idle_timeout.as_ref(), Duration::from_secs(10))
            .unwrap_or_else(|| {
                ok = false;
                Duration::ZERO
            });
        let tcp_max_connections = self.at_least_one(
            raw.tcp_max_connections.as_ref(),
            "tcp_max_connections",
            1024,
            &mut ok,
        );
        let state_file = raw.state_file.map(|f| {
            let file = Path::new(f.get_ref());
            if file.is_absolute() {
                file.to_path_buf()
            } else {
                self.config_dir.join(file)
            }
        });
        let admin_token = match raw.admin_token {
            Some(t) if t.get_ref().trim().len() < 16 => {
                self.err(
                    t.span(),
                    "admin_token is too short",
                    "use at least 16 random characters, e.g. from `openssl rand -hex 16`",
                );
                ok = false;
                None
            }
            t => t.map(|t| t.into_inner().trim().to_string()),
        };
        let probe_concurrency = self.at_least_one(
            raw.probe_concurrency.as_ref(),
            "probe_concurrency",
            512,
            &mut ok,
        );
        let probe_metrics_by_zone = match raw.probe_metrics.as_ref() {
            None => false,
            Some(v) => match v.get_ref().as_str() {
                "address" => false,
                "zone" => true,
                other => {
                    self.err(
                        v.span(),
                        format!("probe_metrics \"{other}\" is not known"),
                        "use \"address\" (series per endpoint address) or \"zone\" (summed per zone)",
                    );
                    ok = false;
                    false
                }
            },
        };
        let cookie_secret = match raw.cookie_secret {
            None => None,
            Some(hex) => match parse_hex16(hex.get_ref().trim()) {
                Some(secret) => Some(secret),
                None => {
                    self.err(
                        hex.span(),
                        "cookie_secret must be 32 hexadecimal characters (16 bytes)",
                        "generate one with `openssl rand -hex 16`",
                    );
                    ok = false;
                    None
                }
            },
        };
        let rrl = match raw.rrl_responses_per_second {
            None => {
                if let Some(slip) = &raw.rrl_slip {
                    self.err(
                        slip.span(),
                        "rrl_slip is set but rate limiting is off",
                        "set `rrl_responses_per_second` too, or remove `rrl_slip`",
                    );
                    ok = false;
                }
                None
            }
            Some(rate) if *rate.get_ref() == 0 => {
                self.err(
                    rate.span(),
                    "rrl_responses_per_second must be at least 1",
                    "remove the key to turn rate limiting off",
                );
                ok = false;
                None
            }
            Some(rate) => Some(RrlSettings {
                responses_per_second: rate.into_inner(),
                slip: raw.rrl_slip.map(|s| s.into_inner()).unwrap_or(2),
            }),
        };
        let tcp_max_connections_per_source = self.at_least_one(
            raw.tcp_max_connections_per_source.as_ref(),
            "tcp_max_connections_per_source",
            64,
            &mut ok,
        );
        let tcp_max_queries = self.at_least_one(
            raw.tcp_max_queries.as_ref(),
            "tcp_max_queries",
            100_000,
            &mut ok,
        );
        let tcp_read_timeout = self
            .duration(raw.tcp_read_timeout.as_ref(), Duration::from_secs(5))
            .unwrap_or_else(|| {
                ok = false;
                Duration::ZERO
            });
        ok.then_some(ServerSettings {
            cookie_secret,
            rrl,
            tcp_max_queries,
            tcp_read_timeout,
            fast_path: raw.fast_path.map(|v| v.into_inner()).unwrap_or(true),
            probe_metrics_by_zone,
            state_file,
            admin_token,
            probe_concurrency,
            dns,
            admin,
            udp_payload_max,
            udp_sockets: raw.udp_sockets.map(|v| v.into_inner()).unwrap_or(0),
            tcp_idle_timeout,
            tcp_max_connections,
            tcp_max_connections_per_source,
        })
    }

    /// A count that must be positive; `default` when absent. A zero is
    /// reported and clears `ok`.
    fn at_least_one(
        &mut self,
        raw: Option<&Spanned<usize>>,
        key: &str,
        default: usize,
        ok: &mut bool,
    ) -> usize {
        match raw {
            None => default,
            Some(v) if *v.get_ref() > 0 => *v.get_ref(),
            Some(v) => {
                self.err(
                    v.span(),
                    format!("{key} must be at least 1"),
                    format!("use e.g. {default}"),
                );
                *ok = false;
                1
            }
        }
    }

    fn duration(&mut self, raw: Option<&Spanned<String>>, default: Duration) -> Option<Duration> {
        let Some(raw) = raw else {
            return Some(default);
        };
        match parse_duration(raw.get_ref()) {
            Some(d) if !d.is_zero() => Some(d),
            _ => {
                self.err(
                    raw.span(),
                    format!("`{}` is not a duration", raw.get_ref()),
                    "write a positive number with a unit: `500ms`, `2s`, `1m`",
                );
                None
            }
        }
    }

    fn domain(&mut self, raw: RawDomain, span: Range<usize>, names: &Names) -> Option<Domain> {
        let mut ok = true;
        let mut nameservers = Vec::new();
        let mut seen = HashSet::new();
        for ns in raw.nameservers {
            let name = match names.any(ns.name.get_ref()) {
                Ok(n) => n,
                Err((m, h)) => {
                    self.err(ns.name.span(), m, h);
                    ok = false;
                    continue;
                }
            };
            if !seen.insert(LowerName::new(&name)) {
                self.err(
                    ns.name.span(),
                    format!("nameserver `{name}` is listed twice"),
                    "remove the duplicate",
                );
                ok = false;
                continue;
            }
            let addresses = self.addresses(&ns.addresses);
            ok &= addresses.is_some();
            let addresses = addresses.unwrap_or_default();
            if names.apex.zone_of(&name) && addresses.is_empty() && ok {
                self.err(
                    ns.name.span(),
                    format!("nameserver `{name}` is inside the domain but has no addresses"),
                    "add `addresses = [...]` (glue), or resolvers cannot reach it",
                );
                ok = false;
            }
            nameservers.push(Nameserver { name, addresses });
        }
        if nameservers.is_empty() && ok {
            self.err(
                span.clone(),
                "the domain has no nameservers",
                "add a [[domain.nameservers]] entry with `name` and `addresses` for each node",
            );
            ok = false;
        }
        let soa_raw = raw.soa;
        let mname = match &soa_raw.mname {
            Some(m) => match names.any(m.get_ref()) {
                Ok(n) => Some(n),
                Err((msg, h)) => {
                    self.err(m.span(), msg, h);
                    None
                }
            },
            None => nameservers.first().map(|ns| ns.name.clone()),
        };
        let rname = match &soa_raw.rname {
            Some(r) => match names.any(&r.get_ref().replacen('@', ".", 1)) {
                Ok(n) => Some(n),
                Err((msg, h)) => {
                    self.err(r.span(), msg, h);
                    None
                }
            },
            None => names.any("hostmaster").ok(),
        };
        let ttl = raw.ttl.map(|t| t.into_inner()).unwrap_or(DEFAULT_TTL);
        let service_ttl = match raw.service_ttl {
            None => DEFAULT_SERVICE_TTL,
            Some(t) => *t.get_ref(),
        };
        let soa = Soa {
            mname: mname?,
            rname: rname?,
            serial: soa_raw.serial.unwrap_or(1),
            refresh: soa_raw.refresh.unwrap_or(3600),
            retry: soa_raw.retry.unwrap_or(600),
            expire: soa_raw.expire.unwrap_or(604_800),
            minimum: soa_raw.minimum.unwrap_or(60),
            ttl: soa_raw.ttl.unwrap_or(3600),
        };
        ok.then_some(Domain {
            name: names.apex.clone(),
            ttl,
            service_ttl,
            soa,
            nameservers,
        })
    }

    fn addresses(&mut self, raw: &[Spanned<String>]) -> Option<Vec<IpAddr>> {
        let mut out = Vec::new();
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

    fn records(
        &mut self,
        raw: Vec<RawRecord>,
        names: &Names,
        domain: Option<&Domain>,
    ) -> Vec<(StaticRecord, Range<usize>)> {
        let default_ttl = domain.map(|d| d.ttl).unwrap_or(DEFAULT_TTL);
        let mut out: Vec<(StaticRecord, Range<usize>)> = Vec::new();
        let mut seen_records: HashSet<(LowerName, String)> = HashSet::new();
        for rec in raw {
            let name = match names.owner(rec.name.get_ref()) {
                Ok(n) => n,
                Err((m, h)) => {
                    self.err(rec.name.span(), m, h);
                    continue;
                }
            };
            let type_text = rec.record_type.get_ref().trim().to_ascii_uppercase();
            let record_type = match type_text.parse::<RecordType>() {
                Ok(t) if RECORD_TYPES.contains(&t) => t,
                Ok(RecordType::SOA) => {
                    self.err(
                        rec.record_type.span(),
                        "the SOA record is built from [domain.soa]",
                        "remove this record and set the fields in [domain.soa]",
                    );
                    continue;
                }
                _ => {
                    let supported: Vec<String> =
                        RECORD_TYPES.iter().map(|t| t.to_string()).collect();
                    self.err(
                        rec.record_type.span(),
                        format!(
                            "record type `{}` is not supported",
                            rec.record_type.get_ref()
                        ),
                        format!("use one of {}", supported.join(", ")),
                    );
                    continue;
                }
            };
            if record_type == RecordType::NS && name == names.apex {
                self.err(
                    rec.name.span(),
                    "NS records at the apex come from [[domain.nameservers]]",
                    "list the node under [[domain.nameservers]] instead",
                );
                continue;
            }
            let data_span = rec.data.span();
            let texts: Vec<String> = match rec.data.into_inner() {
                toml::Value::String(s) => vec![s],
                toml::Value::Array(items) if !items.is_empty() => {
                    let strings: Option<Vec<String>> = items
                        .into_iter()
                        .map(|v| v.as_str().map(str::to_string))
                        .collect();
                    match strings {
                        Some(s) => s,
                        None => {
                            self.err(
                                data_span,
                                "record data must be strings",
                                "quote each value, e.g. `data = [\"10 mail\"]`",
                            );
                            continue;
                        }
                    }
                }
                _ => {
                    self.err(
                        data_span,
                        "record data must be a string or a non-empty list of strings",
                        "write it in zone-file form, e.g. `data = \"10 mail.gslb.example.\"` for MX",
                    );
                    continue;
                }
            };
            for text in texts {
                let data = match parse_rdata(record_type, &text, names) {
                    Ok(d) => d,
                    Err(e) => {
                        self.err(
                            data_span.clone(),
                            format!("`{text}` is not valid {record_type} data: {e}"),
                            rdata_hint(record_type),
                        );
                        continue;
                    }
                };
                let record = StaticRecord {
                    name: name.clone(),
                    ttl: rec.ttl.unwrap_or(default_ttl),
                    data,
                };
                let identity = (LowerName::new(&record.name), record.data.to_string());
                if !seen_records.insert(identity) {
                    self.err(
                        data_span.clone(),
                        format!("{record_type} record `{name} {text}` is defined twice"),
                        "remove the duplicate",
                    );
                    continue;
                }
                out.push((record, rec.name.span()));
            }
        }
        out
    }

    fn zones(&mut self, raw: Vec<RawZone>) -> Vec<(Zone, Range<usize>)> {
        let mut out: Vec<(Zone, Range<usize>)> = Vec::new();
        for z in raw {
            let name = z.name.get_ref().trim().to_string();
            let valid_name = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid_name {
                self.err(
                    z.name.span(),
                    format!("zone name `{name}` is not valid"),
                    "use letters, digits, `-` and `_`, e.g. `us-east`",
                );
                continue;
            }
            if out.iter().any(|(o, _)| o.name == name) {
                self.err(
                    z.name.span(),
                    format!("zone `{name}` is defined twice"),
                    "give each [[zones]] entry its own name",
                );
                continue;
            }
            if !(-90.0..=90.0).contains(z.latitude.get_ref()) {
                self.err(
                    z.latitude.span(),
                    format!("latitude {} is out of range", z.latitude.get_ref()),
                    "use degrees between -90 and 90 (north is positive)",
                );
            }
            if !(-180.0..=180.0).contains(z.longitude.get_ref()) {
                self.err(
                    z.longitude.span(),
                    format!("longitude {} is out of range", z.longitude.get_ref()),
                    "use degrees between -180 and 180 (east is positive)",
                );
            }
            let continent = z
                .continent
                .as_ref()
                .map(|c| c.get_ref().trim().to_ascii_uppercase());
            if let (Some(c), Some(span)) = (&continent, z.continent.as_ref().map(|c| c.span()))
                && !CONTINENTS.contains(&c.as_str())
            {
                self.err(
                    span,
                    format!("continent `{c}` is not a continent code"),
                    format!("use one of {}", CONTINENTS.join(", ")),
                );
            }
            let country = z
                .country
                .as_ref()
                .map(|c| c.get_ref().trim().to_ascii_uppercase());
            if let (Some(c), Some(span)) = (&country, z.country.as_ref().map(|c| c.span()))
                && (c.len() != 2 || !c.chars().all(|ch| ch.is_ascii_alphabetic()))
            {
                self.err(
                    span,
                    format!("country `{c}` is not a two-letter country code"),
                    "use the ISO 3166-1 alpha-2 code, e.g. `US`, `IE`, `SG`",
                );
            }
            // Kept even when a value is wrong (that error is reported), so
            // services naming it do not add a second, misleading error.
            out.push((
                Zone {
                    name,
                    latitude: z.latitude.into_inner(),
                    longitude: z.longitude.into_inner(),
                    continent,
                    country,
                    region: z.region.map(|r| r.into_inner()),
                },
                z.name.span(),
            ));
        }
        out
    }

    fn services(
        &mut self,
        raw: Vec<RawService>,
        names: &Names,
        zones: &[(Zone, Range<usize>)],
        domain: Option<&Domain>,
    ) -> Vec<(Service, Range<usize>)> {
        let default_ttl = domain.map(|d| d.service_ttl).unwrap_or(DEFAULT_SERVICE_TTL);
        let mut out: Vec<(Service, Range<usize>)> = Vec::new();
        let mut seen_names: HashSet<LowerName> = HashSet::new();
        for mut s in raw {
            let name = match names.owner(s.name.get_ref()) {
                Ok(n) => n,
                Err((m, h)) => {
                    self.err(s.name.span(), m, h);
                    continue;
                }
            };
            if !seen_names.insert(LowerName::new(&name)) {
                self.err(
                    s.name.span(),
                    format!("service `{name}` is defined twice"),
                    "give each [[services]] entry its own name",
                );
                continue;
            }
            let mut ok = true;
            let default_check = s.check.clone().unwrap_or_default();
            let mut endpoints = Vec::new();
            let mut seen_zones = HashMap::new();
            for ep in std::mem::take(&mut s.endpoints) {
                let zone_name = ep.zone.get_ref().trim();
                let Some(zone) = zones.iter().position(|(z, _)| z.name == zone_name) else {
                    let defined: Vec<&str> = zones.iter().map(|(z, _)| z.name.as_str()).collect();
                    self.err(
                        ep.zone.span(),
                        format!("service `{name}` names zone `{zone_name}`, which is not defined"),
                        if defined.is_empty() {
                            "define it in a [[zones]] entry".to_string()
                        } else {
                            format!(
                                "define it in [[zones]] or use one of: {}",
                                defined.join(", ")
                            )
                        },
                    );
                    ok = false;
                    continue;
                };
                if seen_zones.insert(zone, ()).is_some() {
                    self.err(
                        ep.zone.span(),
                        format!("service `{name}` has two endpoints in zone `{zone_name}`"),
                        "list all of a zone's addresses in one endpoint",
                    );
                    ok = false;
                    continue;
                }
                let Some(addresses) = self.addresses(&ep.addresses) else {
                    ok = false;
                    continue;
                };
                if addresses.is_empty() {
                    self.err(
                        ep.zone.span(),
                        format!("endpoint `{zone_name}` of service `{name}` has no addresses"),
                        "add `addresses = [\"192.0.2.10\"]` with the zone's load balancer",
                    );
                    ok = false;
                    continue;
                }
                let min_healthy = match &ep.min_healthy {
                    None => 1,
                    Some(m) if (1..=addresses.len()).contains(m.get_ref()) => *m.get_ref(),
                    Some(m) => {
                        self.err(
                            m.span(),
                            format!(
                                "min_healthy {} is not between 1 and the endpoint's {} address(es)",
                                m.get_ref(),
                                addresses.len()
                            ),
                            "lower it, or add addresses",
                        );
                        ok = false;
                        continue;
                    }
                };
                let check = self.endpoint_check(&default_check, ep.check.as_ref());
                let Some(check) = check else {
                    ok = false;
                    continue;
                };
                let weight = match &ep.weight {
                    None => 1,
                    Some(w) if *w.get_ref() <= 1_000_000 => *w.get_ref(),
                    Some(w) => {
                        self.err(
                            w.span(),
                            format!("weight {} is too large", w.get_ref()),
                            "weights are relative; use values up to 1000000",
                        );
                        ok = false;
                        continue;
                    }
                };
                endpoints.push(Endpoint {
                    zone,
                    weight,
                    addresses,
                    min_healthy,
                    check,
                });
            }
            if endpoints.is_empty() && ok {
                self.err(
                    s.name.span(),
                    format!("service `{name}` has no endpoints"),
                    "add a [[services.endpoints]] entry with `zone` and `addresses` for each zone",
                );
                ok = false;
            }
            let service_zones: Vec<usize> = endpoints.iter().map(|e| e.zone).collect();
            let policy = self.policy(&s, &name, zones, &service_zones, &endpoints);
            ok &= policy.is_some();
            let answers = match &s.answers {
                None => 1,
                Some(a) if *a.get_ref() >= 1 => *a.get_ref(),
                Some(a) => {
                    self.err(
                        a.span(),
                        "answers must be at least 1",
                        "use 1 for one zone per answer",
                    );
                    ok = false;
                    1
                }
            };
            let all_down = match s.all_down.as_ref().map(|a| a.get_ref().trim()) {
                None | Some("fail-open") => {
                    if let Some(f) = s.fallback.as_ref().and_then(|f| f.first()) {
                        self.err(
                            f.span(),
                            "`fallback` is set but `all_down` is not \"fallback\"",
                            "add `all_down = \"fallback\"` or remove `fallback`",
                        );
                        ok = false;
                    }
                    AllDown::FailOpen
                }
                Some("fallback") => match s.fallback.as_deref().map(|f| self.addresses(f)) {
                    Some(Some(addrs)) if !addrs.is_empty() => AllDown::Fallback(addrs),
                    Some(None) => {
                        ok = false;
                        AllDown::FailOpen
                    }
                    _ => {
                        self.err(
                            s.all_down.as_ref().map(|a| a.span()).unwrap_or(0..0),
                            "`all_down = \"fallback\"` needs fallback addresses",
                            "add `fallback = [\"192.0.2.99\"]`",
                        );
                        ok = false;
                        AllDown::FailOpen
                    }
                },
                Some(other) => {
                    self.err(
                        s.all_down.as_ref().map(|a| a.span()).unwrap_or(0..0),
                        format!("all_down `{other}` is not known"),
                        "use \"fail-open\" or \"fallback\"",
                    );
                    ok = false;
                    AllDown::FailOpen
                }
            };
            if ok {
                out.push((
                    Service {
                        name,
                        all_down,
                        answers,
                        policy: policy.unwrap_or(Policy::All),
                        ttl: s.ttl.map(|t| t.into_inner()).unwrap_or(default_ttl),
                        endpoints,
                    },
                    s.name.span(),
                ));
            }
        }
        out
    }

    /// A service's policy and its parameters.
    fn policy(
        &mut self,
        s: &RawService,
        name: &Name,
        zones: &[(Zone, Range<usize>)],
        service_zones: &[usize],
        endpoints: &[Endpoint],
    ) -> Option<Policy> {
        let span = s.policy.as_ref().map(|p| p.span()).unwrap_or(s.name.span());
        let kind = s
            .policy
            .as_ref()
            .map(|p| p.get_ref().trim())
            .unwrap_or("nearest");
        if s.order.is_some() && kind != "failover" {
            self.err(
                span.clone(),
                format!("service `{name}` sets `order` but its policy is `{kind}`"),
                "use `policy = \"failover\"` or remove `order`",
            );
            return None;
        }
        if s.geo.is_some() && kind != "geo" {
            self.err(
                span.clone(),
                format!("service `{name}` has a [services.geo] map but its policy is `{kind}`"),
                "use `policy = \"geo\"` or remove the map",
            );
            return None;
        }
        match kind {
            "all" => Some(Policy::All),
            "nearest" => Some(Policy::Nearest),
            "latency" => Some(Policy::Latency),
            "weighted" => {
                if endpoints.iter().all(|e| e.weight == 0) {
                    self.err(
                        span,
                        format!("every endpoint of service `{name}` has weight 0"),
                        "give at least one endpoint a positive weight",
                    );
                    return None;
                }
                Some(Policy::Weighted)
            }
            "failover" => {
                let Some(order) = &s.order else {
                    self.err(
                        span,
                        format!("service `{name}` uses failover but has no `order`"),
                        "add `order = [\"primary-zone\", \"standby-zone\"]`",
                    );
                    return None;
                };
                let order = self.zone_list(order, zones, service_zones, name)?;
                if order.is_empty() {
                    self.err(
                        span,
                        "`order` is empty",
                        "name the zones, most preferred first",
                    );
                    return None;
                }
                Some(Policy::Failover(order))
            }
            "geo" => {
                let Some(raw) = &s.geo else {
                    self.err(
                        span,
                        format!("service `{name}` uses the geo policy but has no [services.geo] map"),
                        "add [services.geo] with `default = [...]` and `continents`, `countries` or `regions` tables",
                    );
                    return None;
                };
                let mut map = GeoMap::default();
                let mut ok = true;
                match &raw.default {
                    Some(list) => match self.zone_list(list, zones, service_zones, name) {
                        Some(l) => map.default = l,
                        None => ok = false,
                    },
                    None => map.default = Vec::new(),
                }
                let groups = [
                    (&raw.continents, &mut map.continents, "continent"),
                    (&raw.countries, &mut map.countries, "country"),
                    (&raw.regions, &mut map.regions, "region"),
                ];
                for (raw_group, group, what) in groups {
                    for (key, list) in raw_group {
                        let key = key.trim().to_ascii_uppercase();
                        let valid = match what {
                            "continent" => CONTINENTS.contains(&key.as_str()),
                            "country" => {
                                key.len() == 2 && key.chars().all(|c| c.is_ascii_alphabetic())
                            }
                            _ => key.len() >= 4 && key.as_bytes()[2] == b'-',
                        };
                        if !valid {
                            let at = list.first().map(|l| l.span()).unwrap_or(span.clone());
                            self.err(
                                at,
                                format!("`{key}` is not a {what} code"),
                                match what {
                                    "continent" => format!("use one of {}", CONTINENTS.join(", ")),
                                    "country" => {
                                        "use an ISO 3166-1 alpha-2 code like `DE`".to_string()
                                    }
                                    _ => "use an ISO 3166-2 code like `US-CA`".to_string(),
                                },
                            );
                            ok = false;
                            continue;
                        }
                        match self.zone_list(list, zones, service_zones, name) {
                            Some(l) => {
                                group.insert(key, l);
                            }
                            None => ok = false,
                        }
                    }
                }
                ok.then_some(Policy::Geo(map))
            }
            other => {
                self.err(
                    span,
                    format!("policy `{other}` is not known"),
                    format!("use one of: {}", Policy::NAMES.join(", ")),
                );
                None
            }
        }
    }

    /// Zone names to indices; each must be a zone where the service has an
    /// endpoint (when `service_zones` is given), and appear once.
    fn zone_list(
        &mut self,
        list: &[Spanned<String>],
        zones: &[(Zone, Range<usize>)],
        service_zones: &[usize],
        service: &Name,
    ) -> Option<Vec<usize>> {
        let mut out = Vec::new();
        let mut ok = true;
        for item in list {
            let wanted = item.get_ref().trim();
            match zones.iter().position(|(z, _)| z.name == wanted) {
                None => {
                    let known: Vec<&str> = zones.iter().map(|(z, _)| z.name.as_str()).collect();
                    self.err(
                        item.span(),
                        format!("zone `{wanted}` is not defined"),
                        format!("use one of: {}", known.join(", ")),
                    );
                    ok = false;
                }
                Some(z) if !service_zones.is_empty() && !service_zones.contains(&z) => {
                    self.err(
                        item.span(),
                        format!("service `{service}` has no endpoint in zone `{wanted}`"),
                        "add a [[services.endpoints]] entry for that zone, or remove it from the list",
                    );
                    ok = false;
                }
                Some(z) if out.contains(&z) => {
                    self.err(
                        item.span(),
                        format!("zone `{wanted}` is listed twice"),
                        "remove the duplicate",
                    );
                    ok = false;
                }
                Some(z) => out.push(z),
            }
        }
        ok.then_some(out)
    }

    fn geoip(&mut self, raw: Option<RawGeoip>) -> Option<Option<GeoipSettings>> {
        let Some(raw) = raw else {
            return Some(None);
        };
        let mut ok = true;
        let files_span = raw.files.span();
        let files: Vec<std::path::PathBuf> = raw
            .files
            .into_inner()
            .into_iter()
            .map(|f| self.config_dir.join(f.get_ref()))
            .collect();
        if files.is_empty() || files.len() > 2 {
            self.err(
                files_span,
                "geoip.files must name one or two .mmdb files",
                "one file holding IPv4 and IPv6, or one per family",
            );
            ok = false;
        }
        let watch_interval = self.duration(raw.watch_interval.as_ref(), Duration::from_secs(5));
        ok &= watch_interval.is_some();
        ok.then(|| {
            Some(GeoipSettings {
                files,
                watch_interval: watch_interval.unwrap_or_default(),
            })
        })
    }

    fn routing(
        &mut self,
        raw: Option<RawRouting>,
        zones: &[(Zone, Range<usize>)],
    ) -> Option<RoutingSettings> {
        let raw = raw.unwrap_or_default();
        let mut settings = RoutingSettings::default();
        let mut ok = true;
        if let Some(z) = &raw.this_zone {
            match zones
                .iter()
                .position(|(zone, _)| zone.name == z.get_ref().trim())
            {
                Some(i) => settings.this_zone = Some(i),
                None => {
                    let known: Vec<&str> = zones.iter().map(|(z, _)| z.name.as_str()).collect();
                    self.err(
                        z.span(),
                        format!("zone `{}` is not defined", z.get_ref()),
                        format!("use one of: {}", known.join(", ")),
                    );
                    ok = false;
                }
            }
        }
        if let Some(m) = &raw.latency_margin {
            if (0.0..1.0).contains(m.get_ref()) {
                settings.latency_margin = *m.get_ref();
            } else {
                self.err(
                    m.span(),
                    "latency_margin must be a fraction from 0 to below 1",
                    "use e.g. 0.2 for 20%",
                );
                ok = false;
            }
        }
        if let Some(m) = &raw.latency_margin_ms {
            if *m.get_ref() >= 0.0 && m.get_ref().is_finite() {
                settings.latency_margin_ms = *m.get_ref();
            } else {
                self.err(
                    m.span(),
                    "latency_margin_ms must not be negative",
                    "use e.g. 5",
                );
                ok = false;
            }
        }
        match self.duration(raw.latency_max_age.as_ref(), settings.latency_max_age) {
            Some(d) => settings.latency_max_age = d,
            None => ok = false,
        }
        ok.then_some(settings)
    }

    fn cidr_rules(
        &mut self,
        raw: Vec<RawCidrRule>,
        zones: &[(Zone, Range<usize>)],
    ) -> Option<Vec<CidrRule>> {
        let mut out = Vec::new();
        let mut ok = true;
        let mut seen = HashSet::new();
        for rule in raw {
            let mut networks = Vec::new();
            for net in rule.networks.get_ref() {
                match net.get_ref().trim().parse::<ipnet::IpNet>() {
                    Ok(n) if n.trunc() != n => {
                        self.err(
                            net.span(),
                            format!("`{n}` has host bits set"),
                            format!("write the network address: `{}`", n.trunc()),
                        );
                        ok = false;
                    }
                    Ok(n) if !seen.insert(n) => {
                        self.err(
                            net.span(),
                            format!("network `{n}` is in two rules"),
                            "keep it in one rule",
                        );
                        ok = false;
                    }
                    Ok(n) => networks.push(n),
                    Err(_) => {
                        self.err(
                            net.span(),
                            format!("`{}` is not a network", net.get_ref()),
                            "write it as `10.0.0.0/8` or `2001:db8::/32`",
                        );
                        ok = false;
                    }
                }
            }
            let zones_span = rule.zones.span();
            let list = self.zone_list(rule.zones.get_ref(), zones, &[], &Name::root());
            match list {
                Some(l) if l.is_empty() => {
                    self.err(
                        zones_span,
                        "a CIDR rule needs at least one zone",
                        "name the zones, most preferred first",
                    );
                    ok = false;
                }
                Some(l) => out.push(CidrRule { networks, zones: l }),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// An endpoint's check: its own keys over the service's defaults.
    fn endpoint_check(&mut self, base: &RawCheck, own: Option<&RawCheck>) -> Option<Check> {
        let own = own.cloned().unwrap_or_default();
        let pick = |a: Option<Spanned<String>>, b: Option<Spanned<String>>| a.or(b);
        let kind_raw = pick(own.kind.clone(), base.kind.clone());
        let kind = match kind_raw.as_ref().map(|k| k.get_ref().trim()) {
            None | Some("http") => CheckKind::Http,
            Some("tcp") => CheckKind::Tcp,
            Some("https") => CheckKind::Https,
            Some("none") => CheckKind::None,
            Some(other) => {
                self.err(
                    kind_raw.as_ref().map(|k| k.span()).unwrap_or(0..0),
                    format!("check kind `{other}` is not known"),
                    format!("use one of {}", CheckKind::NAMES.join(", ")),
                );
                return None;
            }
        };
        let port = own.port.or(base.port.clone()).map(|p| p.into_inner());
        let port = match (kind, port) {
            (_, Some(p)) => p,
            (CheckKind::Http, None) => 80,
            (CheckKind::Https, None) => 443,
            (CheckKind::None, None) => 0,
            (CheckKind::Tcp, None) => {
                self.err(
                    kind_raw.map(|k| k.span()).unwrap_or(0..0),
                    "a tcp check needs a port",
                    "add `port = 443` (or the port the load balancer listens on)",
                );
                return None;
            }
        };
        let status_raw = pick(own.expect_status.clone(), base.expect_status.clone());
        let expect_status = match &status_raw {
            None => 200..=399,
            Some(s) => match parse_status_range(s.get_ref()) {
                Some(r) => r,
                None => {
                    self.err(
                        s.span(),
                        format!("`{}` is not a status range", s.get_ref()),
                        "write one code like `200` or a range like `200-399`",
                    );
                    return None;
                }
            },
        };
        let interval_raw = pick(own.interval.clone(), base.interval.clone());
        let timeout_raw = pick(own.timeout.clone(), base.timeout.clone());
        let interval = self.duration(interval_raw.as_ref(), Duration::from_secs(1))?;
        let timeout = self.duration(timeout_raw.as_ref(), Duration::from_secs(1))?;
        if timeout > interval {
            self.err(
                timeout_raw.map(|t| t.span()).unwrap_or(0..0),
                "the check timeout is longer than its interval",
                "make the timeout at most the interval",
            );
            return None;
        }
        let mut threshold = |raw: Option<Spanned<u32>>, what: &str| -> Option<u32> {
            match raw {
                None => Some(2),
                Some(v) if (1..=100).contains(v.get_ref()) => Some(v.into_inner()),
                Some(v) => {
                    self.err(
                        v.span(),
                        format!("{what} {} is out of range", v.get_ref()),
                        "use a count between 1 and 100",
                    );
                    None
                }
            }
        };
        let rise = threshold(own.rise.clone().or(base.rise.clone()), "rise");
        let fall = threshold(own.fall.clone().or(base.fall.clone()), "fall");
        let path = pick(own.path.clone(), base.path.clone())
            .map(|p| p.into_inner())
            .unwrap_or_else(|| "/".to_string());
        Some(Check {
            kind,
            port,
            path,
            host: own.host.or(base.host.clone()),
            expect_status,
            body_contains: own.body_contains.or(base.body_contains.clone()),
            insecure: own.insecure.or(base.insecure).unwrap_or(false),
            interval,
            timeout,
            rise: rise?,
            fall: fall?,
        })
    }

    /// Conflicts between records, services and delegations at the same name.
    fn conflicts(
        &mut self,
        records: &[(StaticRecord, Range<usize>)],
        services: &[(Service, Range<usize>)],
        domain: Option<&Domain>,
    ) {
        let mut by_name: HashMap<LowerName, Vec<(RecordType, Range<usize>)>> = HashMap::new();
        for (r, span) in records {
            by_name
                .entry(LowerName::new(&r.name))
                .or_default()
                .push((r.data.record_type(), span.clone()));
        }
        let cuts: Vec<LowerName> = by_name
            .iter()
            .filter(|(_, types)| types.iter().any(|(t, _)| *t == RecordType::NS))
            .map(|(n, _)| n.clone())
            .collect();
        for (name, types) in &by_name {
            let has_cname = types.iter().any(|(t, _)| *t == RecordType::CNAME);
            if has_cname && types.len() > 1 {
                let span = types[0].1.clone();
                self.err(
                    span,
                    format!("`{name}` has a CNAME and other records"),
                    "a CNAME must be the only record at its name (RFC 1034); remove one of them",
                );
            }
            if let Some(d) = domain
                && has_cname
                && LowerName::new(&d.name) == *name
            {
                self.err(
                    types[0].1.clone(),
                    "the domain apex cannot have a CNAME",
                    "put the CNAME on a name below the apex",
                );
            }
            for cut in &cuts {
                if cut != name && cut.zone_of(name) {
                    for (t, span) in types {
                        if !matches!(t, RecordType::A | RecordType::AAAA) {
                            self.err(
                                span.clone(),
                                format!("`{name}` is below the delegation `{cut}`"),
                                "only glue (A/AAAA) may sit below a delegation; move the record into the child zone",
                            );
                        }
                    }
                }
            }
            if cuts.contains(name) {
                for (t, span) in types {
                    if !matches!(t, RecordType::NS) {
                        self.err(
                            span.clone(),
                            format!("`{name}` is a delegation and cannot also hold {t} records"),
                            "move the record into the child zone or remove the NS records",
                        );
                    }
                }
            }
        }
        for (s, span) in services {
            let lower = LowerName::new(&s.name);
            if let Some(types) = by_name.get(&lower) {
                for (t, _) in types {
                    if matches!(t, RecordType::A | RecordType::AAAA | RecordType::CNAME) {
                        self.err(
                            span.clone(),
                            format!("service `{}` clashes with a static {t} record at the same name", s.name),
                            "remove the static record; the service answers A and AAAA for this name",
                        );
                    }
                }
            }
            for cut in &cuts {
                if cut.zone_of(&lower) {
                    self.err(
                        span.clone(),
                        format!("service `{}` is at or below the delegation `{cut}`", s.name),
                        "move the service out of the delegated subtree",
                    );
                }
            }
        }
    }
}

fn parse_rdata(record_type: RecordType, text: &str, names: &Names) -> Result<RData, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("it is empty".to_string());
    }
    if record_type == RecordType::TXT && !text.starts_with('"') {
        // Unquoted TXT is taken literally, split into 255-byte strings.
        let chunks: Vec<&[u8]> = text.as_bytes().chunks(255).collect();
        return Ok(RData::TXT(TXT::from_bytes(chunks)));
    }
    let data = RData::try_from_str(record_type, text).map_err(|e| e.to_string())?;
    Ok(match data {
        RData::CNAME(CNAME(n)) => RData::CNAME(CNAME(names.absolutize(n))),
        RData::NS(NS(n)) => RData::NS(NS(names.absolutize(n))),
        RData::PTR(PTR(n)) => RData::PTR(PTR(names.absolutize(n))),
        RData::MX(mx) => RData::MX(MX::new(mx.preference, names.absolutize(mx.exchange))),
        RData::SRV(srv) => RData::SRV(SRV::new(
            srv.priority,
            srv.weight,
            srv.port,
            names.absolutize(srv.target),
        )),
        other => other,
    })
}

fn rdata_hint(record_type: RecordType) -> String {
    match record_type {
        RecordType::A => "write an IPv4 address, e.g. `192.0.2.10`",
        RecordType::AAAA => "write an IPv6 address, e.g. `2001:db8::10`",
        RecordType::CNAME | RecordType::NS | RecordType::PTR => {
            "write a name, relative to the domain or ending in a dot"
        }
        RecordType::MX => "write `preference exchange`, e.g. `10 mail`",
        RecordType::SRV => "write `priority weight port target`, e.g. `10 5 5060 sip`",
        RecordType::CAA => "write `flags tag \"value\"`, e.g. `0 issue \"letsencrypt.org\"`",
        RecordType::TXT => "write the text; quote it to give several strings",
        _ => "write it as in a zone file",
    }
    .to_string()
}

fn parse_hex16(text: &str) -> Option<[u8; 16]> {
    if text.len() != 32 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// `500ms`, `2s`, `1m`, `1h`; a bare number is seconds.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return None,
    };
    (seconds.is_finite() && (0.0..1e9).contains(&seconds)).then(|| Duration::from_secs_f64(seconds))
}

fn parse_status_range(text: &str) -> Option<std::ops::RangeInclusive<u16>> {
    let text = text.trim();
    let (lo, hi) = match text.split_once('-') {
        Some((lo, hi)) => (lo.trim().parse().ok()?, hi.trim().parse().ok()?),
        None => {
            let code: u16 = text.parse().ok()?;
            (code, code)
        }
    };
    ((100..=599).contains(&lo) && (100..=599).contains(&hi) && lo <= hi).then_some(lo..=hi)
}
