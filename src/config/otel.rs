//! Span export: OpenTelemetry over OTLP/HTTP, off unless an endpoint is given (`otel_endpoint`,
//! or the standard `OTEL_EXPORTER_OTLP_ENDPOINT`). Records carry `traceparent` either way.

/// Where and how spans are exported.
#[derive(Clone, Debug, PartialEq)]
pub struct TracingConfig {
    /// The OTLP/HTTP traces URL (`…/v1/traces`); `None`: no export.
    pub traces_url: Option<String>,
    /// `service.name` of the exported spans (`OTEL_SERVICE_NAME`).
    pub service_name: String,
    /// The share of new traces sampled, 0 to 1; a sender's decision is kept for its traces.
    pub sampling_ratio: f64,
}

pub(super) fn check(
    endpoint: Option<&str>,
    service_name: Option<&str>,
    sampling_ratio: Option<f64>,
    errors: &mut Vec<String>,
) -> Option<TracingConfig> {
    let traces_url = match endpoint.map(str::trim).filter(|e| !e.is_empty()) {
        None => Some(None),
        Some(e) if !(e.starts_with("http://") || e.starts_with("https://")) => {
            errors.push(
                "otel_endpoint (HOOKBRIDGE_OTEL_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT): must be \
                 an http:// or https:// URL of an OTLP/HTTP receiver, e.g. http://collector:4318"
                    .into(),
            );
            None
        }
        // The base URL, as OTEL_EXPORTER_OTLP_ENDPOINT means it; a full traces URL is kept.
        Some(e) if e.trim_end_matches('/').ends_with("/v1/traces") => {
            Some(Some(e.trim_end_matches('/').to_owned()))
        }
        Some(e) => Some(Some(format!("{}/v1/traces", e.trim_end_matches('/')))),
    };
    let service_name = match service_name.map(str::trim) {
        None => Some("hookbridge".to_owned()),
        Some(n) if !n.is_empty() && n.len() <= 255 => Some(n.to_owned()),
        Some(_) => {
            errors.push(
                "otel_service_name (HOOKBRIDGE_OTEL_SERVICE_NAME, OTEL_SERVICE_NAME): must be \
                 1 to 255 characters"
                    .into(),
            );
            None
        }
    };
    let sampling_ratio = match sampling_ratio {
        None => Some(1.0),
        Some(r) if (0.0..=1.0).contains(&r) => Some(r),
        Some(r) => {
            errors.push(format!(
                "otel_sampling_ratio (HOOKBRIDGE_OTEL_SAMPLING_RATIO): {r} is outside 0..=1"
            ));
            None
        }
    };
    Some(TracingConfig {
        traces_url: traces_url?,
        service_name: service_name?,
        sampling_ratio: sampling_ratio?,
    })
}
