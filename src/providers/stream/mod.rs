//! Stream Chat (getstream.io): `X-Signature` is the hex HMAC-SHA256 of the JSON body under the
//! app's API secret; when the app enables webhook compression the body arrives gzip-compressed
//! and the signature covers the JSON before compression. `X-Webhook-Id`, kept across retries, is
//! the event id. Event types go to one topic per entity family, keyed by channel (`cid`). The
//! lenient typed view of a payload is in [`event`], routing in [`routing`], the record in
//! [`avro`], the documented types in [`catalogue`]. Sources: docs/research/providers.md part A.

pub mod avro;
pub mod catalogue;
pub mod event;
pub mod routing;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use figment::value::Value;

pub use avro::{EventEncoder, EventRecord};
pub use event::{Member, Message, PoisonReason, Reaction, StreamEvent, User};
pub use routing::{Family, Route, Router};

use super::{
    BuildContext, Built, Provider, Routed, SchemaFile, Source, SourceTopics, check_common, keys_of,
    poison, sized_record, unknown_options,
};
use crate::config::{Secret, SourceConfig, SourceDraft, SourceId};
use crate::topic::TopicName;
use crate::verify::{
    Content, Expectation, HmacKey, KeySet, SignatureError, VerifiedWebhook, decode_hex_signature,
    single_header,
};

/// The provider's name: route segment, `hookbridge-source` header, metrics label.
pub const NAME: &str = "stream";
pub const SIGNATURE_HEADER: &str = "x-signature";
/// The app's API key; checked against the `api_key` option when one is configured.
pub const API_KEY_HEADER: &str = "x-api-key";
/// Stream's id of one webhook call, "consistent between retries".
pub const DELIVERY_ID_HEADER: &str = "x-webhook-id";
/// The source option naming the app's API key.
pub const API_KEY_OPTION: &str = "api_key";
/// "The timeout of one request is 6 seconds" (Stream's Push Webhook page, cited in
/// docs/research/providers.md A3). An older page asks for an answer "in less than 3 seconds";
/// the newer, documented per-request timeout is used, and the publish deadline stays below it.
pub const STREAM_TIMEOUT: Duration = Duration::from_secs(6);
/// The topic prefix unless configured otherwise.
pub const DEFAULT_PREFIX: &str = "stream.";
/// The longest `X-Webhook-Id` taken as the event id.
const MAX_DELIVERY_ID: usize = 128;

/// A Stream app's API secret, the HMAC key. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiSecret(Secret);

impl ApiSecret {
    pub fn parse(value: &str) -> Result<Self, &'static str> {
        let value = value.trim();
        if value.is_empty() {
            return Err("is empty");
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("contains whitespace or control characters");
        }
        Ok(ApiSecret(Secret::new(value)))
    }

    pub fn key(&self) -> HmacKey {
        HmacKey::new(self.0.expose().as_bytes())
    }

    /// The lowercase hex signature Stream puts on `json` (the uncompressed body).
    pub fn sign(&self, json: &[u8]) -> String {
        hex::encode(self.key().sign(&[json]))
    }
}

impl fmt::Debug for ApiSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiSecret([redacted])")
    }
}

/// The `api_key` option: not a secret (Stream sends it in every request), but it names which
/// app signed, so a request for another app is refused before its body is read.
fn api_key(value: &Value) -> Result<String, &'static str> {
    let key = value.as_str().ok_or("must be a string")?.trim();
    if key.is_empty() {
        return Err("must not be empty");
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("may contain only visible ASCII characters");
    }
    Ok(key.to_owned())
}

/// The Stream provider.
pub struct Stream;

