//! The DNS families of `/metrics`: queries by transport and type,
//! responses by rcode, and what happened to packets on the way. Apart from
//! the counters themselves so the counting side stays small.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use super::{
    DnsCounters, QTYPE_NONE, QTYPE_OTHER, QTYPES, RCODES, counter, header, labelled_counters,
};
use crate::dns::wire::Transport;

impl DnsCounters {
    /// Queries, responses, and what happened to packets on the way.
    pub(super) fn render(&self, out: &mut String) {
        header(
            out,
            "meridian_dns_queries_total",
            "counter",
            "DNS queries answered, by transport and query type.",
        );
        for (t, name) in [(Transport::Udp, "udp"), (Transport::Tcp, "tcp")] {
            for (i, c) in self.queries[t as usize].iter().enumerate() {
                let qtype = match i {
                    QTYPE_OTHER => "other",
                    QTYPE_NONE => "none",
                    _ => QTYPES[i].1,
                };
                let _ = writeln!(
                    out,
                    "meridian_dns_queries_total{{transport=\"{name}\",qtype=\"{qtype}\"}} {}",
                    c.load(Relaxed)
                );
            }
        }
        header(
            out,
            "meridian_dns_responses_total",
            "counter",
            "DNS responses sent, by rcode.",
        );
        for (i, c) in self.responses.iter().enumerate() {
            let rcode = RCODES.get(i).map_or("other", |r| r.1);
            let _ = writeln!(
                out,
                "meridian_dns_responses_total{{rcode=\"{rcode}\"}} {}",
                c.load(Relaxed)
            );
        }
        counter(
            out,
            "meridian_dns_truncated_total",
            "UDP responses sent with TC=1.",
            &self.truncated,
        );
        counter(
            out,
            "meridian_dns_fast_path_total",
            "Replies made by the fast path; the others took the general path.",
            &self.fast_path,
        );
        counter(
            out,
            "meridian_dns_tcp_refused_total",
            "TCP connections closed on accept because their client already held tcp_max_connections_per_source.",
            &self.tcp_refused,
        );
        counter(
            out,
            "meridian_dns_dropped_total",
            "Packets not answered (no readable header, or a response).",
            &self.dropped,
        );
        labelled_counters(
            out,
            "meridian_dns_rate_limited_total",
            "UDP responses over the rate limit, by what was sent instead.",
            "action",
            [
                ("dropped", &self.rrl_dropped),
                ("slipped", &self.rrl_slipped),
            ],
        );
    }
}
