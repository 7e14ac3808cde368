//! The Stream event record: `schemas/stream_event.avsc`, written straight from the typed view
//! in the schema's field order (checked against the schema by the tests).

use apache_avro::Schema;

use super::event::{Member, Message, Reaction, StreamEvent, User};
use crate::providers::SchemaFile;
use crate::sink::avro::{
    Sink, array, boolean, framed, framed_len, long, opt_long, opt_str, optional, string,
};

/// The schema file every Stream event topic's `<topic>-value` subject holds.
pub static SCHEMA: SchemaFile = SchemaFile::new(
    "schemas/stream_event.avsc",
    include_str!("../../../schemas/stream_event.avsc"),
);

/// The event schema, parsed on first use and kept for the life of the process.
pub fn event_schema() -> Result<&'static Schema, String> {
    SCHEMA.schema()
}

/// What one record is made of besides the typed view.
#[derive(Debug, Clone, Copy)]
pub struct EventRecord<'a> {
    pub event_id: &'a str,
    pub source_id: &'a str,
    pub received_at_ms: i64,
    /// The signed JSON: the body as received, or decompressed when it arrived gzip-compressed
    /// (the dead-letter topic, not this record, keeps compressed bytes as received). The caller
    /// checked it is UTF-8.
    pub raw_body: &'a str,
    /// Whether the body arrived gzip-compressed.
    pub compressed: bool,
    pub event: &'a StreamEvent,
}

/// Encodes events into Confluent-framed values, with no intermediate value tree: the exact
/// length is known before a byte is written, so a record is never built only to be found too
/// large.
pub struct EventEncoder(());

impl EventEncoder {
    pub fn new() -> Result<Self, String> {
        // The schema must parse; the writer below follows its field order.
        event_schema()?;
        Ok(EventEncoder(()))
    }

    /// The length of the record value [`EventEncoder::encode`] would produce.
    pub fn encoded_len(&self, record: &EventRecord<'_>) -> usize {
        framed_len(|out| write_event(out, record))
    }

    /// The record value: Confluent header for `schema_id`, then the Avro datum.
    pub fn encode(&self, schema_id: u32, record: &EventRecord<'_>) -> Vec<u8> {
        framed(schema_id, self.encoded_len(record), |out| {
            write_event(out, record)
        })
    }
}

fn user(out: &mut impl Sink, u: &User) {
    opt_str(out, u.id.as_deref());
    opt_str(out, u.role.as_deref());
    opt_str(out, u.name.as_deref());
}

fn message(out: &mut impl Sink, m: &Message) {
    opt_str(out, m.id.as_deref());
    opt_str(out, m.text.as_deref());
    opt_str(out, m.message_type.as_deref());
    opt_str(out, m.parent_id.as_deref());
    opt_long(out, m.created_at_ms);
    opt_str(out, m.user_id.as_deref());
    optional(out, m.mentioned_user_ids.as_deref(), |o, ids| {
        array(o, ids, |o, s| string(o, s));
    });
}

fn member(out: &mut impl Sink, m: &Member) {
    opt_str(out, m.user_id.as_deref());
    opt_str(out, m.role.as_deref());
    opt_str(out, m.channel_role.as_deref());
}

fn reaction(out: &mut impl Sink, r: &Reaction) {
    opt_str(out, r.reaction_type.as_deref());
    opt_str(out, r.message_id.as_deref());
    opt_str(out, r.user_id.as_deref());
}

