//! `POST /webhooks/sendbird[/{app_id}]`: limit, verify, parse, route, encode, publish, and only
//! then answer. Order matters: nothing is parsed before the signature checked out, and nothing
//! is answered 200 before Kafka acknowledged it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::util::MapRequestLayer;
use tower_http::request_id::PropagateRequestIdLayer;
use tracing::{Instrument, field};

use crate::avro::{EventEncoder, EventRecord};
use crate::config::{AppId, Config, EdgeLimits, max_record_bytes_for};
use crate::error::ApiError;
use crate::http::budget::{ByteBudget, Reservation};
use crate::http::client::{PerClient, client_addr};
use crate::kafka::{OutRecord, PublishError, Publisher};
use crate::sendbird::{Family, PoisonReason, Router as TopicRouter, SendbirdEvent, TopicName};
use crate::telemetry;
use crate::verify::{
    FALLBACK_SIGNATURE_HEADER, SIGNATURE_HEADER, SignatureError, StreamingVerifier, TokenSet,
    VerifiedWebhook,
};

pub const HEADER_EVENT_ID: &str = "hookbridge-event-id";
pub const HEADER_CATEGORY: &str = "hookbridge-category";
pub const HEADER_APP_ID: &str = "hookbridge-app-id";
pub const HEADER_SOURCE: &str = "hookbridge-source";
pub const HEADER_DLQ_REASON: &str = "hookbridge-dlq-reason";
pub const SOURCE: &str = "sendbird";
/// Dead-letter reasons decided here rather than by the parser.
pub const DLQ_APP_MISMATCH: &str = "app_id_mismatch";
pub const DLQ_TOO_LARGE: &str = "record_too_large";
const REQUEST_ID: &str = "x-request-id";

/// Room for a record's framing in librdkafka's size check beyond key, value and headers: the
/// record batch header and per-record varints.
const RECORD_OVERHEAD: usize = 1024;

/// Everything a webhook request needs, shared by all requests.
pub struct WebhookState {
    /// By lowercase app id: ids match whatever their case; the configured form is canonical.
    apps: HashMap<String, (AppId, Arc<TokenSet>)>,
    single_app: Option<String>,
    router: TopicRouter,
    encoder: EventEncoder,
    schema_ids: HashMap<TopicName, u32>,
    publisher: Arc<dyn Publisher>,
    max_body_bytes: usize,
    max_record_bytes: usize,
    max_typed_items: usize,
    publish_timeout: Duration,
    in_flight: Arc<Semaphore>,
    budget: ByteBudget,
    edge: EdgeLimits,
    per_client: Option<PerClient>,
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
                        app_key(a.app_id.as_str()),
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
            max_typed_items: config.max_typed_items.get(),
            publish_timeout: config.publish_timeout,
            in_flight: Arc::new(Semaphore::new(config.max_in_flight.get())),
            budget: ByteBudget::new(
                config.edge.max_buffered_bytes.get(),
                config.max_record_bytes(),
            ),
            edge: config.edge.clone(),
            per_client: config
                .edge
                .max_requests_per_client
                .map(|n| PerClient::new(n.get())),
        })
    }

    /// The live token set of each app, for the tokens-file watcher.
    pub fn token_set(&self, app_id: &AppId) -> Option<Arc<TokenSet>> {
        self.apps
            .get(&app_key(app_id.as_str()))
            .map(|(_, set)| set.clone())
    }
}

fn app_key(app_id: &str) -> String {
    app_id.to_ascii_lowercase()
}

pub fn webhook_router(state: Arc<WebhookState>) -> Router {
    Router::new()
        .route("/webhooks/sendbird", post(single_app))
        .route("/webhooks/sendbird/{app_id}", post(by_app_id))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(MapRequestLayer::new(sanitize_request_id))
        .with_state(state)
}

/// The longest `x-request-id` taken from a client.
const MAX_REQUEST_ID: usize = 128;

