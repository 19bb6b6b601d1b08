//! The status page at `GET /`, the one document it polls (`GET /v1/status`)
//! and the API's description (`GET /v1/openapi.json`).
//!
//! Everything is compiled into the binary with `include_str!`: the page is
//! plain HTML, CSS and JavaScript with its world outline drawn inline, so
//! it needs no build step and loads nothing from outside the node (its
//! Content-Security-Policy says so to the browser). The page reads the
//! same JSON the rest of the API serves; `/v1/status` only gathers what a
//! glance needs and no other route gives: each zone's overall state, which
//! zone a handful of representative clients are sent to, and the counters
//! of answers per zone, which the page samples to chart the share.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{AdminState, find_service, off_runtime, parse_client, time};
use crate::config::AllDown;
use crate::health::state::Observed;
use crate::health::{AddressKey, EndpointView, HealthBoard};
use crate::publisher::events::{Event, EventKind};
use crate::snapshot::Snapshot;

const INDEX: &str = include_str!("page/index.html");
const OPENAPI: &str = include_str!("openapi.json");

/// Clients that stand for a region on the page: a subnet of each that the
/// shipped GeoIP database places there. With another database, or none,
/// they are still real decisions, only perhaps located elsewhere.
pub const REGIONS: &[(&str, &str)] = &[
    ("North America", "12.0.0.0/24"),
    ("South America", "200.160.0.0/24"),
    ("Europe", "193.0.0.0/24"),
    ("Africa", "196.216.2.0/24"),
    ("South Asia", "14.139.0.0/24"),
    ("East Asia", "133.0.0.0/24"),
    ("Oceania", "1.0.0.0/24"),
];

/// The page forbids itself every origin but the node's own.
const POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
    style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub(super) async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        INDEX,
    )
        .into_response()
}

pub(super) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

#[derive(serde::Deserialize)]
pub(super) struct StatusQuery {
    /// The service whose regions to route; the first one when absent.
    service: Option<String>,
}

pub(super) async fn status(
    State(state): State<AdminState>,
    q: Result<Query<StatusQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return super::error(
            axum::http::StatusCode::BAD_REQUEST,
            "bad query string; use ?service=www or nothing",
        );
    };
    let snapshot = state.store.load_full();
    let routed = match q.service.as_deref() {
        None => 0,
        Some(name) => match find_service(&snapshot.config, name.trim_end_matches('.')) {
            Ok(s) => s,
            Err(err) => return err.into_response(),
        },
    };
    match off_runtime(move || status_json(&state, &snapshot, routed)).await {
        Ok(body) => Json(body).into_response(),
        Err(response) => response,
    }
}

/// The status, with the regions routed for service `routed` only: seven
/// decisions a second per open page, however many services there are.
fn status_json(state: &AdminState, snapshot: &Snapshot, routed: usize) -> Value {
    let config = &snapshot.config;
    let zones: Vec<Value> = config
        .zones
        .iter()
        .enumerate()
        .map(|(z, zone)| {
            json!({
                "name": zone.name,
                "latitude": zone.latitude,
                "longitude": zone.longitude,
                "continent": zone.continent,
                "country": zone.country,
                "drained": snapshot.drains.is_zone_drained(&zone.name),
                "state": zone_state(snapshot, &state.board, z),
            })
        })
        .collect();
    let services: Vec<Value> = config
        .services
        .iter()
        .enumerate()
        .map(|(s, service)| {
            let endpoints: Vec<Value> = service
                .endpoints
                .iter()
                .enumerate()
                .map(|(e, endpoint)| {
                    let answers = snapshot
                        .answer_counters
                        .get(s)
                        .and_then(|c| c.get(e))
                        .map_or(0, |c| c.load(std::sync::atomic::Ordering::Relaxed));
                    let view = snapshot.health.endpoints.get(s).and_then(|v| v.get(e));
                    json!({
                        "zone": config.zones[endpoint.zone].name,
                        "state": endpoint_state(snapshot, &state.board, s, e),
                        "serving": view.is_some_and(EndpointView::is_serving),
                        "answers": answers,
                    })
                })
                .collect();
            let regions: Vec<Value> = REGIONS
                .iter()
                .filter(|_| s == routed)
                .map(|(region, subnet)| {
                    let client = parse_client(subnet).expect("the regions' subnets parse");
                    let explanation = crate::routing::explain::explain(
                        config,
                        &snapshot.health,
                        &snapshot.router,
                        s,
                        client,
                    );
                    json!({
                        "region": region,
                        "client": subnet,
                        "chosen": explanation.chosen,
                        "basis": explanation.basis,
                    })
                })
                .collect();
            json!({
                "name": service.name.to_string(),
                "policy": service.policy.name(),
                "all_down": is_all_down(snapshot, s),
                "all_down_rule": service.all_down.name(),
                "endpoints": endpoints,
                "regions": regions,
            })
        })
        .collect();
    let events: Vec<Value> = state.events.recent().iter().rev().map(event_json).collect();
    json!({
        "domain": config.domain.name.to_string(),
        "node": config.cluster.this_name(),
        "clustered": config.cluster.nodes.len() > 1,
        "generation": snapshot.generation,
        "snapshot_built": time::rfc3339(snapshot.built_at),
        "geoip": snapshot.router.geo.as_ref().map(|g| g.description()),
        "zones": zones,
        "services": services,
        "events": events,
    })
}

