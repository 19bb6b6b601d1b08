//! The operator's HTTP endpoint: zone health, drains, metrics.
//!
//! Reads come from the current snapshot (what DNS answers from) and the
//! health board (each address's latest probe); writes go to the publisher,
//! which owns every change, and return once a snapshot carrying them is
//! live. State-changing requests need the configured bearer token, or,
//! without one, must come from loopback. Every error is JSON with the
//! right 4xx status.

mod cluster;
mod drain;
mod gauges;
mod page;
mod time;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::config::{CheckKind, Config};
use crate::health::{AddressKey, EndpointView, HealthBoard};
use crate::metrics::Metrics;
use crate::publisher::{LatencySample, PublisherHandle, ReloadError};
use crate::snapshot::{Snapshot, SnapshotStore};

/// Largest request body accepted (a batch of latency measurements).
const MAX_BODY: usize = 1 << 20;
/// Most latency measurements in one request.
const MAX_SAMPLES: usize = 10_000;

/// What every handler shares; cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    pub store: Arc<SnapshotStore>,
    pub board: Arc<HealthBoard>,
    pub metrics: Arc<Metrics>,
    pub publisher: PublisherHandle,
    /// Each peer's latest pull, for `/v1/cluster`.
    pub pulls: Arc<crate::cluster::pull::PullBoard>,
    /// Recent flips and drains, for the status page.
    pub events: Arc<crate::publisher::events::EventLog>,
}

/// The admin API. Serve it with `into_make_service_with_connect_info::<SocketAddr>()`
/// so write requests can be checked for a loopback peer.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/v1/status", get(page::status))
        .route("/v1/openapi.json", get(page::openapi))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/zones", get(zones))
        .route("/v1/zones/{zone}", get(zone))
        .route("/v1/zones/{zone}/drain", post(drain::drain_zone))
        .route("/v1/zones/{zone}/undrain", post(drain::undrain_zone))
        .route("/v1/zones/{zone}/endpoints/{service}", get(endpoint))
        .route(
            "/v1/zones/{zone}/endpoints/{service}/drain",
            post(drain::drain_endpoint),
        )
        .route(
            "/v1/zones/{zone}/endpoints/{service}/undrain",
            post(drain::undrain_endpoint),
        )
        .route("/v1/explain", get(explain))
        .route("/v1/latency", post(push_latency))
        .route("/v1/reload", post(reload))
        .route("/v1/cluster", get(cluster::status))
        .route("/v1/cluster/observations", get(cluster::observations))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state)
}

/// A JSON error body with its status.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    ApiError(status, message.into()).into_response()
}

/// An error on its way to becoming a JSON response; small, so handlers can
/// pass it around in `Result`s.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such endpoint; see README.md for the admin API",
    )
}

async fn method_not_allowed() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed here; reads are GET, drains are POST",
    )
}

/// Writes need the token when one is configured, else a loopback peer.
async fn authorize(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    if request.method() == Method::GET || request.method() == Method::HEAD {
        return next.run(request).await;
    }
    let token = state.store.load().config.server.admin_token.clone();
    match token {
        Some(token) => {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            match given {
                Some(given) if constant_time_eq(given.trim().as_bytes(), token.as_bytes()) => {
                    next.run(request).await
                }
                Some(_) => error(StatusCode::UNAUTHORIZED, "the bearer token is not valid"),
                None => error(
                    StatusCode::UNAUTHORIZED,
                    "this request changes state and needs `Authorization: Bearer <admin_token>`",
                ),
            }
        }
        None if peer.ip().to_canonical().is_loopback() => next.run(request).await,
        None => error(
            StatusCode::FORBIDDEN,
            "without an admin_token, state-changing requests are accepted from loopback only",
        ),
    }
}

/// Compares without an early exit, so timing does not reveal how much of a
/// guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

async fn healthz(State(state): State<AdminState>) -> Json<Value> {
    let snapshot = state.store.load();
    Json(json!({
        "status": "ok",
        "domain": snapshot.config.domain.name.to_string(),
        "generation": snapshot.generation,
        "snapshot_built": time::rfc3339(snapshot.built_at),
    }))
}

