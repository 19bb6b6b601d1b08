//! The one immutable state the answer path reads, and the store it is
//! swapped into.
//!
//! A [`Snapshot`] is built whole by [`build`] from plain inputs (config,
//! health view, drains, routing data) and never changes after: a query
//! loads the current one once and answers from it, so it never sees half of
//! an update and never waits for a writer. Who decides *when* to build one
//! (the publisher) lives elsewhere; this module holds no task, no clock
//! beyond the build stamp, and no metrics registry, so a snapshot can be
//! built the same way by the server, the CLI's offline `explain`, the
//! benches and the fuzz targets.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::cluster::ClusterView;
use crate::config::{Config, Service};
use crate::dns::encoded::FastTable;
use crate::dns::table::{DomainTable, Unchanged};
use crate::dnssec::{SignatureCache, SignedDomain};
use crate::health::drains::Drains;
use crate::health::{HealthView, initial_observed};
use crate::routing::Router;
use crate::routing::geo::GeoDb;
use crate::routing::latency::LatencyView;

/// Per service and endpoint (config order), the counter of answers naming
/// it, so the answer path counts without looking anything up.
pub type AnswerCounters = Vec<Vec<Arc<AtomicU64>>>;

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
    /// RRSIGs and the NSEC chain for `table`, when the domain is signed.
    pub signed: Option<SignedDomain>,
    /// Signatures made so far, handed from snapshot to snapshot so a
    /// rebuild signs only sets it has not signed in this window.
    pub signature_cache: Arc<SignatureCache>,
    /// The votes behind `health`, when several nodes share the checking.
    pub cluster: ClusterView,
    pub answer_counters: AnswerCounters,
    /// Increases with every swap; shown by the admin API and in logs.
    pub generation: u64,
    /// Unique among all snapshots this process builds (generations are per
    /// store, and tests run several stores), so a per-thread cache can tell
    /// which snapshot it was filled from.
    pub id: u64,
    pub built_at: SystemTime,
    _live: LiveMark,
}

/// What a snapshot is built from.
#[derive(Debug)]
pub struct Inputs {
    pub config: Arc<Config>,
    pub health: HealthView,
    pub drains: Drains,
    pub router: Router,
    pub cluster: ClusterView,
    pub answer_counters: AnswerCounters,
    pub generation: u64,
    /// The previous snapshot's signature cache (a fresh one at start).
    pub signature_cache: Arc<SignatureCache>,
}

static NEXT_SNAPSHOT_ID: AtomicU64 = AtomicU64::new(1);

/// Snapshots built and not yet dropped, in this process. One is served;
/// another lives briefly while a swap lands. More for long means something
/// holds a replaced snapshot (and its memory, which at 10,000 services is
/// tens of MiB), which `/metrics` shows as `meridian_snapshots_live`.
static LIVE_SNAPSHOTS: AtomicU64 = AtomicU64::new(0);

/// How many snapshots are alive now: built and not yet dropped.
pub fn live_snapshots() -> u64 {
    LIVE_SNAPSHOTS.load(Ordering::Relaxed)
}

/// Counted into [`LIVE_SNAPSHOTS`] while its snapshot lives. A field
/// rather than a `Drop` on the snapshot, so code that takes a snapshot
/// apart to build the next one still can.
#[derive(Debug)]
struct LiveMark;

impl LiveMark {
    fn new() -> LiveMark {
        LIVE_SNAPSHOTS.fetch_add(1, Ordering::Relaxed);
        LiveMark
    }
}