/// Keeps a client's `x-request-id` only when it is 1 to 128 visible ASCII characters, so it is
/// safe to log and echo; anything else is replaced by a generated id.
fn sanitize_request_id<B>(mut request: axum::http::Request<B>) -> axum::http::Request<B> {
    let usable = request.headers().get(REQUEST_ID).is_some_and(|v| {
        let b = v.as_bytes();
        (1..=MAX_REQUEST_ID).contains(&b.len()) && b.iter().all(|c| c.is_ascii_graphic())
    });
    if !usable {
        let id = uuid::Uuid::new_v4().to_string();
        if let Ok(value) = HeaderValue::from_str(&id) {
            request.headers_mut().insert(REQUEST_ID, value);
        }
    }
    request
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
    // Set (and bounded) by sanitize_request_id.
    let request_id = headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let client = client_addr(peer.ip(), &headers, &state.edge.trusted_proxies);
    let span = tracing::info_span!(
        "webhook",
        request_id = %request_id,
        app_id = field::Empty,
        client = %client,
        category = field::Empty,
        event_id = field::Empty,
        family = field::Empty,
    );
    let mut family = None;
    let result = process(&state, app, client, &headers, body, started, &mut family)
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
    state: &Arc<WebhookState>,
    app: Option<String>,
    client: IpAddr,
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
    let _client_slot = match &state.per_client {
        Some(per_client) => Some(per_client.enter(client).ok_or_else(|| {
            tracing::warn!("per-client request limit reached, shedding request");
            ApiError::Unavailable("too many requests from this client")
        })?),
        None => None,
    };
    let received_at_ms = telemetry::now_ms();

    let (app_id, tokens) = app
        .as_deref()
        .and_then(|a| state.apps.get(&app_key(a)))
        .ok_or(ApiError::UnknownApp)?;
    tracing::Span::current().record("app_id", app_id.as_str());

    let limit = state.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        tracing::warn!(declared, limit, "body larger than the limit");
        return Err(ApiError::TooLarge { limit });
    }
    let declared = declared.and_then(|n| usize::try_from(n).ok());
    let signature = signature_header(headers);
    let unauthorized = |e: SignatureError| {
        metrics::counter!(telemetry::SIGNATURE_FAILURES, "reason" => e.reason()).increment(1);
        tracing::warn!(reason = e.reason(), "webhook signature rejected");
        ApiError::Unauthorized
    };
    // A request without a usable signature is refused before its body is read.
    let mut verifier = StreamingVerifier::new(
        &tokens.current(),
        signature,
        declared.unwrap_or(0).min(STEP),
    )
    .map_err(unauthorized)?;

    // The whole request, body included, must fit in the deadline and leave time to publish.
    let deadline = started + state.publish_timeout;
    // Bytes are reserved as they arrive (in steps), never for a length only declared: a forged
    // upload that sends nothing holds nothing.
    let mut held = state.budget.empty();
    read_body(
        state,
        body,
        &mut verifier,
        &mut held,
        declared,
        started,
        deadline,
    )
    .await?;
    let webhook = verifier
        .finish(app_id, received_at_ms)
        .map_err(unauthorized)?;
    let span = tracing::Span::current();
    span.record("event_id", webhook.event_id());

    // The record's bytes are reserved before it is built, at the bound a body of this size can
    // make; the exact size is checked again before encoding.
    let bound = max_record_bytes_for(webhook.body().len());
    state
        .budget
        .grow_record(&mut held, bound, deadline)
        .await
        .map_err(|_| {
            tracing::warn!("buffered-bytes budget exhausted before encoding; asking to retry");
            ApiError::Unavailable("request buffer full")
        })?;
    // Parsing and encoding a large body takes milliseconds of CPU: off the async workers.
    let built = if webhook.body().len() >= BLOCKING_BUILD_BYTES {
        let (state, webhook) = (state.clone(), webhook.clone());
        tokio::task::spawn_blocking(move || build(&state, &webhook))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "building the record failed");
                ApiError::Internal
            })?
    } else {
        build(state, &webhook)
    };
    match built {
        Built::Event {
            record,
            category,
            family: f,
        } => {
            span.record("category", category.as_str());
            span.record("family", f.label());
            *family = Some(f);
            send(state, record, f.label(), "accepted", &webhook, deadline).await
        }
        Built::DeadLetter { reason, category } => {
            if let Some(c) = &category {
                span.record("category", c.as_str());
            }
            *family = None;
            dead_letter(state, &webhook, reason, deadline).await
        }
        Built::Internal => Err(ApiError::Internal),
    }
}

/// Bodies from this size on are parsed and encoded on the blocking pool.
const BLOCKING_BUILD_BYTES: usize = 64 * 1024;
/// Body bytes are reserved in steps of this size, ahead of need.
const STEP: usize = 64 * 1024;

