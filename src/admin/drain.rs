//! Drain and undrain requests: who asked and why, the target checked
//! against the config, and the publisher's answer once the change is live.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{AdminState, ApiError, error, find_endpoint, find_zone};
use crate::publisher::{DrainRequest, DrainTarget};

/// Who asked for a drain and why: the requester's address, and the
/// optional `{"reason": "..."}` body.
struct DrainNote {
    who: String,
    reason: Option<String>,
}

/// Longest drain reason kept.
const MAX_REASON: usize = 512;

fn drain_note(peer: SocketAddr, body: &[u8]) -> Result<DrainNote, ApiError> {
    let who = peer.ip().to_string();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DrainNote { who, reason: None });
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        reason: Option<String>,
    }
    let parsed: Body = serde_json::from_slice(body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("the body must be empty or {{\"reason\": \"...\"}}: {e}"),
        )
    })?;
    if parsed.reason.as_ref().is_some_and(|r| r.len() > MAX_REASON) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("the reason is longer than {MAX_REASON} bytes; shorten it"),
        ));
    }
    Ok(DrainNote {
        who,
        reason: parsed.reason.filter(|r| !r.trim().is_empty()),
    })
}

type Peer = ConnectInfo<SocketAddr>;

pub(super) async fn drain_zone(
    state: State<AdminState>,
    ConnectInfo(peer): Peer,
    Path(zone): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    set_zone_drain(state, peer, zone, true, &body).await
}

pub(super) async fn undrain_zone(
    state: State<AdminState>,
    ConnectInfo(peer): Peer,
    Path(zone): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    set_zone_drain(state, peer, zone, false, &body).await
}

pub(super) async fn drain_endpoint(
    state: State<AdminState>,
    ConnectInfo(peer): Peer,
    Path((zone, service)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    set_endpoint_drain(state, peer, (zone, service, None), true, &body).await
}

pub(super) async fn undrain_endpoint(
    state: State<AdminState>,
    ConnectInfo(peer): Peer,
    Path((zone, service)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    set_endpoint_drain(state, peer, (zone, service, None), false, &body).await
}

/// One named endpoint of a zone that holds several of the service's.
pub(super) async fn drain_named_endpoint(
    state: State<AdminState>,
    ConnectInfo(peer): Peer,
    Path((zone, service, endpoint)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> Response {
    set_endpoint_drain(state, peer, (zone, service, Some(endpoint)), true, &body).await
}

pub(super) async fn undrain_named_endpoint(
    state: State<AdminState>,
    ConnectInfo(peer): Peer,
    Path((zone, service, endpoint)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> Response {
    set_endpoint_drain(state, peer, (zone, service, Some(endpoint)), false, &body).await
}

async fn set_zone_drain(
    State(state): State<AdminState>,
    peer: SocketAddr,
    zone: String,
    drained: bool,
    body: &[u8],
) -> Response {
    let config = state.store.load_full().config.clone();
    let result = find_zone(&config, &zone).and_then(|z| Ok((z, drain_note(peer, body)?)));
    let (z, note) = match result {
        Ok(found) => found,
        Err(err) => return err.into_response(),
    };
    let name = config.zones[z].name.clone();
    apply_drain(
        &state,
        DrainTarget::Zone(name.clone()),
        drained,
        note,
        json!({ "zone": name }),
    )
    .await
}

/// Drains (or undrains) a service in a zone: all its endpoints there, or
/// with a name, that one endpoint.
async fn set_endpoint_drain(
    State(state): State<AdminState>,
    peer: SocketAddr,
    (zone, service, endpoint): (String, String, Option<String>),
    drained: bool,
    body: &[u8],
) -> Response {
    let config = state.store.load_full().config.clone();
    let found = find_endpoint(&config, &zone, &service, endpoint.as_deref())
        .and_then(|(z, s, _)| Ok((z, s, drain_note(peer, body)?)));
    let (z, s, note) = match found {
        Ok(found) => found,
        Err(err) => return err.into_response(),
    };
    let target = DrainTarget::Endpoint {
        service: s,
        zone: config.zones[z].name.clone(),
        endpoint: endpoint.clone(),
    };
    let mut what = json!({
        "zone": config.zones[z].name,
        "service": config.services[s].name.to_string(),
    });
    if let Some(name) = endpoint {
        what["endpoint"] = json!(name);
    }
    apply_drain(&state, target, drained, note, what).await
}

async fn apply_drain(
    state: &AdminState,
    target: DrainTarget,
    drained: bool,
    note: DrainNote,
    what: Value,
) -> Response {
    let request = DrainRequest {
        target,
        drained,
        who: note.who,
        reason: note.reason,
        at_ms: crate::cluster::observation::unix_ms(std::time::SystemTime::now()),
    };
    match state.publisher.drain(request).await {
        Some(outcome) => {
            let mut body = what;
            body["drained"] = json!(drained);
            body["changed"] = json!(outcome.changed);
            body["persisted"] = json!(outcome.persisted);
            body["generation"] = json!(outcome.generation);
            Json(body).into_response()
        }
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the node is shutting down; try another node",
        ),
    }
}
