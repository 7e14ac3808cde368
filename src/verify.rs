//! Signature verification on the raw body bytes. [`VerifiedWebhook`] can only be built here, so
//! bytes that were not verified cannot reach Kafka by construction.

use std::fmt;

use bytes::{Bytes, BytesMut};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::config::{AppId, Secret};

/// The header Sendbird documents.
pub const SIGNATURE_HEADER: &str = "x-sendbird-signature";
/// An undocumented duplicate Sendbird also sends; read only when the first is absent.
pub const FALLBACK_SIGNATURE_HEADER: &str = "x-signature";

type HmacSha256 = Hmac<Sha256>;

/// A Sendbird master API token, the HMAC key. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(Secret);

impl ApiToken {
    pub fn parse(value: &str) -> Result<Self, &'static str> {
        let value = value.trim();
        if value.is_empty() {
            return Err("is empty");
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("contains whitespace or control characters");
        }
        // Commas separate tokens in HOOKBRIDGE_SENDBIRD_API_TOKENS; a token never holds one, so
        // `sign` given a whole rotation list refuses it instead of signing with "a,b".
        if value.contains(',') {
            return Err("contains a comma (give one token, not a list)");
        }
        Ok(ApiToken(Secret::new(value)))
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(self.0.expose().as_bytes())
            .expect("HMAC-SHA256 accepts keys of any length")
    }

    /// The lowercase hex signature a sender holding this token puts on `body`.
    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken([redacted])")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header missing")]
    Missing,
    #[error("signature is not 64 hex digits")]
    Malformed,
    #[error("signature does not match any token")]
    Mismatch,
}

impl SignatureError {
    /// Bounded label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            SignatureError::Missing => "missing",
            SignatureError::Malformed => "malformed",
            SignatureError::Mismatch => "mismatch",
        }
    }
}

/// The 32 bytes of a signature header: present and 64 hex digits. The handler calls this
/// before reading the body, so a request without a usable signature is refused early.
pub fn decode_signature(signature: Option<&[u8]>) -> Result<[u8; 32], SignatureError> {
    let signature = signature.ok_or(SignatureError::Missing)?.trim_ascii();
    if signature.len() != 64 {
        return Err(SignatureError::Malformed);
    }
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(signature, &mut bytes).map_err(|_| SignatureError::Malformed)?;
    Ok(bytes)
}

/// Checks `signature` (hex, as sent) against every token; comparison is constant-time.
pub fn verify_signature(
    tokens: &[ApiToken],
    body: &[u8],
    signature: Option<&[u8]>,
) -> Result<(), SignatureError> {
    let mut verifier = StreamingVerifier::new(tokens, signature, 0)?;
    verifier.macs_only(body);
    verifier.check().map(|_| ())
}

/// Verification as the body arrives: every chunk goes through each token's HMAC and the
/// event-id digest once, and is kept, since the record needs the bytes anyway. A forged body
/// therefore costs no pass of its own after the last byte.
pub struct StreamingVerifier {
    expected: [u8; 32],
    macs: Vec<HmacSha256>,
    digest: Sha256,
    body: BytesMut,
}

impl StreamingVerifier {
    /// Fails at once, before any byte is read, when the signature is missing or malformed.
    /// `capacity` is the declared length, when there is one.
    pub fn new(
        tokens: &[ApiToken],
        signature: Option<&[u8]>,
        capacity: usize,
    ) -> Result<Self, SignatureError> {
        let expected = decode_signature(signature)?;
        Ok(StreamingVerifier {
            expected,
            macs: tokens.iter().map(ApiToken::mac).collect(),
            digest: Sha256::new(),
            body: BytesMut::with_capacity(capacity),
        })
    }

    pub fn update(&mut self, chunk: &[u8]) {
        self.macs_only(chunk);
        self.digest.update(chunk);
        self.body.extend_from_slice(chunk);
    }

    fn macs_only(&mut self, chunk: &[u8]) {
        for mac in &mut self.macs {
            mac.update(chunk);
        }
    }

    /// Bytes received so far.
    pub fn received(&self) -> usize {
        self.body.len()
    }

    /// The buffer's capacity once `more` bytes are added: what the body costs in memory, which
    /// can exceed what was received when the buffer grows.
    pub fn capacity_after(&self, more: usize) -> usize {
        let needed = self.body.len() + more;
        if needed <= self.body.capacity() {
            self.body.capacity()
        } else {
            // BytesMut at least doubles when it grows.
            needed.max(self.body.capacity() * 2)
        }
    }

    /// Every token is tried, so the time taken does not tell which one (if any) matched.
    fn check(self) -> Result<(Sha256, BytesMut), SignatureError> {
        let mut matched = false;
        for mac in self.macs {
            matched |= mac.verify_slice(&self.expected).is_ok();
        }
        if matched {
            Ok((self.digest, self.body))
        } else {
            Err(SignatureError::Mismatch)
        }
    }

