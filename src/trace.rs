//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>) for records: every record carries
//! a `traceparent` header (and the sender's `tracestate`, when it sent a valid one), continuing
//! the sender's trace when its request had a valid `traceparent`, else starting one. This holds
//! with span export off too, so consumer teams can always join a record to the request.

use std::fmt;

use axum::http::HeaderMap;

/// The record header names, as the W3C specification spells them for HTTP.
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// The longest `tracestate` passed on (the specification's 32 members of 256 bytes would be
/// 8 KiB; vendors keep it to 512).
const MAX_TRACESTATE_BYTES: usize = 512;

/// The most the trace headers add to a record: both values at their longest, both names, and
/// the varint lengths Kafka's record format puts around each.
pub const MAX_RECORD_HEADER_BYTES: usize =
    TRACEPARENT.len() + 55 + TRACESTATE.len() + MAX_TRACESTATE_BYTES + 2 * 2 * 5;

/// Bytes as lowercase hex, written straight into the formatter.
struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    /// Encoded in a stack buffer and written in one piece: a `write!` per byte made the
    /// `traceparent` of every record cost about as much CPU as checking its signature.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 64];
        for chunk in self.0.chunks(buf.len() / 2) {
            let out = &mut buf[..chunk.len() * 2];
            hex::encode_to_slice(chunk, out).map_err(|_| fmt::Error)?;
            f.write_str(std::str::from_utf8(out).map_err(|_| fmt::Error)?)?;
        }
        Ok(())
    }
}

/// One position in a trace: the trace, the span (of this hop, or the sender's for an incoming
/// context), and whether it is sampled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
    pub tracestate: Option<String>,
}

fn hex_bytes<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != N * 2
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

fn random_nonzero<const N: usize>() -> [u8; N] {
    loop {
        let bytes: [u8; N] = rand::random();
        if bytes.iter().any(|b| *b != 0) {
            return bytes;
        }
    }
}

impl TraceContext {
    /// The sender's context from its `traceparent` (and `tracestate`), when valid by the
    /// specification: version `00` exactly as long as it should be, or a later version with at
    /// least those fields; lowercase hex; ids not all zero. Anything else is ignored.
    pub fn from_headers(headers: &HeaderMap) -> Option<TraceContext> {
        let mut values = headers.get_all(TRACEPARENT).iter();
        let value = values.next()?.to_str().ok()?.trim();
        if values.next().is_some() {
            return None;
        }
        let mut parts = value.split('-');
        let version = hex_bytes::<1>(parts.next()?)?[0];
        let trace_id = hex_bytes::<16>(parts.next()?)?;
        let span_id = hex_bytes::<8>(parts.next()?)?;
        let flags = hex_bytes::<1>(parts.next()?)?[0];
        let rest = parts.next();
        if version == 0xff
            || (version == 0 && (rest.is_some() || value.len() != 55))
            || trace_id == [0; 16]
            || span_id == [0; 8]
        {
            return None;
        }
        // tracestate: its header lines joined with commas (as the specification says), printable
        // ASCII and bounded; else left out (traceparent alone is still a valid continuation).
        let lines: Vec<&str> = headers
            .get_all(TRACESTATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect();
        let joined = lines.join(",");
        let tracestate = (!joined.is_empty()
            && joined.len() <= MAX_TRACESTATE_BYTES
            && joined
                .bytes()
                .all(|b| b == b'\t' || (0x20..0x7f).contains(&b)))
        .then_some(joined);
        Some(TraceContext {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
            tracestate,
        })
    }

    /// A new trace, sampled at `ratio` as OpenTelemetry's trace-id-ratio sampler would decide
    /// (by the trace id's last 8 bytes), so a consumer following the record records with it.
    pub fn new_root(ratio: f64) -> TraceContext {
        let trace_id: [u8; 16] = random_nonzero();
        let mut low = [0u8; 8];
        low.copy_from_slice(&trace_id[8..]);
        let sampled = if ratio >= 1.0 {
            true
        } else if ratio <= 0.0 {
            false
        } else {
            (u64::from_be_bytes(low) >> 1) < (ratio * (1u64 << 63) as f64) as u64
        };
        TraceContext {
            trace_id,
            span_id: random_nonzero(),
            sampled,
            tracestate: None,
        }
    }

    /// The trace id as 32 lowercase hex digits, as logs and trace backends show it; formatted
    /// only where it is written (a log line), not for every request.
    pub fn trace_id_hex(&self) -> impl fmt::Display + '_ {
        Hex(&self.trace_id)
    }

