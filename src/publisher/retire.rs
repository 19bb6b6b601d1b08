//! Freeing replaced snapshots off the publisher's path.
//!
//! A snapshot of 10,000 services is tens of MiB in many small blocks, and
//! the old one was freed right where the new one was stored: about 15 ms
//! that a reload's reply, and the next build, waited for. The publisher
//! hands it here instead; a thread of its own frees it, and hands freed
//! memory back to the system when the publisher asks (after a reload),
//! in that order, so the trim finds the old snapshot already gone.

use std::sync::Arc;
use std::sync::mpsc;

use crate::snapshot::Snapshot;

enum Job {
    Drop(Arc<Snapshot>),
    Trim,
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
                for job in rx {
                    match job {
                        Job::Drop(snapshot) => drop(snapshot),
                        Job::Trim => crate::allocator::release_freed(),
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

    /// Hands freed memory back once everything sent before is freed.
    pub fn trim(&self) {
        if self.tx.send(Job::Trim).is_err() {
            crate::allocator::release_freed();
        }
    }
}