/// A duration in milliseconds to two decimals (`0.25`), as people read it.
fn rounded_ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 100_000.0).round() / 100.0
}

/// Large renders (thousands of endpoints) run on the blocking pool so they
/// never stall the runtime's workers, which also drive the probes.
async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| error(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down"))
}

async fn metrics(State(state): State<AdminState>) -> Response {
    let text = match off_runtime(move || {
        let mut text = state.metrics.render();
        gauges::render_state(&mut text, &state.store.load());
        cluster::render_cluster(&mut text, &cluster::facts(&state));
        text
    })
    .await
    {
        Ok(text) => text,
        Err(response) => return response,
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn zones(State(state): State<AdminState>) -> Response {
    let body = off_runtime(move || {
        let snapshot = state.store.load_full();
        let zones: Vec<Value> = (0..snapshot.config.zones.len())
            .map(|z| zone_json(&snapshot, &state.board, z))
            .collect();
        json!({ "generation": snapshot.generation, "zones": zones })
    })
    .await;
    match body {
        Ok(body) => Json(body).into_response(),
        Err(response) => response,
    }
}

async fn zone(State(state): State<AdminState>, Path(name): Path<String>) -> Response {
    let snapshot = state.store.load_full();
    match find_zone(&snapshot.config, &name) {
        Ok(z) => Json(zone_json(&snapshot, &state.board, z)).into_response(),
        Err(err) => err.into_response(),
    }
}

async fn endpoint(
    State(state): State<AdminState>,
    Path((zone, service)): Path<(String, String)>,
) -> Response {
    let snapshot = state.store.load_full();
    let z = match find_zone(&snapshot.config, &zone) {
        Ok(z) => z,
        Err(err) => return err.into_response(),
    };
    let s = match find_service(&snapshot.config, &service) {
        Ok(s) => s,
        Err(err) => return err.into_response(),
    };
    match snapshot.config.services[s]
        .endpoints
        .iter()
        .position(|e| e.zone == z)
    {
        Some(e) => Json(endpoint_json(&snapshot, &state.board, s, e)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("service `{service}` has no endpoint in zone `{zone}`"),
        ),
    }
}

/// Re-reads the config file. A rejected file leaves the old config
/// serving; the reply lists every problem with its position.
async fn reload(State(state): State<AdminState>) -> Response {
    match state.publisher.reload().await {
        Some(Ok(generation)) => {
            let config = state.store.load().config.clone();
            let file = config.source.display().to_string();
            Json(json!({ "reloaded": file, "generation": generation, "warnings": config.warnings }))
                .into_response()
        }
        Some(Err(err)) => {
            let problems: Vec<Value> = match &err {
                ReloadError::Config(c) => c
                    .problems()
                    .iter()
                    .map(|p| {
                        json!({
                            "file": p.file.display().to_string(),
                            "line": p.line,
                            "column": p.column,
                            "message": p.message,
                            "hint": p.hint,
                        })
                    })
                    .collect(),
                ReloadError::Geo(_) | ReloadError::Node(_) | ReloadError::Env(_) => Vec::new(),
            };
            let message = match &err {
                ReloadError::Config(c) if c.is_invalid() => {
                    "the config has errors; still serving the previous config".to_string()
                }
                other => format!("{other}; still serving the previous config"),
            };
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "error": message, "problems": problems })),
            )
                .into_response()
        }
        None => error(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down"),
    }
}

#[derive(serde::Deserialize)]
struct ExplainQuery {
    name: Option<String>,
    client: Option<String>,
}

async fn explain(
    State(state): State<AdminState>,
    q: Result<axum::extract::Query<ExplainQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(axum::extract::Query(q)) = q else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad query string; use ?name=www&client=203.0.113.7",
        );
    };
    let snapshot = state.store.load_full();
    let (Some(name), Some(client)) = (q.name, q.client) else {
        return error(
            StatusCode::BAD_REQUEST,
            "give `name` (a service) and `client` (an address, or a subnet like 203.0.113.0/24)",
        );
    };
    let s = match find_service(&snapshot.config, name.trim_end_matches('.')) {
        Ok(s) => s,
        Err(err) => return err.into_response(),
    };
    let client = match parse_client(&client) {
        Ok(c) => c,
        Err(err) => return err.into_response(),
    };
    let explanation = crate::routing::explain::explain(
        &snapshot.config,
        &snapshot.health,
        &snapshot.router,
        s,
        client,
    );
    let mut body = serde_json::to_value(explanation).expect("explanation serializes");
    body["generation"] = json!(snapshot.generation);
    cluster::add_votes(&snapshot, s, &mut body);
    Json(body).into_response()
}

