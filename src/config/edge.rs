//! The public listener's bounds: what an unauthenticated client can hold, and for how long.

use std::num::NonZeroUsize;
use std::time::Duration;

use super::{DEFAULT_MAX_BUFFERED_BYTES, StringOrList, parse_duration, record_budget};

/// The bounds of the public listener: what an unauthenticated client can hold, and for how long.
#[derive(Clone, Debug)]
pub struct EdgeLimits {
    /// From the first byte of a request to the end of its headers.
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request in progress is closed after this.
    pub idle_timeout: Duration,
    /// Open connections beyond this are answered 503 and closed at once.
    pub max_connections: NonZeroUsize,
    /// Request body bytes being read or held, over all requests (records built from verified
    /// bodies are counted too).
    pub max_buffered_bytes: NonZeroUsize,
    /// How long a request waits for room in `max_buffered_bytes` before it gets 503 (never past
    /// its deadline).
    pub buffer_wait: Duration,
    /// After `body_rate_grace`, a body must have arrived at this average rate (bytes/s) or 408.
    pub body_min_rate: u64,
    pub body_rate_grace: Duration,
    /// Concurrent requests per client address; `None` for no cap.
    pub max_requests_per_client: Option<NonZeroUsize>,
    /// Peers whose `X-Forwarded-For` names the client (load balancers, ingress controllers).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// The edge settings of [`RawConfig`], taken out for [`check_edge`].
pub(super) struct RawEdge {
    pub(super) header_read_timeout: Option<String>,
    pub(super) idle_timeout: Option<String>,
    pub(super) max_connections: Option<u64>,
    pub(super) max_buffered_bytes: Option<u64>,
    pub(super) buffer_wait: Option<String>,
    pub(super) body_min_rate: Option<u64>,
    pub(super) body_rate_grace: Option<String>,
    pub(super) max_requests_per_client: Option<u64>,
    pub(super) trusted_proxies: Option<StringOrList>,
}

pub(super) fn check_edge(
    raw: RawEdge,
    max_body_bytes: Option<NonZeroUsize>,
    errors: &mut Vec<String>,
) -> Option<EdgeLimits> {
    let duration = |name: &str, value: &Option<String>, default: &str, errors: &mut Vec<String>| {
        let setting = format!("{name} (HOOKBRIDGE_{})", name.to_ascii_uppercase());
        let d = parse_duration(&setting, value.as_deref().unwrap_or(default), errors)?;
        if d.is_zero() {
            errors.push(format!("{setting}: must be above 0"));
            return None;
        }
        Some(d)
    };
    let header_read_timeout = duration(
        "header_read_timeout",
        &raw.header_read_timeout,
        "10s",
        errors,
    );
    let idle_timeout = duration("idle_timeout", &raw.idle_timeout, "60s", errors);
    let buffer_wait = duration("buffer_wait", &raw.buffer_wait, "500ms", errors);
    let body_rate_grace = duration("body_rate_grace", &raw.body_rate_grace, "1s", errors);
    let max_connections = match raw.max_connections.unwrap_or(4096) {
        n @ 1..=1_000_000 => usize::try_from(n).ok().and_then(NonZeroUsize::new),
        n => {
            errors.push(format!(
                "max_connections (HOOKBRIDGE_MAX_CONNECTIONS): {n} is outside 1..=1000000"
            ));
            None
        }
    };
    const MAX_BUFFERED: u64 = 64 * 1024 * 1024 * 1024;
    let max_buffered_bytes = match raw.max_buffered_bytes {
        None => NonZeroUsize::new(DEFAULT_MAX_BUFFERED_BYTES),
        Some(n @ 1..=MAX_BUFFERED) => usize::try_from(n).ok().and_then(NonZeroUsize::new),
        Some(n) => {
            errors.push(format!(
                "max_buffered_bytes (HOOKBRIDGE_MAX_BUFFERED_BYTES): {n} is outside 1..=68719476736 (64 GiB)"
            ));
            None
        }
    };
    // One largest body and the record made from it must fit, or such a webhook could never pass.
    if let (Some(budget), Some(body)) = (max_buffered_bytes, max_body_bytes)
        && budget.get() < record_budget(body.get())
    {
        errors.push(format!(
            "max_buffered_bytes (HOOKBRIDGE_MAX_BUFFERED_BYTES): {} cannot hold one max_body_bytes body and its record ({} bytes); raise it or lower max_body_bytes",
            budget.get(),
            record_budget(body.get())
        ));
    }
    let body_min_rate = match raw.body_min_rate.unwrap_or(32 * 1024) {
        n if n <= 1024 * 1024 * 1024 => Some(n),
        n => {
            errors.push(format!(
                "body_min_rate (HOOKBRIDGE_BODY_MIN_RATE): {n} bytes/s is above 1 GiB/s"
            ));
            None
        }
    };
    let max_requests_per_client = match raw.max_requests_per_client.unwrap_or(0) {
        0 => Some(None),
        n @ 1..=1_000_000 => Some(usize::try_from(n).ok().and_then(NonZeroUsize::new)),
        n => {
            errors.push(format!(
                "max_requests_per_client (HOOKBRIDGE_MAX_REQUESTS_PER_CLIENT): {n} is outside 0..=1000000 (0 turns the cap off)"
            ));
            None
        }
    };
    let mut trusted_proxies = Vec::new();
    if let Some(list) = &raw.trusted_proxies {
        for (i, item) in list.items().into_iter().enumerate() {
            let parsed = item
                .parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            match parsed {
                Ok(net) => trusted_proxies.push(net.trunc()),
                Err(_) => errors.push(format!(
                    "trusted_proxies (HOOKBRIDGE_TRUSTED_PROXIES): entry #{} {item:?} is not an address or CIDR range like 10.0.0.0/8",
                    i + 1
                )),
            }
        }
    }
    Some(EdgeLimits {
        header_read_timeout: header_read_timeout?,
        idle_timeout: idle_timeout?,
        max_connections: max_connections?,
        max_buffered_bytes: max_buffered_bytes?,
        buffer_wait: buffer_wait?,
        body_min_rate: body_min_rate?,
        body_rate_grace: body_rate_grace?,
        max_requests_per_client: max_requests_per_client?,
        trusted_proxies,
    })
}
