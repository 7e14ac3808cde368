//! Signature verification on the raw body bytes, for every provider. A provider says what to
//! expect from a request's headers (an [`Expectation`]: the signatures sent, bytes signed before
//! the body, the sender's delivery id); the [`Verifier`] checks the body against it as the body
//! arrives. [`VerifiedWebhook`] can only be built here, so bytes that were not verified cannot
//! reach Kafka by construction.

use std::fmt;
use std::io::Read;
use std::sync::{Arc, RwLock};

use axum::http::HeaderMap;
use bytes::{Bytes, BytesMut};
use hmac::digest::CtOutput;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// An HMAC-SHA256 key (a token, an API secret, a decoded signing secret). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct HmacKey(Vec<u8>);

impl HmacKey {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        HmacKey(bytes.into())
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC-SHA256 accepts keys of any length")
    }

    /// The HMAC-SHA256 of `parts` joined, as a sender holding this key computes it.
    pub fn sign(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.mac();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacKey([redacted])")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header missing")]
    Missing,
    #[error("signature or signed header malformed")]
    Malformed,
    #[error("signature does not match any secret")]
    Mismatch,
    /// The signed timestamp is outside the tolerance, in either direction.
    #[error("signed timestamp outside the tolerance")]
    Expired,
    /// The body is compressed and does not decompress within the limit.
    #[error("compressed body cannot be read")]
    BadEncoding,
}

impl SignatureError {
    /// Every [`SignatureError::reason`], for series that exist before the first failure.
    pub const REASONS: [&'static str; 5] = [
        "missing",
        "malformed",
        "mismatch",
        "expired",
        "bad_encoding",
    ];

    /// Bounded label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            SignatureError::Missing => "missing",
            SignatureError::Malformed => "malformed",
            SignatureError::Mismatch => "mismatch",
            SignatureError::Expired => "expired",
            SignatureError::BadEncoding => "bad_encoding",
        }
    }
}

/// The value of a header that must be given once: `None` when absent, and a value that no
/// signature parser accepts when given twice (which one would a proxy keep?).
pub fn single_header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    const AMBIGUOUS: &[u8] = b"(given twice)";
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    match values.next() {
        Some(_) => Some(AMBIGUOUS),
        None => Some(first.as_bytes()),
    }
}

/// 64 hex digits (either case) as the 32 bytes of a signature.
pub fn decode_hex_signature(signature: Option<&[u8]>) -> Result<[u8; 32], SignatureError> {
    let signature = signature.ok_or(SignatureError::Missing)?.trim_ascii();
    if signature.len() != 64 {
        return Err(SignatureError::Malformed);
    }
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(signature, &mut bytes).map_err(|_| SignatureError::Malformed)?;
    Ok(bytes)
}

/// What the signed bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// The body exactly as received.
    Body,
    /// The body, or, when it starts with the gzip magic bytes, the body decompressed (at most
    /// `max_bytes`): the sender signs before compressing.
    BodyOrGunzipped { max_bytes: usize },
}

/// What a request's headers say the body must match, read before the body.
#[derive(Debug, Clone)]
pub struct Expectation {
    /// Signatures sent; the body is authentic when any secret's HMAC equals any of them.
    pub signatures: Vec<[u8; 32]>,
    /// Bytes signed before the content (for example `id.timestamp.`).
    pub prefix: Vec<u8>,
    /// The sender's own delivery id, kept across retries; without one the event id is the
    /// SHA-256 of the body.
    pub delivery_id: Option<String>,
    /// The time the sender signed the request, when it says.
    pub signed_at_ms: Option<i64>,
    pub content: Content,
}

impl Expectation {
    /// One signature over the body, no delivery id.
    pub fn body(signature: [u8; 32]) -> Self {
        Expectation {
            signatures: vec![signature],
            prefix: Vec::new(),
            delivery_id: None,
            signed_at_ms: None,
            content: Content::Body,
        }
    }
}

/// Verification as the body arrives: every chunk goes through each key's HMAC (and the event-id
/// digest when needed) once, and is kept, since the record needs the bytes anyway. A forged
/// body therefore costs no pass of its own after the last byte.
pub struct Verifier {
    keys: Arc<[HmacKey]>,
    expectation: Expectation,
    macs: Vec<HmacSha256>,
    digest: Option<Sha256>,
    body: BytesMut,
}