impl Provider for Stream {
    fn name(&self) -> &'static str {
        NAME
    }

    fn sender_timeout(&self) -> Option<Duration> {
        Some(STREAM_TIMEOUT)
    }

    fn key(&self, secret: &str) -> Result<HmacKey, &'static str> {
        ApiSecret::parse(secret).map(|s| s.key())
    }

    fn check_source(
        &self,
        setting: &str,
        draft: SourceDraft,
        _legacy: &figment::value::Dict,
        errors: &mut Vec<String>,
    ) -> Option<SourceConfig> {
        unknown_options(setting, &draft.options, &[API_KEY_OPTION], errors);
        if let Some(Err(why)) = draft.options.get(API_KEY_OPTION).map(api_key) {
            errors.push(format!("{setting}.{API_KEY_OPTION}: {why}"));
        }
        check_common(self, setting, draft, DEFAULT_PREFIX.to_owned(), errors)
    }

    fn schema(&self) -> &'static SchemaFile {
        &avro::SCHEMA
    }

    fn topics(&self, source: &SourceConfig) -> Result<SourceTopics, String> {
        let router = Router::new(&source.topic_prefix, source.routes.clone())?;
        Ok(SourceTopics {
            events: router.event_topics(),
            dlq: router.dlq_topic().clone(),
        })
    }

    /// What Stream sends: the signature over the (uncompressed) body and a fresh delivery id.
    /// `X-Api-Key` is left out: the secret does not say which key it belongs to.
    fn sign(
        &self,
        secret: &str,
        body: &[u8],
        _now_ms: i64,
    ) -> Result<Vec<(&'static str, String)>, String> {
        let secret = ApiSecret::parse(secret).map_err(|why| format!("the secret {why}"))?;
        Ok(vec![
            (DELIVERY_ID_HEADER, uuid::Uuid::new_v4().to_string()),
            (SIGNATURE_HEADER, secret.sign(body)),
        ])
    }

    fn prefix_topics(&self, prefix: Option<&str>) -> Option<Result<SourceTopics, String>> {
        Some(
            Router::new(prefix.unwrap_or(DEFAULT_PREFIX), Vec::new()).map(|router| SourceTopics {
                events: router.event_topics(),
                dlq: router.dlq_topic().clone(),
            }),
        )
    }

    /// The documented types ([`catalogue::KNOWN`]) as a router with the default prefix and no
    /// overrides treats them.
    fn catalogue(&self) -> Vec<super::CatalogueEntry> {
        Router::new(DEFAULT_PREFIX, Vec::new())
            .expect("the default prefix makes valid topic names")
            .catalogue()
    }

    fn source(
        &self,
        source: &SourceConfig,
        context: &BuildContext<'_>,
    ) -> Result<Arc<dyn Source>, String> {
        let router = Router::new(&source.topic_prefix, source.routes.clone())?;
        let schema_ids = router
            .event_topics()
            .into_iter()
            .map(|t| Ok((t.clone(), context.schema_id(&t)?)))
            .collect::<Result<_, String>>()?;
        let api_key = source
            .options
            .get(API_KEY_OPTION)
            .map(api_key)
            .transpose()
            .map_err(|why| format!("stream source {}: {API_KEY_OPTION} {why}", source.id))?;
        Ok(Arc::new(StreamSource {
            id: source.id.clone(),
            keys: Arc::new(KeySet::new(keys_of(self, &source.secrets))),
            api_key,
            router,
            encoder: EventEncoder::new()?,
            schema_ids,
            max_body_bytes: context.limits.max_body_bytes.get(),
            max_typed_items: context.limits.max_typed_items.get(),
            max_typed_text_bytes: context.limits.max_typed_text_bytes.get(),
            max_record_bytes: context.limits.max_record_bytes(),
        }))
    }
}

/// One Stream app.
pub struct StreamSource {
    id: SourceId,
    keys: Arc<KeySet>,
    api_key: Option<String>,
    router: Router,
    encoder: EventEncoder,
    schema_ids: HashMap<TopicName, u32>,
    /// Also the most a compressed body may decompress to.
    max_body_bytes: usize,
    max_typed_items: usize,
    max_typed_text_bytes: usize,
    max_record_bytes: usize,
}

