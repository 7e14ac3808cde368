//! `POST /webhooks/{provider}[/{id}]`, for every provider: limit, verify, parse, route, encode,
//! publish, and only then answer. Order matters: nothing is parsed before the signature checked
//! out, and nothing is answered 200 before Kafka acknowledged it. What differs between providers
//! (headers, signed bytes, parsing, topics, schema) comes through [`Source`].

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
use http_body_util::BodyExt;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::util::MapRequestLayer;
use tower_http::request_id::PropagateRequestIdLayer;
use tracing::{Instrument, field};

use crate::config::{EdgeLimits, Limits, max_record_bytes_for};
use crate::error::ApiError;
use crate::http::budget::{ByteBudget, Reservation};
use crate::http::client::{PerClient, client_addr};
use crate::otel;
use crate::providers::{Built, HEADER_DLQ_REASON, Source, record_headers};
use crate::sink::kafka::{OutRecord, PublishError, Publisher, wire_size};
use crate::telemetry;
use crate::trace::TraceContext;
use crate::verify::{SignatureError, VerifiedWebhook, Verifier};

const REQUEST_ID: &str = "x-request-id";

/// Everything a webhook request needs, shared by all requests.
pub struct WebhookState {
    /// By provider and lowercase source id: ids match whatever their case.
    sources: HashMap<(&'static str, String), Arc<dyn Source>>,
    /// The source served at `POST /webhooks/{provider}`, for providers with exactly one.
    single: HashMap<&'static str, Arc<dyn Source>>,
    publisher: Arc<dyn Publisher>,
    max_body_bytes: usize,
    max_record_bytes: usize,
    publish_timeout: Duration,
    in_flight: Arc<Semaphore>,
    budget: ByteBudget,
    edge: EdgeLimits,
    per_client: Option<PerClient>,
    /// The in-flight gauge, looked up once: every request moves it twice.
    in_flight_gauge: metrics::Gauge,
}

impl WebhookState {
    pub fn new(
        limits: &Limits,
        sources: Vec<Arc<dyn Source>>,
        publisher: Arc<dyn Publisher>,
    ) -> Result<Self, String> {
        let mut by_id = HashMap::new();
        let mut count: HashMap<&'static str, usize> = HashMap::new();
        for source in &sources {
            let key = (source.provider(), source.id().key());
            if by_id.insert(key, source.clone()).is_some() {
                return Err(format!(
                    "{} source {} is configured twice",
                    source.provider(),
                    source.id()
                ));
            }
            *count.entry(source.provider()).or_default() += 1;
            metrics::gauge!(telemetry::API_TOKENS, "provider" => source.provider(), "app_id" => source.id().to_string())
                .set(source.keys().current().len() as f64);
        }
        let single = sources
            .iter()
            .filter(|s| count.get(s.provider()) == Some(&1))
            .map(|s| (s.provider(), s.clone()))
            .collect();
        // The recorder first, so the handle below is the real gauge, not a no-op.
        telemetry::prometheus();
        Ok(WebhookState {
            in_flight_gauge: metrics::gauge!(telemetry::IN_FLIGHT),
            sources: by_id,
            single,
            publisher,
            max_body_bytes: limits.max_body_bytes.get(),
            max_record_bytes: limits.max_record_bytes(),
            publish_timeout: limits.publish_timeout,
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight.get())),
            budget: ByteBudget::new(
                limits.edge.max_buffered_bytes.get(),
                limits.max_record_bytes(),
            ),
            edge: limits.edge.clone(),
            per_client: limits
                .edge
                .max_requests_per_client
                .map(|n| PerClient::new(n.get())),
        })
    }

    /// The source a route names: `/webhooks/{provider}/{id}`, or `/webhooks/{provider}` when the
    /// provider has one source.
    fn source(&self, provider: &'static str, id: Option<&str>) -> Option<&Arc<dyn Source>> {
        match id {
            Some(id) => self.sources.get(&(provider, id.to_ascii_lowercase())),
            None => self.single.get(provider),
        }
    }
}

/// The provider segment is a static one per configured provider, matched as sent (never
/// percent-decoded); the id segment is decoded like any path parameter.
pub fn webhook_router(state: Arc<WebhookState>) -> Router {
    let mut providers: Vec<&'static str> = state.sources.keys().map(|(p, _)| *p).collect();
    providers.sort_unstable();
    providers.dedup();
    let mut router = Router::new();
    for provider in providers {
        router = router
            .route(
                &format!("/webhooks/{provider}"),
                post(
                    move |State(state): State<Arc<WebhookState>>,
                          ConnectInfo(peer): ConnectInfo<SocketAddr>,
                          headers: HeaderMap,
                          body: Body| {
                        let source = state.source(provider, None).cloned();
                        handle(state, source, peer, headers, body)
                    },
                ),
            )
            .route(
                &format!("/webhooks/{provider}/{{id}}"),
                post(
                    move |State(state): State<Arc<WebhookState>>,
                          Path(id): Path<String>,
                          ConnectInfo(peer): ConnectInfo<SocketAddr>,
                          headers: HeaderMap,
                          body: Body| {
                        let source = state.source(provider, Some(&id)).cloned();
                        handle(state, source, peer, headers, body)
                    },
                ),
            );
    }
    router
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
        // A version 4 UUID from the thread's generator: `new_v4` asks the kernel (a getrandom
        // system call) for every request, and these ids need no more than unique.
        let id = uuid::Builder::from_random_bytes(rand::random())
            .into_uuid()
            .to_string();
        if let Ok(value) = HeaderValue::from_str(&id) {
            request.headers_mut().insert(REQUEST_ID, value);
        }
    }
    request
}

