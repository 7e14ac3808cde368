//! Sendbird: `x-sendbird-signature` is the hex HMAC-SHA256 of the raw body under the app's master
//! API token; the event id is the body's SHA-256; categories go to one topic per entity family,
//! keyed by channel URL. The lenient typed view of a payload is in [`event`], the known
//! categories in [`catalogue`], routing in [`routing`], the record in [`avro`], the older
//! configuration forms (`[[apps]]`, `HOOKBRIDGE_SENDBIRD_*`) in [`legacy`], and
//! `hookbridge sendbird webhook` (the Platform API's webhook settings) in [`cli`].

pub mod avro;
pub mod catalogue;
pub mod cli;
pub mod event;
pub mod legacy;
pub mod routing;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;

pub use avro::{EventEncoder, EventRecord};
pub use event::{Channel, Member, Message, PoisonReason, SendbirdEvent, User};
pub use routing::{Family, Route, Router};

use super::{
    BuildContext, Built, Provider, Routed, SchemaFile, Source, SourceTopics, check_common, keys_of,
    poison, sized_record, unknown_options,
};
use crate::config::{Secret, SourceConfig, SourceDraft, SourceId};
use crate::topic::TopicName;
use crate::verify::{
    Expectation, HmacKey, KeySet, SignatureError, VerifiedWebhook, decode_hex_signature,
    single_header,
};

/// The provider's name: route segment, `hookbridge-source` header, metrics label.
pub const NAME: &str = "sendbird";
/// The header Sendbird documents.
pub const SIGNATURE_HEADER: &str = "x-sendbird-signature";
/// An undocumented duplicate Sendbird also sends; read only when the first is absent.
pub const FALLBACK_SIGNATURE_HEADER: &str = "x-signature";
/// Sendbird waits 5 s for an answer; the publish deadline must leave room to answer before that.
pub const SENDBIRD_TIMEOUT: Duration = Duration::from_secs(5);
/// The topic prefix unless configured otherwise.
pub const DEFAULT_PREFIX: &str = "sendbird.";
/// Dead-letter reason: an authentic body naming another app than its route.
pub const DLQ_APP_MISMATCH: &str = "app_id_mismatch";

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

    pub fn key(&self) -> HmacKey {
        HmacKey::new(self.0.expose().as_bytes())
    }

    /// The lowercase hex signature a sender holding this token puts on `body`.
    pub fn sign(&self, body: &[u8]) -> String {
        hex::encode(self.key().sign(&[body]))
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken([redacted])")
    }
}

/// The Sendbird provider.
pub struct Sendbird;

impl Provider for Sendbird {
    fn name(&self) -> &'static str {
        NAME
    }

    fn sender_timeout(&self) -> Option<Duration> {
        Some(SENDBIRD_TIMEOUT)
    }

    fn key(&self, secret: &str) -> Result<HmacKey, &'static str> {
        ApiToken::parse(secret).map(|t| t.key())
    }

    /// The top-level `topic_prefix` and `[[routes]]` apply here too, as they did to every app:
    /// the entry's own prefix wins, and its own routes come first.
    fn check_source(
        &self,
        setting: &str,
        mut draft: SourceDraft,
        legacy: &figment::value::Dict,
        errors: &mut Vec<String>,
    ) -> Option<SourceConfig> {
        unknown_options(setting, &draft.options, &[], errors);
        let (prefix, routes) = legacy::defaults(legacy);
        draft.routes.extend(routes);
        let prefix = prefix.unwrap_or_else(|| DEFAULT_PREFIX.to_owned());
        check_common(self, setting, draft, prefix, errors)
    }

    fn legacy_keys(&self) -> &'static [&'static str] {
        legacy::KEYS
    }

    fn legacy_env_keys(&self) -> &'static [&'static str] {
        legacy::ENV_KEYS
    }

    fn legacy_sources(
        &self,
        settings: &figment::value::Dict,
        errors: &mut Vec<String>,
    ) -> Vec<SourceConfig> {
        legacy::sources(settings, errors)
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

    fn sign(
        &self,
        secret: &str,
        body: &[u8],
        _now_ms: i64,
    ) -> Result<super::SignedHeaders, String> {
        let token = ApiToken::parse(secret).map_err(|why| format!("the token {why}"))?;
        Ok(vec![(SIGNATURE_HEADER, token.sign(body))])
    }

    fn prefix_topics(&self, prefix: Option<&str>) -> Option<Result<SourceTopics, String>> {
        Some(
            Router::new(prefix.unwrap_or(DEFAULT_PREFIX), Vec::new()).map(|router| SourceTopics {
                events: router.event_topics(),
                dlq: router.dlq_topic().clone(),
            }),
        )
    }

    /// `hookbridge sendbird webhook …`: the client of Sendbird's webhook settings API.
    fn command(&self) -> Option<clap::Command> {
        Some(cli::command())
    }

    fn run_command(&self, matches: &clap::ArgMatches) -> std::process::ExitCode {
        cli::run(matches)
    }

    /// The known categories ([`catalogue::KNOWN`]) as a router with the default prefix and no
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
        Ok(Arc::new(SendbirdSource {
            id: source.id.clone(),
            keys: Arc::new(KeySet::new(keys_of(self, &source.secrets))),
            router,
            encoder: EventEncoder::new()?,
            schema_ids,
            max_typed_items: context.limits.max_typed_items.get(),
            max_typed_text_bytes: context.limits.max_typed_text_bytes.get(),
            max_record_bytes: context.limits.max_record_bytes(),
        }))
    }
}

/// One Sendbird application.
pub struct SendbirdSource {
    id: SourceId,
    keys: Arc<KeySet>,
    router: Router,
    encoder: EventEncoder,
    schema_ids: HashMap<TopicName, u32>,
    max_typed_items: usize,
    max_typed_text_bytes: usize,
    max_record_bytes: usize,
}

