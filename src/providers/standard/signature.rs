//! The symmetric (`v1`) scheme of Standard Webhooks: the sender signs `id.timestamp.body` with
//! HMAC-SHA256 under a `whsec_<base64>` secret and sends `webhook-id`, `webhook-timestamp` and
//! `webhook-signature` (a space-separated list of `version,base64` entries, several while a
//! secret rotates). The asymmetric `v1a` scheme is not supported; its entries are ignored, as
//! the reference libraries do.

use std::fmt;
use std::time::Duration;

use axum::http::HeaderMap;

use super::b64;
use crate::verify::{Content, Expectation, HmacKey, SignatureError, single_header};

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";
/// The prefix the spec puts on serialised secrets; optional here, as in the references.
pub const SECRET_PREFIX: &str = "whsec_";
/// The only signature version verified.
pub const VERSION: &str = "v1";
/// The longest `webhook-id` taken: it becomes the event id, a record header and a log field.
pub const MAX_ID_LEN: usize = 256;

/// A signing secret: `whsec_` (optional) and the base64 of the key, padded or not. Never
/// printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(HmacKey);

impl SigningSecret {
    pub fn parse(value: &str) -> Result<Self, &'static str> {
        let value = value.trim();
        let encoded = value.strip_prefix(SECRET_PREFIX).unwrap_or(value);
        if encoded.is_empty() {
            return Err("is empty");
        }
        let key = b64::decode(encoded.as_bytes())
            .ok_or("is not base64 (standard alphabet) after the optional whsec_ prefix")?;
        Ok(SigningSecret(HmacKey::new(key)))
    }

    pub fn key(&self) -> HmacKey {
        self.0.clone()
    }

    /// The `webhook-signature` value a sender holding this secret puts on `body`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let prefix = signed_prefix(id, timestamp);
        let tag = self.0.sign(&[prefix.as_bytes(), body]);
        format!("{VERSION},{}", b64::encode(&tag))
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret([redacted])")
    }
}

/// What is signed before the body.
fn signed_prefix(id: &str, timestamp: i64) -> String {
    format!("{id}.{timestamp}.")
}

/// What the headers of one request say the body must match. Every header must be given once;
/// the timestamp must be within `tolerance` of `now_ms` either way.
pub fn expectation(
    headers: &HeaderMap,
    now_ms: i64,
    tolerance: Duration,
) -> Result<Expectation, SignatureError> {
    let (Some(id), Some(timestamp), Some(signatures)) = (
        single_header(headers, ID_HEADER),
        single_header(headers, TIMESTAMP_HEADER),
        single_header(headers, SIGNATURE_HEADER),
    ) else {
        return Err(SignatureError::Missing);
    };
    let id = delivery_id(id)?;
    let timestamp = timestamp_seconds(timestamp)?;
    let signed_at_ms = timestamp
        .checked_mul(1000)
        .ok_or(SignatureError::Malformed)?;
    check_fresh(signed_at_ms, now_ms, tolerance)?;
    Ok(Expectation {
        signatures: v1_signatures(signatures)?,
        prefix: signed_prefix(id, timestamp).into_bytes(),
        delivery_id: Some(id.to_owned()),
        signed_at_ms: Some(signed_at_ms),
        content: Content::Body,
    })
}

/// 1 to 256 visible ASCII characters without `.`, which separates the signed parts (the spec
/// forbids it in ids for that reason).
fn delivery_id(value: &[u8]) -> Result<&str, SignatureError> {
    let usable = (1..=MAX_ID_LEN).contains(&value.len())
        && value.iter().all(|&c| c.is_ascii_graphic() && c != b'.');
    if !usable {
        return Err(SignatureError::Malformed);
    }
    std::str::from_utf8(value).map_err(|_| SignatureError::Malformed)
}

/// Whole seconds since the epoch in decimal digits: no sign, fraction, exponent or spaces.
fn timestamp_seconds(value: &[u8]) -> Result<i64, SignatureError> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(SignatureError::Malformed);
    }
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(SignatureError::Malformed)
}

