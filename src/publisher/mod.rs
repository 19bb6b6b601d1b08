//! The control plane: one task owns every change to what DNS answers.
//!
//! Health reports from the checker pool, operator drains, latency
//! measurements, config reloads and GeoIP file replacements all reach the
//! single [`Publisher`] task. It folds each into its [`State`] with the
//! pure [`State::apply`], and once nothing more is queued it builds one new
//! snapshot off to the side and stores it with one atomic swap. Bursts are
//! coalesced: a fleet flapping at once costs one rebuild, not one per
//! endpoint. Writers that asked for a change are answered once a snapshot
//! carrying it is live.
//!
//! - [`state`]: the pure part: what the publisher knows, `apply`, and the
//!   inputs of the next snapshot.
//! - [`reload`]: reading the config, GeoIP and state files, and carrying
//!   health over from one config to the next.
//! - `publish`: building the next snapshot from the state and swapping it
//!   in.
//!
//! The shell here does what the pure part cannot: it awaits the channels
//! and timers, runs the checker pool for the current config (restarting it
//! on reload), persists drains, counts metrics and answers callers.

mod drain_request;
pub mod events;
mod publish;
pub mod reload;
mod retire;
pub mod state;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::pull::PeerReport;
use crate::health::drains::Drains;
use crate::health::{HealthBoard, Report};
use crate::metrics::Metrics;
use crate::snapshot::SnapshotStore;
pub use reload::{ReloadError, load_drains, open_geoip};
pub use state::{Change, Dirty, DrainRequest, DrainTarget, LatencySample, State};

/// The result of a drain request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainOutcome {
    /// False when the target was already in the requested state.
    pub changed: bool,
    /// Whether the state file now holds it; false with no state file or a
    /// failed write (the drain applies either way).
    pub persisted: bool,
    /// The generation of the snapshot that carries the drain.
    pub generation: u64,
}

/// A request from outside the publisher, with where to send its answer.
#[derive(Debug)]
enum Request {
    Drain {
        request: DrainRequest,
        reply: oneshot::Sender<DrainOutcome>,
    },
    Latency {
        samples: Vec<LatencySample>,
        /// Answered with the generation of the snapshot carrying them.
        reply: oneshot::Sender<u64>,
    },
    /// Re-read the config file (SIGHUP, `POST /v1/reload`).
    Reload {
        reply: oneshot::Sender<Result<u64, ReloadError>>,
    },
}

/// The sending side, cloned into the admin API and the signal handler.
#[derive(Debug, Clone)]
pub struct PublisherHandle {
    tx: mpsc::Sender<Request>,
}

impl PublisherHandle {
    async fn ask<T>(&self, request: impl FnOnce(oneshot::Sender<T>) -> Request) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        // The publisher only stops at shutdown; `None` tells the caller.
        self.tx.send(request(reply)).await.ok()?;
        answer.await.ok()
    }

    /// Drains or undrains; returns once a snapshot carrying it is live.
    pub async fn drain(&self, request: DrainRequest) -> Option<DrainOutcome> {
        self.ask(|reply| Request::Drain { request, reply }).await
    }

    /// Re-reads the config file; returns once the new snapshot is live, or
    /// why the file was rejected (the old config keeps serving).
    pub async fn reload(&self) -> Option<Result<u64, ReloadError>> {
        self.ask(|reply| Request::Reload { reply }).await
    }

    /// Adds latency measurements; returns once a snapshot carries them.
    pub async fn latency(&self, samples: Vec<LatencySample>) -> Option<u64> {
        self.ask(|reply| Request::Latency { samples, reply }).await
    }
}

/// A reply owed to whoever sent a request, once its snapshot is live.
enum Reply {
    Drain(oneshot::Sender<DrainOutcome>, DrainOutcome),
    Generation(oneshot::Sender<u64>),
    Reload(oneshot::Sender<Result<u64, ReloadError>>),
}

impl Reply {
    fn send(self, generation: u64) {
        // A caller that stopped waiting does not need the answer.
        match self {
            Reply::Drain(tx, outcome) => {
                let _ = tx.send(DrainOutcome {
                    generation,
                    ..outcome
                });
            }
            Reply::Generation(tx) => {
                let _ = tx.send(generation);
            }
            Reply::Reload(tx) => {
                let _ = tx.send(Ok(generation));
            }
        }
    }
}

