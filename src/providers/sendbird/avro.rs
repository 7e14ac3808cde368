//! The Sendbird event record: `schemas/sendbird_event.avsc`, written straight from the typed
//! view in the schema's field order (checked against the schema by the tests).

use std::collections::BTreeMap;

use apache_avro::Schema;

use super::event::{Channel, Member, Message, SendbirdEvent, User};
use crate::providers::SchemaFile;
use crate::sink::avro::{
    Sink, array, framed, framed_len, len, long, opt_bool, opt_long, opt_str, optional, string,
};

/// The schema file every Sendbird event topic's `<topic>-value` subject holds.
pub static SCHEMA: SchemaFile = SchemaFile::new(
    "schemas/sendbird_event.avsc",
    include_str!("../../../schemas/sendbird_event.avsc"),
);

/// The event schema, parsed on first use and kept for the life of the process.
pub fn event_schema() -> Result<&'static Schema, String> {
    SCHEMA.schema()
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

fn metadata(out: &mut impl Sink, m: Option<&BTreeMap<String, String>>) {
    optional(out, m, |o, m: &BTreeMap<String, String>| {
        if !m.is_empty() {
            len(o, m.len());
            for (k, v) in m {
                string(o, k);
                string(o, v);
            }
        }
        long(o, 0);
    });
}

fn user(out: &mut impl Sink, u: &User) {
    opt_str(out, u.user_id.as_deref());
    opt_str(out, u.nickname.as_deref());
    opt_str(out, u.profile_url.as_deref());
    metadata(out, u.metadata.as_ref());
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
    opt_str(out, m.url.as_deref());
    opt_str(out, m.filename.as_deref());
    opt_str(out, m.content_type.as_deref());
    opt_long(out, m.content_size);
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
    metadata(out, m.metadata.as_ref());
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
    use crate::sink::avro::{read_framed, read_record};
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
        let (id, fields) = read_record(event_schema().expect("schema"), &bytes);
        assert_eq!(id, 42);
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
    fn a_file_messages_file_lands_in_the_message_record() {
        let body = std::fs::read(format!(
            "{}/tests/fixtures/sendbird/variants/group_channel__message_send.file.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture");
        let event = SendbirdEvent::parse(&body).expect("parses");
        let rec = EventRecord {
            event_id: "id",
            app_id: "A",
            received_at_ms: 1,
            raw_body: std::str::from_utf8(&body).expect("utf-8"),
            event: &event,
        };
        let encoder = EventEncoder::new().expect("schema");
        let bytes = encoder.encode(1, &rec);
        assert_eq!(bytes.len(), encoder.encoded_len(&rec));
        let (_, fields) = read_record(event_schema().expect("schema"), &bytes);
        let Some((_, Value::Union(1, message))) = fields.iter().find(|(k, _)| k == "message")
        else {
            panic!("message")
        };
        let Value::Record(message) = message.as_ref() else {
            panic!("message record")
        };
        let get = |name: &str| {
            message
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let some = |v: Value| Some(Value::Union(1, Box::new(v)));
        assert_eq!(
            get("url"),
            some(Value::String(
                "https://file-us-1.sendbird.com/8c5d1a2b3c4d4e6f/menu-caf\u{e9}.pdf".into()
            ))
        );
        assert_eq!(
            get("filename"),
            some(Value::String("menu-caf\u{e9}.pdf".into()))
        );
        assert_eq!(
            get("content_type"),
            some(Value::String("application/pdf".into()))
        );
        assert_eq!(get("content_size"), some(Value::Long(48213)));
        assert_eq!(get("type"), some(Value::String("FILE".into())));
    }

    /// Every string field holds its own path and every list one item, so a field written in the
    /// wrong place decodes under another name and fails; the schema's reader is the oracle.
    #[test]
    fn every_field_lands_under_its_own_name() {
        use super::super::event::Member;
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
                url: s("message.url"),
                filename: s("message.filename"),
                content_type: s("message.content_type"),
                ..Message::default()
            }),
            members: Some(vec![Member {
                user_id: s("members.user_id"),
                nickname: s("members.nickname"),
                profile_url: s("members.profile_url"),
                state: s("members.state"),
                push_trigger_option: s("members.push_trigger_option"),
                metadata: Some(BTreeMap::from([(
                    "k".to_owned(),
                    "members.metadata".into(),
                )])),
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
        let (_, value) = read_framed(event_schema().expect("schema"), &bytes);
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
        assert_eq!(strings, 38, "every string field was checked");
    }
}
