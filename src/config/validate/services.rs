//! `[[services]]` and their `[[services.endpoints]]`: the load-balanced
//! names, where each is served, and what to answer when all are down.

use std::collections::HashSet;
use std::ops::Range;

use hickory_proto::rr::{LowerName, Name};
use toml::Spanned;

use super::Checker;
use super::names::Names;
use crate::config::raw::{RawCheck, RawEndpoint, RawService};
use crate::config::{AllDown, Domain, Endpoint, Service, Zone, defaults};

/// [`Endpoint::split_key`]: FNV-1a over the service's name (lowercased,
/// as text: `service`), the zone's and the endpoint's, 0-separated;
/// stable across processes, versions and nodes, so every node splits a
/// zone the same way.
fn split_key(service: &str, zone: &str, name: Option<&str>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [service, zone, name.unwrap_or("")] {
        for b in part.bytes().chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// `name` as its `Display` writes it, without the formatter for the usual
/// names: every label of letters, digits, `_` and inner `-`, none of them
/// punycode (`xn--`, which `Display` decodes). Anything else goes through
/// `Display`.
fn name_text(name: &Name) -> String {
    let mut out = String::with_capacity(64);
    for label in name.iter() {
        let is_plain = !label.is_empty()
            && !label
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case(b"xn--"))
            && label
                .iter()
                .enumerate()
                .all(|(i, &c)| c.is_ascii_alphanumeric() || c == b'_' || (c == b'-' && i > 0));
        if !is_plain {
            return name.to_string();
        }
        if !out.is_empty() {
            out.push('.');
        }
        out.extend(label.iter().map(|&c| char::from(c)));
    }
    if out.is_empty() {
        return name.to_string();
    }
    if name.is_fqdn() {
        out.push('.');
    }
    out
}

/// An endpoint as read so far, for the checks across a zone's endpoints.
pub(super) struct SeenEndpoint {
    zone: usize,
    name: Option<String>,
    span: Range<usize>,
}

/// Weights are relative; a cap keeps their sums far from overflow.
const MAX_WEIGHT: u32 = 1_000_000;

impl Checker<'_, '_> {
    /// The services that are right, each with the span of its name (for the
    /// conflict checks); the wrong ones are reported and left out.
    pub(super) fn services(
        &mut self,
        raw: Vec<RawService>,
        names: &Names,
        zones: &[(Zone, Range<usize>)],
        domain: Option<&Domain>,
    ) -> Vec<(Service, Range<usize>)> {
        let default_ttl = domain.map_or(defaults::SERVICE_TTL, |d| d.service_ttl);
        // Exact capacities here and below: a config of 10,000 services
        // keeps these vectors for its whole life.
        let mut out: Vec<(Service, Range<usize>)> = Vec::with_capacity(raw.len());
        let mut seen_names: HashSet<LowerName> = HashSet::new();
        let is_several = raw.len() > 1;
        for mut s in raw {
            let name = match names.owner(s.name.get_ref()) {
                Ok(n) => n,
                Err((m, h)) => {
                    self.err(s.name.span(), m, h);
                    continue;
                }
            };
            let lower = LowerName::new(&name);
            // An entry read alone (a reload's changed entry) has nothing to
            // clash with here.
            if is_several && !seen_names.insert(lower.clone()) {
                self.err(
                    s.name.span(),
                    format!("service `{name}` is defined twice"),
                    "give each [[services]] entry its own name",
                );
                continue;
            }
            let mut ok = true;
            let default_check = s.check.clone().unwrap_or_default();
            let mut endpoints: Vec<Endpoint> = Vec::with_capacity(s.endpoints.len());
            let mut seen = Vec::new();
            // Once per service: writing a name out as text costs more than
            // the rest of an endpoint's checks.
            let key_text = name_text(&lower);
            for ep in std::mem::take(&mut s.endpoints) {
                let service = (&name, key_text.as_str());
                match self.endpoint(ep, service, zones, &mut seen, &default_check) {
                    Some(endpoint) => endpoints.push(endpoint),
                    None => ok = false,
                }
            }
            ok &= self.zone_splits(&name, zones, &seen, &endpoints);
            // Only when every endpoint read: one that did not is reported.
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
            let answers = self.checked(
                s.answers.as_ref(),
                defaults::ANSWERS,
                |a| *a >= 1,
                |_| {
                    (
                        "answers must be at least 1".to_string(),
                        "use 1 for one zone per answer".to_string(),
                    )
                },
            );
            let all_down = self.all_down(&s);
            if let (true, Some(policy), Some(answers), Some(all_down)) =
                (ok, policy, answers, all_down)
            {
                let has_splits = endpoints
                    .iter()
                    .enumerate()
                    .any(|(i, e)| endpoints[..i].iter().any(|o| o.zone == e.zone));
                out.push((
                    Service {
                        has_splits,
                        name,
                        all_down,
                        answers,
                        policy,
                        ttl: s.ttl.map_or(default_ttl, Spanned::into_inner),
                        endpoints,
                    },
                    s.name.span(),
                ));
            }
        }
        out
    }

    /// One endpoint of service `service`; `seen` are the zones and names of
    /// the endpoints before it (read or not), and `base` the service's
    /// check keys.
    fn endpoint(
        &mut self,
        ep: RawEndpoint,
        (service, key_text): (&Name, &str),
        zones: &[(Zone, Range<usize>)],
        seen: &mut Vec<SeenEndpoint>,
        base: &RawCheck,
    ) -> Option<Endpoint> {
        let zone_name = ep.zone.get_ref().trim();
        let Some(zone) = zones.iter().position(|(z, _)| z.name == zone_name) else {
            let defined: Vec<&str> = zones.iter().map(|(z, _)| z.name.as_str()).collect();
            self.err(
                ep.zone.span(),
                format!("service `{service}` names zone `{zone_name}`, which is not defined"),
                if defined.is_empty() {
                    "define it in a [[zones]] entry".to_string()
                } else {
                    format!(
                        "define it in [[zones]] or use one of: {}",
                        defined.join(", ")
                    )
                },
            );
            return None;
        };
        let endpoint_name = self.endpoint_name(ep.name.as_ref())?;
        if let Some(n) = &endpoint_name
            && seen
                .iter()
                .any(|o| o.zone == zone && o.name.as_ref() == Some(n))
        {
            self.err(
                ep.name.as_ref().map_or(ep.zone.span(), |n| n.span()),
                format!("service `{service}` has two endpoints named `{n}` in zone `{zone_name}`"),
                "give each of a zone's endpoints its own `name`",
            );
            return None;
        }
        seen.push(SeenEndpoint {
            zone,
            name: endpoint_name.clone(),
            span: ep.zone.span(),
        });
        let addresses = self.addresses(&ep.addresses)?;
        if addresses.is_empty() {
            self.err(
                ep.zone.span(),
                format!("endpoint `{zone_name}` of service `{service}` has no addresses"),
                "add `addresses = [\"192.0.2.10\"]` with the zone's load balancer",
            );
            return None;
        }
        let min_healthy = self.checked(
            ep.min_healthy.as_ref(),
            defaults::MIN_HEALTHY,
            |m| (1..=addresses.len()).contains(m),
            |m| {
                (
                    format!(
                        "min_healthy {m} is not between 1 and the endpoint's {} address(es)",
                        addresses.len()
                    ),
                    "lower it, or add addresses".to_string(),
                )
            },
        )?;
        let check = self.health_check(base, ep.check.as_ref())?;
        let weight = self.checked(
            ep.weight.as_ref(),
            defaults::WEIGHT,
            |w| *w <= MAX_WEIGHT,
            |w| {
                (
                    format!("weight {w} is too large"),
                    format!("weights are relative; use values up to {MAX_WEIGHT}"),
                )
            },
        )?;
        Some(Endpoint {
            split_key: split_key(key_text, zone_name, endpoint_name.as_deref()),
            zone,
            name: endpoint_name,
            weight,
            addresses,
            min_healthy,
            check,
        })
    }

    /// An endpoint's `name`, if given: letters, digits, `-` and `_`, as
    /// zone names, so `zone/name` reads unambiguously; `drain` and
    /// `undrain` are the admin API's words in the same place of a path.
    fn endpoint_name(&mut self, raw: Option<&Spanned<String>>) -> Option<Option<String>> {
        let Some(raw) = raw else {
            return Some(None);
        };
        let name = raw.get_ref().trim();
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            self.err(
                raw.span(),
                format!("endpoint name `{name}` is not valid"),
                "use letters, digits, `-` and `_`, e.g. `blue`",
            );
            return None;
        }
        if name == "drain" || name == "undrain" {
            self.err(
                raw.span(),
                format!("endpoint name `{name}` is reserved by the admin API"),
                "choose another name, e.g. `blue`",
            );
            return None;
        }
        Some(Some(name.to_string()))
    }

    /// Zones holding several of a service's endpoints: each must be named
    /// (a drain or an answer must say which), at least one must carry
    /// weight, and no address may be in two of them (observations are
    /// shared between nodes per service, zone and address). Returns
    /// whether all is well.
    fn zone_splits(
        &mut self,
        service: &Name,
        zones: &[(Zone, Range<usize>)],
        seen: &[SeenEndpoint],
        endpoints: &[Endpoint],
    ) -> bool {
        let mut ok = true;
        let shared = |zone: usize| seen.iter().filter(|o| o.zone == zone).nth(1).is_some();
        for o in seen.iter().filter(|o| o.name.is_none() && shared(o.zone)) {
            let zone_name = &zones[o.zone].0.name;
            self.err(
                o.span.clone(),
                format!(
                    "service `{service}` has several endpoints in zone `{zone_name}` and this one has no `name`"
                ),
                "name each of a zone's endpoints, e.g. `name = \"blue\"` and `name = \"green\"`",
            );
            ok = false;
        }
        let mut reported = HashSet::new();
        for (i, e) in endpoints.iter().enumerate() {
            let siblings = || endpoints.iter().filter(|o| o.zone == e.zone);
            if siblings().nth(1).is_none() {
                continue;
            }
            let span = seen
                .iter()
                .filter(|o| o.zone == e.zone)
                .map(|o| o.span.clone())
                .next()
                .unwrap_or(0..0);
            let zone_name = &zones[e.zone].0.name;
            if siblings().all(|o| o.weight == 0) && reported.insert(e.zone) {
                self.err(
                    span.clone(),
                    format!(
                        "every endpoint of service `{service}` in zone `{zone_name}` has weight 0"
                    ),
                    "give at least one of them a positive weight; weight 0 is a standby",
                );
                ok = false;
            }
            let earlier = &endpoints[..i];
            if let Some(addr) = e.addresses.iter().find(|a| {
                earlier
                    .iter()
                    .any(|o| o.zone == e.zone && o.addresses.contains(a))
            }) {
                self.err(
                    span,
                    format!(
                        "address {addr} is in two endpoints of service `{service}` in zone `{zone_name}`"
                    ),
                    "give each endpoint its own load balancer addresses",
                );
                ok = false;
            }
        }
        ok
    }

    /// `all_down` and `fallback`: a fallback list without the rule that
    /// uses it is a mistake, not a silent no-op.
    fn all_down(&mut self, s: &RawService) -> Option<AllDown> {
        let rule_span = || s.all_down.as_ref().map(|a| a.span()).unwrap_or(0..0);
        let rule = s
            .all_down
            .as_ref()
            .map_or(defaults::ALL_DOWN, |a| a.get_ref().trim());
        match rule {
            AllDown::FAIL_OPEN => {
                if let Some(f) = s.fallback.as_ref().and_then(|f| f.first()) {
                    self.err(
                        f.span(),
                        format!(
                            "`fallback` is set but `all_down` is not \"{}\"",
                            AllDown::FALLBACK
                        ),
                        format!(
                            "add `all_down = \"{}\"` or remove `fallback`",
                            AllDown::FALLBACK
                        ),
                    );
                    return None;
                }
                Some(AllDown::FailOpen)
            }
            AllDown::FALLBACK => match s.fallback.as_deref().map(|f| self.addresses(f)) {
                Some(Some(addrs)) if !addrs.is_empty() => Some(AllDown::Fallback(addrs)),
                // A wrong address, already reported.
                Some(None) => None,
                _ => {
                    self.err(
                        rule_span(),
                        format!(
                            "`all_down = \"{}\"` needs fallback addresses",
                            AllDown::FALLBACK
                        ),
                        "add `fallback = [\"192.0.2.99\"]`",
                    );
                    None
                }
            },
            other => {
                self.err(
                    rule_span(),
                    format!("all_down `{other}` is not known"),
                    format!(
                        "use \"{}\" or \"{}\"",
                        AllDown::FAIL_OPEN,
                        AllDown::FALLBACK
                    ),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn a_name_is_written_out_as_display_writes_it() {
        for text in [
            "svc1.gslb.test.",
            "svc1.gslb.test",
            "WWW.Example.",
            "_srv._tcp.a-b.x.",
            "*.apps.x.",
            "xn--bcher-kva.example.",
            "XN--bcher-kva.example.",
            "a\\.b.x.",
            ".",
        ] {
            let name = Name::from_str(text).unwrap();
            assert_eq!(name_text(&name), name.to_string(), "{text}");
            let lower = LowerName::new(&name);
            assert_eq!(name_text(&lower), lower.to_string(), "{text}");
        }
        // Labels the text parser would not take, from their bytes.
        for labels in [
            &[&b"-lead"[..], b"x"][..],
            &[b"a.b", b"x"],
            &[b"a b", b"x"],
            &[b"caf\xc3\xa9", b"x"],
        ] {
            let name = Name::from_labels(labels.iter().copied()).unwrap();
            assert_eq!(name_text(&name), name.to_string(), "{labels:?}");
        }
    }
}
