//! What `/v1/explain`, `meridian explain` and the status page say about
//! a decision: the very [`route`] the answer path runs, then every
//! candidate endpoint described (zone, distance, RTT, weight, health), and
//! for zones that hold several endpoints, which one the client's prefix
//! hashes to and why.

use ipnet::IpNet;
use serde::Serialize;

use super::split::hashed_network;
use super::{
    AnswerAddresses, Basis, Client, Decision, Router, answer_addresses, distance_km, route,
};
use crate::config::{AllDown, Config};
use crate::health::{EndpointView, HealthView};

/// One candidate endpoint as explain shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub zone: String,
    /// The endpoint's name, for zones that hold several.
    pub endpoint: Option<String>,
    pub rank: usize,
    pub addresses: Vec<String>,
    pub distance_km: Option<f64>,
    pub rtt_ms: Option<f64>,
    pub weight: u32,
    pub observed: &'static str,
    pub drained: bool,
    pub serving: bool,
    pub chosen: bool,
}

/// Why a client gets the answer it gets.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub service: String,
    pub policy: &'static str,
    pub client: String,
    pub source_prefix: u8,
    pub basis: Basis,
    pub candidates: Vec<Candidate>,
    /// The zones answering, by name.
    pub chosen: Vec<String>,
    /// The endpoints answering, as `zone` or `zone/name`.
    pub chosen_endpoints: Vec<String>,
    /// For each answering zone that holds several endpoints: which one and
    /// why.
    pub in_zone: Vec<InZone>,
    pub answer: Vec<String>,
    pub all_down: bool,
    pub all_down_rule: &'static str,
    pub ecs_scope: u8,
    pub ttl: u32,
    pub geoip: Option<String>,
}

/// The in-zone split of one answering zone.
#[derive(Debug, Clone, Serialize)]
pub struct InZone {
    pub zone: String,
    /// The endpoint answering.
    pub endpoint: Option<String>,
    /// The client prefix hashed.
    pub network: IpNet,
    pub weight: u32,
    /// The weights of all of the zone's endpoints, summed.
    pub zone_weight: u64,
    pub why: String,
}

/// Which endpoint of each split answering zone the client gets, and why:
/// its prefix's first choice by weight, or the next sibling because the
/// ones before it are drained or down.
fn in_zone(
    config: &Config,
    health: &HealthView,
    service: usize,
    client: Client,
    decision: &Decision,
) -> Vec<InZone> {
    let svc = &config.services[service];
    if decision.is_all_down {
        return Vec::new();
    }
    let network = hashed_network(client);
    let label = |e: usize| {
        svc.endpoints[e]
            .name
            .clone()
            .unwrap_or_else(|| "(unnamed)".into())
    };
    decision
        .endpoints
        .iter()
        .filter(|e| svc.is_split(svc.endpoints[**e].zone))
        .map(|&e| {
            let ep = &svc.endpoints[e];
            let siblings: Vec<usize> = decision
                .ranked
                .iter()
                .copied()
                .filter(|o| svc.endpoints[*o].zone == ep.zone)
                .collect();
            let zone_weight: u64 = siblings.iter().map(|o| u64::from(svc.endpoints[*o].weight)).sum();
            let skipped: Vec<String> = siblings
                .iter()
                .take_while(|o| **o != e)
                .map(|o| {
                    let view = health.endpoints[service].get(*o);
                    let state = match view {
                        Some(v) if v.is_drained => "drained",
                        Some(v) if !v.is_up => "down",
                        _ => "not serving",
                    };
                    format!("`{}` ({state})", label(*o))
                })
                .collect();
            let why = if skipped.is_empty() {
                format!(
                    "`{}` is {network}'s first choice among zone {}'s {} endpoints by weighted hash (weight {} of {zone_weight})",
                    label(e),
                    config.zones[ep.zone].name,
                    siblings.len(),
                    ep.weight,
                )
            } else {
                format!(
                    "{network} hashes to {} first; `{}` is the next of zone {}'s endpoints for it",
                    skipped.join(", then "),
                    label(e),
                    config.zones[ep.zone].name,
                )
            };
            InZone {
                zone: config.zones[ep.zone].name.clone(),
                endpoint: ep.name.clone(),
                network,
                weight: ep.weight,
                zone_weight,
                why,
            }
        })
        .collect()
}

