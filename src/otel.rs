//! Span export: the request span and its `verify`, `encode` and `publish` children, sent to an
//! OTLP/HTTP receiver in batches from a thread of the SDK's own, when `otel_endpoint` (or
//! `OTEL_EXPORTER_OTLP_ENDPOINT`) is set. Spans carry ids, names and bounded labels (request id,
//! provider, source id, client address, category, family, event id, trace id, topic), never
//! secrets or bodies.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_otlp::{SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

use crate::config::TracingConfig;
use crate::trace::TraceContext;

/// Whether spans are exported: the request's ids then come from its span.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The exporting tracer provider. Dropping it without [`Export::shutdown`] loses the last batch.
pub struct Export {
    provider: SdkTracerProvider,
}

impl Export {
    /// The provider for `config`, or `None` when no endpoint is configured.
    pub fn start(config: &TracingConfig) -> Result<Option<Export>, String> {
        let Some(url) = &config.traces_url else {
            return Ok(None);
        };
        let exporter = SpanExporter::builder()
            .with_http()
            .with_endpoint(url.clone())
            .with_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("otel_endpoint {url}: {e}"))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            // A sender's sampling decision is kept; new traces are sampled at the ratio.
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sampling_ratio,
            ))))
            .with_resource(
                Resource::builder()
                    .with_service_name(config.service_name.clone())
                    .build(),
            )
            .build();
        Ok(Some(Export { provider }))
    }

    /// The `tracing` layer turning spans into OpenTelemetry spans.
    pub fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    {
        ACTIVE.store(true, Ordering::Relaxed);
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("hookbridge"))
            .with_tracked_inactivity(false)
            .with_threads(false)
    }

    /// Exports what is buffered and stops.
    pub fn shutdown(self) {
        ACTIVE.store(false, Ordering::Relaxed);
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "exporting the last spans failed");
        }
    }
}

/// The share of new traces sampled (`otel_sampling_ratio`), as f64 bits; 1.0 until configured.
static SAMPLING_RATIO: AtomicU64 = AtomicU64::new(0x3FF0_0000_0000_0000);

/// Sets the sampling ratio of new traces (also with export off, for the records' flags).
pub fn set_sampling_ratio(ratio: f64) {
    SAMPLING_RATIO.store(ratio.to_bits(), Ordering::Relaxed);
}

/// The context of a request's span, which its records carry. With export on, the exported
/// span's ids (continuing the sender's trace, or a new one). With export off nothing of this
/// hop is recorded, so the sender's context goes on as it came (its span stays the parent of
/// whatever a consumer records); without one, a new trace, sampled at the ratio so that
/// consumers record theirs.
pub fn request_context(span: &tracing::Span, incoming: Option<TraceContext>) -> TraceContext {
    span_context(span, incoming.as_ref()).unwrap_or_else(|| {
        incoming.unwrap_or_else(|| {
            TraceContext::new_root(f64::from_bits(SAMPLING_RATIO.load(Ordering::Relaxed)))
        })
    })
}

/// A request's context with export on: the span continues `incoming` and its ids are the
/// record's. `None` with export off (or if the span is not recorded by the layer).
fn span_context(span: &tracing::Span, incoming: Option<&TraceContext>) -> Option<TraceContext> {
    if !ACTIVE.load(Ordering::Relaxed) {
        return None;
    }
    if let Some(parent) = incoming {
        let state = parent
            .tracestate
            .as_deref()
            .and_then(|s| s.parse::<TraceState>().ok())
            .unwrap_or_default();
        let flags = if parent.sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let remote = SpanContext::new(
            TraceId::from_bytes(parent.trace_id),
            SpanId::from_bytes(parent.span_id),
            flags,
            true,
            state,
        );
        span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote))
            .ok()?;
    }
    let cx = span.context();
    let own = cx.span().span_context().clone();
    own.is_valid().then(|| TraceContext {
        trace_id: own.trace_id().to_bytes(),
        span_id: own.span_id().to_bytes(),
        sampled: own.is_sampled(),
        tracestate: incoming.and_then(|p| p.tracestate.clone()),
    })
}