/// The datum, field by field in the order of `schemas/stream_event.avsc`.
fn write_event(out: &mut impl Sink, r: &EventRecord<'_>) {
    let e = r.event;
    string(out, r.event_id);
    string(out, &e.event_type);
    string(out, r.source_id);
    long(out, r.received_at_ms);
    opt_long(out, e.occurred_at_ms);
    opt_str(out, e.cid.as_deref());
    opt_str(out, e.channel_type.as_deref());
    opt_str(out, e.channel_id.as_deref());
    string(out, r.raw_body);
    boolean(out, r.compressed);
    optional(out, e.user.as_ref(), user);
    optional(out, e.message.as_ref(), message);
    optional(out, e.member.as_ref(), member);
    optional(out, e.reaction.as_ref(), reaction);
    let truncated = (!e.truncated.is_empty()).then_some(e.truncated.as_slice());
    optional(out, truncated, |o, names| {
        array(o, names, |o, s| string(o, s))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::avro::{read_record, split_frame};
    use apache_avro::types::Value;

    fn decode(bytes: &[u8]) -> Vec<(String, Value)> {
        read_record(event_schema().expect("schema"), bytes).1
    }

    #[test]
    fn encodes_a_small_event_byte_for_byte() {
        let event = StreamEvent {
            event_type: "t".into(),
            cid: Some("c".into()),
            ..StreamEvent::default()
        };
        let rec = EventRecord {
            event_id: "e",
            source_id: "s",
            received_at_ms: 1,
            raw_body: "{}",
            compressed: true,
            event: &event,
        };
        let bytes = EventEncoder::new().expect("schema").encode(7, &rec);
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            0x00, 0x00, 0x00, 0x00, 0x07, // magic byte, schema id 7 big-endian
            0x02, b'e',                   // event_id
            0x02, b't',                   // type
            0x02, b's',                   // source_id
            0x02,                         // received_at = 1 (zigzag 2)
            0x00,                         // occurred_at: null branch
            0x02, 0x02, b'c',             // cid: string branch, "c"
            0x00, 0x00,                   // channel_type, channel_id
            0x04, b'{', b'}',             // raw_body
            0x01,                         // compressed = true
            0x00, 0x00, 0x00, 0x00,       // user, message, member, reaction
            0x00,                         // truncated
        ];
        assert_eq!(bytes, expected);
    }

    #[test]
    fn round_trips_a_fixture_through_the_reader() {
        let body = std::fs::read(format!(
            "{}/tests/fixtures/stream/reaction.new.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture");
        let event = StreamEvent::parse(&body).expect("parses");
        let raw = std::str::from_utf8(&body).expect("utf-8");
        let rec = EventRecord {
            event_id: "id",
            source_id: "app",
            received_at_ms: 1_700_000_000_000,
            raw_body: raw,
            compressed: false,
            event: &event,
        };
        let encoder = EventEncoder::new().expect("schema");
        let bytes = encoder.encode(42, &rec);
        assert_eq!(bytes.len(), encoder.encoded_len(&rec));
        assert_eq!(split_frame(&bytes).map(|(id, _)| id), Some(42));
        let fields = decode(&bytes);
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("raw_body"), Some(Value::String(raw.to_owned())));
        assert_eq!(get("compressed"), Some(Value::Boolean(false)));
        assert_eq!(
            get("received_at"),
            Some(Value::TimestampMillis(1_700_000_000_000))
        );
        assert_eq!(
            get("occurred_at"),
            Some(Value::Union(
                1,
                Box::new(Value::TimestampMillis(1_556_099_388_488))
            ))
        );
        let Some(Value::Union(1, reaction)) = get("reaction") else {
            panic!("reaction")
        };
        let Value::Record(reaction) = *reaction else {
            panic!("record")
        };
        assert_eq!(
            reaction[0],
            (
                "type".to_owned(),
                Value::Union(1, Box::new(Value::String("lol".into())))
            )
        );
    }

    /// Every string field holds its own path and every list one item, so a field written in the
    /// wrong place decodes under another name and fails; the schema's reader is the oracle.
    #[test]
    fn every_field_lands_under_its_own_name() {
        let s = |p: &str| Some(p.to_owned());
        let event = StreamEvent {
            event_type: "type".into(),
            cid: s("cid"),
            channel_type: s("channel_type"),
            channel_id: s("channel_id"),
            occurred_at_ms: Some(3),
            user: Some(User {
                id: s("user.id"),
                role: s("user.role"),
                name: s("user.name"),
            }),
            message: Some(Message {
                id: s("message.id"),
                text: s("message.text"),
                message_type: s("message.type"),
                parent_id: s("message.parent_id"),
                created_at_ms: Some(4),
                user_id: s("message.user_id"),
                mentioned_user_ids: Some(vec!["message.mentioned_user_ids".into()]),
            }),
            member: Some(Member {
                user_id: s("member.user_id"),
                role: s("member.role"),
                channel_role: s("member.channel_role"),
            }),
            reaction: Some(Reaction {
                reaction_type: s("reaction.type"),
                message_id: s("reaction.message_id"),
                user_id: s("reaction.user_id"),
            }),
            truncated: vec!["truncated"],
        };
        let rec = EventRecord {
            event_id: "event_id",
            source_id: "source_id",
            received_at_ms: 5,
            raw_body: "raw_body",
            compressed: true,
            event: &event,
        };
        let encoder = EventEncoder::new().expect("schema");
        let bytes = encoder.encode(1, &rec);
        assert_eq!(bytes.len(), encoder.encoded_len(&rec));
        let fields = decode(&bytes);

        fn walk(path: &str, v: &Value, strings: &mut usize, others: &mut Vec<(String, Value)>) {
            match v {
                Value::String(text) => {
                    assert_eq!(text, path);
                    *strings += 1;
                }
                Value::Union(_, inner) => walk(path, inner, strings, others),
                Value::Array(items) => items.iter().for_each(|i| walk(path, i, strings, others)),
                Value::Record(fields) => fields.iter().for_each(|(k, v)| {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(&p, v, strings, others)
                }),
                other => others.push((path.to_owned(), other.clone())),
            }
        }
        let mut strings = 0;
        let mut others = Vec::new();
        walk("", &Value::Record(fields), &mut strings, &mut others);
        assert_eq!(strings, 23, "every string field was checked");
        assert_eq!(
            others,
            vec![
                ("received_at".to_owned(), Value::TimestampMillis(5)),
                ("occurred_at".to_owned(), Value::TimestampMillis(3)),
                ("compressed".to_owned(), Value::Boolean(true)),
                ("message.created_at".to_owned(), Value::TimestampMillis(4)),
            ]
        );
    }
}