/// `X-Webhook-Id` when given once as 1 to 128 visible ASCII characters (safe to log, to put in
/// a header and to compare); else none, and the body's digest stands in.
fn delivery_id(headers: &HeaderMap) -> Option<String> {
    let mut values = headers.get_all(DELIVERY_ID_HEADER).iter();
    let value = values.next()?.as_bytes();
    let usable = values.next().is_none()
        && (1..=MAX_DELIVERY_ID).contains(&value.len())
        && value.iter().all(u8::is_ascii_graphic);
    usable.then(|| String::from_utf8_lossy(value).into_owned())
}

impl Source for StreamSource {
    fn provider(&self) -> &'static str {
        NAME
    }

    fn id(&self) -> &SourceId {
        &self.id
    }

    fn keys(&self) -> &Arc<KeySet> {
        &self.keys
    }

    /// A signature given twice is ambiguous and reads as malformed. With `api_key` configured,
    /// a request naming another app (or none) is refused as a mismatch: its signature was made
    /// with another app's secret.
    fn expect(&self, headers: &HeaderMap, _now_ms: i64) -> Result<Expectation, SignatureError> {
        let signature = decode_hex_signature(single_header(headers, SIGNATURE_HEADER))?;
        if let Some(expected) = &self.api_key
            && single_header(headers, API_KEY_HEADER) != Some(expected.as_bytes())
        {
            return Err(SignatureError::Mismatch);
        }
        Ok(Expectation {
            signatures: vec![signature],
            prefix: Vec::new(),
            delivery_id: delivery_id(headers),
            signed_at_ms: None,
            // Stream signs the JSON before compressing it, and its SDKs detect compression by the
            // gzip magic bytes rather than Content-Encoding (which middleware may strip).
            content: Content::BodyOrGunzipped {
                max_bytes: self.max_body_bytes,
            },
        })
    }

    fn build(&self, webhook: &VerifiedWebhook) -> Built {
        // The record holds the signed JSON; for a compressed body that is the decompressed
        // content. Dead letters keep the body as received (the caller writes `webhook.body()`).
        let compressed = webhook.was_decompressed();
        // UTF-8 is checked once here; the text serves both the parse and the record's raw_body.
        let parsed = std::str::from_utf8(webhook.content())
            .map_err(|_| PoisonReason::NotUtf8)
            .and_then(|text| {
                Ok((
                    text,
                    StreamEvent::parse_with(text, self.max_typed_items, self.max_typed_text_bytes)?,
                ))
            });
        let (raw_body, event) = match parsed {
            Ok(parsed) => parsed,
            Err(reason) => return poison(reason.code(), None),
        };
        let route = self.router.route(&event);
        let Some(&schema_id) = self.schema_ids.get(route.topic) else {
            return Built::Internal;
        };
        let record = EventRecord {
            event_id: webhook.event_id(),
            source_id: self.id.as_str(),
            received_at_ms: webhook.received_at_ms(),
            raw_body,
            compressed,
            event: &event,
        };
        let routed = Routed {
            topic: route.topic,
            key: route.key,
            category: Some(event.event_type.clone()),
            family: route.family.label(),
        };
        let value_len = self.encoder.encoded_len(&record);
        sized_record(
            self,
            webhook,
            routed,
            self.max_record_bytes,
            value_len,
            || self.encoder.encode(schema_id, &record),
        )
    }

    fn dlq_topic(&self) -> &TopicName {
        self.router.dlq_topic()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{
        DLQ_TOO_LARGE, HEADER_APP_ID, HEADER_CATEGORY, HEADER_EVENT_ID, HEADER_SOURCE,
    };
    use crate::sink::avro::read_record;

    /// What every gzip stream starts with; the verifier decompresses exactly such bodies.
    const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
    use apache_avro::types::Value as Avro;
    use figment::value::Dict;
    use proptest::prelude::*;
    use std::io::Write;

    const SCHEMA_ID: u32 = 9;

    fn secret(s: &str) -> ApiSecret {
        ApiSecret::parse(s).expect("valid secret")
    }

    fn source_with(secrets: &[&str], api_key: Option<&str>) -> StreamSource {
        let router = Router::new(DEFAULT_PREFIX, Vec::new()).expect("router");
        let schema_ids = router
            .event_topics()
            .into_iter()
            .map(|t| (t, SCHEMA_ID))
            .collect();
        StreamSource {
            id: SourceId::parse("app-1").expect("id"),
            keys: Arc::new(KeySet::new(
                secrets.iter().map(|s| secret(s).key()).collect(),
            )),
            api_key: api_key.map(str::to_owned),
            router,
            encoder: EventEncoder::new().expect("schema"),
            schema_ids,
            max_body_bytes: 64 * 1024,
            max_typed_items: 100,
            max_typed_text_bytes: 1 << 16,
            max_record_bytes: 1 << 20,
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, value.parse().expect("header value"));
        }
        h
    }

    /// What the generic handler does: expect from the headers, then verify the body.
    fn receive(
        source: &StreamSource,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<VerifiedWebhook, SignatureError> {
        let expectation = source.expect(headers, 0)?;
        VerifiedWebhook::verify(
            source.id.as_str(),
            source.keys.current(),
            expectation,
            body,
            1_700_000_000_000,
        )
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(bytes).expect("gzip");
        gz.finish().expect("gzip")
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/stream/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn decode(value: &[u8]) -> Vec<(String, Avro)> {
        let (id, fields) = read_record(avro::event_schema().expect("schema"), value);
        assert_eq!(id, SCHEMA_ID);
        fields
    }

    fn field(fields: &[(String, Avro)], name: &str) -> Avro {
        let v = fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no field {name}"));
        match v {
            Avro::Union(_, inner) => *inner,
            other => other,
        }
    }

    #[test]
    fn matches_a_vector_computed_from_stream_sdks_test_inputs() {
        // chat-js test/unit/webhook-compression.test.ts signs this body with secret "tsec2"; the
        // expected value was computed independently (Python's hmac), as docs/research/providers.md
        // A1 notes.
        let body = br#"{"type":"message.new","message":{"text":"the quick brown fox"}}"#;
        let sig = secret("tsec2").sign(body);
        assert_eq!(
            sig,
            "a91edf26f024e0efad88b0e2561e4841fa6f8c85f98ecb85dcd12e58563c2218"
        );
        let source = source_with(&["tsec2"], None);
        assert!(receive(&source, &headers(&[("x-signature", &sig)]), body).is_ok());
        let upper = sig.to_uppercase();
        assert!(receive(&source, &headers(&[("x-signature", &upper)]), body).is_ok());
        let other = secret("tsec3").sign(body);
        assert_eq!(
            receive(&source, &headers(&[("x-signature", &other)]), body).err(),
            Some(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_api_key_must_match_when_configured() {
        let body = br#"{"type":"message.new"}"#;
        let sig = secret("s").sign(body);
        let keyed = source_with(&["s"], Some("key123"));
        let ok = headers(&[("x-signature", &sig), ("x-api-key", "key123")]);
        assert!(receive(&keyed, &ok, body).is_ok());
        for wrong in [
            headers(&[("x-signature", &sig), ("x-api-key", "other")]),
            headers(&[("x-signature", &sig), ("x-api-key", "KEY123")]),
            headers(&[("x-signature", &sig)]),
            headers(&[
                ("x-signature", &sig),
                ("x-api-key", "key123"),
                ("x-api-key", "key123"),
            ]),
        ] {
            assert_eq!(
                keyed.expect(&wrong, 0).err(),
                Some(SignatureError::Mismatch)
            );
        }
        // Without the option any key, or none, is accepted.
        let open = source_with(&["s"], None);
        assert!(receive(&open, &headers(&[("x-signature", &sig)]), body).is_ok());
        let any = headers(&[("x-signature", &sig), ("x-api-key", "whatever")]);
        assert!(receive(&open, &any, body).is_ok());
    }

    #[test]
    fn missing_malformed_and_doubled_signatures_are_refused_before_the_body() {
        let source = source_with(&["s"], None);
        let sig = secret("s").sign(b"{}");
        assert_eq!(
            source.expect(&HeaderMap::new(), 0).err(),
            Some(SignatureError::Missing)
        );
        for bad in [
            "z".repeat(64),
            sig[..63].to_owned(),
            format!("{sig}0"),
            format!("sha256={sig}"),
        ] {
            assert_eq!(
                source.expect(&headers(&[("x-signature", &bad)]), 0).err(),
                Some(SignatureError::Malformed),
                "{bad}"
            );
        }
        let doubled = headers(&[("x-signature", &sig), ("x-signature", &sig)]);
        assert_eq!(
            source.expect(&doubled, 0).err(),
            Some(SignatureError::Malformed)
        );
        // Sendbird's header is not Stream's.
        assert_eq!(
            source
                .expect(&headers(&[("x-sendbird-signature", &sig)]), 0)
                .err(),
            Some(SignatureError::Missing)
        );
    }

    #[test]
    fn accepts_any_of_several_secrets_during_rotation() {
        let body = br#"{"type":"user.updated"}"#;
        let sig = secret("new").sign(body);
        let both = source_with(&["old", "new"], None);
        assert!(receive(&both, &headers(&[("x-signature", &sig)]), body).is_ok());
        let old_only = source_with(&["old"], None);
        assert_eq!(
            receive(&old_only, &headers(&[("x-signature", &sig)]), body).err(),
            Some(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_webhook_id_is_the_event_id_when_usable() {
        let source = source_with(&["s"], None);
        let body = br#"{"type":"message.read"}"#;
        let sig = secret("s").sign(body);
        let id = "123e4567-e89b-12d3-a456-426614174000";
        let (long, longest) = ("x".repeat(129), "x".repeat(128));
        // The X-Webhook-Id values sent, and the event id they make (None: the body's digest).
        let cases: [(&[&str], Option<&str>); 7] = [
            (&[id], Some(id)),
            (&[longest.as_str()], Some(longest.as_str())),
            (&[], None),
            (&[""], None),
            (&["has space"], None),
            (&[long.as_str()], None),
            (&[id, id], None),
        ];
        for (ids, want) in cases {
            let mut pairs = vec![("x-signature", sig.as_str())];
            pairs.extend(ids.iter().map(|v| (DELIVERY_ID_HEADER, *v)));
            let webhook = receive(&source, &headers(&pairs), body).expect("verified");
            let expected = match want {
                Some(id) => id.to_owned(),
                None => {
                    use sha2::{Digest, Sha256};
                    hex::encode(Sha256::digest(body))
                }
            };
            assert_eq!(webhook.event_id(), expected, "{ids:?}");
        }
        // Not UTF-8 in a header value that is otherwise well-formed for HTTP.
        let mut h = headers(&[("x-signature", &sig)]);
        h.insert(
            DELIVERY_ID_HEADER,
            axum::http::HeaderValue::from_bytes(b"id\xff").expect("obs-text"),
        );
        assert_eq!(delivery_id(&h), None);
    }

    #[test]
    fn a_gzip_body_signed_uncompressed_is_accepted_and_recorded_as_json() {
        let source = source_with(&["s"], None);
        let json = fixture("message.new");
        let gz = gzip(&json);
        let signed_json = secret("s").sign(&json);
        let h = headers(&[("x-signature", &signed_json), ("x-webhook-id", "w1")]);
        let webhook = receive(&source, &h, &gz).expect("signed over the JSON");
        assert_eq!(&webhook.body()[..], &gz[..]);
        let Built::Event { record, .. } = source.build(&webhook) else {
            panic!("an event")
        };
        let fields = decode(&record.value);
        assert_eq!(
            field(&fields, "raw_body"),
            Avro::String(String::from_utf8(json.clone()).expect("utf-8"))
        );
        assert_eq!(field(&fields, "compressed"), Avro::Boolean(true));
        assert_eq!(field(&fields, "event_id"), Avro::String("w1".into()));

        // Stream never signs the compressed bytes; such a signature is a forgery.
        let signed_gz = secret("s").sign(&gz);
        assert_eq!(
            receive(&source, &headers(&[("x-signature", &signed_gz)]), &gz).err(),
            Some(SignatureError::Mismatch)
        );
        // A body that inflates past max_body_bytes is refused.
        let big = format!(
            r#"{{"type":"message.new","pad":"{}"}}"#,
            "a".repeat(source.max_body_bytes)
        );
        let sig = secret("s").sign(big.as_bytes());
        assert_eq!(
            receive(
                &source,
                &headers(&[("x-signature", &sig)]),
                &gzip(big.as_bytes())
            )
            .err(),
            Some(SignatureError::BadEncoding)
        );
    }

    #[test]
    fn builds_a_record_with_topic_key_headers_and_fields() {
        let source = source_with(&["s"], None);
        let body = fixture("reaction.new");
        let sig = secret("s").sign(&body);
        let h = headers(&[("x-signature", &sig), ("x-webhook-id", "w-7")]);
        let webhook = receive(&source, &h, &body).expect("verified");
        let Built::Event {
            record,
            category,
            family,
        } = source.build(&webhook)
        else {
            panic!("an event")
        };
        assert_eq!(category, "reaction.new");
        assert_eq!(family, "reaction");
        assert_eq!(record.topic, "stream.reaction");
        assert_eq!(record.key.as_deref(), Some("messaging:fun"));
        assert_eq!(record.timestamp_ms, 1_700_000_000_000);
        let header = |name: &str| {
            record
                .headers
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_slice())
        };
        assert_eq!(header(HEADER_EVENT_ID), Some(&b"w-7"[..]));
        assert_eq!(header(HEADER_APP_ID), Some(&b"app-1"[..]));
        assert_eq!(header(HEADER_SOURCE), Some(&b"stream"[..]));
        assert_eq!(header(HEADER_CATEGORY), Some(&b"reaction.new"[..]));
        let fields = decode(&record.value);
        assert_eq!(field(&fields, "type"), Avro::String("reaction.new".into()));
        assert_eq!(field(&fields, "source_id"), Avro::String("app-1".into()));
        assert_eq!(field(&fields, "cid"), Avro::String("messaging:fun".into()));
        assert_eq!(field(&fields, "compressed"), Avro::Boolean(false));
        assert_eq!(
            field(&fields, "raw_body"),
            Avro::String(String::from_utf8(body).expect("utf-8"))
        );
    }

    #[test]
    fn poison_and_oversized_bodies_are_dead_lettered() {
        let source = source_with(&["s"], None);
        let dead_letter = |source: &StreamSource, body: &[u8]| {
            let sig = secret("s").sign(body);
            let webhook =
                receive(source, &headers(&[("x-signature", &sig)]), body).expect("verified");
            match source.build(&webhook) {
                Built::DeadLetter { reason, category } => Some((reason, category)),
                _ => None,
            }
        };
        assert_eq!(dead_letter(&source, b"not json"), Some(("not_json", None)));
        assert_eq!(dead_letter(&source, b"\xff"), Some(("not_utf8", None)));
        assert_eq!(dead_letter(&source, b"[]"), Some(("not_object", None)));
        assert_eq!(
            dead_letter(&source, br#"{"cid":"a:b"}"#),
            Some(("no_type", None))
        );
        let mut small = source_with(&["s"], None);
        small.max_record_bytes = 2048;
        let body = format!(r#"{{"type":"message.new","pad":"{}"}}"#, "a".repeat(2048));
        assert_eq!(
            dead_letter(&small, body.as_bytes()),
            Some((DLQ_TOO_LARGE, Some("message.new".to_owned())))
        );
        assert_eq!(dead_letter(&source, body.as_bytes()), None);
    }

    fn draft(options: &[(&str, Value)], secrets: &[&str]) -> SourceDraft {
        SourceDraft {
            id: SourceId::parse("app-1").expect("id"),
            provider: NAME.into(),
            secrets: secrets.iter().map(|s| (*s).to_owned()).collect(),
            secrets_file: None,
            topic_prefix: None,
            routes: Vec::new(),
            options: options
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect::<Dict>(),
        }
    }

    #[test]
    fn checks_its_settings_and_never_prints_a_secret() {
        let mut errors = Vec::new();
        let config = Stream
            .check_source(
                "sources[0]",
                draft(&[(API_KEY_OPTION, Value::from("key123"))], &["s3cr3t"]),
                &figment::value::Dict::new(),
                &mut errors,
            )
            .expect("valid");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(config.topic_prefix, DEFAULT_PREFIX);
        assert_eq!(config.provider, NAME);
        let topics = Stream.topics(&config).expect("topics");
        assert_eq!(topics.dlq.as_str(), "stream.dlq");
        assert_eq!(topics.events.len(), Family::ALL.len());

        let mut errors = Vec::new();
        Stream.check_source(
            "sources[1]",
            draft(
                &[
                    (API_KEY_OPTION, Value::from(7)),
                    ("api_token", Value::from("x")),
                ],
                &["bad secret", ""],
            ),
            &figment::value::Dict::new(),
            &mut errors,
        );
        let all = errors.join("\n");
        assert!(
            all.contains("sources[1]: unknown setting `api_token`"),
            "{all}"
        );
        assert!(
            all.contains("sources[1].api_key: must be a string"),
            "{all}"
        );
        assert!(all.contains("whitespace"), "{all}");
        assert!(!all.contains("bad secret"), "{all}");

        let mut errors = Vec::new();
        Stream.check_source(
            "sources[2]",
            draft(&[(API_KEY_OPTION, Value::from(" "))], &[]),
            &figment::value::Dict::new(),
            &mut errors,
        );
        let all = errors.join("\n");
        assert!(
            all.contains("sources[2].api_key: must not be empty"),
            "{all}"
        );
        assert!(all.contains("has no secrets"), "{all}");
    }

    #[test]
    fn signs_as_stream_does() {
        let body = br#"{"type":"message.new"}"#;
        let signed = Stream.sign("s", body, 0).expect("valid secret");
        let pairs: Vec<(&'static str, &str)> =
            signed.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let source = source_with(&["s"], None);
        let webhook = receive(&source, &headers(&pairs), body).expect("verified");
        assert_eq!(webhook.event_id().len(), 36, "a uuid delivery id");
        assert!(Stream.sign("bad secret", body, 0).is_err());
        let topics = Stream
            .prefix_topics(Some("s."))
            .expect("named by prefix")
            .expect("valid");
        assert_eq!(topics.dlq.as_str(), "s.dlq");
    }

    #[test]
    fn waits_less_than_stream_and_redacts_secrets() {
        assert_eq!(Stream.sender_timeout(), Some(Duration::from_secs(6)));
        assert_eq!(format!("{:?}", secret("s3cr3t")), "ApiSecret([redacted])");
        assert!(Stream.key("with space").is_err());
        assert!(Stream.key(" padded ").is_ok());
    }

    proptest! {
        #[test]
        fn sign_then_verify_round_trips_plain_and_gzip(key in "[!-~]{1,64}", body in proptest::collection::vec(any::<u8>(), 0..512), compress in any::<bool>()) {
            let source = source_with(&[&key], None);
            let sig = secret(&key).sign(&body);
            let sent = if compress { gzip(&body) } else { body.clone() };
            let webhook = receive(&source, &headers(&[("x-signature", &sig)]), &sent);
            // A plain body that itself starts with the gzip magic bytes is read as gzip.
            if compress || !body.starts_with(&GZIP_MAGIC) {
                let webhook = webhook.expect("verified");
                prop_assert_eq!(&webhook.content()[..], &body[..]);
            }
        }

        #[test]
        fn any_flipped_signature_digit_fails(body in proptest::collection::vec(any::<u8>(), 0..256), idx in 0usize..64) {
            prop_assume!(!body.starts_with(&GZIP_MAGIC));
            let source = source_with(&["key"], None);
            let mut sig = secret("key").sign(&body).into_bytes();
            sig[idx] = if sig[idx] == b'0' { b'1' } else { b'0' };
            let sig = String::from_utf8(sig).expect("hex");
            prop_assert_eq!(receive(&source, &headers(&[("x-signature", &sig)]), &body).err(), Some(SignatureError::Mismatch));
        }
    }
}
