//! Measured latency from client networks to zones, and the ranking the
//! latency policy answers from.
//!
//! The [`LatencyTable`] is working state owned by the publisher: pushed
//! measurements (`POST /v1/latency`, e.g. from real-user beacons) keyed by
//! client prefix and zone, smoothed, and forgotten after a maximum age.
//! From it the publisher freezes a [`LatencyView`] into each snapshot: per
//! prefix, the zones ranked best first. Hysteresis is applied here, not per
//! query: a prefix keeps its current zone unless another is better by the
//! configured margin (both a fraction and milliseconds), so answers do not
//! swing between zones whose latencies are nearly equal.

use std::collections::HashMap;
use std::time::Instant;

use ipnet::IpNet;

use super::prefix::PrefixMap;

/// Weight of a new pushed sample in a prefix's smoothed RTT to a zone.
const SAMPLE_WEIGHT: f64 = 0.3;

#[derive(Debug, Clone, Copy)]
struct Measurement {
    rtt_ms: f64,
    updated: Instant,
}

/// Zones ranked for one client prefix, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranking {
    /// `(zone index, smoothed RTT in ms)`.
    pub zones: Vec<(usize, f64)>,
}

#[derive(Debug, Default)]
pub struct LatencyTable {
    measurements: HashMap<IpNet, HashMap<usize, Measurement>>,
    /// The zone each prefix was last sent to: the hysteresis memory.
    current: HashMap<IpNet, usize>,
    /// The same for clients ranked by this node's own probe RTTs.
    local_current: Option<usize>,
}

impl LatencyTable {
    /// Folds in one measurement; `prefix` must already be truncated.
    pub fn push(&mut self, prefix: IpNet, zone: usize, rtt_ms: f64, now: Instant) {
        let zones = self.measurements.entry(prefix).or_default();
        let m = zones.entry(zone).or_insert(Measurement {
            rtt_ms,
            updated: now,
        });
        m.rtt_ms = m.rtt_ms * (1.0 - SAMPLE_WEIGHT) + rtt_ms * SAMPLE_WEIGHT;
        m.updated = now;
    }

    /// Forgets measurements older than `max_age`; returns whether any went.
    pub fn expire(&mut self, now: Instant, max_age: std::time::Duration) -> bool {
        let before = self.len();
        for zones in self.measurements.values_mut() {
            zones.retain(|_, m| now.duration_since(m.updated) <= max_age);
        }
        self.measurements.retain(|_, zones| !zones.is_empty());
        let measurements = &self.measurements;
        self.current.retain(|p, _| measurements.contains_key(p));
        before != self.len()
    }

