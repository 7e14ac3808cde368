//! Standard Webhooks (standardwebhooks.com), symmetric `v1` signatures: any sender following
//! the spec. `webhook-id` is the event id; the body is kept as sent in an envelope with the
//! event type and record key read from configured JSON pointers. Signatures are in
//! [`signature`], the settings in [`options`], the record in [`avro`].

pub mod avro;
mod b64;
pub mod options;
pub mod signature;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use serde_json::value::RawValue;

pub use avro::{Envelope, EnvelopeEncoder};
pub use options::{Options, Pointer};
pub use signature::SigningSecret;

use super::{
    BuildContext, Built, Provider, Routed, SchemaFile, Source, SourceTopics, check_common, keys_of,
    poison, sized_record, unknown_options,
};
use crate::config::{SourceConfig, SourceDraft, SourceId};
use crate::json;
use crate::topic::{TopicName, Topics};
use crate::verify::{Expectation, HmacKey, KeySet, SignatureError, VerifiedWebhook};

/// The provider's name: route segment, `hookbridge-source` header, metrics label.
pub const NAME: &str = "standard";
/// The spec has senders give up "somewhere between 15 and 30s"; the shorter bound is the safe
/// one to answer within.
pub const SENDER_TIMEOUT: Duration = Duration::from_secs(15);
/// The topic suffix of the events (the prefix defaults to `<id>.`).
pub const EVENTS_SUFFIX: &str = "events";
/// The longest event type kept; a longer one is dead-lettered.
pub const MAX_EVENT_TYPE_LEN: usize = 256;
/// Metrics family of every event: the event types are the sender's and unbounded.
pub const FAMILY: &str = "event";

/// Dead-letter reasons.
pub const DLQ_NOT_UTF8: &str = "not_utf8";
pub const DLQ_NOT_JSON: &str = "not_json";
pub const DLQ_EVENT_TYPE_TOO_LONG: &str = "category_too_long";

/// A UTF-8 byte order mark, which RFC 8259 allows a parser to ignore.
const BOM: &str = "\u{feff}";

/// The Standard Webhooks provider.
pub struct Standard;

impl Provider for Standard {
    fn name(&self) -> &'static str {
        NAME
    }

    fn sender_timeout(&self) -> Option<Duration> {
        Some(SENDER_TIMEOUT)
    }

    fn key(&self, secret: &str) -> Result<HmacKey, &'static str> {
        SigningSecret::parse(secret).map(|s| s.key())
    }

    /// Written from the names the source reads, so it cannot drift from them.
    fn catalogue_note(&self) -> Option<String> {
        use options::{DEFAULT_EVENT_TYPE_POINTER, EVENT_TYPE_POINTER, KEY_POINTER};
        Some(format!(
            "Event types are the sender's own, so there is no list. Every event goes to\n\
             `<source id>.{EVENTS_SUFFIX}` (the prefix defaults to the source's id and a dot) unless a\n\
             `routes` entry matches its type. The type is read at `{EVENT_TYPE_POINTER}` (default\n\
             `{DEFAULT_EVENT_TYPE_POINTER}`) and the key at `{KEY_POINTER}` (no key when unset); \
             `occurred_at` is the\n\
             `{}` header (s, as ms). The record's typed fields are `key` and\n\
             `data` (the JSON text of the body's `data` member).\n",
            signature::TIMESTAMP_HEADER
        ))
    }

    fn check_source(
        &self,
        setting: &str,
        draft: SourceDraft,
        _legacy: &figment::value::Dict,
        errors: &mut Vec<String>,
    ) -> Option<SourceConfig> {
        unknown_options(setting, &draft.options, options::KNOWN, errors);
        let options = Options::read(setting, &draft.options, errors);
        let default_prefix = format!("{}.", draft.id);
        let source = check_common(self, setting, draft, default_prefix, errors)?;
        if let Err(why) = topics_of(&source) {
            errors.push(format!("{setting}: {why}"));
            return None;
        }
        options.map(|_| source)
    }

    fn schema(&self) -> &'static SchemaFile {
        &avro::SCHEMA
    }

    fn topics(&self, source: &SourceConfig) -> Result<SourceTopics, String> {
        let topics = topics_of(source)?;
        Ok(SourceTopics {
            events: topics.event_topics(),
            dlq: topics.dlq().clone(),
        })
    }

    /// A fresh `webhook-id` each time, as a sender gives each message.
    fn sign(
        &self,
        secret: &str,
        body: &[u8],
        now_ms: i64,
    ) -> Result<Vec<(&'static str, String)>, String> {
        let secret = SigningSecret::parse(secret).map_err(|why| format!("the secret {why}"))?;
        let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        let timestamp = now_ms.div_euclid(1000);
        let value = secret.sign(&id, timestamp, body);
        Ok(vec![
            (signature::ID_HEADER, id),
            (signature::TIMESTAMP_HEADER, timestamp.to_string()),
            (signature::SIGNATURE_HEADER, value),
        ])
    }

    fn source(
        &self,
        source: &SourceConfig,
        context: &BuildContext<'_>,
    ) -> Result<Arc<dyn Source>, String> {
        let mut errors = Vec::new();
        let options = Options::read(
            &format!("{NAME} source {}", source.id),
            &source.options,
            &mut errors,
        )
        .ok_or_else(|| errors.join("; "))?;
        let topics = topics_of(source)?;
        let schema_ids = topics
            .event_topics()
            .into_iter()
            .map(|t| Ok((t.clone(), context.schema_id(&t)?)))
            .collect::<Result<_, String>>()?;
        Ok(Arc::new(StandardSource {
            id: source.id.clone(),
            keys: Arc::new(KeySet::new(keys_of(self, &source.secrets))),
            options,
            topics,
            encoder: EnvelopeEncoder::new()?,
            schema_ids,
            max_record_bytes: context.limits.max_record_bytes(),
        }))
    }
}

