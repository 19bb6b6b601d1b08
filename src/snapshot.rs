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
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::dns::encoded::FastTable;
use crate::dns::table::DomainTable;
use crate::health::drains::{Drains, DrainsError};
use crate::health::state::{Observed, Transition};
use crate::health::{AddressKey, HealthBoard, HealthView};
use crate::metrics::Metrics;
use crate::routing::Router;
use crate::routing::geo::GeoDb;
use crate::routing::latency::{LatencyTable, LatencyView, Ranking};
use crate::routing::prefix::PrefixMap;

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
    /// The same data encoded for the fast path.
    pub fast: FastTable,
    /// GeoIP, CIDR rules and latency rankings.
    pub router: Router,
    /// Per service and endpoint, the counter of answers naming it, so the
    /// answer path counts without looking anything up.
    pub answer_counters: Vec<Vec<Arc<AtomicU64>>>,
    /// Increases with every swap; shown by the admin API and in logs.
    pub generation: u64,
    /// Unique among all snapshots this process builds (generations are per
    /// store, and tests run several stores), so a per-thread cache can tell
    /// which snapshot it was filled from.
    pub id: u64,
    pub built_at: SystemTime,
}

static NEXT_SNAPSHOT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Snapshot {
    pub fn build(
        config: Arc<Config>,
        health: HealthView,
        drains: Drains,
        router: Router,
        metrics: &Metrics,
        generation: u64,
    ) -> Snapshot {
        let table = DomainTable::build(&config, &health);
        let fast = FastTable::build(&config, &table);
        let answer_counters = config
            .services
            .iter()
            .map(|service| {
                let name = service.name.to_string();
                service
                    .endpoints
                    .iter()
                    .map(|e| metrics.answer_counter(&name, &config.zones[e.zone].name))
                    .collect()
            })
            .collect();
        Snapshot {
            config,
            health,
            drains,
            table,
            fast,
            router,
            answer_counters,
            generation,
            id: NEXT_SNAPSHOT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            built_at: SystemTime::now(),
        }
    }

    /// A snapshot of a node that has just started: no probe has answered.
    pub fn initial(
        config: Arc<Config>,
        drains: Drains,
        geo: Option<Arc<GeoDb>>,
        metrics: &Metrics,
    ) -> Snapshot {
        let observed = crate::health::initial_board(&config, SystemTime::now())
            .into_iter()
            .map(|(k, h)| (k, h.observed))
            .collect();
        let health = HealthView::build(&config, &observed, &drains);
        let router = Router {
            geo,
            cidr: cidr_map(&config),
            latency: Arc::new(LatencyView::default()),
            local_latency: None,
        };
        Snapshot::build(config, health, drains, router, metrics, 1)
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

/// CIDR rules by network, for longest-prefix match.
pub fn cidr_map(config: &Config) -> PrefixMap<usize> {
    config
        .cidr_rules
        .iter()
        .enumerate()
        .flat_map(|(i, rule)| rule.networks.iter().map(move |net| (*net, i)))
        .collect()
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
        /// The config generation of the probe task; late reports from
        /// before a reload are ignored.
        epoch: u64,
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
    /// Latency measurements pushed through the admin API.
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

/// Why a reload was rejected; the previous config keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Geo(#[from] crate::routing::geo::GeoError),
}

/// One measured RTT from a client prefix to a zone.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencySample {
    pub prefix: ipnet::IpNet,
    pub zone: usize,
    pub rtt_ms: f64,
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

    /// Re-reads the config file; returns once the new snapshot is live, or
    /// why the file was rejected (the old config keeps serving).
    pub async fn reload(&self) -> Option<Result<u64, ReloadError>> {
        let (reply, result) = oneshot::channel();
        self.send(Change::Reload { reply }).await;
        result.await.ok()
    }

    /// Adds latency measurements; returns once a snapshot carries them.
    pub async fn latency(&self, samples: Vec<LatencySample>) -> Option<u64> {
        let (reply, generation) = oneshot::channel();
        self.send(Change::Latency { samples, reply }).await;
        generation.await.ok()
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
    board: Arc<HealthBoard>,
    geo: Option<Arc<GeoDb>>,
    /// Size and modification time of each GeoIP file, to notice a replace.
    geo_stamps: Vec<Option<(u64, SystemTime, u64)>>,
    latency: LatencyTable,
    /// The frozen rankings, rebuilt only when measurements change.
    latency_view: Arc<LatencyView>,
    latency_dirty: bool,
    local_latency: Option<Ranking>,
    /// Bumped by every reload; probe tasks carry it in their reports.
    epoch: u64,
    /// Stops the current generation of probe tasks (a child of the node's
    /// stop token), and tracks them.
    probes: Option<(CancellationToken, TaskTracker)>,
}

/// How often the publisher looks at time-driven state: latency ageing and
/// this node's probe RTTs.
const TICK: std::time::Duration = std::time::Duration::from_secs(1);

/// A reply owed to whoever sent a change, once its snapshot is live.
enum Reply {
    Drain(oneshot::Sender<DrainOutcome>, DrainOutcome),
    Latency(oneshot::Sender<u64>),
    Reload(oneshot::Sender<Result<u64, ReloadError>>),
}

/// What makes an address the same one across configs.
fn address_identity(config: &Config, key: &AddressKey) -> (String, String, std::net::IpAddr) {
    let service = &config.services[key.service];
    let endpoint = &service.endpoints[key.endpoint];
    (
        crate::health::drains::service_key(&service.name),
        config.zones[endpoint.zone].name.clone(),
        endpoint.addresses[key.address],
    )
}

impl Reply {
    fn send(self, generation: u64) {
        match self {
            Reply::Drain(tx, mut outcome) => {
                outcome.generation = generation;
                let _ = tx.send(outcome);
            }
            Reply::Latency(tx) => {
                let _ = tx.send(generation);
            }
            Reply::Reload(tx) => {
                let _ = tx.send(Ok(generation));
            }
        }
    }
}

fn geo_stamps(config: &Config) -> Vec<Option<(u64, SystemTime, u64)>> {
    use std::os::unix::fs::MetadataExt;
    config
        .geoip
        .as_ref()
        .map(|g| {
            g.files
                .iter()
                .map(|f| {
                    // The inode too: a replace by rename (geoipupdate's way)
                    // changes it even when size and coarse mtime do not.
                    std::fs::metadata(f)
                        .ok()
                        .and_then(|m| Some((m.len(), m.modified().ok()?, m.ino())))
                })
                .collect()
        })
        .unwrap_or_default()
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
        board: Arc<HealthBoard>,
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
            geo: current.router.geo.clone(),
            geo_stamps: geo_stamps(&config),
            board,
            latency: LatencyTable::default(),
            latency_view: current.router.latency.clone(),
            latency_dirty: false,
            local_latency: None,
            epoch: 0,
            probes: None,
            store,
            metrics,
            config,
            observed,
            drains,
        };
        (publisher, PublisherHandle { tx })
    }

    /// Starts the checker pool, then folds in changes until `stop`; then
    /// stops the probes and returns. `handle` is given to the probe tasks.
    pub async fn run(mut self, handle: PublisherHandle, stop: CancellationToken) {
        self.start_probes(&handle, &stop);
        self.serve(&handle, &stop).await;
        self.stop_probes().await;
    }

    fn start_probes(&mut self, handle: &PublisherHandle, stop: &CancellationToken) {
        let token = stop.child_token();
        let tracker = crate::health::scheduler::start(
            &self.config,
            self.board.clone(),
            self.metrics.clone(),
            handle.clone(),
            token.clone(),
            self.epoch,
        );
        self.probes = Some((token, tracker));
    }

    async fn stop_probes(&mut self) {
        if let Some((token, tracker)) = self.probes.take() {
            token.cancel();
            tracker.wait().await;
        }
    }

    async fn serve(&mut self, handle: &PublisherHandle, stop: &CancellationToken) {
        self.log_all_down_at_start();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let geo_every = self
            .config
            .geoip
            .as_ref()
            .map(|g| g.watch_interval)
            .unwrap_or(std::time::Duration::from_secs(3600));
        let mut geo_tick = tokio::time::interval(geo_every);
        geo_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut replies = Vec::new();
            let mut dirty = tokio::select! {
                _ = stop.cancelled() => return,
                change = self.rx.recv() => match change {
                    Some(change) => self.apply(change, &mut replies, handle, stop).await,
                    None => return,
                },
                _ = tick.tick() => self.on_tick(),
                _ = geo_tick.tick() => self.check_geoip().await,
            };
            // Coalesce: fold in everything already queued, then build once.
            while let Ok(next) = self.rx.try_recv() {
                dirty |= self.apply(next, &mut replies, handle, stop).await;
            }
            if dirty {
                self.publish();
            }
            for reply in replies {
                reply.send(self.generation);
            }
        }
    }

    /// Ages out latency measurements and re-ranks this node's probe RTTs.
    fn on_tick(&mut self) -> bool {
        let now = std::time::Instant::now();
        let mut dirty = false;
        if self
            .latency
            .expire(now, self.config.routing.latency_max_age)
        {
            self.latency_dirty = true;
            dirty = true;
        }
        if let Some(here) = self.config.routing.this_zone {
            let rtts = self.zone_rtts();
            let routing = &self.config.routing;
            let ranking =
                self.latency
                    .local_view(rtts, routing.latency_margin, routing.latency_margin_ms);
            let order = |r: &Option<Ranking>| {
                r.as_ref()
                    .map(|r| r.zones.iter().map(|z| z.0).collect::<Vec<_>>())
            };
            if order(&ranking) != order(&self.local_latency) {
                tracing::info!(zone = %self.config.zones[here].name, ranking = ?order(&ranking), "local latency ranking changed");
                dirty = true;
            }
            self.local_latency = ranking;
        }
        dirty
    }

    /// The best smoothed probe RTT to each zone, over every probed address.
    fn zone_rtts(&self) -> Vec<(usize, f64)> {
        let mut best: std::collections::BTreeMap<usize, f64> = std::collections::BTreeMap::new();
        for entry in self.board.iter() {
            let (key, health) = (entry.key(), entry.value());
            let Some(rtt) = health.rtt else { continue };
            if !health.observed.is_usable() {
                continue;
            }
            let zone = self.config.services[key.service].endpoints[key.endpoint].zone;
            let ms = rtt.as_secs_f64() * 1000.0;
            best.entry(zone)
                .and_modify(|b| *b = b.min(ms))
                .or_insert(ms);
        }
        best.into_iter().collect()
    }

    /// Reloads the GeoIP files when they were replaced on disk. A file
    /// that does not load is rejected and the old database stays.
    async fn check_geoip(&mut self) -> bool {
        let Some(settings) = self.config.geoip.clone() else {
            return false;
        };
        let stamps = geo_stamps(&self.config);
        if stamps == self.geo_stamps {
            return false;
        }
        let files = settings.files.clone();
        let loaded = tokio::task::spawn_blocking(move || GeoDb::open(&files)).await;
        self.geo_stamps = stamps;
        match loaded {
            Ok(Ok(db)) => {
                tracing::info!(geoip = %db.description(), "GeoIP database reloaded");
                self.metrics.geoip_reload(true);
                self.geo = Some(Arc::new(db));
                true
            }
            Ok(Err(err)) => {
                tracing::error!(%err, "GeoIP database replacement rejected; keeping the previous one");
                self.metrics.geoip_reload(false);
                false
            }
            Err(err) => {
                tracing::error!(%err, "GeoIP reload task failed; keeping the previous database");
                false
            }
        }
    }

    async fn apply(
        &mut self,
        change: Change,
        replies: &mut Vec<Reply>,
        handle: &PublisherHandle,
        stop: &CancellationToken,
    ) -> bool {
        match change {
            Change::Health { epoch, .. } if epoch != self.epoch => false,
            Change::Health {
                epoch: _,
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
                replies.push(Reply::Drain(
                    reply,
                    DrainOutcome {
                        changed,
                        persisted,
                        generation: 0,
                    },
                ));
                changed
            }
            Change::Latency { samples, reply } => {
                let now = std::time::Instant::now();
                let n = samples.len();
                for sample in samples {
                    self.latency
                        .push(sample.prefix, sample.zone, sample.rtt_ms, now);
                }
                tracing::debug!(samples = n, "latency measurements added");
                self.latency_dirty = true;
                replies.push(Reply::Latency(reply));
                true
            }
            Change::Reload { reply } => match self.reload(handle, stop).await {
                Ok(()) => {
                    self.metrics.config_reload(true);
                    replies.push(Reply::Reload(reply));
                    true
                }
                Err(err) => {
                    tracing::error!(
                        file = %self.config.source.display(),
                        "config reload rejected; still serving the previous config:\n{err}"
                    );
                    self.metrics.config_reload(false);
                    let _ = reply.send(Err(err));
                    false
                }
            },
        }
    }

    /// Reads the config file again and, if it is valid, makes it current:
    /// health of addresses that stay (same service, zone and address)
    /// carries over, drains stay, probes restart for the new set.
    async fn reload(
        &mut self,
        handle: &PublisherHandle,
        stop: &CancellationToken,
    ) -> Result<(), ReloadError> {
        let path = self.config.source.clone();
        let loaded = tokio::task::spawn_blocking(move || Config::load(&path))
            .await
            .expect("config loading does not panic");
        let mut next = loaded?;
        // Sockets are bound once; the addresses serving now stay (they may
        // have come from flags). Changing them needs a restart.
        if next.server.dns != self.config.server.dns
            || next.server.admin != self.config.server.admin
        {
            tracing::warn!(
                "listen addresses in the config changed; they apply at the next restart"
            );
        }
        next.server.dns = self.config.server.dns.clone();
        next.server.admin = self.config.server.admin;
        let geo = if next.geoip == self.config.geoip {
            self.geo.clone()
        } else {
            match next.geoip.clone() {
                None => None,
                Some(settings) => {
                    let db = tokio::task::spawn_blocking(move || GeoDb::open(&settings.files))
                        .await
                        .expect("GeoIP loading does not panic")?;
                    Some(Arc::new(db))
                }
            }
        };
        let next = Arc::new(next);

        self.stop_probes().await;
        let now = SystemTime::now();
        let old_board: HashMap<_, _> = self
            .board
            .iter()
            .map(|e| (address_identity(&self.config, e.key()), e.value().clone()))
            .collect();
        let fresh = crate::health::initial_board(&next, now);
        self.board.clear();
        self.observed.clear();
        for (key, initial) in fresh {
            let endpoint = &next.services[key.service].endpoints[key.endpoint];
            let kept = if endpoint.check.kind == crate::config::CheckKind::None {
                initial
            } else {
                old_board
                    .get(&address_identity(&next, &key))
                    .filter(|h| h.probes > 0)
                    .cloned()
                    .unwrap_or(initial)
            };
            self.observed.insert(key, kept.observed);
            self.board.insert(key, kept);
        }
        let zone_names = |c: &Config| c.zones.iter().map(|z| z.name.clone()).collect::<Vec<_>>();
        if zone_names(&next) != zone_names(&self.config) {
            // Measurements are kept by zone position; a new zone list would
            // misattribute them.
            self.latency = LatencyTable::default();
            self.latency_dirty = true;
            self.local_latency = None;
        }
        if next.geoip != self.config.geoip {
            self.geo_stamps = geo_stamps(&next);
        }
        self.geo = geo;
        self.state_file = next.server.state_file.clone();
        self.all_down = vec![false; next.services.len()];
        self.config = next;
        self.epoch += 1;
        self.start_probes(handle, stop);
        tracing::info!(
            file = %self.config.source.display(),
            zones = self.config.zones.len(),
            services = self.config.services.len(),
            "config reloaded"
        );
        Ok(())
    }

    fn publish(&mut self) {
        self.generation += 1;
        let health = HealthView::build(&self.config, &self.observed, &self.drains);
        if self.latency_dirty {
            let routing = &self.config.routing;
            self.latency_view = Arc::new(
                self.latency
                    .view(routing.latency_margin, routing.latency_margin_ms),
            );
            self.latency_dirty = false;
        }
        let router = Router {
            geo: self.geo.clone(),
            cidr: cidr_map(&self.config),
            latency: self.latency_view.clone(),
            local_latency: self.local_latency.clone(),
        };
        let snapshot = Snapshot::build(
            self.config.clone(),
            health,
            self.drains.clone(),
            router,
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