/// `203.0.113.7` (a client address) or `203.0.113.0/24` (a client subnet,
/// as ECS would give it).
pub fn parse_client(text: &str) -> Result<crate::routing::Client, ApiError> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<std::net::IpAddr>() {
        return Ok(crate::routing::Client::from_source(addr));
    }
    match text.parse::<ipnet::IpNet>() {
        Ok(net) => Ok(crate::routing::Client {
            addr: net.trunc().addr(),
            source_prefix: net.prefix_len(),
        }),
        Err(_) => Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "`{text}` is not an address or a subnet; write `203.0.113.7` or `203.0.113.0/24`"
            ),
        )),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LatencyInput {
    prefix: String,
    zone: String,
    rtt_ms: f64,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum LatencyBody {
    One(LatencyInput),
    Many(Vec<LatencyInput>),
}

async fn push_latency(
    State(state): State<AdminState>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            return error(
                rejection.status(),
                format!(
                    "cannot read the body: {}; send at most {MAX_BODY} bytes",
                    rejection.body_text()
                ),
            );
        }
    };
    let parsed: LatencyBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "body is not a latency measurement ({err}); send {{\"prefix\": \"203.0.113.0/24\", \"zone\": \"eu-west\", \"rtt_ms\": 42.5}} or a list of them"
                ),
            );
        }
    };
    let inputs = match parsed {
        LatencyBody::One(one) => vec![one],
        LatencyBody::Many(many) => many,
    };
    if inputs.is_empty() || inputs.len() > MAX_SAMPLES {
        return error(
            StatusCode::BAD_REQUEST,
            format!("send between 1 and {MAX_SAMPLES} measurements per request"),
        );
    }
    let config = state.store.load_full().config.clone();
    let mut samples = Vec::with_capacity(inputs.len());
    for input in inputs {
        let prefix = match input.prefix.trim().parse::<ipnet::IpNet>() {
            Ok(p) => p.trunc(),
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("`{}` is not a prefix; write `203.0.113.0/24`", input.prefix),
                );
            }
        };
        let zone = match find_zone(&config, &input.zone) {
            Ok(z) => z,
            Err(err) => {
                return ApiError(StatusCode::UNPROCESSABLE_ENTITY, err.1).into_response();
            }
        };
        if !(input.rtt_ms.is_finite() && (0.0..=60_000.0).contains(&input.rtt_ms)) {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "rtt_ms {} is out of range; give milliseconds from 0 to 60000",
                    input.rtt_ms
                ),
            );
        }
        samples.push(LatencySample {
            prefix,
            zone,
            rtt_ms: input.rtt_ms,
        });
    }
    let n = samples.len();
    match state.publisher.latency(samples).await {
        Some(generation) => {
            Json(json!({ "accepted": n, "generation": generation })).into_response()
        }
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the node is shutting down; try another node",
        ),
    }
}

fn find_zone(config: &Config, name: &str) -> Result<usize, ApiError> {
    config.zone_index(name).ok_or_else(|| {
        let known: Vec<&str> = config.zones.iter().map(|z| z.name.as_str()).collect();
        ApiError(
            StatusCode::NOT_FOUND,
            format!("no zone `{name}`; zones are: {}", known.join(", ")),
        )
    })
}

/// A service by its name, relative to the domain or fully qualified.
fn find_service(config: &Config, name: &str) -> Result<usize, ApiError> {
    config.service_index(name).ok_or_else(|| {
        let known: Vec<String> = config.services.iter().map(|s| s.name.to_string()).collect();
        ApiError(
            StatusCode::NOT_FOUND,
            format!("no service `{name}`; services are: {}", known.join(", ")),
        )
    })
}