impl Drop for LiveMark {
    fn drop(&mut self) {
        LIVE_SNAPSHOTS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Builds the lookup tables (and their fast-path encoding) for `inputs`.
/// Pure apart from the build stamp and the process-unique id.
pub fn build(inputs: Inputs) -> Snapshot {
    build_after(inputs, None)
}

/// [`build`], sharing with `previous` (the snapshot being replaced) the
/// records of every service whose config entry is the one `previous` was
/// built from and whose health is the same: a reload that changes one
/// service, or a health change, then builds one service's records, not
/// every service's. The result is what [`build`] would make.
pub fn build_after(inputs: Inputs, previous: Option<&Snapshot>) -> Snapshot {
    let Inputs {
        config,
        health,
        drains,
        router,
        cluster,
        answer_counters,
        generation,
        signature_cache,
    } = inputs;
    let unchanged = previous.map(|p| unchanged_services(p, &config, &health));
    let unchanged = previous.zip(unchanged.as_deref()).map(|(p, services)| {
        let service_names = same_service_names(&p.config, &config);
        Unchanged {
            table: &p.table,
            services,
            names: service_names && same_names_outside_services(&p.config, &config),
            service_names,
        }
    });
    let table = DomainTable::build_after(&config, &health, unchanged);
    let built_at = SystemTime::now();
    let signed = SignedDomain::build(&config, &table, &health, &signature_cache, built_at);
    let fast = FastTable::build_after(
        &config,
        &table,
        signed.as_ref(),
        previous.zip(unchanged).map(|(p, u)| (&p.fast, u)),
    );
    Snapshot {
        config,
        health,
        drains,
        table,
        fast,
        router,
        signed,
        signature_cache,
        cluster,
        answer_counters,
        generation,
        id: NEXT_SNAPSHOT_ID.fetch_add(1, Ordering::Relaxed),
        built_at,
        _live: LiveMark::new(),
    }
}

/// Per service of `config`, the index in `previous` of the same service
/// when its records would come out the same: the same config entry (the
/// config read shares an unchanged entry's `Arc` with the read before)
/// and an equal health view. Looked for at the same index first, where a
/// reload that adds or removes no service finds every one.
fn unchanged_services(
    previous: &Snapshot,
    config: &Config,
    health: &HealthView,
) -> Vec<Option<usize>> {
    let before = &previous.config.services;
    let mut by_entry: Option<HashMap<*const Service, usize, foldhash::fast::RandomState>> = None;
    config
        .services
        .iter()
        .enumerate()
        .map(|(i, service)| {
            let j = if before.get(i).is_some_and(|b| Arc::ptr_eq(b, service)) {
                i
            } else {
                let by_entry = by_entry.get_or_insert_with(|| {
                    before
                        .iter()
                        .enumerate()
                        .map(|(j, b)| (Arc::as_ptr(b), j))
                        .collect()
                });
                *by_entry.get(&Arc::as_ptr(service))?
            };
            (health.endpoints.get(i) == previous.health.endpoints.get(j)).then_some(j)
        })
        .collect()
}

/// Whether `config` gives the domain the same names outside its services
/// as `previous` did, with the same data: read from the same text, and
/// unsigned (keys are read from files). With [`same_service_names`], the
/// domain's names are all the same (see [`Unchanged::names`]).
fn same_names_outside_services(previous: &Config, config: &Config) -> bool {
    previous.dnssec.is_none() && config.dnssec.is_none() && config.same_outside_services(previous)
}

/// Whether the services of `config` have the names those of `previous`
/// had, as spelled (records are written as the config spells them), in
/// the same order.
fn same_service_names(previous: &Config, config: &Config) -> bool {
    previous.services.len() == config.services.len()
        && previous
            .services
            .iter()
            .zip(&config.services)
            .all(|(a, b)| Arc::ptr_eq(a, b) || a.name.eq_case(&b.name))
}

/// Counters that belong to no metrics registry, for snapshots built
/// outside a running node (offline explain, benches, fuzzing).
pub fn detached_counters(config: &Config) -> AnswerCounters {
    config
        .services
        .iter()
        .map(|s| s.endpoints.iter().map(|_| Arc::default()).collect())
        .collect()
}

impl Snapshot {
    /// A snapshot of a node that has just started: no probe has answered,
    /// no latency is measured, generation 1.
    pub fn initial(
        config: Arc<Config>,
        drains: Drains,
        geo: Option<Arc<GeoDb>>,
        answer_counters: AnswerCounters,
    ) -> Snapshot {
        let health = HealthView::build(&config, &initial_observed(&config), &drains);
        let router = Router {
            uniform: crate::routing::uniform::for_router(&config, geo.as_ref()),
            geo,
            cidr: crate::routing::cidr_map(&config),
            latency: Arc::new(LatencyView::default()),
            local_latency: None,
            peer_latency: Vec::new(),
        };
        build(Inputs {
            config,
            health,
            drains,
            router,
            cluster: ClusterView::default(),
            answer_counters,
            generation: 1,
            signature_cache: Arc::default(),
        })
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

    /// A reader's own handle on the current snapshot that revalidates
    /// with one atomic load (the cost of [`SnapshotStore::load`] is
    /// several times that). It keeps the snapshot it last saw alive until
    /// its next `load`, so a holder must call `load` again (or drop it)
    /// before long even when idle, or a replaced snapshot stays in memory.
    pub fn cache(&self) -> arc_swap::Cache<&ArcSwap<Snapshot>, Arc<Snapshot>> {
        arc_swap::Cache::new(&self.current)
    }

    /// The snapshot as an owned handle, for readers that outlive a query.
    pub fn load_full(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Makes `snapshot` current. Only the publisher calls this.
    pub fn store(&self, snapshot: Snapshot) {
        self.current.store(Arc::new(snapshot));
    }

    /// Makes `snapshot` current and returns the one it replaced, for the
    /// caller to free where freeing it delays nothing.
    pub fn swap(&self, snapshot: Snapshot) -> Arc<Snapshot> {
        self.current.swap(Arc::new(snapshot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::state::Observed;
    use crate::health::{AddressKey, HealthView};

    fn config() -> Arc<Config> {
        let service = "policy = \"failover\"\norder = [\"a\", \"b\"]\ncheck = { kind = \"none\" }";
        crate::test_config::shared(&crate::test_config::www(
            service,
            &["192.0.2.1"],
            "192.0.2.2",
        ))
    }

    #[test]
    fn initial_snapshot_answers_with_the_first_zone_and_counts_per_endpoint() {
        let config = config();
        let snapshot = Snapshot::initial(
            config.clone(),
            Drains::default(),
            None,
            detached_counters(&config),
        );
        assert_eq!(snapshot.generation, 1);
        assert_eq!(snapshot.answer_counters.len(), 1);
        assert_eq!(snapshot.answer_counters[0].len(), 2);
        assert!(snapshot.health.endpoints[0].iter().all(|e| e.is_serving()));
        assert!(!snapshot.table.services[0].is_all_down);
    }

    #[test]
    fn build_freezes_the_health_it_is_given() {
        let config = config();
        let mut observed = crate::health::initial_observed(&config);
        observed.insert(
            AddressKey {
                service: 0,
                endpoint: 0,
                address: 0,
            },
            Observed::Down,
        );
        let mut drains = Drains::default();
        drains.set_zone("b", true);
        let health = HealthView::build(&config, &observed, &drains);
        let snapshot = build(Inputs {
            config: config.clone(),
            health,
            drains,
            router: Router {
                geo: None,
                cidr: crate::routing::cidr_map(&config),
                latency: Arc::default(),
                local_latency: None,
                peer_latency: Vec::new(),
                uniform: None,
            },
            cluster: ClusterView::default(),
            answer_counters: detached_counters(&config),
            generation: 7,
            signature_cache: Arc::default(),
        });
        assert_eq!(snapshot.generation, 7);
        let endpoints = &snapshot.health.endpoints[0];
        assert!(!endpoints[0].is_up, "a is down by observation");
        assert!(
            endpoints[1].is_up && endpoints[1].is_drained,
            "b is up but drained"
        );
        assert!(snapshot.table.services[0].is_all_down);
        let other = Snapshot::initial(
            config.clone(),
            Drains::default(),
            None,
            detached_counters(&config),
        );
        assert_ne!(snapshot.id, other.id, "ids are unique per snapshot");
    }
}