impl Source for SendbirdSource {
    fn provider(&self) -> &'static str {
        NAME
    }

    fn id(&self) -> &SourceId {
        &self.id
    }

    fn keys(&self) -> &Arc<KeySet> {
        &self.keys
    }

    /// The documented header, else the fallback. A header given twice is ambiguous and reads as
    /// malformed.
    fn expect(&self, headers: &HeaderMap, _now_ms: i64) -> Result<Expectation, SignatureError> {
        let name = if headers.contains_key(SIGNATURE_HEADER) {
            SIGNATURE_HEADER
        } else {
            FALLBACK_SIGNATURE_HEADER
        };
        decode_hex_signature(single_header(headers, name)).map(Expectation::body)
    }

    fn build(&self, webhook: &VerifiedWebhook) -> Built {
        // UTF-8 is checked once here; the text serves both the parse and the record's raw_body.
        let parsed = std::str::from_utf8(webhook.body())
            .map_err(|_| PoisonReason::NotUtf8)
            .and_then(|text| {
                Ok((
                    text,
                    SendbirdEvent::parse_with(
                        text,
                        self.max_typed_items,
                        self.max_typed_text_bytes,
                    )?,
                ))
            });
        let (raw_body, event) = match parsed {
            Ok(parsed) => parsed,
            Err(reason) => return poison(reason.code(), None),
        };
        if let Some(body_app) = event.app_id.as_deref()
            && !body_app.eq_ignore_ascii_case(self.id.as_str())
        {
            // Authentic (it carries this app's signature) yet naming another app: a human must
            // look, and retrying cannot change it.
            tracing::warn!(
                body_app_id = body_app,
                "body names another app than the route"
            );
            return poison(DLQ_APP_MISMATCH, Some(event.category.clone()));
        }
        let route = self.router.route(&event);
        let Some(&schema_id) = self.schema_ids.get(route.topic) else {
            return Built::Internal;
        };
        let record = EventRecord {
            event_id: webhook.event_id(),
            app_id: self.id.as_str(),
            received_at_ms: webhook.received_at_ms(),
            raw_body,
            event: &event,
        };
        let routed = Routed {
            topic: route.topic,
            key: route.key,
            category: Some(event.category.clone()),
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
    use proptest::prelude::*;

    fn token(s: &str) -> ApiToken {
        ApiToken::parse(s).expect("valid token")
    }

    fn verify(
        tokens: &[ApiToken],
        body: &[u8],
        signature: Option<&[u8]>,
    ) -> Result<(), SignatureError> {
        let keys: Arc<[HmacKey]> = tokens.iter().map(ApiToken::key).collect();
        let expectation = decode_hex_signature(signature).map(Expectation::body)?;
        VerifiedWebhook::verify("A", keys, expectation, body, 1).map(|_| ())
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
            verify(&[old.clone(), new], body, Some(sig.as_bytes())),
            Ok(())
        );
        assert_eq!(
            verify(&[old], body, Some(sig.as_bytes())),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_documented_header_wins_and_a_doubled_one_is_malformed() {
        let source = SendbirdSource {
            id: SourceId::parse("A").expect("id"),
            keys: Arc::new(KeySet::new(vec![token("t").key()])),
            router: Router::new(DEFAULT_PREFIX, Vec::new()).expect("router"),
            encoder: EventEncoder::new().expect("schema"),
            schema_ids: HashMap::new(),
            max_typed_items: 10,
            max_typed_text_bytes: 1 << 16,
            max_record_bytes: 1 << 20,
        };
        let sig = token("t").sign(b"x");
        let mut headers = HeaderMap::new();
        headers.insert(
            FALLBACK_SIGNATURE_HEADER,
            "0".repeat(64).parse().expect("value"),
        );
        headers.insert(SIGNATURE_HEADER, sig.parse().expect("value"));
        let e = source.expect(&headers, 0).expect("well-formed");
        assert_eq!(hex::encode(e.signatures[0]), sig);
        headers.append(SIGNATURE_HEADER, sig.parse().expect("value"));
        assert_eq!(
            source.expect(&headers, 0).err(),
            Some(SignatureError::Malformed)
        );
        assert_eq!(
            source.expect(&HeaderMap::new(), 0).err(),
            Some(SignatureError::Missing)
        );
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
            prop_assert_eq!(verify(&[t], &body, Some(sig.as_bytes())), Ok(()));
        }

        #[test]
        fn any_flipped_signature_digit_fails(body in proptest::collection::vec(any::<u8>(), 0..256), idx in 0usize..64) {
            let t = token("key");
            let mut sig = t.sign(&body).into_bytes();
            sig[idx] = if sig[idx] == b'0' { b'1' } else { b'0' };
            prop_assert_eq!(verify(&[t], &body, Some(&sig)), Err(SignatureError::Mismatch));
        }

        #[test]
        fn wrong_token_fails(a in "[!-+--~]{1,32}", b in "[!-+--~]{1,32}", body in proptest::collection::vec(any::<u8>(), 0..256)) {
            prop_assume!(a != b);
            let sig = token(&a).sign(&body);
            prop_assert_eq!(verify(&[token(&b)], &body, Some(sig.as_bytes())), Err(SignatureError::Mismatch));
        }

        #[test]
        fn truncated_signature_fails(body in proptest::collection::vec(any::<u8>(), 0..256), cut in 0usize..64) {
            let t = token("key");
            let sig = t.sign(&body);
            prop_assert!(verify(&[t], &body, Some(&sig.as_bytes()[..cut])).is_err());
        }
    }
}