    /// `00-<trace id>-<span id>-<flags>`.
    pub fn traceparent(&self) -> String {
        let flags = if self.sampled { "01" } else { "00" };
        format!("00-{}-{}-{flags}", Hex(&self.trace_id), Hex(&self.span_id))
    }

    /// The record headers: `traceparent`, and `tracestate` when there is one.
    pub fn record_headers(&self) -> impl Iterator<Item = (&'static str, Vec<u8>)> + use<> {
        let parent = (TRACEPARENT, self.traceparent().into_bytes());
        let state = self
            .tracestate
            .clone()
            .map(|s| (TRACESTATE, s.into_bytes()));
        std::iter::once(parent).chain(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_matches_the_hex_crate_at_any_length() {
        let bytes: Vec<u8> = (0..=255u8).chain(0..=100).collect();
        for n in [0, 1, 8, 16, 31, 32, 33, 64, 100, bytes.len()] {
            assert_eq!(
                Hex(&bytes[..n]).to_string(),
                hex::encode(&bytes[..n]),
                "{n} bytes"
            );
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        h
    }

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specification_examples_parse() {
        let c = TraceContext::from_headers(&headers(&[
            ("traceparent", VALID),
            ("tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
        ]))
        .expect("valid");
        assert_eq!(hex::encode(c.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex::encode(c.span_id), "00f067aa0ba902b7");
        assert!(c.sampled);
        assert_eq!(
            c.tracestate.as_deref(),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        );
        assert_eq!(c.traceparent(), VALID);
    }

    #[test]
    fn invalid_traceparents_are_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
        ] {
            assert_eq!(
                TraceContext::from_headers(&headers(&[("traceparent", bad)])),
                None,
                "{bad:?}"
            );
        }
        // Two traceparent headers: which one is meant is unknown.
        assert_eq!(
            TraceContext::from_headers(&headers(&[("traceparent", VALID), ("traceparent", VALID)])),
            None
        );
    }

    #[test]
    fn later_versions_are_read_by_their_first_fields() {
        let c = TraceContext::from_headers(&headers(&[(
            "traceparent",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds",
        )]))
        .expect("a later version is accepted");
        assert_eq!(hex::encode(c.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn an_oversized_or_odd_tracestate_is_dropped_but_the_parent_kept() {
        let long = "a=".to_owned() + &"b".repeat(600);
        let c =
            TraceContext::from_headers(&headers(&[("traceparent", VALID), ("tracestate", &long)]))
                .expect("traceparent still valid");
        assert_eq!(c.tracestate, None);
        // Not ASCII: a header value HTTP allows (obs-text), but not a tracestate.
        let mut h = headers(&[("traceparent", VALID)]);
        h.insert(
            TRACESTATE,
            axum::http::HeaderValue::from_bytes(b"a=caf\xe9").expect("obs-text"),
        );
        let c = TraceContext::from_headers(&h).expect("traceparent still valid");
        assert_eq!(c.tracestate, None);
    }

    #[test]
    fn tracestate_lines_are_joined() {
        let c = TraceContext::from_headers(&headers(&[
            ("traceparent", VALID),
            ("tracestate", "rojo=00f067aa0ba902b7"),
            ("tracestate", "congo=t61rcWkgMzE"),
        ]))
        .expect("valid");
        assert_eq!(
            c.tracestate.as_deref(),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        );
    }

    #[test]
    fn new_traces_are_sampled_at_the_ratio() {
        assert!(TraceContext::new_root(1.0).sampled);
        assert!(!TraceContext::new_root(0.0).sampled);
        let sampled = (0..4000)
            .filter(|_| TraceContext::new_root(0.25).sampled)
            .count();
        // 1000 expected; 4.5 standard deviations either side.
        assert!((880..=1120).contains(&sampled), "{sampled} of 4000 at 0.25");
    }

    #[test]
    fn a_new_root_round_trips_through_its_header() {
        let fresh = TraceContext::new_root(1.0);
        assert_ne!(fresh.trace_id, [0; 16]);
        let header = fresh.traceparent();
        assert_eq!(header.len(), 55);
        assert!(header.ends_with("-01"));
        assert_eq!(
            TraceContext::from_headers(&headers(&[("traceparent", &header)])),
            Some(fresh)
        );
    }
}