/// What a verified body becomes.
enum Built {
    Event {
        record: OutRecord,
        category: String,
        family: Family,
    },
    DeadLetter {
        reason: &'static str,
        category: Option<String>,
    },
    Internal,
}

/// Parses, routes and encodes a verified body. The typed view lives only here: it is gone
/// before the record waits for Kafka.
fn build(state: &WebhookState, webhook: &VerifiedWebhook) -> Built {
    // UTF-8 is checked once here; the text serves both the parse and the record's raw_body.
    let parsed = std::str::from_utf8(webhook.body())
        .map_err(|_| PoisonReason::NotUtf8)
        .and_then(|text| Ok((text, SendbirdEvent::parse_str(text, state.max_typed_items)?)));
    let (raw_body, event) = match parsed {
        Ok(parsed) => parsed,
        Err(reason) => {
            tracing::warn!(
                reason = reason.code(),
                "authentic body cannot be parsed; dead-lettering it"
            );
            return Built::DeadLetter {
                reason: reason.code(),
                category: None,
            };
        }
    };
    let dead_letter = |reason| Built::DeadLetter {
        reason,
        category: Some(event.category.clone()),
    };
    if let Some(body_app) = event.app_id.as_deref()
        && !body_app.eq_ignore_ascii_case(webhook.app_id().as_str())
    {
        // Authentic (it carries this app's signature) yet naming another app: a human must
        // look, and retrying cannot change it.
        tracing::warn!(
            body_app_id = body_app,
            "body names another app than the route; dead-lettering it"
        );
        return dead_letter(DLQ_APP_MISMATCH);
    }
    let route = state.router.route(&event);
    let Some(&schema_id) = state.schema_ids.get(route.topic) else {
        return Built::Internal;
    };
    let record = EventRecord {
        event_id: webhook.event_id(),
        app_id: webhook.app_id().as_str(),
        received_at_ms: webhook.received_at_ms(),
        raw_body,
        event: &event,
    };
    let mut headers = common_headers(webhook);
    headers.push((HEADER_CATEGORY, event.category.as_bytes().to_vec()));
    // The size is known before the record is built: a record that cannot be sent is never made.
    let value_len = state.encoder.encoded_len(&record);
    let size = wire_size(route.key.as_deref(), value_len, &headers);
    if size > state.max_record_bytes {
        // Retrying cannot fix it; keep the authentic bytes for a human instead of losing them.
        tracing::error!(
            record_bytes = size,
            limit = state.max_record_bytes,
            "record larger than the producer limit; dead-lettering the raw body"
        );
        return dead_letter(DLQ_TOO_LARGE);
    }
    let value = state.encoder.encode(schema_id, &record);
    Built::Event {
        record: OutRecord {
            topic: route.topic.as_str().to_owned(),
            key: route.key,
            value: Bytes::from(value),
            headers,
            timestamp_ms: webhook.received_at_ms(),
        },
        category: event.category.clone(),
        family: route.family,
    }
}

/// The signature header's value: the documented header, else the fallback. A header given
/// twice is ambiguous (which one would a proxy keep?) and reads as no signature at all, which
/// the verifier refuses as malformed.
fn signature_header(headers: &HeaderMap) -> Option<&[u8]> {
    const AMBIGUOUS: &[u8] = b"(given twice)";
    let name = if headers.contains_key(SIGNATURE_HEADER) {
        SIGNATURE_HEADER
    } else {
        FALLBACK_SIGNATURE_HEADER
    };
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    match values.next() {
        Some(_) => Some(AMBIGUOUS),
        None => Some(first.as_bytes()),
    }
}

