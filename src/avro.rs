//! The event schema (embedded from `schemas/` at build time, parsed once), Avro encoding of
//! events, and the Confluent wire format: magic byte 0, 4-byte big-endian schema id, datum.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use apache_avro::Schema;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;

use crate::sendbird::{Channel, Member, Message, SendbirdEvent, User};

/// The schema file every event topic's `<topic>-value` subject holds.
pub const EVENT_SCHEMA_PATH: &str = "schemas/sendbird_event.avsc";
/// Its text, as registered.
pub const EVENT_SCHEMA_JSON: &str = include_str!("../schemas/sendbird_event.avsc");

/// Confluent wire format's first byte.
pub const MAGIC_BYTE: u8 = 0;
/// Magic byte plus schema id.
pub const HEADER_LEN: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum AvroError {
    #[error("schema {EVENT_SCHEMA_PATH} is invalid: {0}")]
    Schema(String),
    #[error("encoding failed: {0}")]
    Encode(String),
}

/// The event schema, parsed on first use and kept for the life of the process.
pub fn event_schema() -> Result<&'static Schema, AvroError> {
    static SCHEMA: OnceLock<Result<Schema, String>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| Schema::parse_str(EVENT_SCHEMA_JSON).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| AvroError::Schema(e.clone()))
}

/// What one record is made of besides the typed view.
#[derive(Debug, Clone, Copy)]
pub struct EventRecord<'a> {
    pub event_id: &'a str,
    pub app_id: &'a str,
    pub received_at_ms: i64,
    /// The body as received; the caller checked it is UTF-8.
    pub raw_body: &'a str,
    pub event: &'a SendbirdEvent,
}

/// Encodes events with the event schema into Confluent-framed values.
pub struct EventEncoder {
    writer: GenericDatumWriter<'static>,
}

impl EventEncoder {
    pub fn new() -> Result<Self, AvroError> {
        let writer = GenericDatumWriter::builder(event_schema()?)
            .build()
            .map_err(|e| AvroError::Schema(e.to_string()))?;
        Ok(EventEncoder { writer })
    }

    /// The record value: Confluent header for `schema_id`, then the Avro datum.
    pub fn encode(&self, schema_id: u32, record: &EventRecord<'_>) -> Result<Vec<u8>, AvroError> {
        let mut out = Vec::with_capacity(HEADER_LEN + record.raw_body.len() * 2 + 256);
        write_header(&mut out, schema_id);
        self.writer
            .write_value(&mut out, to_value(record))
            .map_err(|e| AvroError::Encode(e.to_string()))?;
        Ok(out)
    }
}

/// Appends the Confluent wire-format header.
pub fn write_header(out: &mut Vec<u8>, schema_id: u32) {
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&schema_id.to_be_bytes());
}

/// Splits a Confluent-framed value into schema id and datum.
pub fn split_frame(value: &[u8]) -> Option<(u32, &[u8])> {
    match value {
        [MAGIC_BYTE, a, b, c, d, datum @ ..] => Some((u32::from_be_bytes([*a, *b, *c, *d]), datum)),
        _ => None,
    }
}

fn null() -> Value {
    Value::Union(0, Box::new(Value::Null))
}

fn some(v: Value) -> Value {
    Value::Union(1, Box::new(v))
}

fn opt_str(v: &Option<String>) -> Value {
    v.as_ref()
        .map_or_else(null, |s| some(Value::String(s.clone())))
}

fn opt_bool(v: Option<bool>) -> Value {
    v.map_or_else(null, |b| some(Value::Boolean(b)))
}

fn opt_long(v: Option<i64>) -> Value {
    v.map_or_else(null, |n| some(Value::Long(n)))
}

fn opt_ts(v: Option<i64>) -> Value {
    v.map_or_else(null, |n| some(Value::TimestampMillis(n)))
}

fn opt<T>(v: &Option<T>, f: impl FnOnce(&T) -> Value) -> Value {
    v.as_ref().map_or_else(null, |x| some(f(x)))
}

