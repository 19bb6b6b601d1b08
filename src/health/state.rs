//! The health state of one endpoint address: a small, pure state machine.
//!
//! Probes only report success or failure; this decides when that evidence
//! is enough to flip. It knows nothing of time sources, sockets or DNS, so
//! every rule here is unit-tested directly.
//!
//! Rules:
//! - An address starts `Unknown`. Unknown counts as up for answers (a node
//!   that just started must not answer from empty health), one success
//!   confirms it `Up`, and `fall` consecutive failures make it `Down`.
//! - `Up` becomes `Down` after `fall` consecutive failures; `Down` becomes
//!   `Up` after `rise` consecutive successes. One lost probe never flips.
//! - While evidence is accumulating against the current state (a failure
//!   while up, a success while down) the scheduler probes again quickly
//!   ([`AddressHealth::is_confirming`]), so a real death is confirmed in a
//!   fraction of the interval while the thresholds still stop flapping.
//! - The successes that bring a down address back must be spread out: one
//!   counts only if its probe *started* at least the spacing (the quick
//!   re-probe interval) after the previous counted success *ended*. A load
//!   balancer that was hung and resumes answers the probe that was waiting
//!   on it and the next one almost together; that burst is one piece of
//!   evidence, not `rise` of them.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Observed {
    Unknown,
    Up,
    Down,
}

impl Observed {
    /// Whether answers may use the address: unknown is given the benefit
    /// of the doubt until probes say otherwise.
    pub fn is_usable(self) -> bool {
        !matches!(self, Observed::Down)
    }

    pub fn name(self) -> &'static str {
        match self {
            Observed::Unknown => "unknown",
            Observed::Up => "up",
            Observed::Down => "down",
        }
    }
}

/// A change of observed state, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: Observed,
    pub to: Observed,
}

/// Weight of the newest sample in the smoothed RTT. 0.3 follows a real
/// shift within a few probes while one slow probe moves it by under a third.
const RTT_EWMA_WEIGHT: f64 = 0.3;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AddressHealth {
    pub observed: Observed,
    /// When `observed` last changed (or the address was first seen).
    pub since: SystemTime,
    pub consecutive_ok: u32,
    pub consecutive_fail: u32,
    pub probes: u64,
    pub last_probe: Option<SystemTime>,
    /// The last probe's failure, `None` after a success.
    pub last_error: Option<String>,
    /// Smoothed round-trip time (time to first byte, or connect for TCP).
    #[serde(serialize_with = "serialize_ms")]
    pub rtt: Option<Duration>,
    /// When the last success that counted toward `rise` ended.
    #[serde(skip)]
    pub last_counted_success: Option<SystemTime>,
}

/// One probe's result and when it ran.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeRecord {
    pub result: Result<(), String>,
    pub rtt: Option<Duration>,
    pub started: SystemTime,
    pub ended: SystemTime,
}

/// The thresholds a check applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub rise: u32,
    pub fall: u32,
    /// Least time between the end of one counted success and the start of
    /// the next probe whose success counts toward `rise`.
    pub spacing: Duration,
}

fn serialize_ms<S: serde::Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(d) => s.serialize_some(&(d.as_secs_f64() * 1000.0)),
        None => s.serialize_none(),
    }
}

impl AddressHealth {
    pub fn new(now: SystemTime) -> AddressHealth {
        AddressHealth {
            observed: Observed::Unknown,
            since: now,
            consecutive_ok: 0,
            consecutive_fail: 0,
            probes: 0,
            last_probe: None,
            last_error: None,
            rtt: None,
            last_counted_success: None,
        }
    }

    /// An address that is never probed (check kind `none`): always up.
    pub fn always_up(now: SystemTime) -> AddressHealth {
        AddressHealth {
            observed: Observed::Up,
            ..AddressHealth::new(now)
        }
    }

    /// Folds in one probe result that ran at `now`, with no spacing rule;
    /// returns the transition, if any.
    pub fn record(
        &mut self,
        result: Result<(), String>,
        rtt: Option<Duration>,
        rise: u32,
        fall: u32,
        now: SystemTime,
    ) -> Option<Transition> {
        self.record_probe(
            ProbeRecord {
                result,
                rtt,
                started: now,
                ended: now,
            },
            Thresholds {
                rise,
                fall,
                spacing: Duration::ZERO,
            },
        )
    }

