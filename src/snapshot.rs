//! The one immutable state the answer path reads, and the store it is
//! swapped into.
//!
//! Every change (a config reload now; health transitions, drains and
//! routing data later) builds a whole new [`Snapshot`] off to the side and
//! stores it with one atomic swap. A query loads the snapshot once and
//! answers from it, so it never sees half of an update and never waits for
//! a writer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::dns::table::DomainTable;

/// Everything one answer needs.
#[derive(Debug)]
pub struct Snapshot {
    /// The config this snapshot was built from; shared, never copied.
    pub config: Arc<Config>,
    /// The domain's names and record sets.
    pub table: DomainTable,
    /// Increases with every swap; shown by the admin API and in logs.
    pub generation: u64,
    pub built_at: SystemTime,
}

impl Snapshot {
    pub fn build(config: Arc<Config>, generation: u64) -> Snapshot {
        let table = DomainTable::build(&config);
        Snapshot {
            config,
            table,
            generation,
            built_at: SystemTime::now(),
        }
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
    next_generation: AtomicU64,
}

impl SnapshotStore {
    pub fn new(config: Arc<Config>) -> SnapshotStore {
        SnapshotStore {
            current: ArcSwap::from_pointee(Snapshot::build(config, 1)),
            next_generation: AtomicU64::new(2),
        }
    }

    /// The snapshot to answer one query from. Hold it for the query only.
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// Builds a snapshot from `config` and makes it current.
    pub fn publish(&self, config: Arc<Config>) -> u64 {
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let snapshot = Snapshot::build(config, generation);
        self.current.store(Arc::new(snapshot));
        tracing::info!(generation, "published snapshot");
        generation
    }
}