/// How often the publisher looks at time-driven state: latency ageing and
/// this node's probe RTTs.
const TICK: Duration = Duration::from_secs(1);

/// Queued requests and reports; bounded so a stuck publisher pushes back
/// on probe tasks instead of growing without limit.
const QUEUE: usize = 4096;

/// The single owner of every change to the served state.
pub struct Publisher {
    requests: mpsc::Receiver<Request>,
    reports: mpsc::Receiver<Report>,
    /// Cloned into each generation of probe tasks.
    report_tx: mpsc::Sender<Report>,
    /// Peers' observations, from the pullers.
    peer_reports: mpsc::Receiver<PeerReport>,
    peer_tx: mpsc::Sender<PeerReport>,
    store: Arc<SnapshotStore>,
    metrics: Arc<Metrics>,
    state: State,
    /// Every address's latest probe record, written by the probe tasks and
    /// read by the admin API; the publisher resets it on reload.
    board: Arc<HealthBoard>,
    geo_stamps: Vec<reload::FileStamp>,
    /// Stops the current generation of probe tasks (a child of the node's
    /// stop token), and tracks them.
    probes: Option<(CancellationToken, TaskTracker)>,
    /// Recent flips and drains, for the status page.
    events: Arc<events::EventLog>,
    /// A reload replaced the config: once the new snapshot is out and the
    /// callers answered, freed memory goes back to the system.
    is_trim_due: bool,
    /// When freed memory was last handed back.
    last_trim: Option<Instant>,
    /// The allocator's bulk phase begun for a reload or latency batch (or
    /// start-up) that no trim has ended yet: until one does, freed pages
    /// go back to the system at once (see `crate::allocator`).
    bulk: Option<crate::allocator::Bulk>,
    /// Frees replaced snapshots and trims, off this task.
    retirer: retire::Retirer,
    /// A reload's refill of `board`, running beside the snapshot build;
    /// finished before the board is read again, before the probes start
    /// and before callers hear back.
    board_fill: Option<tokio::task::JoinHandle<()>>,
    /// A reload stopped the probes; they start again once the board is
    /// refilled.
    is_probe_start_due: bool,
}

/// After a health report, how long the queues must stay quiet before the
/// snapshot is built, so one event's burst of transitions costs one build.
const SETTLE_QUIET: Duration = Duration::from_millis(2);
/// The most a health-driven build waits for the burst to settle.
const SETTLE_MAX: Duration = Duration::from_millis(10);

/// The least time between two trims prompted by latency batches.
const LATENCY_TRIM_SPACING: Duration = Duration::from_secs(2);

impl Publisher {
    /// A publisher for `store`, whose current snapshot was built from the
    /// config, drains and GeoIP database given here.
    pub fn new(
        store: Arc<SnapshotStore>,
        metrics: Arc<Metrics>,
        drains: Drains,
        board: Arc<HealthBoard>,
    ) -> (Publisher, PublisherHandle) {
        let (tx, requests) = mpsc::channel(QUEUE);
        let (report_tx, reports) = mpsc::channel(QUEUE);
        let (peer_tx, peer_reports) = mpsc::channel(QUEUE);
        let current = store.load_full();
        let mut state = State::new(current.config.clone(), drains, current.router.geo.clone());
        state.generation = current.generation;
        state.signature_cache = current.signature_cache.clone();
        metrics
            .dnssec
            .signatures_made(current.signature_cache.made());
        // The first snapshot's scope markings, so they are not built twice.
        let (geo, uniform) = (current.router.geo.as_ref(), current.router.uniform.clone());
        state.uniform.adopt(geo, state.epoch, uniform);
        let publisher = Publisher {
            requests,
            reports,
            report_tx,
            peer_reports,
            peer_tx,
            geo_stamps: reload::geo_stamps(&current.config),
            board,
            probes: None,
            events: Arc::default(),
            // Start-up built the first config and snapshot: the first trim
            // (after the first tick) ends that bulk phase.
            is_trim_due: true,
            last_trim: None,
            bulk: Some(crate::allocator::STARTUP),
            retirer: retire::Retirer::start(),
            board_fill: None,
            is_probe_start_due: false,
            store,
            metrics,
            state,
        };
        (publisher, PublisherHandle { tx })
    }

