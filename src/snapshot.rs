//! The one immutable state the answer path reads, the store it is swapped
//! into, and the publisher that builds it.
//!
//! Every change (a health transition, an operator drain; later reloads and
//! routing data) goes to the single [`Publisher`] task, which folds it into
//! its working state and builds a whole new [`Snapshot`] off to the side,
//! then stores it with one atomic swap. Bursts are coalesced: the publisher
//! applies every change already queued before it builds, so a fleet flapping
//! at once costs one rebuild, not one per endpoint. A query loads the
//! snapshot once and answers from it, so it never sees half of an update and
//! never waits for a writer.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::dns::table::DomainTable;
use crate::health::drains::{Drains, DrainsError};
use crate::health::state::{Observed, Transition};
use crate::health::{AddressKey, HealthView};
use crate::metrics::Metrics;

/// Everything one answer needs.
#[derive(Debug)]
pub struct Snapshot {
    /// The config this snapshot was built from; shared, never copied.
    pub config: Arc<Config>,
    /// Health as the answers use it: observed state and drains combined.
    pub health: HealthView,
    /// Operator drains in force, shown beside observed health.
    pub drains: Drains,
    /// The domain's names and record sets, service answers included.
    pub table: DomainTable,
    /// Per service, the counters of the zones its answer names, so the
    /// answer path counts without looking anything up.
    pub answer_counters: Vec<Vec<Arc<AtomicU64>>>,
    /// Increases with every swap; shown by the admin API and in logs.
    pub generation: u64,
    pub built_at: SystemTime,
}

impl Snapshot {
    pub fn build(
        config: Arc<Config>,
        health: HealthView,
        drains: Drains,
        metrics: &Metrics,
        generation: u64,
    ) -> Snapshot {
        let table = DomainTable::build(&config, &health);
        let answer_counters = config
            .services
            .iter()
            .zip(&table.services)
            .map(|(service, answer)| {
                let name = service.name.to_string();
                answer
                    .zones
                    .iter()
                    .map(|z| metrics.answer_counter(&name, &config.zones[*z].name))
                    .collect()
            })
            .collect();
        Snapshot {
            config,
            health,
            drains,
            table,
            answer_counters,
            generation,
            built_at: SystemTime::now(),
        }
    }

    /// A snapshot of a node that has just started: no probe has answered.
    pub fn initial(config: Arc<Config>, drains: Drains, metrics: &Metrics) -> Snapshot {
        let observed = crate::health::initial_board(&config, SystemTime::now())
            .into_iter()
            .map(|(k, h)| (k, h.observed))
            .collect();
        let health = HealthView::build(&config, &observed, &drains);
        Snapshot::build(config, health, drains, metrics, 1)
    }
}

/// Where the current snapshot lives.
///
/// `ArcSwap` because readers are on the hot path and must never block or
/// contend: a load is a few atomic operations, and a writer publishing a
/// new snapshot does not wait for readers of the old one.
#[derive(Debug)]
pub struct SnapshotStore {
    current: ArcSwap<Snapshot>,
}

impl SnapshotStore {
    pub fn new(snapshot: Snapshot) -> SnapshotStore {
        SnapshotStore {
            current: ArcSwap::from_pointee(snapshot),
        }
    }

    /// The snapshot to answer one query from. Hold it for the query only.
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// The snapshot as an owned handle, for readers that outlive a query.
    pub fn load_full(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    fn store(&self, snapshot: Snapshot) {
        self.current.store(Arc::new(snapshot));
    }
}

/// What an operator can drain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrainTarget {
    /// Every service's endpoint in a zone.
    Zone(String),
    /// One service's endpoint in one zone (`service` indexes the config).
    Endpoint { service: usize, zone: String },
}

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

/// A change for the publisher to fold into the next snapshot.
#[derive(Debug)]
pub enum Change {
    /// An address's observed state flipped.
    Health {
        key: AddressKey,
        transition: Transition,
        /// The probe error behind a flip to down, or the success behind up.
        reason: String,
    },
    /// An operator drained or undrained something.
    Drain {
        target: DrainTarget,
        drained: bool,
        reply: oneshot::Sender<DrainOutcome>,
    },
}

/// The sending side, cloned into probe tasks and the admin API.
#[derive(Debug, Clone)]
pub struct PublisherHandle {
    tx: mpsc::Sender<Change>,
}

impl PublisherHandle {
    pub async fn send(&self, change: Change) {
        // The publisher only stops at shutdown, when nobody needs replies.
        let _ = self.tx.send(change).await;
    }

    /// Drains or undrains; returns once a snapshot carrying it is live.
    pub async fn drain(&self, target: DrainTarget, drained: bool) -> Option<DrainOutcome> {
        let (reply, outcome) = oneshot::channel();
        self.send(Change::Drain {
            target,
            drained,
            reply,
        })
        .await;
        outcome.await.ok()
    }
}

/// The single owner of every change to the served state.
pub struct Publisher {
    rx: mpsc::Receiver<Change>,
    store: Arc<SnapshotStore>,
    metrics: Arc<Metrics>,
    config: Arc<Config>,
    observed: HashMap<AddressKey, Observed>,
    drains: Drains,
    state_file: Option<PathBuf>,
    generation: u64,
    /// Services answering by their all-down rule in the current snapshot,
    /// so entering and leaving that state is logged once.
    all_down: Vec<bool>,
}

