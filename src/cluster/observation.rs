//! What one node tells the others: its own probe observations, its drain
//! records and which config it runs.
//!
//! Addresses are named as the config names them (service, zone, address),
//! not by index, so a peer whose config differs for a moment (a reload
//! rolling through the cluster) still matches what it can and ignores the
//! rest instead of misreading it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::health::drains::{DrainRecord, service_key};
use crate::health::state::{AddressHealth, Observed};
use crate::health::{AddressKey, HealthBoard};

/// One node's published view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeObservations {
    pub node: String,
    /// Digest of the config file the node runs.
    pub config_digest: String,
    /// The generation of the snapshot the node answers from.
    pub generation: u64,
    /// When the node wrote this, by its own clock (shown, never compared:
    /// freshness is judged by when the puller received it).
    pub sent_at_ms: u64,
    pub addresses: Vec<AddressObservation>,
    pub drains: BTreeMap<String, DrainRecord>,
    /// The node's ranking of zones by its own probe RTTs (zone, ms), best
    /// first, as it uses it for clients in its own country; empty when it
    /// has none.
    #[serde(default)]
    pub latency: Vec<(String, f64)>,
}

/// One address as one node's probes see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddressObservation {
    /// Fully qualified, lowercase (as drains key services).
    pub service: String,
    pub zone: String,
    pub address: IpAddr,
    pub state: Observed,
    pub consecutive_ok: u32,
    pub consecutive_fail: u32,
    pub rtt_ms: Option<f64>,
    /// `ok`, the last probe's error, or `None` before the first probe.
    pub last_result: Option<String>,
    pub last_probe_ms: Option<u64>,
}

/// The key an observation is matched by across nodes.
pub type AddressIdentity = (String, String, IpAddr);

/// The identity of one of `config`'s addresses.
pub fn identity(config: &Config, key: &AddressKey) -> AddressIdentity {
    let service = &config.services[key.service];
    let endpoint = &service.endpoints[key.endpoint];
    (
        service_key(&service.name),
        config.zones[endpoint.zone].name.clone(),
        endpoint.addresses[key.address],
    )
}

pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// This node's observations of every address of `config`, from its board.
pub fn own_addresses(config: &Config, board: &HealthBoard) -> Vec<AddressObservation> {
    let mut out: Vec<AddressObservation> = board
        .iter()
        .filter(|e| e.key().service < config.services.len())
        .map(|e| observation(config, e.key(), e.value()))
        .collect();
    out.sort_by(|a, b| (&a.service, &a.zone, a.address).cmp(&(&b.service, &b.zone, b.address)));
    out
}

fn observation(config: &Config, key: &AddressKey, h: &AddressHealth) -> AddressObservation {
    let (service, zone, address) = identity(config, key);
    AddressObservation {
        service,
        zone,
        address,
        state: h.observed,
        consecutive_ok: h.consecutive_ok,
        consecutive_fail: h.consecutive_fail,
        rtt_ms: h.rtt.map(|d| d.as_secs_f64() * 1000.0),
        last_result: h
            .last_probe
            .map(|_| h.last_error.clone().unwrap_or_else(|| "ok".into())),
        last_probe_ms: h.last_probe.map(unix_ms),
    }
}

impl NodeObservations {
    /// The states by address, for voting.
    pub fn states(&self) -> BTreeMap<AddressIdentity, Observed> {
        self.addresses
            .iter()
            .map(|a| ((a.service.clone(), a.zone.clone(), a.address), a.state))
            .collect()
    }
}
