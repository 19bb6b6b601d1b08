//! Counters and histograms, rendered in the Prometheus text format.
//!
//! The DNS path only ever does relaxed atomic adds on counters it reaches
//! without a lookup: fixed arrays for query types and rcodes, and per
//! service/zone counters whose handles the publisher puts in the snapshot.
//! Everything keyed by name (probes, transitions) is updated off the hot
//! path, in `DashMap`s so probe tasks do not contend on one lock.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use dashmap::DashMap;
use hickory_proto::op::ResponseCode;

mod answers;
mod dns_families;
mod dnssec;
mod tally;

pub use tally::{ReplyTally, add_answer};

/// Query types with a series of their own, by code (the names are
/// checked against hickory's in the tests).
const QTYPES: &[(u16, &str)] = &[
    (1, "A"),
    (28, "AAAA"),
    (5, "CNAME"),
    (15, "MX"),
    (16, "TXT"),
    (33, "SRV"),
    (2, "NS"),
    (6, "SOA"),
    (257, "CAA"),
    (12, "PTR"),
    (65, "HTTPS"),
    (255, "ANY"),
];

const RCODES: &[(ResponseCode, &str)] = &[
    (ResponseCode::NoError, "NOERROR"),
    (ResponseCode::FormErr, "FORMERR"),
    (ResponseCode::ServFail, "SERVFAIL"),
    (ResponseCode::NXDomain, "NXDOMAIN"),
    (ResponseCode::NotImp, "NOTIMP"),
    (ResponseCode::Refused, "REFUSED"),
    (ResponseCode::BADVERS, "BADVERS"),
];

/// Upper bounds of the probe RTT histogram, in seconds.
const RTT_BUCKETS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Why probes fail, as the `reason` label of `meridian_probe_failures_total`
/// names it (see `ProbeError::reason`); `other` is last and catches the rest.
pub const PROBE_FAILURE_REASONS: &[&str] =
    &["refused", "timeout", "status", "body", "tls", "other"];

/// The version and commit this binary was built from (see `build.rs`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const COMMIT: &str = env!("MERIDIAN_COMMIT");

/// What the answer path reports about one reply.
#[derive(Debug, Clone, Copy)]
pub struct ReplyFacts {
    /// The question's type code, as asked.
    pub qtype: Option<u16>,
    pub rcode: ResponseCode,
    pub truncated: bool,
}

#[derive(Debug, Default)]
pub struct DnsCounters {
    /// Queries by transport and type, responses by rcode, truncated and
    /// fast-path replies: the UDP threads' own cells and the shared ones
    /// (see `tally`).
    cells: Arc<tally::Cells>,
    /// Packets we did not answer (too short, or responses).
    dropped: AtomicU64,
    /// Responses withheld by rate limiting, and those sent truncated.
    rrl_dropped: AtomicU64,
    rrl_slipped: AtomicU64,
    /// TCP connections closed on accept: their client held its share.
    tcp_refused: AtomicU64,
    /// UDP replies larger than the link allows, sent truncated instead
    /// of fragmented (`dns::batch::never_fragment`).
    truncated_for_link: AtomicU64,
    /// UDP batches whose memo sets were fetched before they were
    /// answered: the memo was meeting new networks.
    prefetched_batches: AtomicU64,
}

impl DnsCounters {
    pub fn tcp_refused(&self) {
        self.tcp_refused.fetch_add(1, Relaxed);
    }

    pub fn truncated_for_link(&self, replies: usize) {
        self.truncated_for_link.fetch_add(replies as u64, Relaxed);
    }

    pub fn prefetched_batch(&self) {
        self.prefetched_batches.fetch_add(1, Relaxed);
    }

    #[inline]
    pub fn dropped(&self) {
        self.dropped.fetch_add(1, Relaxed);
    }

    #[inline]
    pub fn rate_limited(&self, slipped: bool) {
        if slipped {
            self.rrl_slipped.fetch_add(1, Relaxed);
        } else {
            self.rrl_dropped.fetch_add(1, Relaxed);
        }
    }
}