    /// Folds in one probe; returns the transition, if any.
    pub fn record_probe(&mut self, probe: ProbeRecord, t: Thresholds) -> Option<Transition> {
        let ProbeRecord {
            result,
            rtt,
            started,
            ended: now,
        } = probe;
        let Thresholds {
            rise,
            fall,
            spacing,
        } = t;
        self.probes += 1;
        self.last_probe = Some(now);
        let to = match result {
            Ok(()) => {
                // While down, a success too close behind the last counted
                // one is part of the same burst: it neither counts nor
                // breaks the run.
                let spaced = self
                    .last_counted_success
                    .is_none_or(|last| started >= last + spacing);
                if self.observed != Observed::Down || spaced {
                    self.consecutive_ok = self.consecutive_ok.saturating_add(1);
                    self.last_counted_success = Some(now);
                }
                self.consecutive_fail = 0;
                self.last_error = None;
                if let Some(sample) = rtt {
                    self.rtt = Some(match self.rtt {
                        None => sample,
                        Some(old) => {
                            old.mul_f64(1.0 - RTT_EWMA_WEIGHT) + sample.mul_f64(RTT_EWMA_WEIGHT)
                        }
                    });
                }
                match self.observed {
                    Observed::Unknown => Observed::Up,
                    Observed::Down if self.consecutive_ok >= rise => Observed::Up,
                    other => other,
                }
            }
            Err(error) => {
                self.consecutive_fail = self.consecutive_fail.saturating_add(1);
                self.consecutive_ok = 0;
                self.last_counted_success = None;
                self.last_error = Some(error);
                match self.observed {
                    Observed::Unknown | Observed::Up if self.consecutive_fail >= fall => {
                        Observed::Down
                    }
                    other => other,
                }
            }
        };
        if to == self.observed {
            return None;
        }
        let transition = Transition {
            from: self.observed,
            to,
        };
        self.observed = to;
        self.since = now;
        Some(transition)
    }

