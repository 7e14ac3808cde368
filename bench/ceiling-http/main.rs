//! The bare HTTP ceiling of the benchmark harness (bench/README.md): an axum server that reads a
//! webhook's body, checks its `x-sendbird-signature` (hex HMAC-SHA256 of the raw body, compared
//! in constant time) and answers 200, with no Kafka and no parsing. What the machine can serve
//! over HTTP with the work every contender must do.
//!
//!     BENCH_SENDBIRD_API_TOKEN=... cargo run --release --example ceiling-http -- --addr 127.0.0.1:8090
//!
//! `POST /webhooks/sendbird` answers 200 `{"status":"accepted"}`, or 401 on a missing or wrong
//! signature; `GET /readyz` answers 200. SIGTERM or Ctrl-C stops it after in-flight requests.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use clap::Parser;
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[path = "../common.rs"]
mod common;

#[derive(Parser, Debug)]
#[command(about = "Bare HTTP ceiling: read the body, check the HMAC, answer 200")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8090")]
    addr: SocketAddr,
    /// Largest body accepted, as hookbridge's default `max_body_bytes`.
    #[arg(long, default_value_t = 2 * 1024 * 1024)]
    max_body_bytes: usize,
}

/// The HMAC keyed once; each request clones the keyed state.
type Key = Arc<Hmac<Sha256>>;

const ACCEPTED: &str = r#"{"status":"accepted"}"#;
const UNAUTHORIZED: &str = r#"{"error":"unauthorized"}"#;

async fn webhook(State(key): State<Key>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let json = [(header::CONTENT_TYPE, "application/json")];
    let signature = headers
        .get("x-sendbird-signature")
        .and_then(|v| hex::decode(v.as_bytes()).ok());
    let verified = signature.is_some_and(|signature| {
        let mut mac = (*key).clone();
        mac.update(&body);
        mac.verify_slice(&signature).is_ok()
    });
    if verified {
        (StatusCode::OK, json, ACCEPTED)
    } else {
        (StatusCode::UNAUTHORIZED, json, UNAUTHORIZED)
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler can be installed");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    let token = common::token_from_env()?;
    let key: Key = Arc::new(
        Hmac::<Sha256>::new_from_slice(token.as_bytes())
            .expect("HMAC-SHA256 takes a key of any length"),
    );
    let app = Router::new()
        .route("/webhooks/sendbird", post(webhook))
        .route("/readyz", get(|| async { "ready" }))
        .layer(DefaultBodyLimit::max(args.max_body_bytes))
        .with_state(key);
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?
        // As hookbridge's listener does.
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}