/// The answer to a stored webhook, written straight from these fields (no JSON value tree).
#[derive(serde::Serialize)]
struct Stored<'a> {
    status: &'static str,
    event_id: &'a str,
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
    source: Option<Arc<dyn Source>>,
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
    let provider = source.as_ref().map_or("none", |s| s.provider());
    let span = tracing::info_span!(
        "webhook",
        request_id = %request_id,
        provider,
        app_id = field::Empty,
        client = %client,
        category = field::Empty,
        event_id = field::Empty,
        family = field::Empty,
        trace_id = field::Empty,
    );
    let trace = otel::request_context(&span, TraceContext::from_headers(&headers));
    // Logs name the trace the record carries, so a log line, a span and a record join up.
    span.record("trace_id", field::display(trace.trace_id_hex()));
    let mut family = None;
    let request = Request {
        client,
        headers: &headers,
        body,
        started,
        trace: &trace,
    };
    let result = process(&state, source, request, &mut family)
        .instrument(span.clone())
        .await;
    let family_label = family.unwrap_or("none");
    let _enter = span.enter();
    let (outcome, response) = match result {
        Ok(a) => {
            tracing::info!(outcome = a.outcome, topic = %a.topic, partition = a.partition, offset = a.offset, "webhook stored");
            let body = Stored {
                status: a.outcome,
                event_id: &a.event_id,
            };
            (a.outcome, (StatusCode::OK, Json(body)).into_response())
        }
        Err(e) => (e.outcome(), e.into_response()),
    };
    metrics::counter!(telemetry::REQUESTS, "provider" => provider, "outcome" => outcome, "family" => family_label)
        .increment(1);
    metrics::histogram!(telemetry::REQUEST_DURATION, "provider" => provider, "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    response
}

/// What a request brought: who sent it, its headers and body, when it arrived and its trace.
struct Request<'a> {
    client: IpAddr,
    headers: &'a HeaderMap,
    body: Body,
    started: Instant,
    trace: &'a TraceContext,
}

/// Decrements the in-flight gauge when a request ends, however it ends.
struct InFlight<'a>(&'a metrics::Gauge);

impl<'a> InFlight<'a> {
    fn start(gauge: &'a metrics::Gauge) -> Self {
        gauge.increment(1.0);
        InFlight(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

async fn process(
    state: &Arc<WebhookState>,
    source: Option<Arc<dyn Source>>,
    request: Request<'_>,
    family: &mut Option<&'static str>,
) -> Result<Accepted, ApiError> {
    let Request {
        client,
        headers,
        body,
        started,
        trace,
    } = request;
    // Shed load before buffering anything.
    let _permit = state.in_flight.clone().try_acquire_owned().map_err(|_| {
        tracing::warn!("in-flight limit reached, shedding request");
        ApiError::Unavailable("in-flight limit reached")
    })?;
    let _gauge = InFlight::start(&state.in_flight_gauge);
    let _client_slot = match &state.per_client {
        Some(per_client) => Some(per_client.enter(client).ok_or_else(|| {
            tracing::warn!("per-client request limit reached, shedding request");
            ApiError::Unavailable("too many requests from this client")
        })?),
        None => None,
    };
    let received_at_ms = telemetry::now_ms();

    let source = source.ok_or(ApiError::UnknownApp)?;
    tracing::Span::current().record("app_id", source.id().as_str());

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
    let provider = source.provider();
    let unauthorized = |e: SignatureError| {
        metrics::counter!(telemetry::SIGNATURE_FAILURES, "provider" => provider, "reason" => e.reason()).increment(1);
        tracing::warn!(reason = e.reason(), "webhook signature rejected");
        ApiError::Unauthorized
    };
    // A request without a usable signature is refused before its body is read.
    let expectation = source
        .expect(headers, received_at_ms)
        .map_err(unauthorized)?;
    let mut verifier = Verifier::new(
        source.keys().current(),
        expectation,
        declared.unwrap_or(0).min(STEP),
    );

    // The whole request, body included, must fit in the deadline and leave time to publish.
    let deadline = started + state.publish_timeout;
    // Bytes are reserved as they arrive (in steps), never for a length only declared: a forged
    // upload that sends nothing holds nothing.
    let mut held = state.budget.empty();
    // Reading the body and checking its signature: the `verify` span (exported when on).
    let webhook = async {
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
        Ok::<_, ApiError>(match verifier.inflated_size().map_err(unauthorized)? {
            None => verifier
                .finish(source.id().as_str(), received_at_ms)
                .map_err(unauthorized)?,
            Some(size) => {
                // The signed content is the body decompressed: its buffer is held like body bytes,
                // reserved before it exists, and inflating takes CPU: off the async workers.
                state
                    .budget
                    .grow_body(&mut held, size, deadline)
                    .await
                    .map_err(|_| {
                        tracing::warn!(
                            size,
                            "buffered-bytes budget exhausted before decompressing"
                        );
                        ApiError::Unavailable("request buffer full")
                    })?;
                let id = source.id().as_str().to_owned();
                tokio::task::spawn_blocking(move || verifier.finish(&id, received_at_ms))
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, "verifying the decompressed body failed");
                        ApiError::Internal
                    })?
                    .map_err(unauthorized)?
            }
        })
    }
    .instrument(tracing::debug_span!("verify"))
    .await?;

