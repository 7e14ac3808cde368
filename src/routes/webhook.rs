//! `POST /webhooks/sendbird[/{app_id}]`: limit, verify, parse, route, encode, publish, and only
//! then answer. Order matters: nothing is parsed before the signature checked out, and nothing
//! is answered 200 before Kafka acknowledged it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tracing::{Instrument, field};

use crate::avro::{EventEncoder, EventRecord};
use crate::config::{AppId, Config};
use crate::error::ApiError;
use crate::kafka::{OutRecord, PublishError, Publisher};
use crate::sendbird::{Family, PoisonReason, Router as TopicRouter, SendbirdEvent, TopicName};
use crate::telemetry;
use crate::verify::{
    FALLBACK_SIGNATURE_HEADER, SIGNATURE_HEADER, SignatureError, TokenSet, VerifiedWebhook,
    decode_signature,
};

pub const HEADER_EVENT_ID: &str = "hookbridge-event-id";
pub const HEADER_CATEGORY: &str = "hookbridge-category";
pub const HEADER_APP_ID: &str = "hookbridge-app-id";
pub const HEADER_SOURCE: &str = "hookbridge-source";
pub const HEADER_DLQ_REASON: &str = "hookbridge-dlq-reason";
pub const SOURCE: &str = "sendbird";

/// Everything a webhook request needs, shared by all requests.
pub struct WebhookState {
    apps: HashMap<String, (AppId, Arc<TokenSet>)>,
    single_app: Option<String>,
    router: TopicRouter,
    encoder: EventEncoder,
    schema_ids: HashMap<TopicName, u32>,
    publisher: Arc<dyn Publisher>,
    max_body_bytes: usize,
    max_record_bytes: usize,
    publish_timeout: Duration,
    in_flight: Arc<Semaphore>,
}

impl WebhookState {
    /// `schema_ids` must hold an id for every topic of `router.event_topics()`.
    pub fn new(
        config: &Config,
        router: TopicRouter,
        encoder: EventEncoder,
        schema_ids: HashMap<TopicName, u32>,
        publisher: Arc<dyn Publisher>,
    ) -> Result<Self, String> {
        if let Some(t) = router
            .event_topics()
            .into_iter()
            .find(|t| !schema_ids.contains_key(t))
        {
            return Err(format!("no schema id resolved for topic {t}"));
        }
        Ok(WebhookState {
            apps: config
                .apps
                .iter()
                .map(|a| {
                    metrics::gauge!(telemetry::API_TOKENS, "app_id" => a.app_id.to_string())
                        .set(a.api_tokens.len() as f64);
                    (
                        a.app_id.as_str().to_owned(),
                        (
                            a.app_id.clone(),
                            Arc::new(TokenSet::new(a.api_tokens.clone())),
                        ),
                    )
                })
                .collect(),
            single_app: config.single_app().map(|a| a.app_id.as_str().to_owned()),
            router,
            encoder,
            schema_ids,
            publisher,
            max_body_bytes: config.max_body_bytes.get(),
            max_record_bytes: config.max_record_bytes(),
            publish_timeout: config.publish_timeout,
            in_flight: Arc::new(Semaphore::new(config.max_in_flight.get())),
        })
    }
}

impl WebhookState {
    /// The live token set of each app, for the tokens-file watcher.
    pub fn token_set(&self, app_id: &AppId) -> Option<Arc<TokenSet>> {
        self.apps.get(app_id.as_str()).map(|(_, set)| set.clone())
    }
}

