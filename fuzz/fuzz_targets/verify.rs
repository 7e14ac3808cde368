//! Signature verification: sign/verify round-trips, a verified body is the input byte for byte,
//! any changed body or signature byte fails, and arbitrary signature headers never panic and
//! are accepted only when they decode to the right MAC.
//!
//! Input layout (easy to seed by hand): 8 control bytes, then `token \n header \n body`.
//! A token that `ApiToken::parse` refuses is replaced by a fixed one, so the body is still fuzzed.
#![no_main]

use std::sync::Arc;

use hookbridge::providers::sendbird::ApiToken;
use hookbridge::verify::{
    Expectation, HmacKey, SignatureError, VerifiedWebhook, Verifier, decode_hex_signature,
};
use libfuzzer_sys::fuzz_target;

type AppId = &'static str;

fn keys(tokens: &[ApiToken]) -> Arc<[HmacKey]> {
    tokens.iter().map(ApiToken::key).collect()
}

/// Sendbird's check: one hex signature over the body.
fn verify_signature(
    tokens: &[ApiToken],
    body: &[u8],
    signature: Option<&[u8]>,
) -> Result<(), SignatureError> {
    verify_webhook(tokens, body, signature, 1).map(|_| ())
}

fn verify_webhook(
    tokens: &[ApiToken],
    body: &[u8],
    signature: Option<&[u8]>,
    received_at: i64,
) -> Result<VerifiedWebhook, SignatureError> {
    let expectation = decode_hex_signature(signature).map(Expectation::body)?;
    VerifiedWebhook::verify("FUZZ-APP", keys(tokens), expectation, body, received_at)
}

struct Input<'a> {
    ctrl: [u8; 8],
    token: &'a [u8],
    header: &'a [u8],
    body: &'a [u8],
}

fn split(data: &[u8]) -> Input<'_> {
    let mut ctrl = [0u8; 8];
    let n = data.len().min(8);
    ctrl[..n].copy_from_slice(&data[..n]);
    let rest = &data[n..];
    let (token, rest) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let (header, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    Input {
        ctrl,
        token,
        header,
        body,
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// An independent decoder: exactly 64 hex digits of either case.
fn decode_hex64(s: &[u8]) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks(2).enumerate() {
        out[i] = hex_value(pair[0])? << 4 | hex_value(pair[1])?;
    }
    Some(out)
}

/// What `ApiToken::parse` must accept: trimmed, non-empty, no whitespace, control or comma.
fn token_is_acceptable(s: &str) -> bool {
    let t = s.trim();
    !t.is_empty()
        && !t
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ',')
}

/// A tiny deterministic generator for chunk splits and positions chosen by the control bytes.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