impl Verifier {
    /// `capacity` is the declared length, when there is one.
    pub fn new(keys: Arc<[HmacKey]>, expectation: Expectation, capacity: usize) -> Self {
        let macs = keys
            .iter()
            .map(|k| {
                let mut mac = k.mac();
                mac.update(&expectation.prefix);
                mac
            })
            .collect();
        Verifier {
            digest: expectation.delivery_id.is_none().then(Sha256::new),
            keys,
            expectation,
            macs,
            body: BytesMut::with_capacity(capacity),
        }
    }

    pub fn update(&mut self, chunk: &[u8]) {
        for mac in &mut self.macs {
            mac.update(chunk);
        }
        if let Some(digest) = &mut self.digest {
            digest.update(chunk);
        }
        self.body.extend_from_slice(chunk);
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

    /// Every key is compared with every signature, so the time taken does not tell which one
    /// (if any) matched.
    fn matches(macs: Vec<HmacSha256>, signatures: &[[u8; 32]]) -> bool {
        let mut matched = false;
        for mac in macs {
            let tag = mac.finalize();
            for expected in signatures {
                matched |= tag == CtOutput::new((*expected).into());
            }
        }
        matched
    }

    /// When the signed content is the body decompressed: the size it inflates to, as the gzip
    /// trailer says (checked again while inflating), so the caller can reserve that room first
    /// and inflate off the async workers. `None` when the body itself is signed. A gzip body
    /// that would inflate past the limit is refused here, before any work.
    pub fn inflated_size(&self) -> Result<Option<usize>, SignatureError> {
        match self.expectation.content {
            Content::BodyOrGunzipped { max_bytes } if self.body.starts_with(&GZIP_MAGIC) => {
                let size = gzip_trailer_size(&self.body).ok_or(SignatureError::BadEncoding)?;
                if size > max_bytes {
                    return Err(SignatureError::BadEncoding);
                }
                Ok(Some(size))
            }
            _ => Ok(None),
        }
    }

    /// The verified webhook, once the whole body arrived and matched a key. For a gzip body
    /// ([`Verifier::inflated_size`] is `Some`) this inflates it first: milliseconds of CPU for
    /// large bodies, so callers run it on the blocking pool.
    pub fn finish(
        self,
        source_id: &str,
        received_at_ms: i64,
    ) -> Result<VerifiedWebhook, SignatureError> {
        let inflated = self.inflated_size()?;
        let body = self.body.freeze();
        let content = match inflated {
            None => {
                if !Self::matches(self.macs, &self.expectation.signatures) {
                    return Err(SignatureError::Mismatch);
                }
                body.clone()
            }
            Some(size) => {
                let content = gunzip(&body, size)?;
                let macs = self
                    .keys
                    .iter()
                    .map(|k| {
                        let mut mac = k.mac();
                        mac.update(&self.expectation.prefix);
                        mac.update(&content);
                        mac
                    })
                    .collect();
                if !Self::matches(macs, &self.expectation.signatures) {
                    return Err(SignatureError::Mismatch);
                }
                content
            }
        };
        let event_id = match (self.expectation.delivery_id, self.digest) {
            (Some(id), _) => id,
            (None, Some(digest)) => hex::encode(digest.finalize()),
            (None, None) => hex::encode(Sha256::digest(&body)),
        };
        Ok(VerifiedWebhook {
            source_id: source_id.to_owned(),
            decompressed: inflated.is_some(),
            body,
            content,
            event_id,
            received_at_ms,
            signed_at_ms: self.expectation.signed_at_ms,
        })
    }
}

/// What every gzip member starts with (RFC 1952: ID1, ID2).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The uncompressed size a gzip body's trailer states (ISIZE, the size modulo 2^32), when the
/// body is long enough to have one.
fn gzip_trailer_size(body: &[u8]) -> Option<usize> {
    let trailer: [u8; 4] = body.get(body.len().checked_sub(4)?..)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(trailer)).ok()
}

