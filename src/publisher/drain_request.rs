//! What an operator asks of the publisher when draining: the target (a
//! zone, a service in a zone, or one named endpoint there), who asked, why
//! and when. Kept apart from the publisher's state (`state.rs`) so the
//! admin API and the event ring name requests without the state that
//! applies them.

/// What an operator can drain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrainTarget {
    /// Every service's endpoint in a zone.
    Zone(String),
    /// One service's endpoints in one zone (`service` indexes the config):
    /// all of them, or with `endpoint` the one of that name.
    Endpoint {
        service: usize,
        zone: String,
        endpoint: Option<String>,
    },
}

/// A drain or undrain as an operator asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainRequest {
    pub target: DrainTarget,
    pub drained: bool,
    /// Who asked (for the record and the logs).
    pub who: String,
    pub reason: Option<String>,
    /// When, in milliseconds since the Unix epoch, by this node's clock.
    pub at_ms: u64,
}

impl DrainRequest {
    /// An anonymous request at time 0 (tests, and callers with no clock).
    pub fn new(target: DrainTarget, drained: bool) -> DrainRequest {
        DrainRequest {
            target,
            drained,
            who: String::new(),
            reason: None,
            at_ms: 0,
        }
    }
}
