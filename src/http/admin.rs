//! The admin listener: `/livez`, `/readyz`, `/metrics`. Kept apart from the webhook port so it
//! can stay private to the cluster.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use crate::sink::kafka::BrokerHealth;
use crate::telemetry;

#[derive(Default)]
pub struct AdminState {
    pub broker: Arc<BrokerHealth>,
    /// Set when shutdown begins: readiness fails so the load balancer stops sending traffic.
    pub draining: AtomicBool,
}

impl AdminState {
    pub fn new(broker: Arc<BrokerHealth>) -> Self {
        AdminState {
            broker,
            draining: AtomicBool::new(false),
        }
    }
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }
}

pub fn admin_router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn livez(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    match state.broker.check_alive() {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ok"}))),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "failed", "reason": reason})),
        ),
    }
}

async fn readyz(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    // Before start-up finished nothing has recorded a Kafka answer yet, so this is 503 then too.
    // The webhook listener is bound by then: connections made once this says 200 wait in its
    // backlog until it serves, they are not refused.
    let verdict = if state.draining.load(Ordering::SeqCst) {
        Err("draining".to_owned())
    } else {
        state.broker.check(telemetry::now_ms())
    };
    match verdict {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "reason": reason})),
        ),
    }
}

async fn metrics() -> impl IntoResponse {
    // Reading /proc is a handful of small reads from kernel memory, cheap enough for a scrape.
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        telemetry::render(),
    )
}