/// Decompresses a gzip body into exactly `size` bytes, the size its trailer states.
///
/// Only what the signature covers may reach Kafka, and the body is kept as received, so the
/// unsigned parts of a gzip body are held to the fixed ones: one member and nothing after it
/// (trailing bytes would otherwise ride along unverified), and no optional header fields (file
/// name, comment, extra field, header CRC: RFC 1952's FLG must be 0, as gzip writers set it by
/// default). What is left unsigned is the fixed header (method, mtime, XFL, OS); the decoder
/// checks the trailer's CRC-32 and size against the content.
fn gunzip(body: &[u8], size: usize) -> Result<Bytes, SignatureError> {
    const FLG: usize = 3;
    if body.get(FLG) != Some(&0) {
        return Err(SignatureError::BadEncoding);
    }
    let mut out = Vec::with_capacity(size);
    let mut decoder = flate2::bufread::GzDecoder::new(body);
    let limit = u64::try_from(size).unwrap_or(u64::MAX).saturating_add(1);
    (&mut decoder)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|_| SignatureError::BadEncoding)?;
    if out.len() != size || !decoder.into_inner().is_empty() {
        return Err(SignatureError::BadEncoding);
    }
    Ok(Bytes::from(out))
}

/// The keys a source accepts now. Swapped whole when a mounted secrets file changes, so a
/// request sees either the old set or the new one.
#[derive(Debug)]
pub struct KeySet(RwLock<Arc<[HmacKey]>>);

impl KeySet {
    pub fn new(keys: Vec<HmacKey>) -> Self {
        KeySet(RwLock::new(keys.into()))
    }

    pub fn current(&self) -> Arc<[HmacKey]> {
        match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the set; `true` when it changed.
    pub fn replace(&self, keys: Vec<HmacKey>) -> bool {
        let mut guard = match self.0.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if guard[..] == keys[..] {
            return false;
        }
        *guard = keys.into();
        true
    }
}

/// A body whose signature checked out for a source, with what is derived from it.
#[derive(Debug, Clone)]
pub struct VerifiedWebhook {
    source_id: String,
    body: Bytes,
    content: Bytes,
    decompressed: bool,
    event_id: String,
    received_at_ms: i64,
    signed_at_ms: Option<i64>,
}

impl VerifiedWebhook {
    /// Verifies a body already in memory; [`Verifier::finish`] is the other (and only other)
    /// constructor.
    pub fn verify(
        source_id: &str,
        keys: Arc<[HmacKey]>,
        expectation: Expectation,
        body: &[u8],
        received_at_ms: i64,
    ) -> Result<Self, SignatureError> {
        let mut verifier = Verifier::new(keys, expectation, body.len());
        verifier.update(body);
        verifier.finish(source_id, received_at_ms)
    }