    /// Number of (prefix, zone) measurements held.
    pub fn len(&self) -> usize {
        self.measurements.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ranks every prefix's zones, keeping each prefix's current zone first
    /// unless another beats it by the margin, and remembers the result.
    pub fn view(&mut self, margin: f64, margin_ms: f64) -> PrefixMap<Ranking> {
        let mut map = Vec::with_capacity(self.measurements.len());
        for (prefix, zones) in &self.measurements {
            let measured: Vec<(usize, f64)> = zones.iter().map(|(z, m)| (*z, m.rtt_ms)).collect();
            let previous = self.current.get(prefix).copied();
            let ranking = rank(measured, previous, margin, margin_ms);
            if let Some((first, _)) = ranking.zones.first() {
                self.current.insert(*prefix, *first);
            }
            map.push((*prefix, ranking));
        }
        map.into_iter().collect()
    }

    /// Ranks zones by this node's probe RTTs (for clients near this node),
    /// with the same hysteresis.
    pub fn local_view(
        &mut self,
        rtts: Vec<(usize, f64)>,
        margin: f64,
        margin_ms: f64,
    ) -> Option<Ranking> {
        if rtts.is_empty() {
            self.local_current = None;
            return None;
        }
        let ranking = rank(rtts, self.local_current, margin, margin_ms);
        self.local_current = ranking.zones.first().map(|z| z.0);
        Some(ranking)
    }
}

/// Sorts by RTT, then moves `previous` back to the front if the best is
/// not clearly better than it.
fn rank(
    mut zones: Vec<(usize, f64)>,
    previous: Option<usize>,
    margin: f64,
    margin_ms: f64,
) -> Ranking {
    zones.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    if let Some(prev) = previous
        && let Some(pos) = zones.iter().position(|(z, _)| *z == prev)
        && pos > 0
    {
        let (best, prev_rtt) = (zones[0].1, zones[pos].1);
        let clearly_better = best < prev_rtt * (1.0 - margin) && prev_rtt - best > margin_ms;
        if !clearly_better {
            let kept = zones.remove(pos);
            zones.insert(0, kept);
        }
    }
    Ranking { zones }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn first(view: &PrefixMap<Ranking>, prefix: &str) -> usize {
        let p = net(prefix);
        view.lookup(p.addr(), p.prefix_len()).unwrap().1.zones[0].0
    }

    #[test]
    fn ranks_by_rtt() {
        let mut t = LatencyTable::default();
        let now = Instant::now();
        t.push(net("198.51.100.0/24"), 0, 80.0, now);
        t.push(net("198.51.100.0/24"), 1, 20.0, now);
        t.push(net("198.51.100.0/24"), 2, 50.0, now);
        let view = t.view(0.2, 5.0);
        let r = view.lookup("198.51.100.7".parse().unwrap(), 32).unwrap().1;
        assert_eq!(r.zones.iter().map(|z| z.0).collect::<Vec<_>>(), [1, 2, 0]);
    }

    #[test]
    fn does_not_move_inside_the_margin_and_moves_outside_it() {
        let mut t = LatencyTable::default();
        let now = Instant::now();
        let p = net("203.0.113.0/24");
        t.push(p, 0, 30.0, now);
        t.push(p, 1, 40.0, now);
        assert_eq!(first(&t.view(0.2, 5.0), "203.0.113.0/24"), 0);
        // Zone 1 improves to slightly better than zone 0: stay.
        for _ in 0..20 {
            t.push(p, 1, 27.0, now);
        }
        assert_eq!(first(&t.view(0.2, 5.0), "203.0.113.0/24"), 0);
        // Zone 1 is now clearly better (>20% and >5 ms): move.
        for _ in 0..20 {
            t.push(p, 1, 10.0, now);
        }
        assert_eq!(first(&t.view(0.2, 5.0), "203.0.113.0/24"), 1);
        // And back only when zone 0 is clearly better than zone 1.
        for _ in 0..20 {
            t.push(p, 0, 9.0, now);
        }
        assert_eq!(first(&t.view(0.2, 5.0), "203.0.113.0/24"), 1);
    }

    #[test]
    fn old_measurements_age_out() {
        let mut t = LatencyTable::default();
        let then = Instant::now();
        t.push(net("192.0.2.0/24"), 0, 10.0, then);
        assert!(!t.expire(then + Duration::from_secs(5), Duration::from_secs(10)));
        assert!(t.expire(then + Duration::from_secs(11), Duration::from_secs(10)));
        assert!(t.is_empty());
        assert!(t.view(0.2, 5.0).is_empty());
    }

    #[test]
    fn local_view_has_hysteresis_too() {
        let mut t = LatencyTable::default();
        assert_eq!(
            t.local_view(vec![(0, 10.0), (1, 12.0)], 0.2, 5.0)
                .unwrap()
                .zones[0]
                .0,
            0
        );
        assert_eq!(
            t.local_view(vec![(0, 10.0), (1, 9.0)], 0.2, 5.0)
                .unwrap()
                .zones[0]
                .0,
            0
        );
        assert_eq!(
            t.local_view(vec![(0, 10.0), (1, 2.0)], 0.2, 5.0)
                .unwrap()
                .zones[0]
                .0,
            1
        );
    }
}