#[derive(Debug, Default)]
pub struct ProbeStats {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    /// Cumulative counts per RTT bucket, plus +Inf.
    rtt_buckets: [AtomicU64; RTT_BUCKETS.len() + 1],
    rtt_sum_micros: AtomicU64,
    /// Failures by [`PROBE_FAILURE_REASONS`].
    failed_by_reason: [AtomicU64; PROBE_FAILURE_REASONS.len()],
}

impl ProbeStats {
    /// Counts one probe: `failure` is `None` for a success, else the
    /// reason (one of [`PROBE_FAILURE_REASONS`]; anything else is `other`).
    pub fn record_result(&self, failure: Option<&str>, rtt: Option<Duration>) {
        if let Some(reason) = failure {
            let i = PROBE_FAILURE_REASONS
                .iter()
                .position(|r| *r == reason)
                .unwrap_or(PROBE_FAILURE_REASONS.len() - 1);
            self.failed_by_reason[i].fetch_add(1, Relaxed);
        }
        self.record(failure.is_none(), rtt);
    }

    pub fn record(&self, ok: bool, rtt: Option<Duration>) {
        if ok {
            self.ok.fetch_add(1, Relaxed);
        } else {
            self.failed.fetch_add(1, Relaxed);
        }
        if let Some(rtt) = rtt {
            let secs = rtt.as_secs_f64();
            let i = RTT_BUCKETS
                .iter()
                .position(|b| secs <= *b)
                .unwrap_or(RTT_BUCKETS.len());
            self.rtt_buckets[i].fetch_add(1, Relaxed);
            self.rtt_sum_micros
                .fetch_add(rtt.as_micros() as u64, Relaxed);
        }
    }
}

/// Labels naming one probed address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddressLabels {
    pub service: String,
    pub zone: String,
    pub address: String,
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub dns: DnsCounters,
    /// By (service, zone, endpoint name or "").
    answers: DashMap<(String, String, String), Arc<AtomicU64>>,
    probes: DashMap<AddressLabels, Arc<ProbeStats>>,
    transitions: DashMap<(String, String, &'static str), AtomicU64>,
    fail_open: DashMap<String, AtomicU64>,
    snapshots: AtomicU64,
    generation: AtomicU64,
    /// Signing at snapshot build (`meridian_dnssec_*`).
    pub dnssec: dnssec::DnssecCounters,
    geoip_reloads: AtomicU64,
    geoip_rejected: AtomicU64,
    config_reloads: AtomicU64,
    config_rejected: AtomicU64,
    /// Whether the last config reload was accepted (1 until one is rejected).
    config_last_ok: AtomicBool,
    /// Unix seconds of the last accepted config load (the start counts).
    config_last_success: AtomicU64,
    /// Probe series summed per zone instead of per address.
    probe_metrics_by_zone: AtomicBool,
}

/// One row of probe series: an address's counts, or a zone's sums.
#[derive(Debug, Default)]
struct ProbeTotals {
    ok: u64,
    failed: u64,
    rtt_buckets: [u64; RTT_BUCKETS.len() + 1],
    rtt_sum_micros: u64,
    failed_by_reason: [u64; PROBE_FAILURE_REASONS.len()],
}

impl ProbeTotals {
    fn add(&mut self, stats: &ProbeStats) {
        for (total, n) in self
            .failed_by_reason
            .iter_mut()
            .zip(&stats.failed_by_reason)
        {
            *total += n.load(Relaxed);
        }
        self.ok += stats.ok.load(Relaxed);
        self.failed += stats.failed.load(Relaxed);
        for (total, bucket) in self.rtt_buckets.iter_mut().zip(&stats.rtt_buckets) {
            *total += bucket.load(Relaxed);
        }
        self.rtt_sum_micros += stats.rtt_sum_micros.load(Relaxed);
    }
}