    /// The verified webhook, once the whole body arrived and matched a token.
    pub fn finish(
        self,
        app_id: &AppId,
        received_at_ms: i64,
    ) -> Result<VerifiedWebhook, SignatureError> {
        let (digest, body) = self.check()?;
        Ok(VerifiedWebhook {
            app_id: app_id.clone(),
            body: body.freeze(),
            event_id: hex::encode(digest.finalize()),
            received_at_ms,
        })
    }
}

/// The tokens an app accepts now. Swapped whole when a mounted tokens file changes, so a
/// request sees either the old set or the new one.
#[derive(Debug)]
pub struct TokenSet(std::sync::RwLock<std::sync::Arc<[ApiToken]>>);

impl TokenSet {
    pub fn new(tokens: Vec<ApiToken>) -> Self {
        TokenSet(std::sync::RwLock::new(tokens.into()))
    }

    pub fn current(&self) -> std::sync::Arc<[ApiToken]> {
        match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the set; `true` when it changed.
    pub fn replace(&self, tokens: Vec<ApiToken>) -> bool {
        let mut guard = match self.0.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if guard[..] == tokens[..] {
            return false;
        }
        *guard = tokens.into();
        true
    }
}

/// Re-reads each app's tokens file every `interval`. A file that cannot be read or holds no
/// valid token leaves the current set in place (a half-written Secret must not lock senders out).
/// A changed file is installed only once two reads one interval apart agree, so a file caught
/// mid-write (the old token, then half of the new one) never becomes a key. Kubernetes swaps mounted Secrets atomically;
/// others should write a new file and rename it into place.
pub async fn watch_token_files(
    apps: Vec<(
        AppId,
        Vec<ApiToken>,
        std::path::PathBuf,
        std::sync::Arc<TokenSet>,
    )>,
    interval: std::time::Duration,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut previous: Vec<Option<Vec<ApiToken>>> = vec![None; apps.len()];
    loop {
        tick.tick().await;
        for ((app_id, inline, path, set), previous) in apps.iter().zip(previous.iter_mut()) {
            // File reads block; keep them off the runtime's worker threads.
            let file = path.clone();
            let read = tokio::task::spawn_blocking(move || crate::config::read_tokens_file(&file))
                .await
                .unwrap_or_else(|e| Err(format!("reading task failed: {e}")));
            let from_file = match read {
                Ok(tokens) if !tokens.is_empty() => tokens,
                Ok(_) => {
                    tracing::warn!(app_id = %app_id, "tokens file holds no token; keeping the current ones");
                    *previous = None;
                    continue;
                }
                Err(why) => {
                    tracing::warn!(app_id = %app_id, error = why, "cannot reload API tokens; keeping the current ones");
                    metrics::counter!(crate::telemetry::TOKEN_RELOAD_FAILURES, "app_id" => app_id.to_string()).increment(1);
                    *previous = None;
                    continue;
                }
            };
            let stable = previous.as_ref() == Some(&from_file);
            *previous = Some(from_file.clone());
            if !stable {
                continue;
            }
            let tokens: Vec<ApiToken> = inline.iter().cloned().chain(from_file).collect();
            let count = tokens.len();
            if set.replace(tokens) {
                metrics::gauge!(crate::telemetry::API_TOKENS, "app_id" => app_id.to_string())
                    .set(count as f64);
                tracing::info!(app_id = %app_id, tokens = count, "API tokens reloaded");
            }
        }
    }
}

/// A body whose signature checked out for `app_id`, with what is derived from its bytes.
#[derive(Debug, Clone)]
pub struct VerifiedWebhook {
    app_id: AppId,
    body: Bytes,
    event_id: String,
    received_at_ms: i64,
}

impl VerifiedWebhook {
    /// Verifies a body already in memory; [`StreamingVerifier::finish`] is the other (and only
    /// other) constructor.
    pub fn verify(
        app_id: &AppId,
        tokens: &[ApiToken],
        body: Bytes,
        signature: Option<&[u8]>,
        received_at_ms: i64,
    ) -> Result<Self, SignatureError> {
        let mut verifier = StreamingVerifier::new(tokens, signature, body.len())?;
        verifier.update(&body);
        verifier.finish(app_id, received_at_ms)
    }