/// Where one source's records go: the events topic unless a route names the event type.
fn topics_of(source: &SourceConfig) -> Result<Topics, String> {
    Topics::new(
        &source.topic_prefix,
        &[EVENTS_SUFFIX],
        source.routes.clone(),
    )
}

/// One configured Standard Webhooks sender.
pub struct StandardSource {
    id: SourceId,
    keys: Arc<KeySet>,
    options: Options,
    topics: Topics,
    encoder: EnvelopeEncoder,
    schema_ids: HashMap<TopicName, u32>,
    max_record_bytes: usize,
}

/// What a body says, read in one pass over its top-level object.
struct Parsed<'a> {
    event_type: Option<String>,
    key: Option<String>,
    data: Option<&'a RawValue>,
}

impl StandardSource {
    /// The event type, key and `data` of a JSON text; `None` when it is not JSON.
    fn parse<'a>(&self, text: &'a str) -> Option<Parsed<'a>> {
        let text = text.strip_prefix(BOM).unwrap_or(text);
        // Validates the whole text in one pass without building a tree, whatever its depth.
        let root: &RawValue = serde_json::from_str(text).ok()?;
        let (type_pointer, key_pointer) = (&self.options.event_type, self.options.key.as_ref());
        let wanted = [
            "data",
            type_pointer.first(),
            key_pointer.map_or("", Pointer::first),
        ];
        let top = json::object(root, &wanted);
        let find = |pointer: &Pointer| match &top {
            Some(fields) => pointer.resolve_from(fields.get(pointer.first())?),
            None => pointer.resolve(root),
        };
        Some(Parsed {
            event_type: json::string(find(type_pointer)),
            key: key_pointer.and_then(find).and_then(key_text),
            data: top.as_ref().and_then(|f| f.get("data")),
        })
    }
}

/// A record key from a JSON value: strings as they are, numbers and booleans as their JSON
/// text; nothing for objects, arrays and null.
fn key_text(value: &RawValue) -> Option<String> {
    match value.get().as_bytes().first()? {
        b'"' => json::string(Some(value)),
        b'{' | b'[' | b'n' => None,
        _ => Some(value.get().to_owned()),
    }
}

