//! The checker pool: when each address is probed, and what happens after.
//!
//! One tokio task per probed address. Each task owns its address's
//! [`AddressHealth`] (so the state machine needs no lock), writes the record
//! to the [`HealthBoard`] after every probe for the admin API, and sends
//! only transitions, as [`Report`]s, to whoever holds the receiver. Starts are spread over the first
//! interval so a thousand endpoints do not fire in the same millisecond; a
//! semaphore bounds the probes in flight; a probe that hangs costs its own
//! task one timeout and nobody else anything.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::probe::{ProbeTarget, TlsConfigs, probe};
use super::state::{AddressHealth, ProbeRecord, Thresholds};
use super::{AddressKey, HealthBoard, Report, address_keys};
use crate::config::{CheckKind, Config};
use crate::metrics::{AddressLabels, Metrics};

/// The floor of the quick re-probe interval.
const CONFIRM_FLOOR: Duration = Duration::from_millis(100);

/// Starts a task for every address whose check is not `none`, shared by
/// every service that checks the same address the same way: a load
/// balancer fronting ten names is probed once per interval, not ten times,
/// and all ten see the same results. Each task resumes from its addresses'
/// records on the board, so a reload does not forget what probes have
/// seen; `epoch` tags its reports so the consumer can ignore late ones from
/// a previous config.
pub fn start(
    config: &Arc<Config>,
    board: Arc<HealthBoard>,
    metrics: Arc<Metrics>,
    reports: mpsc::Sender<Report>,
    stop: CancellationToken,
    epoch: u64,
) -> TaskTracker {
    let tracker = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(config.server.probe_concurrency));
    let tls = Arc::new(TlsConfigs::new());
    let mut groups: Vec<(ProbeTarget, Vec<AddressKey>)> = Vec::new();
    // Targets by address, so grouping is linear in practice.
    let mut by_addr: std::collections::HashMap<std::net::IpAddr, Vec<usize>> =
        std::collections::HashMap::new();
    let mut probed = 0usize;
    for key in address_keys(config) {
        let endpoint = &config.services[key.service].endpoints[key.endpoint];
        if endpoint.check.kind == CheckKind::None {
            continue;
        }
        probed += 1;
        let target = ProbeTarget {
            addr: endpoint.addresses[key.address],
            check: endpoint.check.clone(),
        };
        let same = by_addr
            .get(&target.addr)
            .and_then(|ids| ids.iter().find(|&&i| groups[i].0 == target));
        match same {
            Some(&i) => groups[i].1.push(key),
            None => {
                by_addr.entry(target.addr).or_default().push(groups.len());
                groups.push((target, vec![key]));
            }
        }
    }
    let tasks = groups.len();
    for (target, keys) in groups {
        let stats = keys
            .iter()
            .map(|key| {
                let service = &config.services[key.service];
                let endpoint = &service.endpoints[key.endpoint];
                metrics.probe_stats(AddressLabels {
                    service: service.name.to_string(),
                    zone: config.zones[endpoint.zone].name.clone(),
                    address: target.addr.to_string(),
                })
            })
            .collect();
        let task = AddressTask {
            epoch,
            keys,
            target,
            board: board.clone(),
            stats,
            reports: reports.clone(),
            slots: slots.clone(),
            tls: tls.clone(),
        };
        tracker.spawn(task.run(stop.clone()));
    }
    tracker.close();
    tracing::info!(
        addresses = probed,
        probes = tasks,
        concurrency = config.server.probe_concurrency,
        "checker pool started"
    );
    tracker
}

/// One probed target and every service's address it stands for.
struct AddressTask {
    epoch: u64,
    /// Never empty; the first names the task (jitter).
    keys: Vec<AddressKey>,
    target: ProbeTarget,
    board: Arc<HealthBoard>,
    /// One per key: a shared probe counts under each service it decides.
    stats: Vec<Arc<crate::metrics::ProbeStats>>,
    reports: mpsc::Sender<Report>,
    slots: Arc<Semaphore>,
    tls: Arc<TlsConfigs>,
}

