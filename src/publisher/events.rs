//! The node's recent events for the status page: probe flips and operator
//! drains, newest last, in a small ring.
//!
//! The publisher pushes as it applies each change; the admin API reads a
//! copy. The ring is bounded ([`CAPACITY`]), so a flapping fleet costs a
//! fixed amount of memory and old events simply fall off: it is a glance
//! at the last minutes, not an audit log (logs and metrics are that).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

use super::state::{DrainRequest, DrainTarget};
use crate::config::Config;
use crate::health::state::Transition;

/// Events kept.
pub const CAPACITY: usize = 200;

/// One thing that changed what this node may answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub at: SystemTime,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// This node's probes flipped an address.
    Health {
        service: String,
        zone: String,
        address: String,
        from: &'static str,
        to: &'static str,
        /// The probe error behind a flip to down, or the successes behind up.
        reason: String,
    },
    /// An operator drained or undrained a zone (`service` is `None`) or
    /// one service's endpoint in it.
    Drain {
        zone: String,
        service: Option<String>,
        /// One named endpoint of the service in the zone.
        endpoint: Option<String>,
        drained: bool,
        who: String,
        reason: Option<String>,
    },
}

/// The ring. A mutex, not a lock-free queue: one writer (the publisher)
/// pushing a few events a second and a page polling once a second never
/// contend long enough to matter, and a copy is cheap at this size.
#[derive(Debug, Default)]
pub struct EventLog {
    events: Mutex<VecDeque<Event>>,
}

impl EventLog {
    pub fn push(&self, event: Event) {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if events.len() == CAPACITY {
            events.pop_front();
        }
        events.push_back(event);
    }

    /// Records a probe flip of `address`.
    pub fn health(
        &self,
        service: &str,
        zone: &str,
        address: std::net::IpAddr,
        transition: Transition,
        reason: String,
    ) {
        self.push(Event {
            at: SystemTime::now(),
            kind: EventKind::Health {
                service: service.to_string(),
                zone: zone.to_string(),
                address: address.to_string(),
                from: transition.from.name(),
                to: transition.to.name(),
                reason,
            },
        });
    }

    /// The event a drain request makes, to push once it changed something.
    pub fn drain_event(&self, config: &Config, request: &DrainRequest) -> Event {
        let (zone, service, endpoint) = match &request.target {
            DrainTarget::Zone(zone) => (zone.clone(), None, None),
            DrainTarget::Endpoint {
                service,
                zone,
                endpoint,
            } => (
                zone.clone(),
                config.services.get(*service).map(|s| s.name.to_string()),
                endpoint.clone(),
            ),
        };
        Event {
            at: SystemTime::now(),
            kind: EventKind::Drain {
                zone,
                service,
                endpoint,
                drained: request.drained,
                who: request.who.clone(),
                reason: request.reason.clone(),
            },
        }
    }

    /// Every event kept, oldest first.
    pub fn recent(&self) -> Vec<Event> {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        events.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(n: usize) -> Event {
        Event {
            at: SystemTime::UNIX_EPOCH,
            kind: EventKind::Drain {
                zone: format!("z{n}"),
                service: None,
                endpoint: None,
                drained: true,
                who: "127.0.0.1".into(),
                reason: None,
            },
        }
    }

    #[test]
    fn keeps_the_newest_up_to_capacity() {
        let log = EventLog::default();
        for n in 0..CAPACITY + 5 {
            log.push(drain(n));
        }
        let recent = log.recent();
        assert_eq!(recent.len(), CAPACITY);
        assert_eq!(recent[0], drain(5), "the oldest fell off first");
        assert_eq!(recent[CAPACITY - 1], drain(CAPACITY + 4));
    }
}
