//! The cluster's part of the admin API: what this node tells its peers,
//! and what an operator sees of every node.
//!
//! `GET /v1/cluster/observations` is for peers only: it needs the cluster
//! token even for a read, because a node's observations steer the others'
//! answers. `GET /v1/cluster` is for operators, like `/v1/zones`.

use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{AdminState, constant_time_eq, error, time};
use crate::cluster::observation::{NodeObservations, own_addresses, unix_ms};
use crate::cluster::{AddressVotes, ClusterView};
use crate::config::Config;
use crate::metrics::{escape, header};
use std::fmt::Write as _;

/// This node's observations, drain records and config digest.
pub(super) async fn observations(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    let snapshot = state.store.load_full();
    let cluster = &snapshot.config.cluster;
    let Some(token) = &cluster.token else {
        return error(
            StatusCode::NOT_FOUND,
            "this node is not part of a cluster ([cluster] has no token)",
        );
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(given) if constant_time_eq(given.trim().as_bytes(), token.as_bytes()) => {}
        Some(_) => return error(StatusCode::UNAUTHORIZED, "the cluster token is not valid"),
        None => {
            return error(
                StatusCode::UNAUTHORIZED,
                "peers must send `Authorization: Bearer <cluster token>`",
            );
        }
    }
    let body = NodeObservations {
        node: cluster.this_name().unwrap_or_default().to_string(),
        config_digest: snapshot.config.digest.clone(),
        generation: snapshot.generation,
        sent_at_ms: unix_ms(SystemTime::now()),
        addresses: own_addresses(&snapshot.config, &state.board),
        drains: snapshot.drains.records.clone(),
        latency: snapshot
            .router
            .local_latency
            .iter()
            .flat_map(|r| &r.zones)
            .map(|(zone, rtt)| (snapshot.config.zones[*zone].name.clone(), *rtt))
            .collect(),
    };
    Json(body).into_response()
}

/// Every node: reachability, last pull, config digest and generation.
pub(super) async fn status(State(state): State<AdminState>) -> Response {
    let snapshot = state.store.load_full();
    let config = &snapshot.config;
    let nodes: Vec<Value> = config
        .cluster
        .nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let zone = &config.zones[node.zone].name;
            if Some(i) == config.cluster.this_node {
                return json!({
                    "name": node.name,
                    "zone": zone,
                    "admin": node.admin.to_string(),
                    "self": true,
                    "reachable": true,
                    "config_digest": config.digest,
                    "config_differs": false,
                    "generation": snapshot.generation,
                });
            }
            let pull = state.pulls.get(&i).map(|p| p.clone()).unwrap_or_default();
            let age = |t: Option<SystemTime>| {
                t.and_then(|t| SystemTime::now().duration_since(t).ok())
                    .map(|d| d.as_secs_f64())
            };
            let fresh = age(pull.last_success)
                .is_some_and(|a| a <= config.cluster.stale_after.as_secs_f64());
            json!({
                "name": node.name,
                "zone": zone,
                "admin": node.admin.to_string(),
                "self": false,
                "reachable": pull.error.is_none() && pull.last_success.is_some(),
                "fresh": fresh,
                "last_pull": pull.last_success.map(time::rfc3339),
                "last_pull_age_s": age(pull.last_success),
                "error": pull.error,
                "config_digest": pull.config_digest,
                "config_differs": pull.config_digest.as_ref().is_some_and(|d| *d != config.digest),
                "generation": pull.generation,
                "pulls_ok": pull.pulls_ok,
                "pulls_failed": pull.pulls_failed,
            })
        })
        .collect();
    let view = &snapshot.cluster;
    Json(json!({
        "node": config.cluster.this_name(),
        "nodes": nodes,
        "fresh_nodes": view.fresh_nodes.max(1),
        "needed_for_decisions": config.cluster.size() / 2 + 1,
        "fail_static": view.is_fail_static,
        "quorum": config.cluster.quorum,
        "disagreements": disagreements(config, view),
    }))
    .into_response()
}

/// What `/metrics` shows of the cluster.
pub(super) fn facts(state: &AdminState) -> ClusterFacts {
    let snapshot = state.store.load_full();
    let config = &snapshot.config;
    let peers = config
        .cluster
        .peers()
        .map(|(i, node)| {
            let pull = state.pulls.get(&i).map(|p| p.clone()).unwrap_or_default();
            (
                node.name.clone(),
                pull.error.is_none() && pull.last_success.is_some(),
                pull.pulls_ok,
                pull.pulls_failed,
            )
        })
        .collect();
    ClusterFacts {
        nodes: config.cluster.nodes.len(),
        fresh: snapshot.cluster.fresh_nodes.max(1),
        is_fail_static: snapshot.cluster.is_fail_static,
        disagreements: disagreements(config, &snapshot.cluster).len(),
        peers,
    }
}