fn check_token_parse(raw: &[u8]) -> Option<(String, ApiToken)> {
    let text = std::str::from_utf8(raw).ok()?;
    match ApiToken::parse(text) {
        Ok(token) => {
            assert!(token_is_acceptable(text), "accepted {text:?}");
            assert_eq!(format!("{token:?}"), "ApiToken([redacted])");
            // Surrounding whitespace is not part of the key.
            let reparsed = ApiToken::parse(text.trim()).expect("trimmed token parses");
            assert!(reparsed == token);
            Some((text.trim().to_owned(), token))
        }
        Err(_) => {
            assert!(!token_is_acceptable(text), "refused {text:?}");
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let input = split(data);
    let ctrl = input.ctrl;
    let (token_text, token) = check_token_parse(input.token).unwrap_or_else(|| {
        let t = "fuzz-fallback-token";
        (t.to_owned(), ApiToken::parse(t).expect("valid"))
    });
    let body = input.body;

    // Decoys that differ from the token, placed before and/or after it (rotation).
    let decoy_a = ApiToken::parse(&format!("{token_text}x")).expect("valid decoy");
    let decoy_b = ApiToken::parse(&format!("old-{token_text}")).expect("valid decoy");
    let mut tokens = Vec::new();
    if ctrl[4] & 1 != 0 {
        tokens.push(decoy_a.clone());
    }
    tokens.push(token.clone());
    if ctrl[4] & 2 != 0 {
        tokens.push(decoy_b.clone());
    }
    let decoys = [decoy_a, decoy_b];

    // The signature: 64 lowercase hex digits, deterministic.
    let sig = token.sign(body);
    assert_eq!(sig.len(), 64);
    assert!(sig.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')));
    assert_eq!(sig, token.sign(body));
    let mac = decode_hex64(sig.as_bytes()).expect("hex");
    assert_eq!(decode_hex_signature(Some(sig.as_bytes())), Ok(mac));

    // Round trip, upper case too.
    assert_eq!(
        verify_signature(&tokens, body, Some(sig.as_bytes())),
        Ok(())
    );
    let upper = sig.to_ascii_uppercase();
    assert_eq!(
        verify_signature(&tokens, body, Some(upper.as_bytes())),
        Ok(())
    );
    // Missing header, no tokens, only other tokens.
    assert_eq!(
        verify_signature(&tokens, body, None),
        Err(SignatureError::Missing)
    );
    assert_eq!(
        verify_signature(&[], body, Some(sig.as_bytes())),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_signature(&decoys, body, Some(sig.as_bytes())),
        Err(SignatureError::Mismatch)
    );

    // The verified webhook carries the body byte for byte.
    let app: AppId = "FUZZ-APP";
    let received_at = i64::from_le_bytes(ctrl);
    let verified = verify_webhook(&tokens, body, Some(sig.as_bytes()), received_at)
        .expect("a correctly signed body verifies");
    assert_eq!(&verified.body()[..], body);
    assert_eq!(verified.source_id(), app);
    assert_eq!(verified.received_at_ms(), received_at);
    let id = verified.event_id().to_owned();
    assert_eq!(id.len(), 64);
    assert!(id.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')));

    // Any flipped body bit fails; the changed body, correctly signed, has another event id.
    if !body.is_empty() {
        let i = usize::from(u16::from_le_bytes([ctrl[0], ctrl[1]])) % body.len();
        let mut tampered = body.to_vec();
        tampered[i] ^= 1 << (ctrl[2] % 8);
        assert_eq!(
            verify_signature(&tokens, &tampered, Some(sig.as_bytes())),
            Err(SignatureError::Mismatch)
        );
        let err = verify_webhook(&tokens, &tampered, Some(sig.as_bytes()), received_at)
            .expect_err("tampered body");
        assert_eq!(err, SignatureError::Mismatch);
        let resigned = token.sign(&tampered);
        let other = verify_webhook(&tokens, &tampered, Some(resigned.as_bytes()), received_at)
            .expect("re-signed body verifies");
        assert_ne!(other.event_id(), id);
    }

    // Any changed signature digit fails: another hex digit is a mismatch, anything else malformed.
    let i = usize::from(ctrl[3]) % 64;
    let mut changed = sig.clone().into_bytes();
    let old = hex_value(changed[i]).expect("hex");
    let new = (old + 1 + ctrl[2] % 15) % 16;
    changed[i] = b"0123456789abcdef"[usize::from(new)];
    assert_eq!(
        verify_signature(&tokens, body, Some(&changed)),
        Err(SignatureError::Mismatch)
    );
    let junk = b"gGzZ\0\xff -x+";
    changed[i] = junk[usize::from(ctrl[5]) % junk.len()];
    assert_eq!(
        verify_signature(&tokens, body, Some(&changed)),
        Err(SignatureError::Malformed)
    );
    // Too short or too long.
    let cut = usize::from(ctrl[6]) % 64;
    assert_eq!(
        verify_signature(&tokens, body, Some(&sig.as_bytes()[..cut])),
        Err(SignatureError::Malformed)
    );
    let longer = format!("{sig}{}", &sig[..1 + usize::from(ctrl[7]) % 63]);
    assert_eq!(
        verify_signature(&tokens, body, Some(longer.as_bytes())),
        Err(SignatureError::Malformed)
    );

    // Arbitrary header bytes: never a panic; accepted exactly when they decode to the MAC.
    let header = input.header;
    let decoded = decode_hex_signature(Some(header));
    let result = verify_signature(&tokens, body, Some(header));
    match decode_hex64(header) {
        Some(bytes) => assert_eq!(decoded, Ok(bytes)),
        // Surrounding whitespace may be tolerated, but only around 64 hex digits.
        None => match decoded {
            Ok(bytes) => assert_eq!(decode_hex64(header.trim_ascii()), Some(bytes)),
            Err(e) => assert_eq!(e, SignatureError::Malformed),
        },
    }
    match decoded {
        Ok(bytes) if bytes == mac => assert_eq!(result, Ok(())),
        Ok(_) => assert_eq!(result, Err(SignatureError::Mismatch)),
        Err(e) => assert_eq!(result, Err(e)),
    }

    // Streaming: the body fed in arbitrary splits verifies exactly like the one-shot call,
    // for the right signature, the arbitrary header and a tampered body alike.
    let chunks = split_points(&ctrl, body.len());
    let streamed = stream(
        &tokens,
        body,
        Some(sig.as_bytes()),
        &chunks,
        &app,
        received_at,
    )
    .expect("a correctly signed body verifies when streamed");
    assert_eq!(&streamed.body()[..], body);
    assert_eq!(streamed.body(), verified.body());
    assert_eq!(streamed.event_id(), verified.event_id());
    assert_eq!(streamed.source_id(), verified.source_id());
    assert_eq!(streamed.received_at_ms(), verified.received_at_ms());
    let streamed = stream(&tokens, body, Some(header), &chunks, &app, received_at);
    match (&result, &streamed) {
        (Ok(()), Ok(v)) => {
            assert_eq!(&v.body()[..], body);
            assert_eq!(v.event_id(), id);
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("one-shot {result:?}, streamed {:?}", streamed.map(|_| ())),
    }
    if !body.is_empty() {
        let mut tampered = body.to_vec();
        let i = usize::from(ctrl[7]) % body.len();
        tampered[i] = tampered[i].wrapping_add(1 + ctrl[6] % 255);
        let err = stream(
            &tokens,
            &tampered,
            Some(sig.as_bytes()),
            &chunks,
            &app,
            received_at,
        )
        .expect_err("a tampered body fails when streamed");
        assert_eq!(err, SignatureError::Mismatch);
    }
});

/// Cut points for the body, chosen by the control bytes: anything from one chunk to one byte
/// per chunk, empty chunks included.
fn split_points(ctrl: &[u8; 8], len: usize) -> Vec<usize> {
    let mut rng = XorShift(u64::from_le_bytes(*ctrl) | 1);
    let style = ctrl[5] % 4;
    let mut points = Vec::new();
    let mut at = 0;
    while at < len {
        let step = match style {
            0 => len,                                     // one chunk
            1 => 1,                                       // byte by byte
            2 => (rng.next() % 4) as usize,               // tiny, with empty chunks
            _ => 1 + (rng.next() as usize) % len.min(97), // mixed
        };
        at = (at + step).min(len);
        points.push(at);
    }
    points
}

fn stream(
    tokens: &[ApiToken],
    body: &[u8],
    header: Option<&[u8]>,
    points: &[usize],
    app: &AppId,
    received_at: i64,
) -> Result<VerifiedWebhook, SignatureError> {
    let expectation = decode_hex_signature(header).map(Expectation::body)?;
    let mut verifier = Verifier::new(keys(tokens), expectation, 0);
    let mut from = 0;
    for &to in points {
        let to = to.min(body.len());
        // What the buffer will cost is known before the chunk is taken (the byte budget
        // reserves it): the capacity afterwards is never more than announced, except that a
        // first allocation is at least 8 bytes (Vec's minimum; a known nit of a few bytes).
        let announced = verifier.capacity_after(to - from);
        verifier.update(&body[from..to]);
        let capacity = verifier.capacity_after(0);
        assert!(
            capacity <= announced.max(8) && capacity >= to,
            "capacity {capacity} after {to} bytes, announced {announced}"
        );
        from = to;
        assert_eq!(verifier.received(), to);
    }
    verifier.update(&body[from..]);
    assert_eq!(verifier.received(), body.len());
    verifier.finish(app, received_at)
}