    /// The recent events this publisher records, for the admin API.
    pub fn events(&self) -> Arc<events::EventLog> {
        self.events.clone()
    }

    /// Where pullers send peers' observations.
    pub fn peer_sender(&self) -> mpsc::Sender<PeerReport> {
        self.peer_tx.clone()
    }

    /// Starts the checker pool, then folds in changes until `stop`; then
    /// stops the probes and returns.
    pub async fn run(mut self, stop: CancellationToken) {
        // Scoped: held for the whole run, the first snapshot (its config,
        // tables and latency view: tens of MiB at scale) would outlive
        // every reload.
        let at_start: Vec<bool> = {
            let current = self.store.load();
            current
                .table
                .services
                .iter()
                .map(|s| s.is_all_down)
                .collect()
        };
        for (service, is_all_down) in self.state.all_down_changes(at_start.into_iter()) {
            self.log_all_down(service, is_all_down);
        }
        self.start_probes(&stop);
        self.serve(&stop).await;
        self.stop_probes().await;
    }

    fn start_probes(&mut self, stop: &CancellationToken) {
        let token = stop.child_token();
        let tracker = crate::health::scheduler::start(
            &self.state.config,
            self.board.clone(),
            self.metrics.clone(),
            self.report_tx.clone(),
            token.clone(),
            self.state.epoch,
        );
        self.probes = Some((token, tracker));
    }

    async fn stop_probes(&mut self) {
        if let Some((token, tracker)) = self.probes.take() {
            token.cancel();
            tracker.wait().await;
        }
    }

