//! Freeing replaced snapshots off the publisher's path.
//!
//! A snapshot of 10,000 services is tens of MiB in many small blocks, and
//! the old one was freed right where the new one was stored: about 15 ms
//! that a reload's reply, and the next build, waited for. The publisher
//! hands it here instead; a thread of its own frees it, and hands freed
//! memory back to the system when the publisher asks (after a reload),
//! in that order, so the trim finds the old snapshot already gone. A trim
//! also ends, a little later, the allocator's bulk phase the publisher
//! began for the work (see `crate::allocator`). Between
//! jobs, the thread purges the free pages whose steady delay has run out,
//! which mimalloc would otherwise leave resident on an idle node: while the
//! allocator is in use and a little after ([`PurgeSchedule`]), since only
//! an allocator call schedules a purge; a node that allocates nothing (one
//! answering UDP queries and nothing else) is not woken for it.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::allocator::{self, Bulk};
use crate::snapshot::Snapshot;

/// How often the thread purges free pages whose steady delay ran out (see
/// `allocator::purge_expired`): half the delay, so a page freed on an idle
/// node leaves within one and a half delays.
const PURGE_TICK: Duration = allocator::STEADY_PURGE_DELAY.checked_div(2).unwrap();

/// How long after the allocator was last seen in use the thread keeps
/// purging. A purge scheduled in that call expires within the steady
/// delay and the next tick finds it; four delays leave room to spare.
const PURGE_WINDOW: Duration = allocator::STEADY_PURGE_DELAY.saturating_mul(4);

/// With no allocator call seen, the thread still purges this often: for
/// the pages a thread's exit hands over, which no call shows.
const PURGE_FALLBACK: Duration = Duration::from_secs(10);

/// When the ticks purge: within [`PURGE_WINDOW`] of an allocator call,
/// and every [`PURGE_FALLBACK`] regardless.
#[derive(Debug)]
struct PurgeSchedule {
    /// The end of the window the last call seen opened.
    until: Option<Instant>,
    last: Instant,
}

impl PurgeSchedule {
    fn new(now: Instant) -> PurgeSchedule {
        PurgeSchedule {
            until: None,
            last: now,
        }
    }

    /// Whether the tick at `now` purges, `used`: whether the allocator was
    /// called since the last tick.
    fn is_due(&mut self, now: Instant, used: bool) -> bool {
        if used {
            self.until = Some(now + PURGE_WINDOW);
        }
        let due = self.until.is_some_and(|until| now <= until)
            || now.saturating_duration_since(self.last) >= PURGE_FALLBACK;
        if due {
            self.last = now;
        }
        due
    }

    /// How long the thread may wait for a job before its next tick: a
    /// tick while the window is open, two when it is closed. Then a call
    /// is seen within a delay, the purge it scheduled has run out by the
    /// tick after, and its pages still leave within one and a half delays.
    fn next_wait(&self, now: Instant) -> Duration {
        if self.until.is_some_and(|until| now <= until) {
            PURGE_TICK
        } else {
            PURGE_TICK * 2
        }
    }
}

/// How long a bulk phase outlasts the trim that ends it. The pages a freed
/// build's blocks sat in reach mimalloc's free list only when their owning
/// threads next look, often a second after the trim; while the phase
/// lasts, they go back at once (measured: settled at the trim, 293 MiB
/// were still resident a second after the reload benchmark's last reload,
/// 249 a second later).
const SETTLE_AFTER: Duration = Duration::from_secs(2);

enum Job {
    Drop(Arc<Snapshot>),
    Trim(Option<Bulk>),
}

/// Ends `phase`, if any, then hands freed memory back: in that order, so
/// the trim also purges what waited out the steady delay.
fn trim_now(phase: Option<Bulk>) {
    if let Some(phase) = phase {
        allocator::settle(phase);
    }
    allocator::release_freed();
}