/// Runs [`route`] and describes the decision.
pub fn explain(
    config: &Config,
    health: &HealthView,
    router: &Router,
    service: usize,
    client: Client,
) -> Explanation {
    let decision = route(config, health, router, service, client);
    let svc = &config.services[service];
    let location = router
        .geo
        .as_ref()
        .and_then(|g| g.lookup(client.addr).location);
    let latency = router
        .latency
        .lookup(client.addr, client.source_prefix)
        .map(|(_, r)| r.to_ranking())
        .or_else(|| {
            let country = location.as_ref().and_then(|l| l.country.as_deref());
            router.node_ranking(config, country).cloned()
        });
    let candidates = decision
        .ranked
        .iter()
        .enumerate()
        .map(|(rank, &e)| {
            let ep = &svc.endpoints[e];
            let zone = &config.zones[ep.zone];
            let view = health.endpoints[service].get(e);
            Candidate {
                zone: zone.name.clone(),
                endpoint: ep.name.clone(),
                rank,
                addresses: ep.addresses.iter().map(|a| a.to_string()).collect(),
                distance_km: location
                    .as_ref()
                    .map(|l| (distance_km(l, zone) * 10.0).round() / 10.0),
                rtt_ms: latency
                    .as_ref()
                    .and_then(|r| r.zones.iter().find(|z| z.0 == ep.zone).map(|z| z.1))
                    .map(|ms| (ms * 100.0).round() / 100.0),
                weight: ep.weight,
                observed: EndpointView::observed_name(view),
                drained: view.is_some_and(|v| v.is_drained),
                serving: view.is_none_or(|v| v.is_serving()),
                chosen: !decision.is_all_down && decision.endpoints.contains(&e),
            }
        })
        .collect();
    let answer: Vec<String> = match answer_addresses(&decision.endpoints, decision.is_all_down) {
        AnswerAddresses::Fallback => match &svc.all_down {
            AllDown::Fallback(addrs) => addrs.iter().map(|a| a.to_string()).collect(),
            AllDown::FailOpen => Vec::new(),
        },
        AnswerAddresses::Endpoints {
            endpoints,
            usable_only,
        } => endpoints
            .iter()
            .flat_map(|e| {
                let view = health.endpoints[service].get(*e);
                svc.endpoints[*e]
                    .addresses
                    .iter()
                    .enumerate()
                    .filter(move |(a, _)| {
                        !usable_only
                            || view
                                .and_then(|v| v.addresses.get(*a))
                                .is_none_or(|o| o.is_usable())
                    })
                    .map(|(_, addr)| addr.to_string())
            })
            .collect(),
    };
    Explanation {
        service: svc.name.to_string(),
        policy: svc.policy.name(),
        client: client.addr.to_string(),
        source_prefix: client.source_prefix,
        basis: decision.basis.clone(),
        candidates,
        chosen: decision
            .endpoints
            .iter()
            .filter(|_| !decision.is_all_down)
            .map(|e| config.zones[svc.endpoints[*e].zone].name.clone())
            .collect(),
        chosen_endpoints: decision
            .endpoints
            .iter()
            .filter(|_| !decision.is_all_down)
            .map(|e| svc.endpoints[*e].label(&config.zones))
            .collect(),
        in_zone: in_zone(config, health, service, client, &decision),
        answer,
        all_down: decision.is_all_down,
        all_down_rule: svc.all_down.name(),
        ecs_scope: decision.scope,
        ttl: svc.ttl,
        geoip: router.geo.as_ref().map(|g| g.description()),
    }
}