    async fn serve(&mut self, stop: &CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let geo_every = self
            .state
            .config
            .geoip
            .as_ref()
            .map_or(Duration::from_secs(3600), |g| g.watch_interval);
        let mut geo_tick = tokio::time::interval(geo_every);
        geo_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut replies = Vec::new();
            let mut is_health = false;
            let mut dirty = tokio::select! {
                _ = stop.cancelled() => return,
                request = self.requests.recv() => match request {
                    Some(request) => self.on_request(request, &mut replies).await,
                    None => return,
                },
                Some(report) = self.reports.recv() => {
                    is_health = true;
                    self.on_report(report)
                }
                Some(peer) = self.peer_reports.recv() => self.on_peer(peer),
                // Not even a timer when no tick can change anything (see
                // `State::is_time_driven`); the next event looks again.
                _ = tick.tick(), if self.is_tick_useful() => self.on_tick(),
                _ = geo_tick.tick() => self.check_geoip().await,
            };
            // Coalesce: fold in everything already queued, then build once.
            // Probe results that one event caused (a load balancer coming
            // back answers every waiting probe at once) arrive spread over
            // a few milliseconds, more on a busy machine; after a health
            // report, wait for the queues to be quiet for a moment (bounded,
            // so failover is delayed by at most SETTLE_MAX) and build once.
            let settle_until = tokio::time::Instant::now() + SETTLE_MAX;
            loop {
                if let Ok(report) = self.reports.try_recv() {
                    dirty |= self.on_report(report);
                } else if let Ok(peer) = self.peer_reports.try_recv() {
                    dirty |= self.on_peer(peer);
                } else if let Ok(request) = self.requests.try_recv() {
                    dirty |= self.on_request(request, &mut replies).await;
                } else if is_health && tokio::time::Instant::now() < settle_until {
                    is_health = false;
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(SETTLE_QUIET) => {}
                        Some(report) = self.reports.recv() => {
                            is_health = true;
                            dirty |= self.on_report(report);
                        }
                    }
                } else {
                    break;
                }
            }
            if dirty.drains {
                self.persist_drains();
            }
            if dirty.votes {
                dirty.snapshot |= self.state.settle();
            }
            if dirty.snapshot {
                self.publish();
            }
            self.finish_board_fill().await;
            if std::mem::take(&mut self.is_probe_start_due) {
                self.start_probes(stop);
            }
            for reply in replies {
                reply.send(self.state.generation);
            }
            if std::mem::take(&mut self.is_trim_due) {
                self.retirer.trim(self.bulk.take());
                self.last_trim = Some(Instant::now());
            }
        }
    }

    fn on_report(&mut self, report: Report) -> Dirty {
        let key = report.key;
        let (transition, reason) = (report.transition, report.reason.clone());
        let dirty = self.state.apply(Change::Health {
            report,
            at: Instant::now(),
        });
        if dirty.health {
            let (service, zone, address) = self.state.names(key);
            self.metrics
                .transition(&service, zone, transition.to.name());
            self.events
                .health(&service, zone, address, transition, reason);
        }
        dirty
    }

    fn on_peer(&mut self, report: PeerReport) -> Dirty {
        self.state.apply(Change::Peer(report))
    }

    async fn on_request(&mut self, request: Request, replies: &mut Vec<Reply>) -> Dirty {
        match request {
            Request::Drain { request, reply } => {
                let before = (
                    self.state.drains.zones.clone(),
                    self.state.drains.endpoints.clone(),
                );
                let noted = self.events.drain_event(&self.state.config, &request);
                let mut dirty = self.state.apply(Change::Drain(request));
                let drains = &self.state.drains;
                let changed = before != (drains.zones.clone(), drains.endpoints.clone());
                if changed {
                    self.events.push(noted);
                }
                // Persisted now rather than with the batch, so the reply
                // can say whether it was.
                let persisted = self.persist_drains();
                dirty.drains = false;
                replies.push(Reply::Drain(
                    reply,
                    DrainOutcome {
                        changed,
                        persisted,
                        generation: 0,
                    },
                ));
                dirty
            }
            Request::Latency { samples, reply } => {
                replies.push(Reply::Generation(reply));
                self.bulk = Some(crate::allocator::begin_bulk());
                // Each batch rebuilds the latency view, freeing the last
                // one (tens of MiB with a million prefixes); a feed of
                // batches would otherwise leave the freed memory with the
                // allocator. Spaced, as a trim walks the whole heap.
                self.is_trim_due |= self
                    .last_trim
                    .is_none_or(|t| t.elapsed() >= LATENCY_TRIM_SPACING);
                self.state.apply(Change::Latency {
                    samples,
                    at: Instant::now(),
                })
            }
            Request::Reload { reply } => match self.reload().await {
                Ok(dirty) => {
                    self.metrics.config_reload(true);
                    replies.push(Reply::Reload(reply));
                    dirty
                }
                Err(err) => {
                    // One event, its problems in one field, so a log
                    // search for the rejection finds all of them.
                    let problems: Vec<String> = match &err {
                        ReloadError::Config(c) if c.is_invalid() => {
                            c.problems().iter().map(ToString::to_string).collect()
                        }
                        other => vec![other.to_string()],
                    };
                    tracing::error!(
                        file = %self.state.config.source.display(),
                        count = problems.len(),
                        problems = %problems.join("; ").replace('\n', " "),
                        "config reload rejected; still serving the previous config"
                    );
                    self.metrics.config_reload(false);
                    let _ = reply.send(Err(err));
                    Dirty::default()
                }
            },
        }
    }

    /// Writes the drains to the state file; whether the file holds them.
    fn persist_drains(&self) -> bool {
        match self.state.state_file() {
            None => false,
            Some(path) => match self.state.drains.save(path) {
                Ok(()) => true,
                Err(err) => {
                    tracing::warn!(%err, "drain not persisted");
                    false
                }
            },
        }
    }

    fn is_tick_useful(&self) -> bool {
        self.bulk.is_some() || self.state.is_time_driven() || self.store.load().signed.is_some()
    }

    fn on_tick(&mut self) -> Dirty {
        // A bulk phase no trim has ended (a latency batch inside the trim
        // spacing, a failed reload) ends here once the spacing is up, so
        // the probes go back to reusing their pages.
        self.is_trim_due |= self.bulk.is_some()
            && self
                .last_trim
                .is_none_or(|t| t.elapsed() >= LATENCY_TRIM_SPACING);
        let zone_rtts = self.zone_rtts();
        let mut dirty = self.state.apply(Change::Tick {
            at: Instant::now(),
            zone_rtts,
        });
        dirty.snapshot |= self.is_resigning_due();
        dirty
    }

    /// The served signatures' window has reached its refresh point: a
    /// rebuild now signs with the next window, while half the validity
    /// (by default) is still left on the old signatures.
    fn is_resigning_due(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.store
            .load()
            .signed
            .as_ref()
            .is_some_and(|s| now >= s.window.next_refresh)
    }

    /// The best smoothed probe RTT to each zone, over every usable probed
    /// address, in milliseconds.
    fn zone_rtts(&self) -> Vec<(usize, f64)> {
        let config = &self.state.config;
        // Without probes no address has an RTT: no walk (it allocates).
        if !crate::health::is_any_probed(config) {
            return Vec::new();
        }
        let mut best: BTreeMap<usize, f64> = BTreeMap::new();
        for entry in self.board.iter() {
            let (key, health) = (entry.key(), entry.value());
            let Some(rtt) = health.rtt else { continue };
            if !health.observed.is_usable() {
                continue;
            }
            let zone = config.services[key.service].endpoints[key.endpoint].zone;
            let ms = rtt.as_secs_f64() * 1000.0;
            best.entry(zone)
                .and_modify(|b| *b = b.min(ms))
                .or_insert(ms);
        }
        best.into_iter().collect()
    }

    /// Reloads the GeoIP files when they were replaced on disk. A file
    /// that does not load is rejected and the old database stays.
    async fn check_geoip(&mut self) -> Dirty {
        if reload::geo_stamps_unchanged(&self.state.config, &self.geo_stamps) {
            return Dirty::default();
        }
        self.geo_stamps = reload::geo_stamps(&self.state.config);
        match reload::reopen_geoip(&self.state.config).await {
            Some(Ok(db)) => {
                tracing::info!(geoip = %db.description(), "GeoIP database reloaded");
                self.metrics.geoip_reload(true);
                self.state.apply(Change::GeoReplaced(Arc::new(db)))
            }
            Some(Err(err)) => {
                tracing::error!(%err, "GeoIP database replacement rejected; keeping the previous one");
                self.metrics.geoip_reload(false);
                Dirty::default()
            }
            None => Dirty::default(),
        }
    }

    /// Reads the config file again and, if it is valid, makes it current:
    /// health of addresses that stay carries over, drains stay, probes
    /// restart for the new set.
    async fn reload(&mut self) -> Result<Dirty, ReloadError> {
        let started = Instant::now();
        self.bulk = Some(crate::allocator::begin_bulk());
        let (next, geo) = reload::read_config(&self.state.config, self.state.geo.clone()).await?;
        let read = started.elapsed();
        let next = Arc::new(next);
        // The probe tasks write the board; stop them before it changes.
        self.stop_probes().await;
        // A reload just before, in the same batch, may still be filling it.
        self.finish_board_fill().await;
        let stopped = started.elapsed();
        // Only probed records can be kept (see `carry_over`).
        let board: Vec<_> = self
            .board
            .iter()
            .filter(|e| e.value().probes > 0)
            .map(|e| (*e.key(), e.value().clone()))
            .collect();
        let carried = reload::carry_over(&self.state.config, board, &next, SystemTime::now());
        let carried_over = started.elapsed();
        let mut observed = HashMap::with_capacity(carried.len());
        for (key, health) in &carried {
            observed.insert(*key, health.observed);
        }
        // Nothing reads the records before the probes start: tens of
        // thousands of inserts are done beside the snapshot build instead
        // of before it.
        let board = self.board.clone();
        self.board_fill = Some(tokio::task::spawn_blocking(move || {
            board.clear();
            for (key, health) in carried {
                board.insert(key, health);
            }
        }));
        if next.geoip != self.state.config.geoip {
            self.geo_stamps = reload::geo_stamps(&next);
        }
        let dirty = self.state.apply(Change::Reloaded(state::Reloaded {
            config: next,
            geo,
            observed,
        }));
        let applied = started.elapsed();
        self.is_probe_start_due = true;
        tracing::debug!(
            ?read,
            ?stopped,
            ?carried_over,
            ?applied,
            "reload: config read, old probes stopped, health carried over (probes start once the snapshot is built)"
        );
        self.is_trim_due = true;
        Ok(dirty)
    }

    /// Waits for a reload's board refill, if one is under way.
    async fn finish_board_fill(&mut self) {
        if let Some(fill) = self.board_fill.take() {
            fill.await
                .expect("refilling the health board does not panic");
        }
    }
}

#[cfg(test)]
mod tests;