fn record(fields: Vec<(&str, Value)>) -> Value {
    Value::Record(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn channel(c: &Channel) -> Value {
    record(vec![
        ("channel_url", opt_str(&c.channel_url)),
        ("name", opt_str(&c.name)),
        ("custom_type", opt_str(&c.custom_type)),
        ("data", opt_str(&c.data)),
        ("is_distinct", opt_bool(c.is_distinct)),
        ("is_public", opt_bool(c.is_public)),
        ("is_super", opt_bool(c.is_super)),
        ("is_ephemeral", opt_bool(c.is_ephemeral)),
        ("is_discoverable", opt_bool(c.is_discoverable)),
    ])
}

fn string_map(m: &BTreeMap<String, String>) -> Value {
    Value::Map(
        m.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<HashMap<_, _>>(),
    )
}

fn user(u: &User) -> Value {
    record(vec![
        ("user_id", opt_str(&u.user_id)),
        ("nickname", opt_str(&u.nickname)),
        ("profile_url", opt_str(&u.profile_url)),
        ("metadata", opt(&u.metadata, string_map)),
    ])
}

fn users(us: &[User]) -> Value {
    Value::Array(us.iter().map(user).collect())
}

fn message(m: &Message) -> Value {
    record(vec![
        ("message_id", opt_long(m.message_id)),
        ("type", opt_str(&m.message_type)),
        ("text", opt_str(&m.text)),
        ("custom_type", opt_str(&m.custom_type)),
        ("data", opt_str(&m.data)),
        ("created_at", opt_ts(m.created_at)),
        ("mention_type", opt_str(&m.mention_type)),
        (
            "mentioned_user_ids",
            opt(&m.mentioned_user_ids, |ids| {
                Value::Array(ids.iter().map(|s| Value::String(s.clone())).collect())
            }),
        ),
        ("silent", opt_bool(m.silent)),
        ("sdk", opt_str(&m.sdk)),
    ])
}

fn member(m: &Member) -> Value {
    record(vec![
        ("user_id", opt_str(&m.user_id)),
        ("nickname", opt_str(&m.nickname)),
        ("profile_url", opt_str(&m.profile_url)),
        ("is_online", opt_bool(m.is_online)),
        ("is_hidden", opt_bool(m.is_hidden)),
        ("state", opt_str(&m.state)),
        ("push_enabled", opt_bool(m.push_enabled)),
        ("push_trigger_option", opt_str(&m.push_trigger_option)),
        ("unread_message_count", opt_long(m.unread_message_count)),
    ])
}

fn to_value(r: &EventRecord<'_>) -> Value {
    let e = r.event;
    record(vec![
        ("event_id", Value::String(r.event_id.to_owned())),
        ("category", Value::String(e.category.clone())),
        ("app_id", Value::String(r.app_id.to_owned())),
        ("received_at", Value::TimestampMillis(r.received_at_ms)),
        ("occurred_at", opt_ts(e.occurred_at_ms)),
        ("channel_url", opt_str(&e.channel_url().map(str::to_owned))),
        ("raw_body", Value::String(r.raw_body.to_owned())),
        ("channel", opt(&e.channel, channel)),
        ("sender", opt(&e.sender, user)),
        ("actor", opt(&e.actor, user)),
        ("message", opt(&e.message, message)),
        (
            "members",
            opt(&e.members, |ms| {
                Value::Array(ms.iter().map(member).collect())
            }),
        ),
        ("affected_users", opt(&e.affected_users, |u| users(u))),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::reader::datum::GenericDatumReader;

    #[test]
    fn encodes_a_small_event_byte_for_byte() {
        let event = SendbirdEvent {
            category: "c".into(),
            channel: Some(Channel {
                channel_url: Some("u".into()),
                ..Channel::default()
            }),
            ..SendbirdEvent::default()
        };
        let rec = EventRecord {
            event_id: "e",
            app_id: "a",
            received_at_ms: 1,
            raw_body: "{}",
            event: &event,
        };
        let bytes = EventEncoder::new()
            .expect("schema")
            .encode(7, &rec)
            .expect("encodes");
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            0x00, 0x00, 0x00, 0x00, 0x07, // magic byte, schema id 7 big-endian
            0x02, b'e',                   // event_id
            0x02, b'c',                   // category
            0x02, b'a',                   // app_id
            0x02,                         // received_at = 1 (zigzag 2)
            0x00,                         // occurred_at: null branch
            0x02, 0x02, b'u',             // channel_url: string branch, "u"
            0x04, b'{', b'}',             // raw_body
            0x02,                         // channel: record branch
            0x02, 0x02, b'u',             //   channel_url
            0x00, 0x00, 0x00,             //   name, custom_type, data
            0x00, 0x00, 0x00, 0x00, 0x00, //   is_distinct .. is_discoverable
            0x00, 0x00, 0x00, 0x00, 0x00, // sender, actor, message, members, affected_users
        ];
        assert_eq!(bytes, expected);
    }

    #[test]
    fn round_trips_a_full_event_through_the_reader() {
        let body = std::fs::read(format!(
            "{}/tests/fixtures/sendbird/group_channel__message_send.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture");
        let event = SendbirdEvent::parse(&body).expect("parses");
        let raw = std::str::from_utf8(&body).expect("utf-8");
        let rec = EventRecord {
            event_id: "id",
            app_id: "A",
            received_at_ms: 1_700_000_000_000,
            raw_body: raw,
            event: &event,
        };
        let bytes = EventEncoder::new()
            .expect("schema")
            .encode(42, &rec)
            .expect("encodes");
        let (id, mut datum) = split_frame(&bytes).expect("framed");
        assert_eq!(id, 42);
        let value = GenericDatumReader::builder(event_schema().expect("schema"))
            .build()
            .expect("reader")
            .read_value(&mut datum)
            .expect("decodes");
        assert!(datum.is_empty(), "trailing bytes");
        let Value::Record(fields) = value else {
            panic!("not a record")
        };
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("raw_body"), Some(Value::String(raw.to_owned())));
        assert_eq!(
            get("received_at"),
            Some(Value::TimestampMillis(1_700_000_000_000))
        );
        assert_eq!(
            get("occurred_at"),
            Some(Value::Union(
                1,
                Box::new(Value::TimestampMillis(1718000700123))
            ))
        );
        let Some(Value::Union(1, members)) = get("members") else {
            panic!("members")
        };
        let Value::Array(members) = *members else {
            panic!("array")
        };
        assert_eq!(members.len(), 2);
    }

    #[test]
    fn frames_are_split_back() {
        assert_eq!(split_frame(&[0, 0, 0, 1, 0, 9]), Some((256, &[9u8][..])));
        assert_eq!(split_frame(&[1, 0, 0, 0, 1]), None);
        assert_eq!(split_frame(&[0, 0]), None);
    }
}