pub fn webhook_router(state: Arc<WebhookState>) -> Router {
    Router::new()
        .route("/webhooks/sendbird", post(single_app))
        .route("/webhooks/sendbird/{app_id}", post(by_app_id))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

async fn single_app(
    State(state): State<Arc<WebhookState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let app = state.single_app.clone();
    handle(state, app, peer, headers, body).await
}

async fn by_app_id(
    State(state): State<Arc<WebhookState>>,
    Path(app_id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(state, Some(app_id), peer, headers, body).await
}

/// What a successful request produced.
struct Accepted {
    outcome: &'static str,
    event_id: String,
    topic: String,
    partition: i32,
    offset: i64,
}

async fn handle(
    state: Arc<WebhookState>,
    app: Option<String>,
    peer: SocketAddr,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let span = tracing::info_span!(
        "webhook",
        request_id = %request_id,
        app_id = app.as_deref().unwrap_or(""),
        peer = %peer.ip(),
        category = field::Empty,
        event_id = field::Empty,
        family = field::Empty,
    );
    let mut family = None;
    let result = process(&state, app, &headers, body, started, &mut family)
        .instrument(span.clone())
        .await;
    let family_label = family.map_or("none", Family::label);
    let _enter = span.enter();
    let (outcome, response) = match result {
        Ok(a) => {
            tracing::info!(outcome = a.outcome, topic = %a.topic, partition = a.partition, offset = a.offset, "webhook stored");
            let body = json!({"status": a.outcome, "event_id": a.event_id});
            (a.outcome, (StatusCode::OK, Json(body)).into_response())
        }
        Err(e) => (e.outcome(), e.into_response()),
    };
    metrics::counter!(telemetry::REQUESTS, "outcome" => outcome, "family" => family_label)
        .increment(1);
    metrics::histogram!(telemetry::REQUEST_DURATION, "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Decrements the in-flight gauge when a request ends, however it ends.
struct InFlight;

impl InFlight {
    fn start() -> Self {
        metrics::gauge!(telemetry::IN_FLIGHT).increment(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(telemetry::IN_FLIGHT).decrement(1.0);
    }
}

async fn process(
    state: &WebhookState,
    app: Option<String>,
    headers: &HeaderMap,
    body: Body,
    started: Instant,
    family: &mut Option<Family>,
) -> Result<Accepted, ApiError> {
    // Shed load before buffering anything.
    let _permit = state.in_flight.clone().try_acquire_owned().map_err(|_| {
        tracing::warn!("in-flight limit reached, shedding request");
        ApiError::Unavailable("in-flight limit reached")
    })?;
    let _gauge = InFlight::start();
    let received_at_ms = telemetry::now_ms();

    let (app_id, tokens) = app
        .as_deref()
        .and_then(|a| state.apps.get(a))
        .ok_or(ApiError::UnknownApp)?;

    let limit = state.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        tracing::warn!(declared, limit, "body larger than the limit");
        return Err(ApiError::TooLarge { limit });
    }
    let signature = headers
        .get(SIGNATURE_HEADER)
        .or_else(|| headers.get(FALLBACK_SIGNATURE_HEADER))
        .map(|v| v.as_bytes());
    let unauthorized = |e: SignatureError| {
        metrics::counter!(telemetry::SIGNATURE_FAILURES, "reason" => e.reason()).increment(1);
        tracing::warn!(reason = e.reason(), "webhook signature rejected");
        ApiError::Unauthorized
    };
    // A request without a usable signature is refused before its body is read.
    decode_signature(signature).map_err(unauthorized)?;

    // The whole request, body included, must fit in the deadline: a body trickling in must not
    // hold an in-flight slot for longer, and must leave time to publish.
    let deadline = started + state.publish_timeout;
    let body = tokio::time::timeout_at(deadline, read_limited(body, limit))
        .await
        .map_err(|_| {
            tracing::warn!("request body not received before the deadline");
            ApiError::BodyTimeout
        })??;

    let webhook =
        VerifiedWebhook::verify(app_id, &tokens.current(), body, signature, received_at_ms)
            .map_err(unauthorized)?;
    let span = tracing::Span::current();
    span.record("event_id", webhook.event_id());

    // UTF-8 is checked once here; the text serves both the parse and the record's raw_body.
    let parsed = std::str::from_utf8(webhook.body())
        .map_err(|_| PoisonReason::NotUtf8)
        .and_then(|text| Ok((text, SendbirdEvent::parse_str(text)?)));
    match parsed {
        Ok((raw_body, event)) => {
            span.record("category", event.category.as_str());
            let f = Family::of(&event.category);
            span.record("family", f.label());
            *family = Some(f);
            publish_event(state, &webhook, raw_body, &event, deadline).await
        }
        Err(reason) => {
            *family = None;
            tracing::warn!(
                reason = reason.code(),
                "authentic body cannot be parsed; dead-lettering it"
            );
            dead_letter(state, &webhook, reason.code(), deadline).await
        }
    }
}

async fn read_limited(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match axum::body::to_bytes(body, limit).await {
        Ok(b) => Ok(b),
        Err(e) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.to_string().contains("length limit");
            if too_large {
                tracing::warn!(limit, "body larger than the limit");
                Err(ApiError::TooLarge { limit })
            } else {
                tracing::info!(error = %e, "could not read request body");
                Err(ApiError::BadRequest("could not read the request body"))
            }
        }
    }
}

fn common_headers(webhook: &VerifiedWebhook) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (HEADER_EVENT_ID, webhook.event_id().as_bytes().to_vec()),
        (HEADER_APP_ID, webhook.app_id().as_str().as_bytes().to_vec()),
        (HEADER_SOURCE, SOURCE.as_bytes().to_vec()),
    ]
}

async fn publish_event(
    state: &WebhookState,
    webhook: &VerifiedWebhook,
    raw_body: &str,
    event: &SendbirdEvent,
    deadline: Instant,
) -> Result<Accepted, ApiError> {
    if let Some(body_app) = event.app_id.as_deref()
        && body_app != webhook.app_id().as_str()
    {
        tracing::warn!(
            body_app_id = body_app,
            "body names another app than the route"
        );
        return Err(ApiError::BadRequest(
            "app_id in the body does not match the route",
        ));
    }
    let route = state.router.route(event);
    let schema_id = *state
        .schema_ids
        .get(route.topic)
        .ok_or(ApiError::Internal)?;
    let encoded = state.encoder.encode(
        schema_id,
        &EventRecord {
            event_id: webhook.event_id(),
            app_id: webhook.app_id().as_str(),
            received_at_ms: webhook.received_at_ms(),
            raw_body,
            event,
        },
    );
    // Retrying cannot fix either; keep the authentic bytes for a human instead of losing them.
    // librdkafka counts key and headers against its limit too.
    let key_len = route.key.as_ref().map_or(0, String::len);
    let record_len = |value: &[u8]| value.len() + key_len + 1024;
    let value = match encoded {
        Ok(value) if record_len(&value) <= state.max_record_bytes => value,
        Ok(value) => {
            tracing::error!(
                record_bytes = record_len(&value),
                limit = state.max_record_bytes,
                "record larger than the producer limit; dead-lettering the raw body"
            );
            return dead_letter(state, webhook, "record_too_large", deadline).await;
        }
        Err(e) => {
            tracing::error!(error = %e, "avro encoding failed; dead-lettering the raw body");
            return dead_letter(state, webhook, "encode_failed", deadline).await;
        }
    };
    let mut headers = common_headers(webhook);
    headers.push((HEADER_CATEGORY, event.category.as_bytes().to_vec()));
    let record = OutRecord {
        topic: route.topic.as_str().to_owned(),
        key: route.key,
        value: Bytes::from(value),
        headers,
        timestamp_ms: webhook.received_at_ms(),
    };
    send(
        state,
        record,
        route.family.label(),
        "accepted",
        webhook,
        deadline,
    )
    .await
}

/// Writes the raw body to the dead-letter topic with `reason` (a bounded code) in a header.
async fn dead_letter(
    state: &WebhookState,
    webhook: &VerifiedWebhook,
    reason: &'static str,
    deadline: Instant,
) -> Result<Accepted, ApiError> {
    let mut headers = common_headers(webhook);
    headers.push((HEADER_DLQ_REASON, reason.as_bytes().to_vec()));
    let record = OutRecord {
        topic: state.router.dlq_topic().as_str().to_owned(),
        key: None,
        value: webhook.body().clone(),
        headers,
        timestamp_ms: webhook.received_at_ms(),
    };
    send(state, record, "dlq", "dead_lettered", webhook, deadline).await
}

async fn send(
    state: &WebhookState,
    record: OutRecord,
    family: &'static str,
    outcome: &'static str,
    webhook: &VerifiedWebhook,
    deadline: Instant,
) -> Result<Accepted, ApiError> {
    let topic = record.topic.clone();
    let started = Instant::now();
    let result = state.publisher.publish(record, deadline).await;
    let label = result.as_ref().map_or_else(PublishError::label, |_| "ok");
    metrics::histogram!(telemetry::PUBLISH_DURATION, "family" => family, "result" => label)
        .record(started.elapsed().as_secs_f64());
    match result {
        Ok(d) => Ok(Accepted {
            outcome,
            event_id: webhook.event_id().to_owned(),
            topic,
            partition: d.partition,
            offset: d.offset,
        }),
        Err(e @ PublishError::Permanent(_)) => {
            tracing::error!(error = %e, topic, "kafka refused the record; operator action needed");
            Err(ApiError::Unavailable("kafka refused the record"))
        }
        Err(e) => {
            tracing::warn!(error = %e, topic, "kafka did not take the record; asking the sender to retry");
            Err(ApiError::Unavailable("kafka unavailable"))
        }
    }
}