    let span = tracing::Span::current();
    span.record("event_id", webhook.event_id());

    // The record's bytes are reserved before it is built, at the bound a body of this size can
    // make; the exact size is checked again before encoding.
    // A decompressed body is a buffer of its own, and the record is built from it.
    let content = webhook.content().len();
    let decompressed = if webhook.was_decompressed() {
        content
    } else {
        0
    };
    let bound = max_record_bytes_for(content) + decompressed;
    state
        .budget
        .grow_record(&mut held, bound, deadline)
        .await
        .map_err(|_| {
            tracing::warn!("buffered-bytes budget exhausted before encoding; asking to retry");
            ApiError::Unavailable("request buffer full")
        })?;
    // Parsing and encoding a large body takes milliseconds of CPU: off the async workers.
    let encode = tracing::debug_span!("encode");
    let built = if webhook.content().len() >= BLOCKING_BUILD_BYTES {
        let (source, webhook) = (source.clone(), webhook.clone());
        tokio::task::spawn_blocking(move || encode.in_scope(|| source.build(&webhook)))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "building the record failed");
                ApiError::Internal
            })?
    } else {
        encode.in_scope(|| source.build(&webhook))
    };
    match built {
        Built::Event {
            mut record,
            category,
            family: f,
        } => {
            record.headers.extend(trace.record_headers());
            span.record("category", category.as_str());
            span.record("family", f);
            *family = Some(f);
            send(state, provider, record, f, "accepted", &webhook, deadline).await
        }
        Built::DeadLetter { reason, category } => {
            if let Some(c) = &category {
                span.record("category", c.as_str());
            }
            *family = None;
            dead_letter(state, &*source, &webhook, reason, trace, deadline).await
        }
        Built::Internal => Err(ApiError::Internal),
    }
}

/// Bodies from this size on are parsed and encoded on the blocking pool.
const BLOCKING_BUILD_BYTES: usize = 64 * 1024;
/// Body bytes are reserved in steps of this size, ahead of need.
const STEP: usize = 64 * 1024;

/// Reads the body into the verifier as it arrives, reserving its bytes (in steps of [`STEP`],
/// never beyond the declared length when there is one) as they come. After `body_rate_grace`,
/// the body must keep up an average of `body_min_rate` bytes a second, and all of it must
/// arrive by `deadline`; otherwise 408, so a slow sender cannot hold its bytes for long.
async fn read_body(
    state: &WebhookState,
    mut body: Body,
    verifier: &mut Verifier,
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

/// Writes the raw body to the dead-letter topic with `reason` (a bounded code) in a header.
async fn dead_letter(
    state: &WebhookState,
    source: &dyn Source,
    webhook: &VerifiedWebhook,
    reason: &'static str,
    trace: &TraceContext,
    deadline: Instant,
) -> Result<Accepted, ApiError> {
    let mut headers = record_headers(source, webhook);
    headers.push((HEADER_DLQ_REASON, reason.as_bytes().to_vec()));
    headers.extend(trace.record_headers());
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
        topic: source.dlq_topic().as_str().to_owned(),
        key: None,
        value: webhook.body().clone(),
        headers,
        timestamp_ms: webhook.received_at_ms(),
    };
    send(
        state,
        source.provider(),
        record,
        "dlq",
        "dead_lettered",
        webhook,
        deadline,
    )
    .await
}

async fn send(
    state: &WebhookState,
    provider: &'static str,
    record: OutRecord,
    family: &'static str,
    outcome: &'static str,
    webhook: &VerifiedWebhook,
    deadline: Instant,
) -> Result<Accepted, ApiError> {
    let topic = record.topic.clone();
    let started = Instant::now();
    let result = state
        .publisher
        .publish(record, deadline)
        .instrument(tracing::debug_span!("publish", topic = %topic))
        .await;
    let label = result.as_ref().map_or_else(PublishError::label, |_| "ok");
    metrics::histogram!(telemetry::PUBLISH_DURATION, "provider" => provider, "family" => family, "result" => label)
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
            let parsed = uuid::Uuid::parse_str(&id).expect("a UUID");
            assert_eq!(parsed.get_version_num(), 4, "{id}");
        }
        assert!(uuid::Uuid::parse_str(&id_after(None)).is_ok());
    }
}
