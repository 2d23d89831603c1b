//! `/readyz`: whether this replica can serve tool calls now, for a load balancer's
//! health check. Each dependency is checked on every probe: the audit log is writable,
//! the authorization server's database answers (embedded mode), the shared rate-limit
//! store answers (Redis). 200 with each check's state, or 503 naming what failed.
//! (`/healthz` says only that the process is up.)

use crate::auth::Auth;
use crate::pipeline::Pipeline;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// What `/readyz` checks.
#[derive(Clone)]
pub struct Readiness {
    /// The audit log and the rate-limit store.
    pub pipeline: Arc<Pipeline>,
    /// The authorization server's database.
    pub auth: Arc<Auth>,
}

/// Answers a readiness probe.
pub async fn readyz(State(ready): State<Readiness>) -> Response {
    let mut checks = Map::new();
    let mut ready_now = true;
    let mut note = |name: &str, result: Result<(), String>| {
        let state = match result {
            Ok(()) => json!("ok"),
            Err(error) => {
                ready_now = false;
                json!({ "error": error })
            }
        };
        checks.insert(name.to_owned(), state);
    };
    note("pipeline", ready.pipeline.ready().await);
    if let Some(server) = ready.auth.authorization_server() {
        note(
            "auth_database",
            server.ping().await.map_err(|e| e.to_string()),
        );
    }
    let status = if ready_now {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready_now { "ready" } else { "not_ready" },
        "checks": Value::Object(checks),
    });
    (status, Json(body)).into_response()
}