/// The sending end; the thread ends when this is dropped.
pub struct Retirer {
    tx: mpsc::Sender<Job>,
}

impl Retirer {
    pub fn start() -> Retirer {
        let (tx, rx) = mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name("meridian-retire".into())
            .spawn(move || {
                let mut purged = Instant::now();
                let mut schedule = PurgeSchedule::new(purged);
                let mut settling: Option<(Bulk, Instant)> = None;
                loop {
                    let wait = if settling.is_some() {
                        PURGE_TICK
                    } else {
                        schedule.next_wait(Instant::now())
                    };
                    match rx.recv_timeout(wait) {
                        Ok(Job::Drop(snapshot)) => drop(snapshot),
                        Ok(Job::Trim(phase)) => {
                            allocator::release_freed();
                            if let Some(phase) = phase {
                                settling = Some((phase, Instant::now() + SETTLE_AFTER));
                            }
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                    if let Some((phase, at)) = settling
                        && Instant::now() >= at
                    {
                        settling = None;
                        trim_now(Some(phase));
                    }
                    if purged.elapsed() >= PURGE_TICK {
                        let now = Instant::now();
                        if schedule.is_due(now, allocator::was_used()) {
                            allocator::purge_expired();
                        }
                        purged = now;
                    }
                }
            });
        if let Err(err) = spawned {
            // Nothing is lost: with the thread gone the sends fail and
            // the publisher frees and trims in place.
            tracing::warn!(%err, "no thread for freeing replaced snapshots; freeing them in place");
        }
        Retirer { tx }
    }

    /// Frees `snapshot` (the last handle to a replaced one, usually) on
    /// the retiring thread.
    pub fn drop_later(&self, snapshot: Arc<Snapshot>) {
        if let Err(mpsc::SendError(Job::Drop(snapshot))) = self.tx.send(Job::Drop(snapshot)) {
            drop(snapshot);
        }
    }

    /// Hands freed memory back once everything sent before is freed, and
    /// ends the bulk `phase` (if given) [`SETTLE_AFTER`] later (at once if
    /// the thread is gone).
    pub fn trim(&self, phase: Option<Bulk>) {
        if let Err(mpsc::SendError(Job::Trim(phase))) = self.tx.send(Job::Trim(phase)) {
            trim_now(phase);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_purge_within_the_window_of_a_call_and_at_the_fallback_otherwise() {
        let t0 = Instant::now();
        let mut schedule = PurgeSchedule::new(t0);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert!(
            !schedule.is_due(at(250), false),
            "nothing used, nothing due"
        );
        assert!(schedule.is_due(at(500), true), "a call opens the window");
        assert!(schedule.is_due(at(750), false));
        let end = 500 + PURGE_WINDOW.as_millis() as u64;
        assert!(schedule.is_due(at(end), false), "the window's last tick");
        assert!(!schedule.is_due(at(end + 250), false), "closed");
        // The fallback counts from the last purge.
        let fallback = PURGE_FALLBACK.as_millis() as u64;
        assert!(!schedule.is_due(at(end + fallback - 250), false));
        assert!(schedule.is_due(at(end + fallback), false), "the fallback");
        assert!(!schedule.is_due(at(end + fallback + 250), false));
        // A call late in a window moves its end.
        assert!(schedule.is_due(at(end + fallback + 500), true));
    }

    #[test]
    fn the_thread_waits_a_tick_while_the_window_is_open_and_two_when_closed() {
        let t0 = Instant::now();
        let mut schedule = PurgeSchedule::new(t0);
        assert_eq!(schedule.next_wait(t0), PURGE_TICK * 2);
        assert!(schedule.is_due(t0, true));
        assert_eq!(schedule.next_wait(t0 + PURGE_WINDOW), PURGE_TICK);
        let closed = t0 + PURGE_WINDOW + Duration::from_millis(1);
        assert_eq!(schedule.next_wait(closed), PURGE_TICK * 2);
    }
}
