//! `[routing]`: this node's zone and the latency policy's settings.

use std::ops::Range;

use super::Checker;
use crate::config::raw::RawRouting;
use crate::config::{RoutingSettings, Zone, defaults};

impl Checker<'_, '_> {
    pub(super) fn routing(
        &mut self,
        raw: Option<RawRouting>,
        zones: &[(Zone, Range<usize>)],
    ) -> Option<RoutingSettings> {
        let raw = raw.unwrap_or_default();
        let this_zone = self.setting(raw.this_zone.as_ref(), None, |z| {
            match zones.iter().position(|(zone, _)| zone.name == z.trim()) {
                Some(i) => Ok(Some(i)),
                None => {
                    let known: Vec<&str> = zones.iter().map(|(z, _)| z.name.as_str()).collect();
                    Err((
                        format!("zone `{z}` is not defined"),
                        format!("use one of: {}", known.join(", ")),
                    ))
                }
            }
        });
        let latency_margin = self.checked(
            raw.latency_margin.as_ref(),
            defaults::LATENCY_MARGIN,
            |m| (0.0..1.0).contains(m),
            |_| {
                (
                    "latency_margin must be a fraction from 0 to below 1".to_string(),
                    "use e.g. 0.2 for 20%".to_string(),
                )
            },
        );
        let latency_margin_ms = self.checked(
            raw.latency_margin_ms.as_ref(),
            defaults::LATENCY_MARGIN_MS,
            |m| *m >= 0.0 && m.is_finite(),
            |_| {
                (
                    "latency_margin_ms must not be negative".to_string(),
                    "use e.g. 5".to_string(),
                )
            },
        );
        let latency_max_age =
            self.duration(raw.latency_max_age.as_ref(), defaults::LATENCY_MAX_AGE);
        Some(RoutingSettings {
            this_zone: this_zone?,
            latency_margin: latency_margin?,
            latency_margin_ms: latency_margin_ms?,
            latency_max_age: latency_max_age?,
        })
    }
}
