//! The operator's HTTP endpoint.
//!
//! It reads the same snapshot the DNS path reads and never holds it across
//! an await. So far it answers `/healthz`; zone health, drains, explain and
//! metrics arrive with the health and routing modules. Unknown paths get a
//! JSON error, like every other failure here.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::snapshot::SnapshotStore;

pub fn router(store: Arc<SnapshotStore>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .with_state(store)
}

async fn healthz(State(store): State<Arc<SnapshotStore>>) -> Json<serde_json::Value> {
    let snapshot = store.load();
    Json(json!({
        "status": "ok",
        "domain": snapshot.config.domain.name.to_string(),
        "generation": snapshot.generation,
    }))
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such endpoint; see README.md for the admin API",
    )
}

/// A JSON error body with its status.
pub fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}