    pub fn app_id(&self) -> &AppId {
        &self.app_id
    }
    /// The body exactly as received.
    pub fn body(&self) -> &Bytes {
        &self.body
    }
    /// Lowercase hex SHA-256 of the body: identical retries share it.
    pub fn event_id(&self) -> &str {
        &self.event_id
    }
    pub fn received_at_ms(&self) -> i64 {
        self.received_at_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn token(s: &str) -> ApiToken {
        ApiToken::parse(s).expect("valid token")
    }

    #[test]
    fn matches_a_known_hmac_sha256_vector() {
        // RFC 4231 test case 2: key "Jefe".
        let sig = token("Jefe").sign(b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn accepts_any_of_several_tokens_during_rotation() {
        let old = token("old");
        let new = token("new");
        let body = br#"{"category":"group_channel:join"}"#;
        let sig = new.sign(body);
        assert_eq!(
            verify_signature(&[old.clone(), new], body, Some(sig.as_bytes())),
            Ok(())
        );
        assert_eq!(
            verify_signature(&[old], body, Some(sig.as_bytes())),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn rejects_missing_and_malformed_signatures() {
        let t = [token("t")];
        assert_eq!(
            verify_signature(&t, b"x", None),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_signature(&t, b"x", Some(b"abc")),
            Err(SignatureError::Malformed)
        );
        let not_hex = "z".repeat(64);
        assert_eq!(
            verify_signature(&t, b"x", Some(not_hex.as_bytes())),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn uppercase_hex_is_the_same_signature() {
        let t = token("t");
        let sig = t.sign(b"body").to_uppercase();
        assert_eq!(
            verify_signature(&[t], b"body", Some(sig.as_bytes())),
            Ok(())
        );
    }

    #[test]
    fn event_id_is_sha256_of_the_raw_body() {
        let t = token("t");
        let body = Bytes::from_static(b"{}");
        let sig = t.sign(&body);
        let app = AppId::parse("A").expect("valid app id");
        let v =
            VerifiedWebhook::verify(&app, &[t], body, Some(sig.as_bytes()), 7).expect("verified");
        assert_eq!(
            v.event_id(),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(v.received_at_ms(), 7);
    }

    #[test]
    fn token_debug_output_is_redacted() {
        assert_eq!(format!("{:?}", token("s3cr3t")), "ApiToken([redacted])");
    }

    proptest! {
        #[test]
        fn sign_then_verify_round_trips(key in "[!-+--~]{1,64}", body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let t = token(&key);
            let sig = t.sign(&body);
            prop_assert_eq!(verify_signature(&[t], &body, Some(sig.as_bytes())), Ok(()));
        }

        #[test]
        fn any_flipped_body_byte_fails(key in "[!-+--~]{1,32}", body in proptest::collection::vec(any::<u8>(), 1..256), idx in any::<prop::sample::Index>(), bit in 0u8..8) {
            let t = token(&key);
            let sig = t.sign(&body);
            let mut tampered = body.clone();
            let i = idx.index(tampered.len());
            tampered[i] ^= 1 << bit;
            prop_assert_eq!(verify_signature(&[t], &tampered, Some(sig.as_bytes())), Err(SignatureError::Mismatch));
        }

        #[test]
        fn any_flipped_signature_digit_fails(body in proptest::collection::vec(any::<u8>(), 0..256), idx in 0usize..64) {
            let t = token("key");
            let mut sig = t.sign(&body).into_bytes();
            sig[idx] = if sig[idx] == b'0' { b'1' } else { b'0' };
            prop_assert_eq!(verify_signature(&[t], &body, Some(&sig)), Err(SignatureError::Mismatch));
        }

        #[test]
        fn any_chunking_verifies_like_one_shot(body in proptest::collection::vec(any::<u8>(), 0..512), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8), forged in any::<bool>()) {
            let t = token("key");
            let app = AppId::parse("A").expect("valid app id");
            let mut sig = t.sign(&body);
            if forged {
                sig = token("other").sign(&body);
            }
            let one_shot = VerifiedWebhook::verify(&app, std::slice::from_ref(&t), Bytes::from(body.clone()), Some(sig.as_bytes()), 1);
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(body.len() + 1)).collect();
            points.sort_unstable();
            let mut v = StreamingVerifier::new(&[t], Some(sig.as_bytes()), 0).expect("well-formed");
            let mut from = 0;
            for p in points.into_iter().chain([body.len()]) {
                v.update(&body[from..p]);
                from = p;
            }
            prop_assert_eq!(v.received(), body.len());
            let streamed = v.finish(&app, 1);
            match (one_shot, streamed) {
                (Ok(a), Ok(b)) => {
                    prop_assert_eq!(a.body(), b.body());
                    prop_assert_eq!(&b.body()[..], &body[..]);
                    prop_assert_eq!(a.event_id(), b.event_id());
                }
                (Err(a), Err(b)) => prop_assert_eq!(a, b),
                (a, b) => prop_assert!(false, "one-shot {:?} but streamed {:?}", a.is_ok(), b.is_ok()),
            }
        }

        #[test]
        fn wrong_token_fails(a in "[!-+--~]{1,32}", b in "[!-+--~]{1,32}", body in proptest::collection::vec(any::<u8>(), 0..256)) {
            prop_assume!(a != b);
            let sig = token(&a).sign(&body);
            prop_assert_eq!(verify_signature(&[token(&b)], &body, Some(sig.as_bytes())), Err(SignatureError::Mismatch));
        }

        #[test]
        fn truncated_signature_fails(body in proptest::collection::vec(any::<u8>(), 0..256), cut in 0usize..64) {
            let t = token("key");
            let sig = t.sign(&body);
            prop_assert!(verify_signature(&[t], &body, Some(&sig.as_bytes()[..cut])).is_err());
        }
    }
}
