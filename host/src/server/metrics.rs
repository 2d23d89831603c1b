//! `GET /metrics`: the Prometheus text exposition of [`crate::telemetry`], on the main
//! listener or on `[server] metrics_listen` of its own. Gauges read at scrape time (the
//! audit queue's depth) are set here.

use crate::pipeline::Pipeline;
use crate::telemetry;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;

/// What a scrape reads.
pub struct Scrape {
    /// The recorder's handle.
    pub handle: PrometheusHandle,
    /// The pipeline, for its audit queue.
    pub pipeline: Arc<Pipeline>,
}

/// The `/metrics` route.
pub fn routes(scrape: Arc<Scrape>) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .with_state(scrape)
}

async fn render(State(scrape): State<Arc<Scrape>>) -> Response {
    telemetry::audit_queue(scrape.pipeline.audit().queued());
    scrape.handle.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        scrape.handle.render(),
    )
        .into_response()
}