impl Metrics {
    /// Render probe series per zone rather than per address.
    pub fn set_probe_metrics_by_zone(&self, by_zone: bool) {
        self.probe_metrics_by_zone.store(by_zone, Relaxed);
    }

    pub fn probe_stats(&self, labels: AddressLabels) -> Arc<ProbeStats> {
        self.probes.entry(labels).or_default().clone()
    }

    pub fn transition(&self, service: &str, zone: &str, to: &'static str) {
        self.transitions
            .entry((service.to_string(), zone.to_string(), to))
            .or_default()
            .fetch_add(1, Relaxed);
    }

    pub fn fail_open(&self, service: &str) {
        self.fail_open
            .entry(service.to_string())
            .or_default()
            .fetch_add(1, Relaxed);
    }

    /// The config was loaded at start: the first success.
    pub fn config_loaded(&self) {
        self.config_last_ok.store(true, Relaxed);
        self.config_last_success.store(unix_now(), Relaxed);
    }

    pub fn config_reload(&self, accepted: bool) {
        self.config_last_ok.store(accepted, Relaxed);
        if accepted {
            self.config_last_success.store(unix_now(), Relaxed);
            self.config_reloads.fetch_add(1, Relaxed);
        } else {
            self.config_rejected.fetch_add(1, Relaxed);
        }
    }

    pub fn geoip_reload(&self, accepted: bool) {
        if accepted {
            self.geoip_reloads.fetch_add(1, Relaxed);
        } else {
            self.geoip_rejected.fetch_add(1, Relaxed);
        }
    }

    pub fn snapshot_published(&self, generation: u64) {
        self.snapshots.fetch_add(1, Relaxed);
        self.generation.store(generation, Relaxed);
    }