/// Refuses a timestamp more than `tolerance` from now, either way. Now counts in whole seconds,
/// as the reference libraries count it, so a timestamp exactly `tolerance` away passes there
/// and here alike.
fn check_fresh(signed_at_ms: i64, now_ms: i64, tolerance: Duration) -> Result<(), SignatureError> {
    let now_ms = i128::from(now_ms.div_euclid(1000)) * 1000;
    let skew = (now_ms - i128::from(signed_at_ms)).unsigned_abs();
    if skew > tolerance.as_millis() {
        return Err(SignatureError::Expired);
    }
    Ok(())
}

/// The `v1` signatures of a `webhook-signature` value. Other versions (`v1a`, `v2`) and entries
/// that are not `v1,<base64 of 32 bytes>` are skipped, as the references skip them; a value with
/// none left is malformed.
fn v1_signatures(value: &[u8]) -> Result<Vec<[u8; 32]>, SignatureError> {
    let signatures: Vec<[u8; 32]> = value
        .split(|&c| c == b' ')
        .filter_map(|entry| {
            let (version, signature) = entry.split_at(entry.iter().position(|&c| c == b',')?);
            if version != VERSION.as_bytes() {
                return None;
            }
            b64::decode(&signature[1..])?.try_into().ok()
        })
        .collect();
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    Ok(signatures)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::verify::VerifiedWebhook;
    use proptest::prelude::*;

    const TOLERANCE: Duration = Duration::from_secs(300);

    /// Vector 1, shared by the reference libraries' tests: standard-webhooks/standard-webhooks
    /// @ b2fa7b8719fb75d326b591077f5d1b385cfcdfae, libraries/python/tests/test_webhooks.py
    /// (`test_sign_function`), libraries/javascript/src/webhook.test.ts,
    /// libraries/go/webhook_test.go (`TestWebhookSign`), and the PHP, C#, Ruby and Java tests
    /// (docs/research/providers.md B2). The negative cases below start from it, as theirs do.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    const NOW_MS: i64 = TS * 1000;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).expect("test header name"),
                value.parse().expect("test header value"),
            );
        }
        map
    }

    fn signed(id: &str, timestamp: &str, signature: &str) -> HeaderMap {
        headers(&[
            (ID_HEADER, id),
            (TIMESTAMP_HEADER, timestamp),
            (SIGNATURE_HEADER, signature),
        ])
    }

    fn verify_with(
        secrets: &[&str],
        headers: &HeaderMap,
        body: &[u8],
        now_ms: i64,
    ) -> Result<VerifiedWebhook, SignatureError> {
        let keys: Arc<[HmacKey]> = secrets
            .iter()
            .map(|s| SigningSecret::parse(s).expect("valid secret").key())
            .collect();
        let expectation = expectation(headers, now_ms, TOLERANCE)?;
        VerifiedWebhook::verify("src", keys, expectation, body, now_ms)
    }

    fn verify(
        headers: &HeaderMap,
        body: &[u8],
        now_ms: i64,
    ) -> Result<VerifiedWebhook, SignatureError> {
        verify_with(&[SECRET], headers, body, now_ms)
    }

    fn vector_1() -> HeaderMap {
        signed(ID, &TS.to_string(), SIGNATURE)
    }

    #[test]
    fn verifies_the_vector_shared_by_the_reference_libraries() {
        let secret = SigningSecret::parse(SECRET).expect("valid");
        assert_eq!(secret.sign(ID, TS, BODY), SIGNATURE);
        let v = verify(&vector_1(), BODY, NOW_MS).expect("authentic");
        assert_eq!(v.event_id(), ID);
        assert_eq!(v.signed_at_ms(), Some(NOW_MS));
        assert_eq!(&v.body()[..], BODY);
    }

    /// Vector 2: libraries/rust/src/lib.rs `test_sign` in the same snapshot (the only library
    /// with a vector of its own).
    #[test]
    fn verifies_the_rust_librarys_vector() {
        let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let id = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
        let ts = 1649367553;
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let expected = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
        let parsed = SigningSecret::parse(secret).expect("valid");
        assert_eq!(parsed.sign(id, ts, body), expected);
        let headers = signed(id, &ts.to_string(), expected);
        let v = verify_with(&[secret], &headers, body, ts * 1000).expect("authentic");
        assert_eq!(v.event_id(), id);
    }

    #[test]
    fn each_missing_header_is_missing() {
        let ts = TS.to_string();
        let all = [
            (ID_HEADER, ID),
            (TIMESTAMP_HEADER, ts.as_str()),
            (SIGNATURE_HEADER, SIGNATURE),
        ];
        for left_out in 0..all.len() {
            let some: Vec<(&str, &str)> = all
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != left_out)
                .map(|(_, h)| *h)
                .collect();
            assert_eq!(
                verify(&headers(&some), BODY, NOW_MS).err(),
                Some(SignatureError::Missing),
                "without {}",
                all[left_out].0
            );
        }
    }

    #[test]
    fn a_timestamp_that_is_not_whole_seconds_in_digits_is_malformed() {
        for ts in [
            "hello",
            "",
            "-1614265330",
            "+1614265330",
            "1614265330.0",
            "1.61426533e9",
            " 1614265330",
            "1614265330x",
            "99999999999999999999",
            // Seconds that overflow when made milliseconds.
            "9223372036854775807",
        ] {
            let headers = signed(ID, ts, SIGNATURE);
            assert_eq!(
                verify(&headers, BODY, NOW_MS).err(),
                Some(SignatureError::Malformed),
                "{ts:?}"
            );
        }
    }

    #[test]
    fn timestamps_beyond_the_tolerance_either_way_are_expired_and_the_boundary_passes() {
        let secret = SigningSecret::parse(SECRET).expect("valid");
        let at = |ts: i64| {
            let headers = signed(ID, &ts.to_string(), &secret.sign(ID, ts, BODY));
            verify(&headers, BODY, NOW_MS).map(|_| ()).err()
        };
        assert_eq!(at(TS - 301), Some(SignatureError::Expired), "too old");
        assert_eq!(at(TS + 301), Some(SignatureError::Expired), "too new");
        assert_eq!(at(TS - 300), None, "exactly the tolerance old");
        assert_eq!(at(TS + 300), None, "exactly the tolerance ahead");
        // Now counts in whole seconds, as in the references: 300.999 s old still passes.
        let headers = vector_1();
        assert!(verify(&headers, BODY, NOW_MS + 300_999).is_ok());
        assert_eq!(
            verify(&headers, BODY, NOW_MS + 301_000).err(),
            Some(SignatureError::Expired)
        );
    }

    #[test]
    fn the_tolerance_is_the_configured_one() {
        let headers = vector_1();
        let e = |tolerance| expectation(&headers, NOW_MS + 61_000, tolerance).map(|_| ());
        assert_eq!(
            e(Duration::from_secs(60)).err(),
            Some(SignatureError::Expired)
        );
        assert!(e(Duration::from_secs(61)).is_ok());
    }

    #[test]
    fn wrong_signatures_from_the_reference_tests_mismatch() {
        // Go and Java; Python (vector 1 with its last character changed); Rust.
        for sig in [
            "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=",
            "v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU=",
        ] {
            let headers = signed(ID, &TS.to_string(), sig);
            assert_eq!(
                verify(&headers, BODY, NOW_MS).err(),
                Some(SignatureError::Mismatch),
                "{sig}"
            );
        }
    }

    #[test]
    fn signatures_that_are_not_32_bytes_of_base64_are_malformed() {
        for sig in [
            // JS: not base64 of 32 bytes.
            "v1,dawfeoifkpqwoekfpqoekf",
            // Go, JS, Rust: a bare version.
            "v1,",
            // JS, Rust: the first 8 characters of a valid header.
            &SIGNATURE[..8],
            "v1",
            "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            "v1,g0hM9SsE-OTPJTGt_tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            "",
        ] {
            let headers = signed(ID, &TS.to_string(), sig);
            assert_eq!(
                verify(&headers, BODY, NOW_MS).err(),
                Some(SignatureError::Malformed),
                "{sig:?}"
            );
        }
    }

    #[test]
    fn one_valid_entry_among_others_is_enough() {
        // Python, JS, Go: wrong v1 and v2 entries around the valid one.
        let wrong = "Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";
        let header = format!("v1,{wrong} v2,{wrong} {SIGNATURE} v1,{wrong}");
        assert!(verify(&signed(ID, &TS.to_string(), &header), BODY, NOW_MS).is_ok());
        // Rust: three wrong v1 entries around the valid one, then without it.
        let wrong = [
            "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ=",
            "v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q=",
            "v1,9DfC1c3eeOrXB6w/5dIDydLNQaEyww5KalE5jLBZucE=",
        ];
        let header = format!("{} {} {SIGNATURE} {}", wrong[0], wrong[1], wrong[2]);
        assert!(verify(&signed(ID, &TS.to_string(), &header), BODY, NOW_MS).is_ok());
        let header = wrong.join(" ");
        assert_eq!(
            verify(&signed(ID, &TS.to_string(), &header), BODY, NOW_MS).err(),
            Some(SignatureError::Mismatch)
        );
        // Malformed entries beside a valid one are skipped, not fatal.
        let header = format!("v1, junk v1,AAAA {SIGNATURE}");
        assert!(verify(&signed(ID, &TS.to_string(), &header), BODY, NOW_MS).is_ok());
    }

    #[test]
    fn only_other_versions_is_malformed() {
        // Java `verifySignatureWithDifferentVersionThrowsException`, and the spec's asymmetric
        // version, which is not verified here.
        let valid = &SIGNATURE[3..];
        for header in [
            format!("v2,{valid}"),
            format!("v1a,{valid}"),
            format!("V1,{valid}"),
        ] {
            assert_eq!(
                verify(&signed(ID, &TS.to_string(), &header), BODY, NOW_MS).err(),
                Some(SignatureError::Malformed),
                "{header}"
            );
        }
    }

    #[test]
    fn secrets_are_taken_with_or_without_prefix_and_padding() {
        let bare = SECRET.strip_prefix(SECRET_PREFIX).expect("prefixed");
        assert!(verify_with(&[bare], &vector_1(), BODY, NOW_MS).is_ok());
        // Python's unpadded-secret test: a 23-byte key spelled without its '='.
        let key: Vec<u8> = (1..=23).collect();
        let padded = b64::encode(&key);
        assert!(padded.ends_with('='));
        let unpadded = format!("whsec_{}", padded.trim_end_matches('='));
        assert_eq!(
            SigningSecret::parse(&unpadded).expect("unpadded").key(),
            HmacKey::new(key)
        );
        let secret = SigningSecret::parse(&unpadded).expect("unpadded");
        let header = secret.sign(ID, TS, BODY);
        assert!(
            verify_with(
                &[&unpadded],
                &signed(ID, &TS.to_string(), &header),
                BODY,
                NOW_MS
            )
            .is_ok()
        );
    }

    #[test]
    fn empty_and_non_base64_secrets_are_refused_without_echoing_them() {
        assert_eq!(SigningSecret::parse("").err(), Some("is empty"));
        assert_eq!(SigningSecret::parse("whsec_").err(), Some("is empty"));
        assert_eq!(SigningSecret::parse("  whsec_ ").err(), Some("is empty"));
        for bad in ["whsec_not base64!", "whsec_abc-_def", "whsec_A", "hunter2!"] {
            let why = SigningSecret::parse(bad).expect_err("refused");
            assert!(!why.contains(bad), "{why}");
        }
        let secret = SigningSecret::parse(SECRET).expect("valid");
        assert_eq!(format!("{secret:?}"), "SigningSecret([redacted])");
    }

    #[test]
    fn a_tampered_body_or_another_secret_mismatches() {
        // Not covered by any reference test.
        let tampered = br#"{"test": 2432232315}"#;
        assert_eq!(
            verify(&vector_1(), tampered, NOW_MS).err(),
            Some(SignatureError::Mismatch)
        );
        let other = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        assert_eq!(
            verify_with(&[other], &vector_1(), BODY, NOW_MS).err(),
            Some(SignatureError::Mismatch)
        );
        // During a rotation either secret may have signed.
        assert!(verify_with(&[other, SECRET], &vector_1(), BODY, NOW_MS).is_ok());
    }

    #[test]
    fn the_id_and_timestamp_are_signed() {
        let another_id = signed("msg_other", &TS.to_string(), SIGNATURE);
        assert_eq!(
            verify(&another_id, BODY, NOW_MS).err(),
            Some(SignatureError::Mismatch)
        );
        let another_ts = signed(ID, &(TS + 1).to_string(), SIGNATURE);
        assert_eq!(
            verify(&another_ts, BODY, NOW_MS).err(),
            Some(SignatureError::Mismatch)
        );
    }

    #[test]
    fn any_doubled_header_is_refused() {
        let ts = TS.to_string();
        for doubled in [ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER] {
            let mut map = vector_1();
            let value = map.get(doubled).expect("present").clone();
            map.append(doubled, value);
            assert_eq!(
                verify(&map, BODY, NOW_MS).err(),
                Some(SignatureError::Malformed),
                "{doubled}"
            );
        }
        // Even two identical valid signature headers: which one would a proxy keep?
        let twice = headers(&[
            (ID_HEADER, ID),
            (TIMESTAMP_HEADER, &ts),
            (SIGNATURE_HEADER, SIGNATURE),
            (
                SIGNATURE_HEADER,
                "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
            ),
        ]);
        assert_eq!(
            verify(&twice, BODY, NOW_MS).err(),
            Some(SignatureError::Malformed)
        );
    }

    #[test]
    fn ids_must_be_short_visible_ascii_without_dots() {
        let secret = SigningSecret::parse(SECRET).expect("valid");
        let check = |id: &str| {
            let headers = signed(id, &TS.to_string(), &secret.sign(id, TS, BODY));
            verify(&headers, BODY, NOW_MS).map(|v| v.event_id().to_owned())
        };
        let longest = "m".repeat(MAX_ID_LEN);
        assert_eq!(check(&longest), Ok(longest.clone()));
        for bad in [
            "m".repeat(MAX_ID_LEN + 1),
            "msg.1".to_owned(),
            "msg 1".to_owned(),
            String::new(),
        ] {
            assert_eq!(
                check(&bad).err(),
                Some(SignatureError::Malformed),
                "{bad:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn sign_then_verify_round_trips(
            key in proptest::collection::vec(any::<u8>(), 1..64),
            id in "[!-\\-/-~]{1,40}",
            ts in 0i64..4_000_000_000,
            body in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let secret_text = format!("whsec_{}", b64::encode(&key));
            let secret = SigningSecret::parse(&secret_text).expect("valid");
            let headers = signed(&id, &ts.to_string(), &secret.sign(&id, ts, &body));
            let v = verify_with(&[&secret_text], &headers, &body, ts * 1000);
            prop_assert_eq!(v.map(|v| v.event_id().to_owned()), Ok(id));
        }

        #[test]
        fn any_flipped_body_bit_mismatches(body in proptest::collection::vec(any::<u8>(), 1..256), idx in any::<prop::sample::Index>(), bit in 0u8..8) {
            let secret = SigningSecret::parse(SECRET).expect("valid");
            let headers = signed(ID, &TS.to_string(), &secret.sign(ID, TS, &body));
            let mut tampered = body.clone();
            let i = idx.index(tampered.len());
            tampered[i] ^= 1 << bit;
            prop_assert_eq!(verify(&headers, &tampered, NOW_MS).err(), Some(SignatureError::Mismatch));
        }
    }
}