/// Reads the body into the verifier as it arrives, reserving its bytes (in steps of [`STEP`],
/// never beyond the declared length when there is one) as they come. After `body_rate_grace`,
/// the body must keep up an average of `body_min_rate` bytes a second, and all of it must
/// arrive by `deadline`; otherwise 408, so a slow sender cannot hold its bytes for long.
async fn read_body(
    state: &WebhookState,
    mut body: Body,
    verifier: &mut StreamingVerifier,
    held: &mut Reservation,
    declared: Option<usize>,
    started: Instant,
    deadline: Instant,
) -> Result<(), ApiError> {
    let limit = state.max_body_bytes;
    let min_rate = state.edge.body_min_rate;
    let ceiling = declared.unwrap_or(limit);
    // One timer for the whole body, moved as the rate allows, rather than one per frame.
    let rate_due = |received: usize| {
        if min_rate == 0 {
            deadline
        } else {
            let earned = Duration::from_secs_f64(received as f64 / min_rate as f64);
            (started + earned.max(state.edge.body_rate_grace)).min(deadline)
        }
    };
    let timer = tokio::time::sleep_until(rate_due(0));
    tokio::pin!(timer);
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            () = timer.as_mut() => {
                if Instant::now() >= deadline {
                    tracing::warn!(received = verifier.received(), "request body not received before the deadline");
                    return Err(ApiError::BodyTimeout);
                }
                tracing::warn!(received = verifier.received(), min_rate, "request body arriving too slowly");
                return Err(ApiError::BodyTooSlow);
            }
        };
        let frame = match frame {
            None => return Ok(()),
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                tracing::info!(error = %e, received = verifier.received(), "could not read request body");
                return Err(ApiError::BadRequest("could not read the request body"));
            }
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        let received = verifier.received() + data.len();
        if received > limit {
            tracing::warn!(limit, "body larger than the limit");
            return Err(ApiError::TooLarge { limit });
        }
        // Room for the buffer the bytes will sit in, reserved ahead in steps.
        let needed = verifier.capacity_after(data.len());
        if needed > held.bytes() {
            let step = (needed - held.bytes()).max(STEP.min(ceiling.saturating_sub(held.bytes())));
            let until = (Instant::now() + state.edge.buffer_wait).min(deadline);
            state
                .budget
                .grow_body(held, step, until)
                .await
                .map_err(|_| {
                    tracing::warn!(
                        in_use = state.budget.in_use(),
                        "buffered-bytes budget exhausted, shedding request"
                    );
                    ApiError::Unavailable("request buffer full")
                })?;
        }
        verifier.update(&data);
        timer.as_mut().reset(rate_due(verifier.received()));
    }
}

/// Bytes librdkafka counts against `message.max.bytes` for one record.
fn wire_size(key: Option<&str>, value_len: usize, headers: &[(&'static str, Vec<u8>)]) -> usize {
    let headers: usize = headers.iter().map(|(k, v)| k.len() + v.len()).sum();
    key.map_or(0, str::len) + value_len + headers + RECORD_OVERHEAD
}

fn common_headers(webhook: &VerifiedWebhook) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (HEADER_EVENT_ID, webhook.event_id().as_bytes().to_vec()),
        (HEADER_APP_ID, webhook.app_id().as_str().as_bytes().to_vec()),
        (HEADER_SOURCE, SOURCE.as_bytes().to_vec()),
    ]
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
    // A body within max_body_bytes and these few bounded headers always fit; say so if not.
    let size = wire_size(None, webhook.body().len(), &headers);
    if size > state.max_record_bytes {
        tracing::error!(
            record_bytes = size,
            limit = state.max_record_bytes,
            "dead letter larger than the producer limit"
        );
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn id_after(value: Option<&[u8]>) -> String {
        let mut request = axum::http::Request::new(());
        if let Some(v) = value {
            request.headers_mut().insert(
                REQUEST_ID,
                HeaderValue::from_bytes(v).expect("header value"),
            );
        }
        let request = sanitize_request_id(request);
        request.headers()[REQUEST_ID]
            .to_str()
            .expect("ascii")
            .to_owned()
    }

    #[test]
    fn request_ids_are_kept_only_when_short_and_visible() {
        assert_eq!(id_after(Some(b"abc-123_XYZ")), "abc-123_XYZ");
        let longest = "a".repeat(MAX_REQUEST_ID);
        assert_eq!(id_after(Some(longest.as_bytes())), longest);
        for bad in [
            "a".repeat(MAX_REQUEST_ID + 1).into_bytes(),
            b"has space".to_vec(),
            b"tab\there".to_vec(),
            b"".to_vec(),
            b"caf\xc3\xa9".to_vec(),
        ] {
            let id = id_after(Some(&bad));
            assert_ne!(id.as_bytes(), &bad[..]);
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        }
        assert!(uuid::Uuid::parse_str(&id_after(None)).is_ok());
    }
}
