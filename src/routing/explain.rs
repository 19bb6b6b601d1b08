//! What the explain endpoint says about a decision: [`route`]'s own
//! result, then every candidate described (distance, RTT, health, drain).
//! It lives apart from the decision itself so that the answer path's
//! module holds only what the answer path runs.

use serde::Serialize;

use super::{AnswerAddresses, Basis, Client, Router, answer_addresses, distance_km, route};
use crate::config::{AllDown, Config};
use crate::health::{EndpointView, HealthView};

/// One candidate zone as explain shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub zone: String,
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
    pub chosen: Vec<String>,
    pub answer: Vec<String>,
    pub all_down: bool,
    pub all_down_rule: &'static str,
    pub ecs_scope: u8,
    pub ttl: u32,
    pub geoip: Option<String>,
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
        answer,
        all_down: decision.is_all_down,
        all_down_rule: svc.all_down.name(),
        ecs_scope: decision.scope,
        ttl: svc.ttl,
        geoip: router.geo.as_ref().map(|g| g.description()),
    }
}