fn is_all_down(snapshot: &Snapshot, s: usize) -> bool {
    snapshot
        .table
        .services
        .get(s)
        .is_some_and(|r| r.is_all_down)
}

/// One endpoint as the page colours it. `failing open` is a down endpoint
/// that answers still name because nothing in its service is serving.
/// `unknown` is read from the board: a first probe's unknown-to-up changes
/// nothing the answers use, so the snapshot is not rebuilt for it.
fn endpoint_state(snapshot: &Snapshot, board: &HealthBoard, s: usize, e: usize) -> &'static str {
    let Some(view) = snapshot.health.endpoints.get(s).and_then(|v| v.get(e)) else {
        return "unknown";
    };
    let service = &snapshot.config.services[s];
    if view.is_drained {
        "drained"
    } else if view.is_up
        && (0..view.addresses.len()).all(|address| {
            let key = AddressKey {
                service: s,
                endpoint: e,
                address,
            };
            board
                .get(&key)
                .is_none_or(|h| h.observed == Observed::Unknown)
        })
    {
        "unknown"
    } else if view.is_up {
        "up"
    } else if is_all_down(snapshot, s) && matches!(service.all_down, AllDown::FailOpen) {
        "failing open"
    } else {
        "down"
    }
}

/// A zone's state over its endpoints: the one they share, else the worst
/// that matters to an operator (`failing open`), else `degraded`.
fn zone_state(snapshot: &Snapshot, board: &HealthBoard, z: usize) -> &'static str {
    let config = &snapshot.config;
    if snapshot.drains.is_zone_drained(&config.zones[z].name) {
        return "drained";
    }
    let states: Vec<&str> = config
        .services
        .iter()
        .enumerate()
        .flat_map(|(s, service)| {
            service
                .endpoints
                .iter()
                .enumerate()
                .filter(move |(_, ep)| ep.zone == z)
                .map(move |(e, _)| endpoint_state(snapshot, board, s, e))
        })
        .collect();
    match states.first() {
        None => "unknown",
        Some(first) if states.iter().all(|s| s == first) => first,
        Some(_) if states.contains(&"failing open") => "failing open",
        Some(_) => "degraded",
    }
}

fn event_json(event: &Event) -> Value {
    let at = time::rfc3339(event.at);
    match &event.kind {
        EventKind::Health {
            service,
            zone,
            address,
            from,
            to,
            reason,
        } => json!({
            "at": at,
            "kind": "health",
            "service": service,
            "zone": zone,
            "address": address,
            "from": from,
            "to": to,
            "reason": reason,
        }),
        EventKind::Drain {
            zone,
            service,
            drained,
            who,
            reason,
        } => json!({
            "at": at,
            "kind": if *drained { "drain" } else { "undrain" },
            "zone": zone,
            "service": service,
            "who": who,
            "reason": reason,
        }),
    }
}

/// The routes the router serves, read from `mod.rs` itself, as
/// `(method, path)` with the method in lower case.
#[cfg(test)]
fn routed() -> std::collections::BTreeSet<(String, String)> {
    let source: String = include_str!("mod.rs")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    source
        .split(".route(\"")
        .skip(1)
        .map(|piece| {
            let (path, rest) = piece.split_once('"').expect("a quoted path");
            let method = rest
                .trim_start_matches(',')
                .split_once('(')
                .expect("a method router")
                .0;
            (method.to_string(), path.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The description and the router name the same routes and methods.
    #[test]
    fn openapi_documents_every_route_and_nothing_else() {
        let doc: Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
        let documented: std::collections::BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .expect("a path item")
                    .keys()
                    .filter(|k| !matches!(k.as_str(), "parameters" | "summary" | "description"))
                    .map(move |method| (method.clone(), path.clone()))
            })
            .collect();
        let routed = routed();
        assert!(routed.len() >= 15, "the router was not read: {routed:?}");
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty(),
            "routes missing from src/admin/openapi.json: {undocumented:?}"
        );
        assert!(
            unrouted.is_empty(),
            "documented in src/admin/openapi.json but not routed: {unrouted:?}"
        );
    }

    /// Every `$ref` in the description points at a schema it defines.
    #[test]
    fn openapi_references_resolve() {
        fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(r)) = map.get("$ref") {
                        out.push(r);
                    }
                    map.values().for_each(|v| refs(v, out));
                }
                Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(found.len() > 10, "{found:?}");
        for r in found {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("`{r}` is not a local schema"));
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "`{r}` names no schema"
            );
        }
    }

    #[test]
    fn the_page_loads_nothing_from_outside() {
        for outside in ["http://", "https://", "//cdn", "@import", "<link"] {
            let hits: Vec<&str> = INDEX
                .lines()
                .filter(|l| l.contains(outside) && !l.contains("www.w3.org/2000/svg"))
                .collect();
            assert!(hits.is_empty(), "the page names `{outside}`: {hits:?}");
        }
    }

    #[test]
    fn every_region_subnet_parses() {
        for (region, subnet) in REGIONS {
            assert!(parse_client(subnet).is_ok(), "{region}: {subnet}");
        }
    }
}