fn zone_json(snapshot: &Snapshot, board: &HealthBoard, z: usize) -> Value {
    let config = &snapshot.config;
    let zone = &config.zones[z];
    let services: Vec<Value> = config
        .services
        .iter()
        .enumerate()
        .filter_map(|(s, service)| {
            let e = service.endpoints.iter().position(|e| e.zone == z)?;
            Some(endpoint_json(snapshot, board, s, e))
        })
        .collect();
    json!({
        "name": zone.name,
        "latitude": zone.latitude,
        "longitude": zone.longitude,
        "continent": zone.continent,
        "country": zone.country,
        "region": zone.region,
        "drained": snapshot.drains.is_zone_drained(&zone.name),
        "services": services,
    })
}

fn endpoint_json(snapshot: &Snapshot, board: &HealthBoard, s: usize, e: usize) -> Value {
    let config = &snapshot.config;
    let service = &config.services[s];
    let endpoint = &service.endpoints[e];
    let zone = &config.zones[endpoint.zone].name;
    let view = snapshot.health.endpoints.get(s).and_then(|v| v.get(e));
    let check = &endpoint.check;
    let check_text = match check.kind {
        CheckKind::None => "none".to_string(),
        CheckKind::Tcp => format!("tcp port {}", check.port),
        kind => format!("{} port {} path {}", kind.name(), check.port, check.path),
    };
    let addresses: Vec<Value> = endpoint
        .addresses
        .iter()
        .enumerate()
        .map(|(a, addr)| {
            let key = AddressKey {
                service: s,
                endpoint: e,
                address: a,
            };
            match board.get(&key) {
                Some(h) => json!({
                    "address": addr.to_string(),
                    "observed": h.observed,
                    "cluster": cluster::votes_json(config, snapshot.cluster.addresses.get(&key)),
                    "since": time::rfc3339(h.since),
                    "last_probe": h.last_probe.map(time::rfc3339),
                    "last_result": match (&h.last_probe, &h.last_error) {
                        (None, _) => Value::Null,
                        (Some(_), None) => json!("ok"),
                        (Some(_), Some(err)) => json!(err),
                    },
                    // Rounded for people; and while the address is down its
                    // RTT is from before, so it is shown as such, not as now.
                    "rtt_ms": h.rtt.filter(|_| h.observed.is_usable()).map(rounded_ms),
                    "last_rtt_ms": h.rtt.filter(|_| !h.observed.is_usable()).map(rounded_ms),
                    "consecutive_ok": h.consecutive_ok,
                    "consecutive_fail": h.consecutive_fail,
                    "probes": h.probes,
                }),
                None => json!({ "address": addr.to_string(), "observed": "unknown" }),
            }
        })
        .collect();
    let forced = if snapshot.drains.is_zone_drained(zone) {
        json!("drained (zone)")
    } else if snapshot.drains.is_endpoint_drained(&service.name, zone) {
        json!("drained")
    } else {
        Value::Null
    };
    let drain_record = |key: crate::health::drains::DrainKey| {
        snapshot
            .drains
            .records
            .get(&crate::health::drains::target_key(&key))
            .map(|r| {
                json!({
                    "drained": r.drained,
                    "who": r.who,
                    "reason": r.reason,
                    "node": r.version.node,
                    "at": time::rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_millis(r.version.at_ms)),
                })
            })
    };
    let zone_record = drain_record(crate::health::drains::DrainKey::Zone(zone.clone()));
    let endpoint_record = drain_record(crate::health::drains::DrainKey::Endpoint {
        service: crate::health::drains::service_key(&service.name),
        zone: zone.clone(),
    });
    json!({
        "service": service.name.to_string(),
        "zone": zone,
        "observed": EndpointView::observed_name(view),
        "forced": forced,
        "drain_records": { "zone": zone_record, "endpoint": endpoint_record },
        "serving": view.is_some_and(|v| v.is_serving()),
        "min_healthy": endpoint.min_healthy,
        "check": check_text,
        "addresses": addresses,
    })
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret-token-123", b"secret-token-123"));
        assert!(!constant_time_eq(b"secret-token-123", b"secret-token-124"));
        assert!(!constant_time_eq(b"secret", b"secret-token-123"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