/// Loads the persisted drains named by the config (none without a file).
pub fn load_drains(config: &Config) -> Result<Drains, DrainsError> {
    match &config.server.state_file {
        Some(path) => Drains::load(path),
        None => Ok(Drains::default()),
    }
}

impl Publisher {
    /// A publisher for `store`, whose current snapshot was built from
    /// `config` and `drains`.
    pub fn new(
        store: Arc<SnapshotStore>,
        metrics: Arc<Metrics>,
        config: Arc<Config>,
        drains: Drains,
    ) -> (Publisher, PublisherHandle) {
        let (tx, rx) = mpsc::channel(4096);
        let current = store.load_full();
        let observed = crate::health::initial_board(&config, SystemTime::now())
            .into_iter()
            .map(|(k, h)| (k, h.observed))
            .collect();
        let publisher = Publisher {
            rx,
            state_file: config.server.state_file.clone(),
            all_down: current
                .table
                .services
                .iter()
                .map(|s| s.is_all_down)
                .collect(),
            generation: current.generation,
            store,
            metrics,
            config,
            observed,
            drains,
        };
        (publisher, PublisherHandle { tx })
    }

    /// Runs until every handle is dropped.
    pub async fn run(mut self) {
        self.log_all_down_at_start();
        while let Some(first) = self.rx.recv().await {
            let mut replies = Vec::new();
            let mut dirty = self.apply(first, &mut replies);
            // Coalesce: fold in everything already queued, then build once.
            while let Ok(next) = self.rx.try_recv() {
                dirty |= self.apply(next, &mut replies);
            }
            if dirty {
                self.publish();
            }
            for (reply, mut outcome) in replies {
                outcome.generation = self.generation;
                let _ = reply.send(outcome);
            }
        }
    }

    fn apply(
        &mut self,
        change: Change,
        replies: &mut Vec<(oneshot::Sender<DrainOutcome>, DrainOutcome)>,
    ) -> bool {
        match change {
            Change::Health {
                key,
                transition,
                reason,
            } => {
                let service = &self.config.services[key.service];
                let endpoint = &service.endpoints[key.endpoint];
                let zone = &self.config.zones[endpoint.zone].name;
                let address = endpoint.addresses[key.address];
                let drained = self.drains.is_drained(&service.name, zone);
                tracing::info!(
                    service = %service.name,
                    zone = %zone,
                    endpoint = %address,
                    from = transition.from.name(),
                    to = transition.to.name(),
                    drained,
                    reason = %reason,
                    "health transition"
                );
                self.metrics
                    .transition(&service.name.to_string(), zone, transition.to.name());
                self.observed.insert(key, transition.to);
                // Unknown to up changes nothing the answers use.
                transition.from.is_usable() != transition.to.is_usable()
            }
            Change::Drain {
                target,
                drained,
                reply,
            } => {
                let changed = match &target {
                    DrainTarget::Zone(zone) => self.drains.set_zone(zone, drained),
                    DrainTarget::Endpoint { service, zone } => {
                        let name = self.config.services[*service].name.clone();
                        self.drains.set_endpoint(&name, zone, drained)
                    }
                };
                let persisted = match (&self.state_file, changed) {
                    (None, _) => false,
                    (Some(_), false) => true,
                    (Some(path), true) => match self.drains.save(path) {
                        Ok(()) => true,
                        Err(err) => {
                            tracing::warn!(%err, "drain not persisted");
                            false
                        }
                    },
                };
                tracing::info!(
                    target = ?target,
                    drained,
                    changed,
                    persisted,
                    "operator {}",
                    if drained { "drain" } else { "undrain" }
                );
                replies.push((
                    reply,
                    DrainOutcome {
                        changed,
                        persisted,
                        generation: 0,
                    },
                ));
                changed
            }
        }
    }

    fn publish(&mut self) {
        self.generation += 1;
        let health = HealthView::build(&self.config, &self.observed, &self.drains);
        let snapshot = Snapshot::build(
            self.config.clone(),
            health,
            self.drains.clone(),
            &self.metrics,
            self.generation,
        );
        for (i, answer) in snapshot.table.services.iter().enumerate() {
            if answer.is_all_down != self.all_down[i] {
                self.all_down[i] = answer.is_all_down;
                self.log_all_down(i, answer.is_all_down);
            }
        }
        self.store.store(snapshot);
        self.metrics.snapshot_published(self.generation);
        tracing::debug!(generation = self.generation, "published snapshot");
    }

    fn log_all_down_at_start(&mut self) {
        for i in 0..self.all_down.len() {
            if self.all_down[i] {
                self.log_all_down(i, true);
            }
        }
    }

    fn log_all_down(&self, service: usize, is_all_down: bool) {
        let s = &self.config.services[service];
        if is_all_down {
            self.metrics.fail_open(&s.name.to_string());
            tracing::warn!(
                service = %s.name,
                rule = match s.all_down {
                    crate::config::AllDown::FailOpen => "fail-open",
                    crate::config::AllDown::Fallback(_) => "fallback",
                },
                "no endpoint is serving; answering by the all-down rule"
            );
        } else {
            tracing::info!(service = %s.name, "endpoints serving again; all-down rule lifted");
        }
    }
}
