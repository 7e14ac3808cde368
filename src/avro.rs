//! The event schema (embedded from `schemas/` at build time, parsed once), Avro encoding of
//! events, and the Confluent wire format: magic byte 0, 4-byte big-endian schema id, datum.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use apache_avro::Schema;

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

/// Encodes events into Confluent-framed values. The datum is written straight from the typed
/// view in the schema's field order (checked against the schema by the tests), with no
/// intermediate value tree: its exact length is known before a byte is written, so a record
/// is never built only to be found too large.
pub struct EventEncoder(());

impl EventEncoder {
    pub fn new() -> Result<Self, AvroError> {
        // The schema must parse; the writer below follows its field order.
        event_schema()?;
        Ok(EventEncoder(()))
    }

    /// The length of the record value [`EventEncoder::encode`] would produce.
    pub fn encoded_len(&self, record: &EventRecord<'_>) -> usize {
        let mut counter = Counter(0);
        write_event(&mut counter, record);
        HEADER_LEN + counter.0
    }

    /// The record value: Confluent header for `schema_id`, then the Avro datum.
    pub fn encode(&self, schema_id: u32, record: &EventRecord<'_>) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len(record));
        write_header(&mut out, schema_id);
        write_event(&mut out, record);
        out
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

/// Where Avro bytes go: a buffer, or a counter for the length pass.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

struct Counter(usize);

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

/// Avro `long`: zig-zag, then base-128 varint.
fn long(out: &mut impl Sink, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    let mut buf = [0u8; 10];
    let mut i = 0;
    loop {
        let byte = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            buf[i] = byte;
            i += 1;
            break;
        }
        buf[i] = byte | 0x80;
        i += 1;
    }
    out.put(&buf[..i]);
}

fn len(out: &mut impl Sink, n: usize) {
    long(out, i64::try_from(n).unwrap_or(i64::MAX));
}

fn string(out: &mut impl Sink, s: &str) {
    len(out, s.len());
    out.put(s.as_bytes());
}

fn boolean(out: &mut impl Sink, b: bool) {
    out.put(&[u8::from(b)]);
}

/// A `["null", T]` union: branch 0 for null, 1 then the value.
fn optional<S: Sink, T: ?Sized>(out: &mut S, v: Option<&T>, write: impl FnOnce(&mut S, &T)) {
    match v {
        None => long(out, 0),
        Some(v) => {
            long(out, 1);
            write(out, v);
        }
    }
}

fn opt_str(out: &mut impl Sink, v: Option<&str>) {
    optional(out, v, string);
}

fn opt_bool(out: &mut impl Sink, v: Option<bool>) {
    optional(out, v.as_ref(), |o, b| boolean(o, *b));
}

fn opt_long(out: &mut impl Sink, v: Option<i64>) {
    optional(out, v.as_ref(), |o, n| long(o, *n));
}

/// An array as one block: count, items, then the empty block that ends it.
fn array<S: Sink, T>(out: &mut S, items: &[T], mut write: impl FnMut(&mut S, &T)) {
    if !items.is_empty() {
        len(out, items.len());
        for item in items {
            write(out, item);
        }
    }
    long(out, 0);
}

fn channel(out: &mut impl Sink, c: &Channel) {
    opt_str(out, c.channel_url.as_deref());
    opt_str(out, c.name.as_deref());
    opt_str(out, c.custom_type.as_deref());
    opt_str(out, c.data.as_deref());
    opt_bool(out, c.is_distinct);
    opt_bool(out, c.is_public);
    opt_bool(out, c.is_super);
    opt_bool(out, c.is_ephemeral);
    opt_bool(out, c.is_discoverable);
}

fn user(out: &mut impl Sink, u: &User) {
    opt_str(out, u.user_id.as_deref());
    opt_str(out, u.nickname.as_deref());
    opt_str(out, u.profile_url.as_deref());
    optional(
        out,
        u.metadata.as_ref(),
        |o, m: &BTreeMap<String, String>| {
            if !m.is_empty() {
                len(o, m.len());
                for (k, v) in m {
                    string(o, k);
                    string(o, v);
                }
            }
            long(o, 0);
        },
    );
}

fn message(out: &mut impl Sink, m: &Message) {
    opt_long(out, m.message_id);
    opt_str(out, m.message_type.as_deref());
    opt_str(out, m.text.as_deref());
    opt_str(out, m.custom_type.as_deref());
    opt_str(out, m.data.as_deref());
    opt_long(out, m.created_at);
    opt_str(out, m.mention_type.as_deref());
    optional(out, m.mentioned_user_ids.as_deref(), |o, ids| {
        array(o, ids, |o, s| string(o, s));
    });
    opt_bool(out, m.silent);
    opt_str(out, m.sdk.as_deref());
}

fn member(out: &mut impl Sink, m: &Member) {
    opt_str(out, m.user_id.as_deref());
    opt_str(out, m.nickname.as_deref());
    opt_str(out, m.profile_url.as_deref());
    opt_bool(out, m.is_online);
    opt_bool(out, m.is_hidden);
    opt_str(out, m.state.as_deref());
    opt_bool(out, m.push_enabled);
    opt_str(out, m.push_trigger_option.as_deref());
    opt_long(out, m.unread_message_count);
}

/// The datum, field by field in the order of `schemas/sendbird_event.avsc`.
fn write_event(out: &mut impl Sink, r: &EventRecord<'_>) {
    let e = r.event;
    string(out, r.event_id);
    string(out, &e.category);
    string(out, r.app_id);
    long(out, r.received_at_ms);
    opt_long(out, e.occurred_at_ms);
    opt_str(out, e.channel_url());
    string(out, r.raw_body);
    optional(out, e.channel.as_ref(), channel);
    optional(out, e.sender.as_ref(), user);
    optional(out, e.actor.as_ref(), user);
    optional(out, e.message.as_ref(), message);
    optional(out, e.members.as_deref(), |o, ms| array(o, ms, member));
    optional(out, e.affected_users.as_deref(), |o, us| array(o, us, user));
    let truncated = (!e.truncated.is_empty()).then_some(e.truncated.as_slice());
    optional(out, truncated, |o, names| {
        array(o, names, |o, s| string(o, s))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::reader::datum::GenericDatumReader;
    use apache_avro::types::Value;

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
        let bytes = EventEncoder::new().expect("schema").encode(7, &rec);
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
            0x00,                         // truncated
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
        let bytes = EventEncoder::new().expect("schema").encode(42, &rec);
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

    /// Every string field holds its own path and every list one item, so a field written in the
    /// wrong place decodes under another name and fails; the schema's reader is the oracle.
    #[test]
    fn every_field_lands_under_its_own_name() {
        use crate::sendbird::Member;
        let s = |p: &str| Some(p.to_owned());
        let user = |p: &str| User {
            user_id: s(&format!("{p}.user_id")),
            nickname: s(&format!("{p}.nickname")),
            profile_url: s(&format!("{p}.profile_url")),
            metadata: Some(BTreeMap::from([("k".to_owned(), format!("{p}.metadata"))])),
        };
        let event = SendbirdEvent {
            category: "category".into(),
            app_id: None,
            channel: Some(Channel {
                channel_url: s("channel.channel_url"),
                name: s("channel.name"),
                custom_type: s("channel.custom_type"),
                data: s("channel.data"),
                ..Channel::default()
            }),
            sender: Some(user("sender")),
            actor: Some(user("actor")),
            message: Some(Message {
                message_type: s("message.type"),
                text: s("message.text"),
                custom_type: s("message.custom_type"),
                data: s("message.data"),
                mention_type: s("message.mention_type"),
                mentioned_user_ids: Some(vec!["message.mentioned_user_ids".into()]),
                sdk: s("message.sdk"),
                ..Message::default()
            }),
            members: Some(vec![Member {
                user_id: s("members.user_id"),
                nickname: s("members.nickname"),
                profile_url: s("members.profile_url"),
                state: s("members.state"),
                push_trigger_option: s("members.push_trigger_option"),
                ..Member::default()
            }]),
            affected_users: Some(vec![user("affected_users")]),
            occurred_at_ms: None,
            truncated: vec!["truncated"],
        };
        let rec = EventRecord {
            event_id: "event_id",
            app_id: "app_id",
            received_at_ms: 5,
            raw_body: "raw_body",
            event: &event,
        };
        let encoder = EventEncoder::new().expect("schema");
        let bytes = encoder.encode(1, &rec);
        assert_eq!(bytes.len(), encoder.encoded_len(&rec));
        let (_, mut datum) = split_frame(&bytes).expect("framed");
        let value = GenericDatumReader::builder(event_schema().expect("schema"))
            .build()
            .expect("reader")
            .read_value(&mut datum)
            .expect("decodes");
        assert!(datum.is_empty(), "trailing bytes");
        fn walk(path: &str, v: &Value, strings: &mut usize) {
            match v {
                Value::String(text) if path.ends_with("metadata.k") => {
                    assert_eq!(format!("{text}.k"), path);
                    *strings += 1;
                }
                Value::String(text) if path == "channel_url" => {
                    assert_eq!(
                        text, "channel.channel_url",
                        "the key copies channel.channel_url"
                    );
                    *strings += 1;
                }
                Value::String(text) => {
                    assert_eq!(text, path);
                    *strings += 1;
                }
                Value::Union(_, inner) => walk(path, inner, strings),
                Value::Array(items) => items.iter().for_each(|i| walk(path, i, strings)),
                Value::Map(m) => m
                    .iter()
                    .for_each(|(k, v)| walk(&format!("{path}.{k}"), v, strings)),
                Value::Record(fields) => fields.iter().for_each(|(k, v)| {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(&p, v, strings)
                }),
                _ => {}
            }
        }
        let mut strings = 0;
        walk("", &value, &mut strings);
        assert_eq!(strings, 34, "every string field was checked");
    }

    #[test]
    fn frames_are_split_back() {
        assert_eq!(split_frame(&[0, 0, 0, 1, 0, 9]), Some((256, &[9u8][..])));
        assert_eq!(split_frame(&[1, 0, 0, 0, 1]), None);
        assert_eq!(split_frame(&[0, 0]), None);
    }
}
