//! `[[zones]]`: the sites with a load balancer, and lists of them as
//! services, CIDR rules and geo maps name them.

use std::ops::Range;

use hickory_proto::rr::Name;
use toml::Spanned;

use super::Checker;
use crate::config::Zone;
use crate::config::raw::RawZone;

/// Two-letter continent codes, as GeoIP databases give them.
pub(super) const CONTINENTS: &[&str] = &["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

impl Checker<'_, '_> {
    /// The zones, each with the span of its name. A zone with a wrong
    /// coordinate or code is reported and still kept (see below).
    pub(super) fn zones(&mut self, raw: Vec<RawZone>) -> Vec<(Zone, Range<usize>)> {
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

    /// Zone names to indices; each must be a zone where the service has an
    /// endpoint (when `service_zones` is given), and appear once.
    pub(super) fn zone_list(
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
}
