//! Building the next snapshot from the publisher's state, beside the
//! one it replaces, and swapping it in: the one place a snapshot is
//! published, so what is logged and counted about a swap is said once.

use std::time::Instant;

use super::Publisher;

/// From this many services on, a build's answer counters are worked out
/// on a thread of their own (see `publish`); below, starting one costs
/// more than it saves.
pub(super) const COUNT_BESIDE_FROM: usize = 1000;

impl Publisher {
    pub(super) fn publish(&mut self) {
        let started = Instant::now();
        let previous = self.store.load_full();
        let config = self.state.config.clone();
        let metrics = &self.metrics;
        let count = || {
            let counters = metrics.answer_counters_after(
                &config,
                Some((&previous.config, &previous.answer_counters)),
            );
            (counters, started.elapsed())
        };
        // Nothing in the build reads the answer counters, only the
        // snapshot carries them: at scale (a few ms for 10,000 services)
        // they are worked out beside it, on the other core.
        let (snapshot, counted) = if config.services.len() < COUNT_BESIDE_FROM {
            let (counters, counted) = count();
            let snapshot =
                crate::snapshot::build_after(self.state.next_inputs(counters), Some(&previous));
            (snapshot, counted)
        } else {
            std::thread::scope(|scope| {
                // Without a thread to spare, counted here after the build.
                let counting = std::thread::Builder::new().spawn_scoped(scope, count);
                let mut snapshot = crate::snapshot::build_after(
                    self.state.next_inputs(Vec::new()),
                    Some(&previous),
                );
                let (counters, counted) = match counting {
                    Ok(counting) => counting.join().expect("counting does not panic"),
                    Err(_) => count(),
                };
                snapshot.answer_counters = counters;
                (snapshot, counted)
            })
        };
        drop(previous);
        let built = started.elapsed();
        let is_all_down = snapshot.table.services.iter().map(|s| s.is_all_down);
        let all_down_changes = self.state.all_down_changes(is_all_down);
        let generation = snapshot.generation;
        self.retirer.drop_later(self.store.swap(snapshot));
        self.metrics.snapshot_published(generation);
        let made = self.state.signature_cache.made();
        self.metrics.dnssec.signatures_made(made);
        // Logged once the snapshot is live, so that what the log says is
        // what a query asked after reading it gets.
        for (service, entered) in all_down_changes {
            self.log_all_down(service, entered);
        }
        tracing::debug!(
            generation,
            ?counted,
            ?built,
            published = ?started.elapsed(),
            "published snapshot"
        );
    }

    pub(super) fn log_all_down(&self, service: usize, entered: bool) {
        let s = &self.state.config.services[service];
        if entered {
            self.metrics.fail_open(&s.name.to_string());
            tracing::warn!(
                service = %s.name,
                rule = s.all_down.name(),
                "no endpoint is serving; answering by the all-down rule"
            );
        } else {
            tracing::info!(service = %s.name, "endpoints serving again; all-down rule lifted");
        }
    }
}