    /// Evidence is building against the current state: probe again soon.
    pub fn is_confirming(&self) -> bool {
        match self.observed {
            Observed::Up | Observed::Unknown => self.consecutive_fail > 0,
            Observed::Down => self.consecutive_ok > 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(h: &mut AddressHealth, results: &[bool], rise: u32, fall: u32) -> Vec<Observed> {
        results
            .iter()
            .map(|ok| {
                let r = if *ok {
                    Ok(())
                } else {
                    Err("refused".to_string())
                };
                h.record(
                    r,
                    Some(Duration::from_millis(10)),
                    rise,
                    fall,
                    SystemTime::now(),
                );
                h.observed
            })
            .collect()
    }

    use Observed::*;

    #[test]
    fn starts_unknown_and_usable() {
        let h = AddressHealth::new(SystemTime::now());
        assert_eq!(h.observed, Unknown);
        assert!(h.observed.is_usable());
    }

    #[test]
    fn first_success_confirms_up() {
        let mut h = AddressHealth::new(SystemTime::now());
        assert_eq!(run(&mut h, &[true], 2, 2), [Up]);
    }

    #[test]
    fn fall_failures_take_it_down_and_rise_successes_bring_it_back() {
        let mut h = AddressHealth::new(SystemTime::now());
        let states = run(&mut h, &[true, false, false, true, true, true], 2, 2);
        assert_eq!(states, [Up, Up, Down, Down, Up, Up]);
    }

    #[test]
    fn unknown_goes_down_after_fall_failures() {
        let mut h = AddressHealth::new(SystemTime::now());
        assert_eq!(
            run(&mut h, &[false, false, false], 2, 3),
            [Unknown, Unknown, Down]
        );
    }

    #[test]
    fn alternating_results_never_flip() {
        let mut h = AddressHealth::new(SystemTime::now());
        run(&mut h, &[true], 2, 2);
        let states = run(
            &mut h,
            &[false, true, false, true, false, true, false],
            2,
            2,
        );
        assert!(states.iter().all(|s| *s == Up), "{states:?}");
    }

    #[test]
    fn transitions_are_reported_once() {
        let mut h = AddressHealth::new(SystemTime::now());
        let now = SystemTime::now();
        assert_eq!(
            h.record(Ok(()), None, 2, 2, now),
            Some(Transition {
                from: Unknown,
                to: Up
            })
        );
        assert_eq!(h.record(Ok(()), None, 2, 2, now), None);
        assert_eq!(
            h.record(Err("x".into()), None, 2, 1, now),
            Some(Transition { from: Up, to: Down })
        );
        assert_eq!(h.last_error.as_deref(), Some("x"));
    }

    #[test]
    fn confirming_while_evidence_builds() {
        let mut h = AddressHealth::new(SystemTime::now());
        run(&mut h, &[true], 2, 3);
        assert!(!h.is_confirming());
        run(&mut h, &[false], 2, 3);
        assert!(h.is_confirming());
        run(&mut h, &[false, false], 2, 3);
        assert_eq!(h.observed, Down);
        assert!(!h.is_confirming());
        run(&mut h, &[true], 2, 3);
        assert!(h.is_confirming());
    }

    fn probe(ok: bool, started_ms: u64, ended_ms: u64) -> ProbeRecord {
        let at = |ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
        ProbeRecord {
            result: if ok { Ok(()) } else { Err("timed out".into()) },
            rtt: None,
            started: at(started_ms),
            ended: at(ended_ms),
        }
    }

    #[test]
    fn a_burst_of_replies_after_a_hang_counts_once() {
        let t = Thresholds {
            rise: 2,
            fall: 2,
            spacing: Duration::from_millis(200),
        };
        let mut h = AddressHealth::new(SystemTime::UNIX_EPOCH);
        assert_eq!(
            h.record_probe(probe(true, 0, 1), t).map(|x| x.to),
            Some(Observed::Up)
        );
        let _ = h.record_probe(probe(false, 1000, 2000), t);
        let down = h.record_probe(probe(false, 2200, 3200), t);
        assert_eq!(down.map(|x| x.to), Some(Observed::Down));
        // The load balancer resumes at 3500: the probe waiting since 3400
        // is answered, and the next, started right after, too.
        assert_eq!(h.record_probe(probe(true, 3400, 3500), t), None);
        assert_eq!(
            h.record_probe(probe(true, 3600, 3601), t),
            None,
            "burst: not spaced"
        );
        assert_eq!(h.observed, Observed::Down);
        assert_eq!(h.consecutive_ok, 1);
        // A success started a spacing after the counted one brings it back.
        let up = h.record_probe(probe(true, 3700, 3701), t);
        assert_eq!(up.map(|x| x.to), Some(Observed::Up));
    }

    #[test]
    fn a_failure_between_successes_restarts_the_count() {
        let t = Thresholds {
            rise: 2,
            fall: 1,
            spacing: Duration::from_millis(100),
        };
        let mut h = AddressHealth::new(SystemTime::UNIX_EPOCH);
        let _ = h.record_probe(probe(false, 0, 1), t);
        assert_eq!(h.observed, Observed::Down);
        let _ = h.record_probe(probe(true, 200, 201), t);
        let _ = h.record_probe(probe(false, 400, 401), t);
        let _ = h.record_probe(probe(true, 600, 601), t);
        assert_eq!(
            h.observed,
            Observed::Down,
            "one lucky success in a failing run"
        );
        let _ = h.record_probe(probe(true, 800, 801), t);
        assert_eq!(h.observed, Observed::Up);
    }

    #[test]
    fn rtt_is_smoothed() {
        let mut h = AddressHealth::new(SystemTime::now());
        let now = SystemTime::now();
        h.record(Ok(()), Some(Duration::from_millis(100)), 1, 1, now);
        assert_eq!(h.rtt, Some(Duration::from_millis(100)));
        h.record(Ok(()), Some(Duration::from_millis(200)), 1, 1, now);
        let ms = h.rtt.unwrap().as_secs_f64() * 1000.0;
        assert!((ms - 130.0).abs() < 0.01, "{ms}");
        // Failures carry no RTT and leave the average alone.
        h.record(Err("timeout".into()), None, 1, 5, now);
        assert!((h.rtt.unwrap().as_secs_f64() * 1000.0 - 130.0).abs() < 0.01);
    }
}
