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
            let mut endpoints: Vec<Endpoint> = Vec::with_capacity(s.endpoints.len());
            let mut seen_zones = HashSet::new();
            for ep in std::mem::take(&mut s.endpoints) {
                match self.endpoint(ep, &name, zones, &mut seen_zones, &default_check) {
                    Some(endpoint) => endpoints.push(endpoint),
                    None => ok = false,
                }
            }
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
                out.push((
                    Service {
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

    /// One endpoint of service `service`; `seen_zones` are the zones of the
    /// endpoints before it (read or not), and `base` the service's check keys.
    fn endpoint(
        &mut self,
        ep: RawEndpoint,
        service: &Name,
        zones: &[(Zone, Range<usize>)],
        seen_zones: &mut HashSet<usize>,
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
        if !seen_zones.insert(zone) {
            self.err(
                ep.zone.span(),
                format!("service `{service}` has two endpoints in zone `{zone_name}`"),
                "list all of a zone's addresses in one endpoint",
            );
            return None;
        }
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
            zone,
            weight,
            addresses,
            min_healthy,
            check,
        })
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