/// Addresses where this node's own probes see otherwise than the cluster
/// decided: a cut path from here, or a problem only this node has.
fn disagreements(config: &Config, view: &ClusterView) -> Vec<Value> {
    let mut out: Vec<Value> = view
        .addresses
        .iter()
        .filter(|(_, a)| {
            a.own != crate::health::state::Observed::Unknown
                && a.own.is_usable() != a.decision.state.is_usable()
        })
        .map(|(key, a)| {
            let service = &config.services[key.service];
            let endpoint = &service.endpoints[key.endpoint];
            json!({
                "service": service.name.to_string(),
                "zone": config.zones[endpoint.zone].name,
                "address": endpoint.addresses[key.address].to_string(),
                "own": a.own,
                "agreed": a.decision.state,
            })
        })
        .collect();
    out.sort_by_key(|v| v.to_string());
    out
}

/// Adds to each candidate of an explanation of service `s` the votes
/// behind its addresses' health (in a cluster; nothing for a node alone).
pub(super) fn add_votes(snapshot: &crate::snapshot::Snapshot, s: usize, body: &mut Value) {
    let config = &snapshot.config;
    if config.cluster.nodes.len() <= 1 {
        return;
    }
    let Some(candidates) = body["candidates"].as_array_mut() else {
        return;
    };
    for candidate in candidates {
        let zone = candidate["zone"].as_str().unwrap_or_default();
        let Some(e) = config.services[s]
            .endpoints
            .iter()
            .position(|ep| config.zones[ep.zone].name == zone)
        else {
            continue;
        };
        let votes: Vec<Value> = (0..config.services[s].endpoints[e].addresses.len())
            .map(|address| {
                let key = crate::health::AddressKey {
                    service: s,
                    endpoint: e,
                    address,
                };
                votes_json(config, snapshot.cluster.addresses.get(&key))
            })
            .collect();
        candidate["votes"] = json!(votes);
    }
}

/// One address's votes, for `/v1/zones` and explain.
pub(super) fn votes_json(config: &Config, votes: Option<&AddressVotes>) -> Value {
    let Some(v) = votes.filter(|_| config.cluster.nodes.len() > 1) else {
        return Value::Null;
    };
    let mut by_node = serde_json::Map::new();
    if let Some(name) = config.cluster.this_name() {
        by_node.insert(name.to_string(), json!(v.own));
    }
    for (i, view) in &v.votes {
        let name = config.cluster.nodes[*i].name.clone();
        by_node.insert(name, view.map_or(json!("stale"), |o| json!(o)));
    }
    json!({
        "decision": v.decision.state,
        "fail_static": v.decision.is_fail_static,
        "down_votes": v.decision.down_votes,
        "voters": v.decision.voters,
        "needed": v.decision.needed,
        "nodes": by_node,
    })
}

/// The cluster's state as `/metrics` shows it, from the snapshot and the
/// pullers.
#[derive(Debug, Clone, Default)]
pub(super) struct ClusterFacts {
    pub nodes: usize,
    pub fresh: usize,
    pub is_fail_static: bool,
    /// Addresses this node's own probes see otherwise than agreed.
    pub disagreements: usize,
    /// Per peer: name, reachable at the last pull, pulls ok, pulls failed.
    pub peers: Vec<(String, bool, u64, u64)>,
}

/// The cluster families; nothing for a node alone.
pub(super) fn render_cluster(out: &mut String, facts: &ClusterFacts) {
    if facts.nodes <= 1 {
        return;
    }
    let gauges = [
        (
            "meridian_cluster_nodes",
            "Nodes in the cluster, this one included.",
            facts.nodes,
        ),
        (
            "meridian_cluster_fresh_nodes",
            "Nodes whose observations are fresh enough to vote, this one included.",
            facts.fresh,
        ),
        (
            "meridian_cluster_fail_static",
            "1 when too few nodes are fresh to decide health and the last agreed state is kept.",
            usize::from(facts.is_fail_static),
        ),
        (
            "meridian_cluster_disagreements",
            "Addresses this node's own probes see otherwise than the cluster decided.",
            facts.disagreements,
        ),
    ];
    for (name, help, value) in gauges {
        header(out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }
    header(
        out,
        "meridian_cluster_peer_reachable",
        "gauge",
        "1 when the last pull from the peer succeeded.",
    );
    for (name, reachable, _, _) in &facts.peers {
        let _ = writeln!(
            out,
            "meridian_cluster_peer_reachable{{node=\"{}\"}} {}",
            escape(name),
            u8::from(*reachable)
        );
    }
    header(
        out,
        "meridian_cluster_pulls_total",
        "counter",
        "Pulls of a peer's observations, by result.",
    );
    for (name, _, ok, failed) in &facts.peers {
        for (result, n) in [("ok", ok), ("failed", failed)] {
            let _ = writeln!(
                out,
                "meridian_cluster_pulls_total{{node=\"{}\",result=\"{result}\"}} {n}",
                escape(name)
            );
        }
    }
}
