//! The DNS families of `/metrics`: queries by transport and type,
//! responses by rcode, and what happened to packets on the way. Apart from
//! the counters themselves so the counting side stays small.

use std::fmt::Write;

use super::tally::{QTYPE_SLOTS, RCODE_SLOTS, SLOT_KEPT, SLOT_TRUNCATED, reply_cell};
use super::{DnsCounters, QTYPES, RCODES, counter, counter_value, header, labelled_counters};
use crate::dns::wire::Transport;

impl DnsCounters {
    /// Queries, responses, and what happened to packets on the way.
    pub(super) fn render(&self, out: &mut String) {
        let cells = self.cells.totals();
        // A reply's cell is (transport, fast path, query type, rcode): each
        // series sums the cells it covers.
        let sum = |transports: &[usize], fast: &[bool], qtypes: &[usize], rcodes: &[usize]| {
            let mut total = 0;
            for &t in transports {
                for &f in fast {
                    for &q in qtypes {
                        for &r in rcodes {
                            total += cells[reply_cell(t, f, q, r)];
                        }
                    }
                }
            }
            total
        };
        let all_qtypes: Vec<usize> = (0..QTYPE_SLOTS).collect();
        let all_rcodes: Vec<usize> = (0..RCODE_SLOTS).collect();
        let both = [false, true];
        header(
            out,
            "meridian_dns_queries_total",
            "counter",
            "DNS queries answered, by transport and query type.",
        );
        for (t, name) in [(Transport::Udp, "udp"), (Transport::Tcp, "tcp")] {
            let names = QTYPES.iter().map(|q| q.1).chain(["other", "none"]);
            for (i, qtype) in names.enumerate() {
                let _ = writeln!(
                    out,
                    "meridian_dns_queries_total{{transport=\"{name}\",qtype=\"{qtype}\"}} {}",
                    sum(&[t as usize], &both, &[i], &all_rcodes)
                );
            }
        }
        header(
            out,
            "meridian_dns_responses_total",
            "counter",
            "DNS responses sent, by rcode.",
        );
        for i in 0..=RCODES.len() {
            let rcode = RCODES.get(i).map_or("other", |r| r.1);
            let _ = writeln!(
                out,
                "meridian_dns_responses_total{{rcode=\"{rcode}\"}} {}",
                sum(&[0, 1], &both, &all_qtypes, &[i])
            );
        }
        counter_value(
            out,
            "meridian_dns_truncated_total",
            "UDP responses sent with TC=1.",
            cells[SLOT_TRUNCATED],
        );
        counter(
            out,
            "meridian_dns_truncated_for_link_total",
            "UDP responses larger than the network interface allows, sent with TC=1 instead of fragmented (not in meridian_dns_truncated_total).",
            &self.truncated_for_link,
        );
        counter(
            out,
            "meridian_dns_prefetched_batches_total",
            "UDP batches whose routing memo lookups were fetched into cache before answering, because the memo was meeting many client networks new to it (a flood of random subnets, or a fresh snapshot).",
            &self.prefetched_batches,
        );
        counter_value(
            out,
            "meridian_dns_fast_path_total",
            "Replies made by the fast path; the others took the general path.",
            sum(&[0, 1], &[true], &all_qtypes, &all_rcodes),
        );
        counter_value(
            out,
            "meridian_dns_kept_replies_total",
            "Fast-path replies sent again from those kept for the same query bytes (also in meridian_dns_fast_path_total).",
            cells[SLOT_KEPT],
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
