//! Answers per service, zone and named endpoint: the counters the answer
//! path bumps (one per endpoint, handed to each snapshot) and their
//! families in `/metrics`, per zone and per named endpoint.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use super::{Metrics, escape, header, sorted_counts};

impl Metrics {
    /// The counter of answers naming `zone` for `service`, created on first use.
    pub fn answer_counter(&self, service: &str, zone: &str) -> Arc<AtomicU64> {
        self.endpoint_answer_counter(service, zone, None)
    }

    /// The counter of answers naming endpoint `endpoint` (`None`: the
    /// unnamed one) in `zone` for `service`, created on first use. One per
    /// endpoint, so the answer path bumps one counter whatever it shows.
    pub fn endpoint_answer_counter(
        &self,
        service: &str,
        zone: &str,
        endpoint: Option<&str>,
    ) -> Arc<AtomicU64> {
        self.answers
            .entry((
                service.to_string(),
                zone.to_string(),
                endpoint.unwrap_or("").to_string(),
            ))
            .or_default()
            .clone()
    }

    /// Per service and endpoint of `config`, the counter of answers naming
    /// it, in the shape a snapshot keeps them.
    pub fn answer_counters(&self, config: &crate::config::Config) -> Vec<Vec<Arc<AtomicU64>>> {
        config
            .services
            .iter()
            .map(|service| {
                let name = service.name.to_string();
                service
                    .endpoints
                    .iter()
                    .map(|e| {
                        let zone = &config.zones[e.zone].name;
                        self.endpoint_answer_counter(&name, zone, e.name.as_deref())
                    })
                    .collect()
            })
            .collect()
    }

    pub(super) fn render_answers(&self, out: &mut String) {
        header(
            out,
            "meridian_service_answers_total",
            "counter",
            "Service answers, by service and the zone they named.",
        );
        let counts = sorted_counts(&self.answers);
        // Per zone: the zone's endpoints summed (sorted, so they are adjacent).
        let mut zones: Vec<((&str, &str), u64)> = Vec::new();
        for ((service, zone, _), n) in &counts {
            match zones.last_mut() {
                Some((key, sum)) if *key == (service.as_str(), zone.as_str()) => *sum += n,
                _ => zones.push(((service, zone), *n)),
            }
        }
        for ((service, zone), n) in zones {
            let _ = writeln!(
                out,
                "meridian_service_answers_total{{service=\"{}\",zone=\"{}\"}} {n}",
                escape(service),
                escape(zone)
            );
        }
        header(
            out,
            "meridian_endpoint_answers_total",
            "counter",
            "Service answers naming a named endpoint (zones holding several of a service's endpoints).",
        );
        for ((service, zone, endpoint), n) in counts.iter().filter(|(k, _)| !k.2.is_empty()) {
            let _ = writeln!(
                out,
                "meridian_endpoint_answers_total{{service=\"{}\",zone=\"{}\",endpoint=\"{}\"}} {n}",
                escape(service),
                escape(zone),
                escape(endpoint)
            );
        }
    }
}