    /// The configured id of the source it came from.
    pub fn source_id(&self) -> &str {
        &self.source_id
    }
    /// The body exactly as received.
    pub fn body(&self) -> &Bytes {
        &self.body
    }
    /// The bytes the signature covers after the prefix: the body, or the body decompressed.
    pub fn content(&self) -> &Bytes {
        &self.content
    }
    /// Whether `content` is the body decompressed (a buffer of its own), rather than the body.
    pub fn was_decompressed(&self) -> bool {
        self.decompressed
    }
    /// The sender's delivery id, else the lowercase hex SHA-256 of the body: identical retries
    /// share it.
    pub fn event_id(&self) -> &str {
        &self.event_id
    }
    pub fn received_at_ms(&self) -> i64 {
        self.received_at_ms
    }
    /// When the sender signed it, if the request says.
    pub fn signed_at_ms(&self) -> Option<i64> {
        self.signed_at_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys(k: &[&str]) -> Arc<[HmacKey]> {
        k.iter().map(|k| HmacKey::new(k.as_bytes())).collect()
    }

    fn check(
        k: &[&str],
        body: &[u8],
        signature: [u8; 32],
    ) -> Result<VerifiedWebhook, SignatureError> {
        VerifiedWebhook::verify("s", keys(k), Expectation::body(signature), body, 1)
    }

    #[test]
    fn every_reason_is_listed_for_preregistration() {
        // An exhaustive match: a new variant does not compile until it has a place in REASONS.
        let index = |e: &SignatureError| match e {
            SignatureError::Missing => 0,
            SignatureError::Malformed => 1,
            SignatureError::Mismatch => 2,
            SignatureError::Expired => 3,
            SignatureError::BadEncoding => 4,
        };
        for e in [
            SignatureError::Missing,
            SignatureError::Malformed,
            SignatureError::Mismatch,
            SignatureError::Expired,
            SignatureError::BadEncoding,
        ] {
            assert_eq!(SignatureError::REASONS[index(&e)], e.reason(), "{e:?}");
        }
    }

    #[test]
    fn matches_a_known_hmac_sha256_vector() {
        // RFC 4231 test case 2: key "Jefe".
        let sig = HmacKey::new(*b"Jefe").sign(&[b"what do ya ", b"want for nothing?"]);
        assert_eq!(
            hex::encode(sig),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn any_key_and_any_signature_may_match() {
        let body = b"{}";
        let sig = HmacKey::new(*b"new").sign(&[body]);
        assert!(check(&["old", "new"], body, sig).is_ok());
        assert_eq!(
            check(&["old"], body, sig).err(),
            Some(SignatureError::Mismatch)
        );
        let mut e = Expectation::body([0; 32]);
        e.signatures.push(sig);
        assert!(VerifiedWebhook::verify("s", keys(&["new"]), e, body, 1).is_ok());
    }

    #[test]
    fn the_prefix_is_signed_and_the_delivery_id_is_the_event_id() {
        let key = HmacKey::new(*b"k");
        let sig = key.sign(&[b"id.5.", b"body"]);
        let e = Expectation {
            signatures: vec![sig],
            prefix: b"id.5.".to_vec(),
            delivery_id: Some("id".into()),
            signed_at_ms: Some(5000),
            content: Content::Body,
        };
        let v = VerifiedWebhook::verify("s", keys(&["k"]), e.clone(), b"body", 1).expect("ok");
        assert_eq!(v.event_id(), "id");
        assert_eq!(v.signed_at_ms(), Some(5000));
        let mut no_prefix = e;
        no_prefix.prefix.clear();
        assert!(VerifiedWebhook::verify("s", keys(&["k"]), no_prefix, b"body", 1).is_err());
    }

    #[test]
    fn event_id_without_a_delivery_id_is_sha256_of_the_raw_body() {
        let sig = HmacKey::new(*b"t").sign(&[b"{}"]);
        let v = check(&["t"], b"{}", sig).expect("verified");
        assert_eq!(
            v.event_id(),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(v.received_at_ms(), 1);
    }

    #[test]
    fn gzip_bodies_are_checked_decompressed_and_kept_as_received() {
        use std::io::Write;
        let json = br#"{"type":"message.new"}"#;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(json).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let key = HmacKey::new(*b"secret");
        let mut e = Expectation::body(key.sign(&[json]));
        e.content = Content::BodyOrGunzipped { max_bytes: 1024 };
        let v = VerifiedWebhook::verify("s", keys(&["secret"]), e.clone(), &gz, 1).expect("ok");
        assert_eq!(&v.body()[..], &gz[..]);
        assert_eq!(&v.content()[..], json);
        assert!(v.was_decompressed());
        // Signed over the compressed bytes: refused, as the sender never signs those.
        let mut over_gz = e.clone();
        over_gz.signatures = vec![key.sign(&[&gz])];
        assert!(VerifiedWebhook::verify("s", keys(&["secret"]), over_gz, &gz, 1).is_err());
        // A body that would inflate past the limit.
        let mut small = e;
        small.content = Content::BodyOrGunzipped { max_bytes: 8 };
        assert_eq!(
            VerifiedWebhook::verify("s", keys(&["secret"]), small, &gz, 1).err(),
            Some(SignatureError::BadEncoding)
        );
    }

    #[test]
    fn only_a_plain_single_gzip_member_is_taken() {
        use std::io::Write;
        let json = br#"{"type":"message.new"}"#;
        let gzip = |name: Option<&str>| {
            let mut builder = flate2::GzBuilder::new();
            if let Some(name) = name {
                builder = builder.filename(name);
            }
            let mut gz = builder.write(Vec::new(), flate2::Compression::default());
            gz.write_all(json).expect("gzip");
            gz.finish().expect("gzip")
        };
        let key = HmacKey::new(*b"secret");
        let mut e = Expectation::body(key.sign(&[json]));
        e.content = Content::BodyOrGunzipped { max_bytes: 1024 };
        let verify =
            |body: &[u8]| VerifiedWebhook::verify("s", keys(&["secret"]), e.clone(), body, 1);
        let plain = gzip(None);
        assert!(verify(&plain).is_ok());
        // Unsigned bytes after the member, a second member, or an optional header field (here a
        // file name) would reach the dead-letter topic unverified: refused.
        let mut trailing = plain.clone();
        trailing.extend_from_slice(b"unsigned");
        let mut two = plain.clone();
        two.extend_from_slice(&plain);
        for body in [trailing, two, gzip(Some("x.json"))] {
            assert_eq!(verify(&body).err(), Some(SignatureError::BadEncoding));
        }
        // A trailer that states another size than the content has.
        let mut lying = plain.clone();
        let n = lying.len();
        lying[n - 4] ^= 1;
        assert_eq!(verify(&lying).err(), Some(SignatureError::BadEncoding));
        // The stated size is known before any work, and past the limit nothing is inflated.
        let mut v = Verifier::new(keys(&["secret"]), e.clone(), 0);
        v.update(&plain);
        assert_eq!(v.inflated_size(), Ok(Some(json.len())));
        let mut small = e.clone();
        small.content = Content::BodyOrGunzipped { max_bytes: 4 };
        let mut v = Verifier::new(keys(&["secret"]), small, 0);
        v.update(&plain);
        assert_eq!(v.inflated_size(), Err(SignatureError::BadEncoding));
        let mut v = Verifier::new(keys(&["secret"]), e, 0);
        v.update(&[0x1f, 0x8b, 8]);
        assert_eq!(v.inflated_size(), Err(SignatureError::BadEncoding));
    }

    #[test]
    fn hex_signatures_are_64_digits_in_either_case() {
        let sig = HmacKey::new(*b"t").sign(&[b"body"]);
        let upper = hex::encode(sig).to_uppercase();
        assert_eq!(decode_hex_signature(Some(upper.as_bytes())), Ok(sig));
        assert_eq!(decode_hex_signature(None), Err(SignatureError::Missing));
        assert_eq!(
            decode_hex_signature(Some(b"abc")),
            Err(SignatureError::Malformed)
        );
        let not_hex = "z".repeat(64);
        assert_eq!(
            decode_hex_signature(Some(not_hex.as_bytes())),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn key_debug_output_is_redacted() {
        assert_eq!(
            format!("{:?}", HmacKey::new(*b"s3cr3t")),
            "HmacKey([redacted])"
        );
    }

    proptest! {
        #[test]
        fn any_flipped_body_byte_fails(key in "[!-~]{1,32}", body in proptest::collection::vec(any::<u8>(), 1..256), idx in any::<prop::sample::Index>(), bit in 0u8..8) {
            let sig = HmacKey::new(key.as_bytes()).sign(&[&body]);
            let mut tampered = body.clone();
            let i = idx.index(tampered.len());
            tampered[i] ^= 1 << bit;
            prop_assert_eq!(check(&[&key], &tampered, sig).err(), Some(SignatureError::Mismatch));
        }

        #[test]
        fn any_chunking_verifies_like_one_shot(body in proptest::collection::vec(any::<u8>(), 0..512), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8), forged in any::<bool>()) {
            let signer = if forged { "other" } else { "key" };
            let sig = HmacKey::new(signer.as_bytes()).sign(&[&body]);
            let one_shot = check(&["key"], &body, sig);
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(body.len() + 1)).collect();
            points.sort_unstable();
            let mut v = Verifier::new(keys(&["key"]), Expectation::body(sig), 0);
            let mut from = 0;
            for p in points.into_iter().chain([body.len()]) {
                v.update(&body[from..p]);
                from = p;
            }
            prop_assert_eq!(v.received(), body.len());
            let streamed = v.finish("s", 1);
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
    }
}