    /// Everything, in the Prometheus text exposition format (0.0.4).
    ///
    /// Families appear in a fixed order (DNS, service answers, probes,
    /// health, reloads, snapshots) and series within a family sorted by
    /// their labels, so two scrapes of the same counts are the same bytes.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        self.dns.render(&mut out);
        self.render_answers(&mut out);
        self.render_probes(&mut out);
        self.render_health(&mut out);
        self.render_reloads(&mut out);
        self.render_snapshots(&mut out);
        header(
            &mut out,
            "meridian_build_info",
            "gauge",
            "Always 1; the labels say which build this node runs.",
        );
        let _ = writeln!(
            out,
            "meridian_build_info{{version=\"{}\",commit=\"{}\"}} 1",
            escape(VERSION),
            escape(COMMIT)
        );
        out
    }

    /// Probe counts and the RTT histogram, per address, or summed per zone
    /// when there are too many addresses for a scrape to stay small.
    fn render_probes(&self, out: &mut String) {
        let by_zone = self.probe_metrics_by_zone.load(Relaxed);
        let mut rows: std::collections::BTreeMap<String, ProbeTotals> = Default::default();
        for entry in self.probes.iter() {
            let l = entry.key();
            let key = if by_zone {
                format!("zone=\"{}\"", escape(&l.zone))
            } else {
                labels(l)
            };
            rows.entry(key).or_default().add(entry.value());
        }
        header(
            out,
            "meridian_probes_total",
            "counter",
            "Health probes, by endpoint address (or zone) and result.",
        );
        for (l, t) in &rows {
            for (result, n) in [("ok", t.ok), ("fail", t.failed)] {
                let _ = writeln!(out, "meridian_probes_total{{{l},result=\"{result}\"}} {n}");
            }
        }
        header(
            out,
            "meridian_probe_rtt_seconds",
            "histogram",
            "Successful probe round-trip time (first byte, or connect for TCP).",
        );
        for (l, t) in &rows {
            let mut cumulative = 0;
            for (i, bound) in RTT_BUCKETS.iter().enumerate() {
                cumulative += t.rtt_buckets[i];
                let _ = writeln!(
                    out,
                    "meridian_probe_rtt_seconds_bucket{{{l},le=\"{bound}\"}} {cumulative}"
                );
            }
            cumulative += t.rtt_buckets[RTT_BUCKETS.len()];
            let _ = writeln!(
                out,
                "meridian_probe_rtt_seconds_bucket{{{l},le=\"+Inf\"}} {cumulative}"
            );
            let sum = t.rtt_sum_micros as f64 / 1e6;
            let _ = writeln!(out, "meridian_probe_rtt_seconds_sum{{{l}}} {sum}");
            let _ = writeln!(out, "meridian_probe_rtt_seconds_count{{{l}}} {cumulative}");
        }
        header(
            out,
            "meridian_probe_failures_total",
            "counter",
            "Failed health probes, by endpoint address (or zone) and reason: refused, timeout, status, body, tls or other.",
        );
        for (l, t) in &rows {
            for (reason, n) in PROBE_FAILURE_REASONS.iter().zip(t.failed_by_reason) {
                let _ = writeln!(
                    out,
                    "meridian_probe_failures_total{{{l},reason=\"{reason}\"}} {n}"
                );
            }
        }
    }

    /// Health transitions and all-down answers.
    fn render_health(&self, out: &mut String) {
        header(
            out,
            "meridian_health_transitions_total",
            "counter",
            "Observed health transitions of endpoint addresses, by the state entered.",
        );
        for ((service, zone, to), n) in sorted_counts(&self.transitions) {
            let _ = writeln!(
                out,
                "meridian_health_transitions_total{{service=\"{}\",zone=\"{}\",to=\"{to}\"}} {n}",
                escape(&service),
                escape(&zone)
            );
        }
        header(
            out,
            "meridian_fail_open_total",
            "counter",
            "Times a service had no serving endpoint and fell back to its all-down answer.",
        );
        for (service, n) in sorted_counts(&self.fail_open) {
            let _ = writeln!(
                out,
                "meridian_fail_open_total{{service=\"{}\"}} {n}",
                escape(&service)
            );
        }
    }

    /// Config and GeoIP reloads, by outcome.
    fn render_reloads(&self, out: &mut String) {
        labelled_counters(
            out,
            "meridian_config_reloads_total",
            "Config reloads (SIGHUP or the admin API), by outcome.",
            "result",
            [
                ("accepted", &self.config_reloads),
                ("rejected", &self.config_rejected),
            ],
        );
        header(
            out,
            "meridian_config_last_reload_successful",
            "gauge",
            "1 when the last config load or reload was accepted, 0 when it was rejected (the previous config still serves).",
        );
        let _ = writeln!(
            out,
            "meridian_config_last_reload_successful {}",
            u8::from(self.config_last_ok.load(Relaxed))
        );
        header(
            out,
            "meridian_config_last_reload_success_timestamp_seconds",
            "gauge",
            "Unix time of the last accepted config load (start or reload).",
        );
        let _ = writeln!(
            out,
            "meridian_config_last_reload_success_timestamp_seconds {}",
            self.config_last_success.load(Relaxed)
        );
        labelled_counters(
            out,
            "meridian_geoip_reloads_total",
            "GeoIP database replacements noticed on disk, by outcome.",
            "result",
            [
                ("accepted", &self.geoip_reloads),
                ("rejected", &self.geoip_rejected),
            ],
        );
    }

    fn render_snapshots(&self, out: &mut String) {
        counter(
            out,
            "meridian_snapshots_published_total",
            "Snapshots built and swapped in.",
            &self.snapshots,
        );
        header(
            out,
            "meridian_snapshot_generation",
            "gauge",
            "Generation of the snapshot being served.",
        );
        let _ = writeln!(
            out,
            "meridian_snapshot_generation {}",
            self.generation.load(Relaxed)
        );
        self.dnssec.render(out);
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A counter's current values by key, sorted by key.
fn sorted_counts<K, V>(map: &DashMap<K, V>) -> Vec<(K, u64)>
where
    K: Clone + Ord + Eq + std::hash::Hash,
    V: std::borrow::Borrow<AtomicU64>,
{
    let mut counts: Vec<(K, u64)> = map
        .iter()
        .map(|e| (e.key().clone(), e.value().borrow().load(Relaxed)))
        .collect();
    counts.sort();
    counts
}

/// A counter with one label, a series per value of the label.
fn labelled_counters<const N: usize>(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    series: [(&str, &AtomicU64); N],
) {
    header(out, name, "counter", help);
    for (value, n) in series {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {}", n.load(Relaxed));
    }
}

/// An unlabelled counter with its help text.
fn counter(out: &mut String, name: &str, help: &str, value: &AtomicU64) {
    counter_value(out, name, help, value.load(Relaxed));
}

/// An unlabelled counter's value, added up by the caller.
fn counter_value(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, "counter", help);
    let _ = writeln!(out, "{name} {value}");
}

