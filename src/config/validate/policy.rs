//! A service's `policy` and its parameters (`order`, `[services.geo]`).

use std::ops::Range;

use hickory_proto::rr::Name;

use super::Checker;
use super::zones::CONTINENTS;
use crate::config::raw::{RawGeoMap, RawService};
use crate::config::{Endpoint, GeoMap, Policy, Zone, defaults};

impl Checker<'_, '_> {
    /// A service's policy and its parameters.
    pub(super) fn policy(
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
            .unwrap_or(defaults::POLICY);
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
                self.geo_map(raw, &span, zones, service_zones, name)
                    .map(Policy::Geo)
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

    /// `[services.geo]`: zone lists by continent, country and region code.
    fn geo_map(
        &mut self,
        raw: &RawGeoMap,
        span: &Range<usize>,
        zones: &[(Zone, Range<usize>)],
        service_zones: &[usize],
        name: &Name,
    ) -> Option<GeoMap> {
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
                    "country" => key.len() == 2 && key.chars().all(|c| c.is_ascii_alphabetic()),
                    _ => key.len() >= 4 && key.as_bytes()[2] == b'-',
                };
                if !valid {
                    let at = list.first().map(|l| l.span()).unwrap_or(span.clone());
                    self.err(
                        at,
                        format!("`{key}` is not a {what} code"),
                        match what {
                            "continent" => format!("use one of {}", CONTINENTS.join(", ")),
                            "country" => "use an ISO 3166-1 alpha-2 code like `DE`".to_string(),
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
        ok.then_some(map)
    }
}