impl AddressTask {
    async fn run(self, stop: CancellationToken) {
        let check = &self.target.check;
        // The most probed record among the keys: after a reload that put
        // two services' addresses under one task, the better informed wins.
        let mut health = self
            .keys
            .iter()
            .filter_map(|key| self.board.get(key).map(|h| h.clone()))
            .max_by_key(|h| h.probes)
            .unwrap_or_else(|| AddressHealth::new(SystemTime::now()));
        let mut next = Instant::now() + jitter(&self.keys[0], check.interval);
        let quick = quick_interval(check.interval);
        let thresholds = Thresholds {
            rise: check.rise,
            fall: check.fall,
            spacing: quick,
        };
        // After a probe timed out, the one that confirms it gets a shorter
        // deadline, so a hung load balancer is down after about one timeout
        // plus one quick re-probe rather than `fall` full timeouts.
        let mut after_timeout = false;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep_until(next.into()) => {}
            }
            let confirming_timeout = after_timeout && health.is_confirming();
            let confirm;
            let target = if confirming_timeout {
                confirm = self.confirm_target(&health, quick);
                &confirm
            } else {
                &self.target
            };
            let started = SystemTime::now();
            let result = {
                let Ok(_slot) = self.slots.acquire().await else {
                    return;
                };
                tokio::select! {
                    _ = stop.cancelled() => return,
                    // Boxed: the probe's buffers live only while it runs,
                    // not in every idle task (5,000 tasks x ~20 KB).
                    result = Box::pin(probe(target, &self.tls)) => result,
                }
            };
            let ok = result.is_success();
            after_timeout = matches!(&result.outcome, Err(e) if e.is_timeout());
            let rtt = if ok { result.rtt() } else { None };
            for stats in &self.stats {
                stats.record_result(result.outcome.as_ref().err().map(|e| e.reason()), rtt);
            }
            let record = ProbeRecord {
                result: result.outcome.clone().map_err(|e| e.to_string()),
                rtt,
                started,
                ended: SystemTime::now(),
            };
            let transition = health.record_probe(record, thresholds);
            for key in &self.keys {
                self.board.insert(*key, health.clone());
            }
            if let Some(transition) = transition {
                let reason = health
                    .last_error
                    .clone()
                    .unwrap_or_else(|| format!("{} consecutive successes", health.consecutive_ok));
                for key in &self.keys {
                    let report = Report {
                        epoch: self.epoch,
                        key: *key,
                        transition,
                        reason: reason.clone(),
                    };
                    // The receiver only goes away at shutdown, when nobody
                    // needs the report.
                    let _ = self.reports.send(report).await;
                }
            }
            let wait = if health.is_confirming() {
                quick
            } else {
                check.interval
            };
            // Keep the cadence from when the probe was due, not from when
            // the task woke or the probe ended, so wake-up delays and slow
            // probes do not stretch the interval; never go back in time.
            // A probe that timed out is followed at once by its confirming
            // probe, whose own deadline is short.
            next = if confirming_timeout || !after_timeout || !health.is_confirming() {
                (next + wait).max(Instant::now())
            } else {
                Instant::now()
            };
        }
    }

    /// The target for a probe confirming a timeout: the deadline is the
    /// quick re-probe interval, or four smoothed RTTs if that is longer (a
    /// healthy but distant load balancer still makes it), never more than
    /// the check's own timeout.
    fn confirm_target(&self, health: &AddressHealth, quick: Duration) -> ProbeTarget {
        let mut target = self.target.clone();
        let typical = health.rtt.map_or(Duration::ZERO, |rtt| rtt * 4);
        target.check.timeout = quick.max(typical).min(self.target.check.timeout);
        target
    }
}

/// The quick re-probe interval while a flip is being confirmed: a fifth of
/// the interval, but no faster than `CONFIRM_FLOOR` nor slower than the
/// interval.
pub fn quick_interval(interval: Duration) -> Duration {
    (interval / 5).max(CONFIRM_FLOOR).min(interval)
}

/// A start offset in `[0, interval)`, spread by the address's identity and
/// the process's random hasher keys, so restarts do not align either.
fn jitter(key: &AddressKey, interval: Duration) -> Duration {
    let hash = std::collections::hash_map::RandomState::new().hash_one(key);
    let fraction = (hash % 10_000) as f64 / 10_000.0;
    interval.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::state::Observed;

    /// Two services and a third with another port, all at 127.0.0.1 and
    /// TCP-checked every 100 ms; `fall = 1` so one refusal flips.
    fn config(port: u16, other: u16) -> Arc<Config> {
        let check = |port| {
            format!(
                "check = {{ kind = \"tcp\", port = {port}, interval = \"100ms\", timeout = \"100ms\", rise = 1, fall = 1 }}"
            )
        };
        let mut text = crate::test_config::TWO_ZONES.to_string();
        for (name, port) in [("www", port), ("api", port), ("other", other)] {
            text += &format!(
                "\n[[services]]\nname = \"{name}\"\n{}\n[[services.endpoints]]\nzone = \"a\"\naddresses = [\"127.0.0.1\"]\n",
                check(port)
            );
        }
        crate::test_config::shared(&text)
    }

    fn key(service: usize) -> AddressKey {
        AddressKey {
            service,
            endpoint: 0,
            address: 0,
        }
    }

    #[tokio::test]
    async fn equal_checks_share_one_probe_and_every_service_hears_its_flip() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepting = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                drop(stream);
            }
        });
        let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let other_port = other.local_addr().unwrap().port();
        let config = config(port, other_port);
        let board = Arc::new(crate::health::initial_board(&config, SystemTime::now()));
        let (tx, mut rx) = mpsc::channel(16);
        let stop = CancellationToken::new();
        let tracker = start(
            &config,
            board.clone(),
            Arc::new(Metrics::default()),
            tx,
            stop.clone(),
            7,
        );
        // First success: unknown to up, for www and api from one probe.
        let mut ups = Vec::new();
        while ups.len() < 3 {
            let report = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("reports within 5 s")
                .unwrap();
            assert_eq!(report.epoch, 7);
            assert_eq!(report.transition.to, Observed::Up);
            ups.push(report.key);
        }
        ups.sort();
        assert_eq!(ups, [key(0), key(1), key(2)]);
        let probes = |k| board.get(&k).map(|h| h.probes).unwrap();
        assert_eq!(probes(key(0)), probes(key(1)), "one probe, one record");

        // The shared address starts refusing: both its services go down,
        // the third service's address (another port) stays up.
        accepting.abort();
        let _ = accepting.await;
        let mut downs = Vec::new();
        while downs.len() < 2 {
            let report = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("reports within 5 s")
                .unwrap();
            assert_eq!(report.transition.to, Observed::Down, "{report:?}");
            downs.push(report.key);
        }
        downs.sort();
        assert_eq!(downs, [key(0), key(1)]);
        assert_eq!(board.get(&key(2)).unwrap().observed, Observed::Up);
        stop.cancel();
        tracker.wait().await;
        drop(other);
    }

    #[test]
    fn the_quick_interval_is_a_fifth_within_bounds() {
        assert_eq!(
            quick_interval(Duration::from_secs(1)),
            Duration::from_millis(200)
        );
        assert_eq!(
            quick_interval(Duration::from_millis(200)),
            Duration::from_millis(100)
        );
        assert_eq!(
            quick_interval(Duration::from_millis(50)),
            Duration::from_millis(50)
        );
    }
}