impl Source for StandardSource {
    fn provider(&self) -> &'static str {
        NAME
    }

    fn id(&self) -> &SourceId {
        &self.id
    }

    fn keys(&self) -> &Arc<KeySet> {
        &self.keys
    }

    fn expect(&self, headers: &HeaderMap, now_ms: i64) -> Result<Expectation, SignatureError> {
        signature::expectation(headers, now_ms, self.options.tolerance)
    }

    fn build(&self, webhook: &VerifiedWebhook) -> Built {
        let Ok(raw_body) = std::str::from_utf8(webhook.body()) else {
            return poison(DLQ_NOT_UTF8, None);
        };
        let Some(parsed) = self.parse(raw_body) else {
            return poison(DLQ_NOT_JSON, None);
        };
        if parsed
            .event_type
            .as_ref()
            .is_some_and(|t| t.len() > MAX_EVENT_TYPE_LEN)
        {
            return poison(DLQ_EVENT_TYPE_TOO_LONG, None);
        }
        let event_type = parsed.event_type.as_deref();
        let topic = match event_type {
            Some(t) => self.topics.route(t, EVENTS_SUFFIX),
            None => self.topics.family(EVENTS_SUFFIX),
        };
        let Some(&schema_id) = self.schema_ids.get(topic) else {
            return Built::Internal;
        };
        let envelope = Envelope {
            event_id: webhook.event_id(),
            event_type,
            source_id: self.id.as_str(),
            received_at_ms: webhook.received_at_ms(),
            occurred_at_ms: webhook.signed_at_ms(),
            key: parsed.key.as_deref(),
            raw_body,
            data: parsed.data.map(RawValue::get),
        };
        let routed = Routed {
            topic,
            key: parsed.key.clone(),
            category: parsed.event_type.clone(),
            family: FAMILY,
        };
        let value_len = self.encoder.encoded_len(&envelope);
        sized_record(
            self,
            webhook,
            routed,
            self.max_record_bytes,
            value_len,
            || self.encoder.encode(schema_id, &envelope),
        )
    }

    fn dlq_topic(&self) -> &TopicName {
        self.topics.dlq()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use apache_avro::types::Value;

    use super::*;
    use crate::config::{Config, ConfigErrors};
    use crate::providers::{
        DLQ_TOO_LARGE, HEADER_APP_ID, HEADER_CATEGORY, HEADER_EVENT_ID, HEADER_SOURCE, PROVIDERS,
    };
    use crate::sink::avro::{read_record, split_frame};
    use crate::sink::kafka::OutRecord;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_2Fq7kZ0pQ1";
    const TS: i64 = 1_764_513_789;
    const RECEIVED_MS: i64 = TS * 1000 + 250;

    fn env() -> BTreeMap<String, String> {
        [
            ("HOOKBRIDGE_KAFKA_BROKERS", "127.0.0.1:9092"),
            ("HOOKBRIDGE_SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    /// A configuration of top-level settings `top` and one source `acme` with `extra`.
    fn load_with(top: &str, extra: &str) -> Result<Config, ConfigErrors> {
        let toml = format!(
            "{top}\n[[sources]]\nprovider = \"standard\"\nid = \"acme\"\nsecrets = [\"{SECRET}\"]\n{extra}"
        );
        Config::from_toml_str(Some(&toml), &env(), &PROVIDERS)
    }

    fn load(extra: &str) -> Result<Config, ConfigErrors> {
        load_with("", extra)
    }

    fn load_err(extra: &str) -> String {
        load(extra).expect_err("invalid").to_string()
    }

    /// The running source of a configuration: schema ids 100, 101, … by topic name.
    fn source_of(config: &Config) -> Arc<dyn Source> {
        let [source] = config.sources.list.as_slice() else {
            panic!("one source")
        };
        let schema_ids: HashMap<TopicName, u32> = Standard
            .topics(source)
            .expect("topics")
            .events
            .into_iter()
            .zip(100..)
            .collect();
        let context = BuildContext {
            limits: &config.limits,
            schema_ids: &schema_ids,
        };
        Standard.source(source, &context).expect("source")
    }

    fn source_with(extra: &str) -> Arc<dyn Source> {
        source_of(&load(extra).expect("valid configuration"))
    }

    fn source() -> Arc<dyn Source> {
        source_with("key_pointer = \"/data/channel_id\"")
    }

    fn signed_headers(body: &[u8], ts: i64) -> HeaderMap {
        let signature = SigningSecret::parse(SECRET)
            .expect("valid secret")
            .sign(ID, ts, body);
        let mut headers = HeaderMap::new();
        headers.insert(signature::ID_HEADER, ID.parse().expect("value"));
        headers.insert(
            signature::TIMESTAMP_HEADER,
            ts.to_string().parse().expect("value"),
        );
        headers.insert(
            signature::SIGNATURE_HEADER,
            signature.parse().expect("value"),
        );
        headers
    }

    /// `body` signed by the sender and verified through the source, as the handler does.
    fn verified(source: &dyn Source, body: &[u8]) -> VerifiedWebhook {
        let expectation = source
            .expect(&signed_headers(body, TS), RECEIVED_MS)
            .expect("well-formed headers");
        VerifiedWebhook::verify(
            source.id().as_str(),
            source.keys().current(),
            expectation,
            body,
            RECEIVED_MS,
        )
        .expect("authentic")
    }

    fn event(source: &dyn Source, body: &[u8]) -> (OutRecord, String, &'static str) {
        match source.build(&verified(source, body)) {
            Built::Event {
                record,
                category,
                family,
            } => (record, category, family),
            Built::DeadLetter { reason, .. } => panic!("dead-lettered: {reason}"),
            Built::Internal => panic!("internal"),
        }
    }

    fn dead_letter_reason(source: &dyn Source, body: &[u8]) -> &'static str {
        match source.build(&verified(source, body)) {
            Built::DeadLetter { reason, .. } => reason,
            _ => panic!("not dead-lettered"),
        }
    }

    fn decode(value: &[u8]) -> BTreeMap<String, Value> {
        let (_, fields) = read_record(avro::envelope_schema().expect("schema"), value);
        fields.into_iter().collect()
    }

    fn text(record: &BTreeMap<String, Value>, name: &str) -> Option<String> {
        match record.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Union(_, inner) => match inner.as_ref() {
                Value::String(s) => Some(s.clone()),
                _ => None,
            },
            _ => None,
        }
    }

    fn header<'a>(record: &'a OutRecord, name: &str) -> Option<&'a [u8]> {
        record
            .headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_slice())
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/standard/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The exact text of the body's `data` member, read by serde_json itself.
    fn data_text(body: &[u8]) -> String {
        let members: BTreeMap<String, &RawValue> =
            serde_json::from_slice(body).expect("a JSON object");
        members["data"].get().to_owned()
    }

    #[test]
    fn every_fixture_becomes_an_envelope_with_every_field() {
        let source = source();
        // Literal table: fixture → event type, key at /data/channel_id.
        for (name, event_type, key) in [
            ("invoice.paid", "invoice.paid", None),
            ("user.created", "user.created", None),
            (
                "channel.message_created",
                "channel.message_created",
                Some("ch_7b3e9f21d4"),
            ),
        ] {
            let body = fixture(name);
            let (record, category, family) = event(source.as_ref(), &body);
            assert_eq!((category.as_str(), family), (event_type, "event"), "{name}");
            assert_eq!(record.topic, "acme.events");
            assert_eq!(record.key.as_deref(), key, "{name}");
            assert_eq!(record.timestamp_ms, RECEIVED_MS);
            assert_eq!(header(&record, HEADER_EVENT_ID), Some(ID.as_bytes()));
            assert_eq!(header(&record, HEADER_APP_ID), Some(&b"acme"[..]));
            assert_eq!(header(&record, HEADER_SOURCE), Some(&b"standard"[..]));
            assert_eq!(
                header(&record, HEADER_CATEGORY),
                Some(event_type.as_bytes())
            );
            assert_eq!(split_frame(&record.value).map(|(id, _)| id), Some(100));
            let fields = decode(&record.value);
            assert_eq!(text(&fields, "event_id").as_deref(), Some(ID));
            assert_eq!(text(&fields, "event_type").as_deref(), Some(event_type));
            assert_eq!(text(&fields, "source_id").as_deref(), Some("acme"));
            assert_eq!(
                fields.get("received_at"),
                Some(&Value::TimestampMillis(RECEIVED_MS))
            );
            assert_eq!(
                fields.get("occurred_at"),
                Some(&Value::Union(
                    1,
                    Box::new(Value::TimestampMillis(TS * 1000))
                ))
            );
            assert_eq!(text(&fields, "key").as_deref(), key);
            assert_eq!(
                text(&fields, "raw_body").map(String::into_bytes),
                Some(body.clone())
            );
            assert_eq!(text(&fields, "data"), Some(data_text(&body)), "{name}");
        }
    }

    #[test]
    fn keys_are_strings_as_they_are_and_scalars_as_their_json_text() {
        let source = source();
        for (data, key) in [
            (r#"{"channel_id":"ch_1"}"#, Some("ch_1")),
            (r#"{"channel_id":"caf\u00e9 \"x\""}"#, Some("café \"x\"")),
            (r#"{"channel_id":12345}"#, Some("12345")),
            (r#"{"channel_id":-1.50e2}"#, Some("-1.50e2")),
            (r#"{"channel_id":true}"#, Some("true")),
            (r#"{"channel_id":null}"#, None),
            (r#"{"channel_id":{"id":1}}"#, None),
            (r#"{"channel_id":["a"]}"#, None),
            (r#"{"other":"x"}"#, None),
            (r#""not an object""#, None),
        ] {
            let body = format!(r#"{{"type":"t","data":{data}}}"#);
            let (record, _, _) = event(source.as_ref(), body.as_bytes());
            assert_eq!(record.key.as_deref(), key, "{data}");
            assert_eq!(
                text(&decode(&record.value), "key").as_deref(),
                key,
                "{data}"
            );
        }
        // Without a key pointer, nothing is keyed.
        let unkeyed = source_with("");
        let (record, _, _) = event(unkeyed.as_ref(), &fixture("channel.message_created"));
        assert_eq!(record.key, None);
    }

    #[test]
    fn the_event_type_is_read_where_the_pointer_says() {
        let source = source_with("event_type_pointer = \"/event/name\"");
        let (record, category, _) = event(
            source.as_ref(),
            br#"{"type":"ignored","event":{"name":"order.shipped"}}"#,
        );
        assert_eq!(category, "order.shipped");
        assert_eq!(
            text(&decode(&record.value), "event_type").as_deref(),
            Some("order.shipped")
        );
        // Absent or not a string: no event type, no category header, still an event.
        let source = self::source();
        for body in [
            &br#"{"data":{}}"#[..],
            br#"{"type":42}"#,
            br#"{"type":null}"#,
            br#"[1,2]"#,
            br#"7"#,
        ] {
            let (record, category, _) = event(source.as_ref(), body);
            let fields = decode(&record.value);
            assert_eq!(
                fields.get("event_type"),
                Some(&Value::Union(0, Box::new(Value::Null)))
            );
            assert_eq!(category, "");
            assert_eq!(header(&record, HEADER_CATEGORY), None);
            assert_eq!(record.topic, "acme.events");
        }
    }

    #[test]
    fn data_is_kept_as_the_exact_json_text_sent() {
        let source = source();
        let body = "\u{feff}{ \"type\" : \"a.b\",\n \"data\" :  { \"n\" : [1, 2.50, 1e3, \"\\u00e9\\ud83d\"] ,\"z\":{}} \n}";
        let (record, category, _) = event(source.as_ref(), body.as_bytes());
        assert_eq!(category, "a.b");
        let fields = decode(&record.value);
        assert_eq!(
            text(&fields, "data").as_deref(),
            Some(r#"{ "n" : [1, 2.50, 1e3, "\u00e9\ud83d"] ,"z":{}}"#)
        );
        assert_eq!(text(&fields, "raw_body").as_deref(), Some(body));
        // No data member, or data that is not an object: null, or its text.
        let (record, _, _) = event(source.as_ref(), br#"{"type":"x"}"#);
        assert_eq!(
            decode(&record.value).get("data"),
            Some(&Value::Union(0, Box::new(Value::Null)))
        );
        let (record, _, _) = event(source.as_ref(), br#"{"data":"s"}"#);
        assert_eq!(
            text(&decode(&record.value), "data").as_deref(),
            Some(r#""s""#)
        );
    }

    #[test]
    fn bodies_that_are_not_json_are_dead_lettered() {
        let source = source();
        for body in [
            &b"not json"[..],
            b"",
            b"{\"type\":\"a\"",
            b"{\"type\":\"a\"} trailing",
            b"{\"type\":\"a\x01\"}",
        ] {
            assert_eq!(
                dead_letter_reason(source.as_ref(), body),
                DLQ_NOT_JSON,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(
            dead_letter_reason(source.as_ref(), b"\xff\xfe{\"type\":\"a\"}"),
            DLQ_NOT_UTF8
        );
        // Nesting far beyond serde_json's recursion limit is still JSON.
        let deep = format!(
            r#"{{"type":"deep","data":{}1{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        let (_, category, _) = event(source.as_ref(), deep.as_bytes());
        assert_eq!(category, "deep");
    }

    #[test]
    fn an_event_type_longer_than_256_bytes_is_dead_lettered() {
        let source = source();
        let at_limit = format!(r#"{{"type":"{}"}}"#, "x".repeat(MAX_EVENT_TYPE_LEN));
        let (_, category, _) = event(source.as_ref(), at_limit.as_bytes());
        assert_eq!(category.len(), MAX_EVENT_TYPE_LEN);
        let too_long = format!(r#"{{"type":"{}"}}"#, "x".repeat(MAX_EVENT_TYPE_LEN + 1));
        assert_eq!(
            dead_letter_reason(source.as_ref(), too_long.as_bytes()),
            DLQ_EVENT_TYPE_TOO_LONG
        );
    }

    #[test]
    fn a_record_over_the_producer_limit_is_dead_lettered() {
        // max_body_bytes 1024 makes the record limit 4 KiB + 64 KiB; the handler would refuse
        // such a body first, but build() must not rely on it.
        let config = load_with("max_body_bytes = 1024", "").expect("valid");
        let source = source_of(&config);
        let body = format!(r#"{{"type":"big","data":"{}"}}"#, "x".repeat(70 * 1024));
        assert_eq!(
            dead_letter_reason(source.as_ref(), body.as_bytes()),
            DLQ_TOO_LARGE
        );
    }

    #[test]
    fn routes_send_event_types_to_their_topic() {
        let source = source_with(
            "[[sources.routes]]\ncategory = \"invoice.*\"\ntopic = \"billing.invoices\"\n",
        );
        let (record, _, _) = event(source.as_ref(), &fixture("invoice.paid"));
        assert_eq!(record.topic, "billing.invoices");
        assert_eq!(split_frame(&record.value).map(|(id, _)| id), Some(101));
        let (record, _, _) = event(source.as_ref(), &fixture("user.created"));
        assert_eq!(record.topic, "acme.events");
        assert_eq!(split_frame(&record.value).map(|(id, _)| id), Some(100));
        assert_eq!(source.dlq_topic().as_str(), "acme.dlq");
        let config =
            load("[[sources.routes]]\ncategory = \"invoice.*\"\ntopic = \"billing.invoices\"\n")
                .expect("valid");
        let topics = Standard.topics(&config.sources.list[0]).expect("topics");
        let names: Vec<&str> = topics.events.iter().map(TopicName::as_str).collect();
        assert_eq!(names, ["acme.events", "billing.invoices"]);
        assert_eq!(topics.dlq.as_str(), "acme.dlq");
    }

    #[test]
    fn configuration_defaults_and_prefix() {
        let config = load("").expect("valid");
        let [s] = config.sources.list.as_slice() else {
            panic!("one source")
        };
        assert_eq!((s.provider, s.id.as_str()), ("standard", "acme"));
        assert_eq!(s.topic_prefix, "acme.");
        let config = load("topic_prefix = \"webhooks.acme.\"").expect("valid");
        let topics = Standard.topics(&config.sources.list[0]).expect("topics");
        assert_eq!(topics.events[0].as_str(), "webhooks.acme.events");
        assert_eq!(topics.dlq.as_str(), "webhooks.acme.dlq");
        assert_eq!(Standard.sender_timeout(), Some(Duration::from_secs(15)));
    }

    #[test]
    fn configuration_problems_name_the_setting() {
        let text = load_err("colour = \"blue\"\nkey_pointer = \"data.id\"\ntolerance = \"2h\"");
        assert!(
            text.contains("sources[0]: unknown setting `colour`"),
            "{text}"
        );
        assert!(text.contains("sources[0].key_pointer: "), "{text}");
        assert!(
            text.contains("sources[0].tolerance: must be at most 1h"),
            "{text}"
        );
        let text = load_err("tolerance = \"0s\"");
        assert!(
            text.contains("sources[0].tolerance: must be more than 0"),
            "{text}"
        );
        let text = load_err("topic_prefix = \"bad prefix \"");
        assert!(text.contains("sources[0].topic_prefix"), "{text}");
    }

    #[test]
    fn bad_secrets_are_refused_without_printing_them() {
        let env = env();
        let toml = "[[sources]]\nprovider = \"standard\"\nid = \"acme\"\nsecrets = [\"whsec_c2VjcmV0LXNlY3JldA==\", \"whsec_\", \"whsec_s3cr3t!value\"]\n";
        let text = Config::from_toml_str(Some(toml), &env, &PROVIDERS)
            .expect_err("invalid")
            .to_string();
        assert!(
            text.contains("sources[0].secrets: secret #2: is empty"),
            "{text}"
        );
        assert!(
            text.contains("sources[0].secrets: secret #3: is not base64"),
            "{text}"
        );
        assert!(!text.contains("s3cr3t"), "{text}");
        let toml = "[[sources]]\nprovider = \"standard\"\nid = \"acme\"\n";
        let text = Config::from_toml_str(Some(toml), &env, &PROVIDERS)
            .expect_err("invalid")
            .to_string();
        assert!(text.contains("has no secrets"), "{text}");
    }

    #[test]
    fn provider_sign_gives_headers_the_source_accepts() {
        let source = source();
        let body = fixture("invoice.paid");
        let headers: HeaderMap = Standard
            .sign(SECRET, &body, RECEIVED_MS)
            .expect("valid secret")
            .into_iter()
            .map(|(k, v)| {
                (
                    axum::http::HeaderName::from_static(k),
                    v.parse().expect("header value"),
                )
            })
            .collect();
        let expectation = source.expect(&headers, RECEIVED_MS).expect("well-formed");
        let id = expectation.delivery_id.clone().expect("an id");
        assert!(id.starts_with("msg_"));
        assert_eq!(expectation.signed_at_ms, Some(TS * 1000));
        let webhook = VerifiedWebhook::verify(
            "acme",
            source.keys().current(),
            expectation,
            &body,
            RECEIVED_MS,
        )
        .expect("authentic");
        assert_eq!(webhook.event_id(), id);
        let why = Standard
            .sign("whsec_!!", &body, RECEIVED_MS)
            .expect_err("bad secret");
        assert!(why.starts_with("the secret is not base64"), "{why}");
    }

    #[test]
    fn the_configured_tolerance_applies_to_requests() {
        let source = source_with("tolerance = \"1m\"");
        let body = fixture("user.created");
        let stale = signed_headers(&body, TS - 61);
        assert_eq!(
            source.expect(&stale, RECEIVED_MS).err(),
            Some(SignatureError::Expired)
        );
        let fresh = signed_headers(&body, TS - 60);
        assert!(source.expect(&fresh, RECEIVED_MS).is_ok());
        // The default is five minutes.
        let source = self::source();
        let stale = signed_headers(&body, TS - 301);
        assert_eq!(
            source.expect(&stale, RECEIVED_MS).err(),
            Some(SignatureError::Expired)
        );
        assert!(
            source
                .expect(&signed_headers(&body, TS - 300), RECEIVED_MS)
                .is_ok()
        );
    }
}