pub(crate) fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

pub(crate) fn labels(l: &AddressLabels) -> String {
    format!(
        "service=\"{}\",zone=\"{}\",address=\"{}\"",
        escape(&l.service),
        escape(&l.zone),
        escape(&l.address)
    )
}

pub(crate) fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::wire::Transport;

    #[test]
    fn counters_show_up_in_the_text() {
        let m = Metrics::default();
        m.dns.reply(
            Transport::Udp,
            &ReplyFacts {
                qtype: Some(1),
                rcode: ResponseCode::NXDomain,
                truncated: false,
            },
        );
        m.answer_counter("www.gslb.example.", "us-east")
            .fetch_add(3, Relaxed);
        m.endpoint_answer_counter("bg.gslb.example.", "us-east", Some("blue"))
            .fetch_add(5, Relaxed);
        m.endpoint_answer_counter("bg.gslb.example.", "us-east", Some("green"))
            .fetch_add(2, Relaxed);
        m.probe_stats(AddressLabels {
            service: "www".into(),
            zone: "us-east".into(),
            address: "127.0.0.1".into(),
        })
        .record(true, Some(Duration::from_millis(3)));
        let text = m.render();
        assert!(
            text.contains("meridian_dns_queries_total{transport=\"udp\",qtype=\"A\"} 1"),
            "{text}"
        );
        assert!(text.contains("meridian_dns_responses_total{rcode=\"NXDOMAIN\"} 1"));
        assert!(text.contains(
            "meridian_service_answers_total{service=\"www.gslb.example.\",zone=\"us-east\"} 3"
        ));
        // A zone's endpoints summed, and each named one on its own.
        assert!(
            text.contains(
                "meridian_service_answers_total{service=\"bg.gslb.example.\",zone=\"us-east\"} 7"
            ),
            "{text}"
        );
        assert!(text.contains(
            "meridian_endpoint_answers_total{service=\"bg.gslb.example.\",zone=\"us-east\",endpoint=\"green\"} 2"
        ));
        assert!(
            !text.contains("endpoint=\"\""),
            "unnamed endpoints have no endpoint series"
        );
        assert!(text.contains("meridian_probe_rtt_seconds_bucket{service=\"www\",zone=\"us-east\",address=\"127.0.0.1\",le=\"0.005\"} 1"));
        assert!(text.contains("meridian_probe_rtt_seconds_bucket{service=\"www\",zone=\"us-east\",address=\"127.0.0.1\",le=\"0.002\"} 0"));
    }

    #[test]
    fn probe_series_can_be_summed_per_zone() {
        let m = Metrics::default();
        for (zone, address, rtt_ms) in [
            ("a", "127.0.0.1", 3),
            ("a", "127.0.0.2", 30),
            ("b", "127.0.0.3", 3),
        ] {
            m.probe_stats(AddressLabels {
                service: "www".into(),
                zone: zone.into(),
                address: address.into(),
            })
            .record(true, Some(Duration::from_millis(rtt_ms)));
        }
        let per_address = m.render();
        assert!(per_address.contains("address=\"127.0.0.2\""));
        m.set_probe_metrics_by_zone(true);
        let per_zone = m.render();
        assert!(!per_zone.contains("address="), "{per_zone}");
        assert!(per_zone.contains("meridian_probes_total{zone=\"a\",result=\"ok\"} 2"));
        assert!(per_zone.contains("meridian_probe_rtt_seconds_bucket{zone=\"a\",le=\"0.005\"} 1"));
        assert!(per_zone.contains("meridian_probe_rtt_seconds_count{zone=\"a\"} 2"));
        assert!(per_zone.contains("meridian_probe_rtt_seconds_count{zone=\"b\"} 1"));
    }

    #[test]
    fn families_come_in_a_fixed_order_each_once() {
        let m = Metrics::default();
        m.transition("www", "a", "down");
        m.fail_open("www");
        let text = m.render();
        let families: Vec<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .collect();
        assert_eq!(
            families,
            [
                "meridian_dns_queries_total counter",
                "meridian_dns_responses_total counter",
                "meridian_dns_truncated_total counter",
                "meridian_dns_truncated_for_link_total counter",
                "meridian_dns_prefetched_batches_total counter",
                "meridian_dns_fast_path_total counter",
                "meridian_dns_kept_replies_total counter",
                "meridian_dns_tcp_refused_total counter",
                "meridian_dns_dropped_total counter",
                "meridian_dns_rate_limited_total counter",
                "meridian_service_answers_total counter",
                "meridian_endpoint_answers_total counter",
                "meridian_probes_total counter",
                "meridian_probe_rtt_seconds histogram",
                "meridian_probe_failures_total counter",
                "meridian_health_transitions_total counter",
                "meridian_fail_open_total counter",
                "meridian_config_reloads_total counter",
                "meridian_config_last_reload_successful gauge",
                "meridian_config_last_reload_success_timestamp_seconds gauge",
                "meridian_geoip_reloads_total counter",
                "meridian_snapshots_published_total counter",
                "meridian_snapshot_generation gauge",
                "meridian_dnssec_signatures_total counter",
                "meridian_build_info gauge",
            ]
        );
        assert!(text.contains("meridian_snapshot_generation 0\n"), "{text}");
        assert!(
            text.ends_with(&format!(
                "meridian_build_info{{version=\"{VERSION}\",commit=\"{COMMIT}\"}} 1\n"
            )),
            "{text}"
        );
    }

    #[test]
    fn probe_failures_are_counted_by_reason() {
        let m = Metrics::default();
        let stats = m.probe_stats(AddressLabels {
            service: "www".into(),
            zone: "a".into(),
            address: "127.0.0.1".into(),
        });
        stats.record_result(Some("timeout"), None);
        stats.record_result(Some("timeout"), None);
        stats.record_result(Some("refused"), None);
        stats.record_result(Some("no such reason"), None);
        stats.record_result(None, Some(Duration::from_millis(2)));
        let text = m.render();
        let l = "service=\"www\",zone=\"a\",address=\"127.0.0.1\"";
        for (reason, n) in [("timeout", 2), ("refused", 1), ("other", 1), ("tls", 0)] {
            let line = format!("meridian_probe_failures_total{{{l},reason=\"{reason}\"}} {n}\n");
            assert!(text.contains(&line), "{line} in {text}");
        }
        assert!(text.contains(&format!("meridian_probes_total{{{l},result=\"fail\"}} 4")));
    }

    #[test]
    fn a_rejected_reload_clears_successful_but_keeps_the_last_success_time() {
        let m = Metrics::default();
        m.config_loaded();
        let text = m.render();
        assert!(text.contains("meridian_config_last_reload_successful 1\n"));
        let stamp = |text: &str| -> u64 {
            text.lines()
                .find_map(|l| {
                    l.strip_prefix("meridian_config_last_reload_success_timestamp_seconds ")
                })
                .expect("the family is rendered")
                .parse()
                .expect("a number")
        };
        let at = stamp(&text);
        assert!(at > 1_600_000_000, "{at}");
        m.config_reload(false);
        let text = m.render();
        assert!(text.contains("meridian_config_last_reload_successful 0\n"));
        assert_eq!(stamp(&text), at);
    }
}
