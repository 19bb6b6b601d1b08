//! Which endpoints are alive, as far as probes and operators say.
//!
//! - [`probe`]: one probe of one address (HTTP, HTTPS, TCP), returning only
//!   a result and its timings.
//! - [`state`]: the rise/fall state machine that turns results into
//!   up/down, pure and unit-tested.
//! - [`scheduler`]: the checker pool: one task per probed address, jittered
//!   starts, bounded concurrency, quick re-probes while a flip is being
//!   confirmed. Each task owns its address's state and sends only
//!   transitions, as [`Report`]s on a channel it is given.
//! - [`drains`]: operator overrides, kept apart from observed health and
//!   persisted across restarts.
//!
//! Health never picks answers. What it knows reaches the DNS path only
//! through the snapshot, as a [`HealthView`]. It imports nothing above it:
//! whoever consumes [`Report`]s (the publisher) depends on health, never
//! the other way round.

pub mod drains;
pub mod probe;
pub mod scheduler;
pub mod state;

use std::collections::HashMap;
use std::time::SystemTime;

use dashmap::DashMap;

use crate::config::{CheckKind, Config};
use state::{AddressHealth, Observed, Transition};

/// A flip of one address's observed state, as the checker pool reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The config generation the probe task was started for; a consumer
    /// ignores late reports from before a reload.
    pub epoch: u64,
    pub key: AddressKey,
    pub transition: Transition,
    /// The probe error behind a flip to down, or the successes behind up.
    pub reason: String,
}

/// One probed address: indices into the config's services, the service's
/// endpoints, and the endpoint's addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddressKey {
    pub service: usize,
    pub endpoint: usize,
    pub address: usize,
}

/// Every address's live health record, for the admin API and metrics.
///
/// A `DashMap` because each probe task writes its own entry after every
/// probe (thousands a second, from many tasks) while the admin endpoint
/// reads them all now and then; sharded locks keep writers off each other.
/// The DNS path never touches it: it reads the snapshot's [`HealthView`].
pub type HealthBoard = DashMap<AddressKey, AddressHealth>;

/// Fills a board with the starting state of every address in `config`.
pub fn initial_board(config: &Config, now: SystemTime) -> HealthBoard {
    let board = HealthBoard::new();
    for key in address_keys(config) {
        let check = &config.services[key.service].endpoints[key.endpoint].check;
        board.insert(key, initial_health(check.kind, now));
    }
    board
}

/// The record an address starts with: unknown, or up for good when its
/// check is `none`.
pub fn initial_health(kind: CheckKind, now: SystemTime) -> AddressHealth {
    if kind == CheckKind::None {
        AddressHealth::always_up(now)
    } else {
        AddressHealth::new(now)
    }
}

/// The observed state every address starts with: unknown, or up for
/// addresses whose check is `none`.
pub fn initial_observed(config: &Config) -> HashMap<AddressKey, Observed> {
    initial_board(config, SystemTime::now())
        .into_iter()
        .map(|(k, h)| (k, h.observed))
        .collect()
}

/// Whether any endpoint of `config` is probed (its check is not `none`).
pub fn is_any_probed(config: &Config) -> bool {
    config
        .services
        .iter()
        .any(|s| s.endpoints.iter().any(|e| e.check.kind != CheckKind::None))
}

/// Every address of every endpoint of every service, in config order.
pub fn address_keys(config: &Config) -> impl Iterator<Item = AddressKey> + '_ {
    config.services.iter().enumerate().flat_map(|(s, service)| {
        service
            .endpoints
            .iter()
            .enumerate()
            .flat_map(move |(e, ep)| {
                (0..ep.addresses.len()).map(move |a| AddressKey {
                    service: s,
                    endpoint: e,
                    address: a,
                })
            })
    })
}

/// What the answer path needs to know of health: per service, per
/// endpoint, which addresses are usable and whether the endpoint is up and
/// undrained. Built by the publisher, frozen into a snapshot.
#[derive(Debug, Clone, Default)]
pub struct HealthView {
    /// `[service][endpoint]`
    pub endpoints: Vec<Vec<EndpointView>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EndpointView {
    /// Observed state of each address, in config order.
    pub addresses: Vec<Observed>,
    /// At least `min_healthy` addresses are usable.
    pub is_up: bool,
    /// Forced out by an operator (the zone or this endpoint).
    pub is_drained: bool,
}

impl EndpointView {
    pub fn is_serving(&self) -> bool {
        self.is_up && !self.is_drained
    }

    /// The endpoint's observed state as the admin API and explain name it;
    /// `None` (an endpoint the view does not know) is `unknown`.
    pub fn observed_name(view: Option<&EndpointView>) -> &'static str {
        match view {
            Some(v) if v.is_up => "up",
            Some(_) => "down",
            None => "unknown",
        }
    }
}

impl HealthView {
    /// The view from observed states and drains.
    pub fn build(
        config: &Config,
        observed: &HashMap<AddressKey, Observed>,
        drains: &drains::Drains,
    ) -> HealthView {
        let endpoints = config
            .services
            .iter()
            .enumerate()
            .map(|(s, service)| {
                service
                    .endpoints
                    .iter()
                    .enumerate()
                    .map(|(e, ep)| {
                        let addresses: Vec<Observed> = (0..ep.addresses.len())
                            .map(|a| {
                                let key = AddressKey {
                                    service: s,
                                    endpoint: e,
                                    address: a,
                                };
                                observed.get(&key).copied().unwrap_or(Observed::Unknown)
                            })
                            .collect();
                        let usable = addresses.iter().filter(|o| o.is_usable()).count();
                        let zone = &config.zones[ep.zone].name;
                        EndpointView {
                            is_up: usable >= ep.min_healthy,
                            is_drained: drains.is_drained(&service.name, zone, ep.name.as_deref()),
                            addresses,
                        }
                    })
                    .collect()
            })
            .collect();
        HealthView { endpoints }
    }

    /// Everything unknown and undrained: how a node starts.
    pub fn initial(config: &Config) -> HealthView {
        HealthView::build(
            config,
            &initial_observed(config),
            &drains::Drains::default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_config::{parse, www};

    #[test]
    fn a_config_is_probed_unless_every_check_is_none() {
        let text = www("", &["192.0.2.1"], "192.0.2.2");
        assert!(is_any_probed(&parse(&text)));
        let none = text.replace(
            "name = \"www\"",
            "name = \"www\"\ncheck = { kind = \"none\" }",
        );
        assert!(!is_any_probed(&parse(&none)));
    }
}
