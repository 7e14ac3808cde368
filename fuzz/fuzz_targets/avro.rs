//! Avro encoding of events: the Confluent frame (magic 0, big-endian schema id) and a datum that
//! apache-avro's reader decodes against the event schema to exactly the inputs, with no bytes
//! left over.
//!
//! An input that `SendbirdEvent::parse` accepts is encoded with itself as `raw_body` (the
//! fixtures seed this); any other input builds an event field by field with `arbitrary`
//! (strings, extreme numbers, absent and present options, empty and long lists).
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use hookbridge::providers::sendbird::avro::{EventEncoder, EventRecord, event_schema};
use hookbridge::providers::sendbird::event::DEFAULT_MAX_TYPED_ITEMS;
use hookbridge::providers::sendbird::{Channel, Member, Message, SendbirdEvent, User};
use hookbridge::sink::avro::split_frame;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

fn encoder() -> &'static EventEncoder {
    static ENCODER: OnceLock<EventEncoder> = OnceLock::new();
    ENCODER.get_or_init(|| EventEncoder::new().expect("event schema"))
}

fn channel(u: &mut Unstructured) -> Result<Channel> {
    Ok(Channel {
        channel_url: u.arbitrary()?,
        name: u.arbitrary()?,
        custom_type: u.arbitrary()?,
        data: u.arbitrary()?,
        is_distinct: u.arbitrary()?,
        is_public: u.arbitrary()?,
        is_super: u.arbitrary()?,
        is_ephemeral: u.arbitrary()?,
        is_discoverable: u.arbitrary()?,
    })
}

fn user(u: &mut Unstructured) -> Result<User> {
    Ok(User {
        user_id: u.arbitrary()?,
        nickname: u.arbitrary()?,
        profile_url: u.arbitrary()?,
        metadata: u.arbitrary()?,
    })
}

fn message(u: &mut Unstructured) -> Result<Message> {
    Ok(Message {
        message_id: u.arbitrary()?,
        message_type: u.arbitrary()?,
        text: u.arbitrary()?,
        custom_type: u.arbitrary()?,
        data: u.arbitrary()?,
        created_at: u.arbitrary()?,
        mention_type: u.arbitrary()?,
        mentioned_user_ids: u.arbitrary()?,
        silent: u.arbitrary()?,
        sdk: u.arbitrary()?,
        url: u.arbitrary()?,
        filename: u.arbitrary()?,
        content_type: u.arbitrary()?,
        content_size: u.arbitrary()?,
    })
}

fn member(u: &mut Unstructured) -> Result<Member> {
    Ok(Member {
        user_id: u.arbitrary()?,
        nickname: u.arbitrary()?,
        profile_url: u.arbitrary()?,
        is_online: u.arbitrary()?,
        is_hidden: u.arbitrary()?,
        state: u.arbitrary()?,
        push_enabled: u.arbitrary()?,
        push_trigger_option: u.arbitrary()?,
        unread_message_count: u.arbitrary()?,
        metadata: u.arbitrary()?,
    })
}

fn option<T>(
    u: &mut Unstructured,
    f: impl FnOnce(&mut Unstructured) -> Result<T>,
) -> Result<Option<T>> {
    Ok(if u.arbitrary()? { Some(f(u)?) } else { None })
}

fn list<T>(u: &mut Unstructured, f: impl Fn(&mut Unstructured) -> Result<T>) -> Result<Vec<T>> {
    let mut out = Vec::new();
    u.arbitrary_loop(None, Some(64), |u| {
        out.push(f(u)?);
        Ok(std::ops::ControlFlow::Continue(()))
    })?;
    Ok(out)
}

fn event(u: &mut Unstructured) -> Result<SendbirdEvent> {
    Ok(SendbirdEvent {
        category: u.arbitrary()?,
        app_id: u.arbitrary()?,
        channel: option(u, channel)?,
        sender: option(u, user)?,
        actor: option(u, user)?,
        message: option(u, message)?,
        members: option(u, |u| list(u, member))?,
        affected_users: option(u, |u| list(u, user))?,
        occurred_at_ms: u.arbitrary()?,
        truncated: {
            let mut names = Vec::new();
            u.arbitrary_loop(None, Some(8), |u| {
                names.push(*u.choose(TRUNCATABLE)?);
                Ok(std::ops::ControlFlow::Continue(()))
            })?;
            names
        },
    })
}

/// The paths `truncated` may name (any strings would do for the encoder; it takes `&'static`).
const TRUNCATABLE: &[&str] = &[
    "members",
    "affected_users",
    "message.mentioned_user_ids",
    "sender.metadata",
    "actor.metadata",
    "affected_users.metadata",
    "",
    "\u{0}\u{10FFFF}",
];

struct Meta {
    schema_id: u32,
    received_at_ms: i64,
    event_id: String,
    app_id: String,
}

fn meta(u: &mut Unstructured) -> Result<Meta> {
    Ok(Meta {
        schema_id: u.arbitrary()?,
        received_at_ms: u.arbitrary()?,
        event_id: u.arbitrary()?,
        app_id: u.arbitrary()?,
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(meta) = meta(&mut u) else { return };
    // Odd lengths parse with a cap of one item, so `truncated` is filled from real bodies too.
    let cap = if data.len() % 2 == 0 {
        DEFAULT_MAX_TYPED_ITEMS
    } else {
        1
    };
    let parsed = std::str::from_utf8(data)
        .ok()
        .and_then(|text| Some((SendbirdEvent::parse_str(text, cap).ok()?, text.to_owned())));
    let (event, raw_body) = match parsed {
        Some(both) => both,
        None => {
            let Ok(event) = event(&mut u) else { return };
            let Ok(raw) = u.arbitrary::<String>() else {
                return;
            };
            (event, raw)
        }
    };
    let record = EventRecord {
        event_id: &meta.event_id,
        app_id: &meta.app_id,
        received_at_ms: meta.received_at_ms,
        raw_body: &raw_body,
        event: &event,
    };
    let bytes = encoder().encode(meta.schema_id, &record);
    assert_eq!(encoder().encoded_len(&record), bytes.len(), "encoded_len");
    // The same record is the same bytes (metadata maps included), so identical retries match.
    assert_eq!(
        encoder().encode(meta.schema_id, &record),
        bytes,
        "not deterministic"
    );

    // The Confluent frame, checked by hand and through split_frame.
    assert!(bytes.len() > 5);
    assert_eq!(bytes[0], 0, "magic byte");
    assert_eq!(bytes[1..5], meta.schema_id.to_be_bytes(), "schema id");
    let (id, mut datum) = split_frame(&bytes).expect("framed");
    assert_eq!(id, meta.schema_id);
    assert_eq!(datum, &bytes[5..]);

    // Decoded with apache-avro, the datum is the inputs, all of it.
    let schema = event_schema().expect("schema");
    let value = GenericDatumReader::builder(schema)
        .build()
        .expect("reader")
        .read_value(&mut datum)
        .unwrap_or_else(|e| panic!("apache-avro cannot decode the datum: {e}"));
    assert!(datum.is_empty(), "{} trailing bytes", datum.len());

    let top = Fields::of(&value, "SendbirdEvent");
    assert_eq!(top.string("event_id"), meta.event_id);
    assert_eq!(top.string("category"), event.category);
    assert_eq!(top.string("app_id"), meta.app_id);
    assert_eq!(
        top.get("received_at"),
        &Value::TimestampMillis(meta.received_at_ms)
    );
    assert_eq!(top.opt("occurred_at").map(timestamp), event.occurred_at_ms);
    assert_eq!(
        top.opt("channel_url").map(string),
        event.channel_url().map(str::to_owned)
    );
    assert_eq!(top.string("raw_body"), raw_body, "raw_body");

    let decoded = SendbirdEvent {
        category: top.string("category"),
        // The body's own app_id is not part of the record (the record's app_id is the route's).
        app_id: event.app_id.clone(),
        channel: top.opt("channel").map(decode_channel),
        sender: top.opt("sender").map(decode_user),
        actor: top.opt("actor").map(decode_user),
        message: top.opt("message").map(decode_message),
        members: top
            .opt("members")
            .map(|v| array(v).iter().map(decode_member).collect()),
        affected_users: top
            .opt("affected_users")
            .map(|v| array(v).iter().map(decode_user).collect()),
        occurred_at_ms: top.opt("occurred_at").map(timestamp),
        // Compared as strings below; the event holds `&'static str`s.
        truncated: event.truncated.clone(),
    };
    assert_eq!(decoded, event);
    // Nothing left out is written as null, not as an empty list.
    let truncated: Vec<String> = top
        .opt("truncated")
        .map(|v| {
            let names: Vec<String> = array(v).iter().map(string).collect();
            assert!(
                !names.is_empty(),
                "truncated: an empty list instead of null"
            );
            names
        })
        .unwrap_or_default();
    assert_eq!(truncated, event.truncated, "truncated");
});

/// A decoded record's fields, looked up by name; every name must be there exactly once.
struct Fields<'v>(&'v [(String, Value)]);

impl<'v> Fields<'v> {
    fn of(v: &'v Value, what: &str) -> Self {
        match v {
            Value::Record(fields) => Fields(fields),
            other => panic!("{what}: expected a record, got {other:?}"),
        }
    }
    fn get(&self, name: &str) -> &'v Value {
        let mut found = self.0.iter().filter(|(k, _)| k == name);
        let (_, v) = found
            .next()
            .unwrap_or_else(|| panic!("field {name} missing"));
        assert!(found.next().is_none(), "field {name} twice");
        v
    }
    fn string(&self, name: &str) -> String {
        string(self.get(name))
    }
    /// A `["null", T]` union: `None` for the null branch, the value for the other.
    fn opt(&self, name: &str) -> Option<&'v Value> {
        match self.get(name) {
            Value::Union(0, inner) if **inner == Value::Null => None,
            Value::Union(1, inner) => Some(inner),
            other => panic!("field {name}: expected a [null, T] union, got {other:?}"),
        }
    }
    fn opt_string(&self, name: &str) -> Option<String> {
        self.opt(name).map(string)
    }
    fn opt_bool(&self, name: &str) -> Option<bool> {
        self.opt(name).map(|v| match v {
            Value::Boolean(b) => *b,
            other => panic!("{name}: expected a boolean, got {other:?}"),
        })
    }
    fn opt_long(&self, name: &str) -> Option<i64> {
        self.opt(name).map(|v| match v {
            Value::Long(n) => *n,
            other => panic!("{name}: expected a long, got {other:?}"),
        })
    }
}

fn string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => panic!("expected a string, got {other:?}"),
    }
}

fn timestamp(v: &Value) -> i64 {
    match v {
        Value::TimestampMillis(n) => *n,
        other => panic!("expected timestamp-millis, got {other:?}"),
    }
}

fn array(v: &Value) -> &[Value] {
    match v {
        Value::Array(items) => items,
        other => panic!("expected an array, got {other:?}"),
    }
}

fn decode_channel(v: &Value) -> Channel {
    let f = Fields::of(v, "Channel");
    Channel {
        channel_url: f.opt_string("channel_url"),
        name: f.opt_string("name"),
        custom_type: f.opt_string("custom_type"),
        data: f.opt_string("data"),
        is_distinct: f.opt_bool("is_distinct"),
        is_public: f.opt_bool("is_public"),
        is_super: f.opt_bool("is_super"),
        is_ephemeral: f.opt_bool("is_ephemeral"),
        is_discoverable: f.opt_bool("is_discoverable"),
    }
}

fn decode_metadata(m: &Value) -> BTreeMap<String, String> {
    match m {
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| (k.clone(), string(v)))
            .collect(),
        other => panic!("metadata: expected a map, got {other:?}"),
    }
}

fn decode_user(v: &Value) -> User {
    let f = Fields::of(v, "User");
    User {
        user_id: f.opt_string("user_id"),
        nickname: f.opt_string("nickname"),
        profile_url: f.opt_string("profile_url"),
        metadata: f.opt("metadata").map(decode_metadata),
    }
}

fn decode_message(v: &Value) -> Message {
    let f = Fields::of(v, "Message");
    Message {
        message_id: f.opt_long("message_id"),
        message_type: f.opt_string("type"),
        text: f.opt_string("text"),
        custom_type: f.opt_string("custom_type"),
        data: f.opt_string("data"),
        created_at: f.opt("created_at").map(timestamp),
        mention_type: f.opt_string("mention_type"),
        mentioned_user_ids: f
            .opt("mentioned_user_ids")
            .map(|ids| array(ids).iter().map(string).collect()),
        silent: f.opt_bool("silent"),
        sdk: f.opt_string("sdk"),
        url: f.opt_string("url"),
        filename: f.opt_string("filename"),
        content_type: f.opt_string("content_type"),
        content_size: f.opt_long("content_size"),
    }
}

fn decode_member(v: &Value) -> Member {
    let f = Fields::of(v, "Member");
    Member {
        user_id: f.opt_string("user_id"),
        nickname: f.opt_string("nickname"),
        profile_url: f.opt_string("profile_url"),
        is_online: f.opt_bool("is_online"),
        is_hidden: f.opt_bool("is_hidden"),
        state: f.opt_string("state"),
        push_enabled: f.opt_bool("push_enabled"),
        push_trigger_option: f.opt_string("push_trigger_option"),
        unread_message_count: f.opt_long("unread_message_count"),
        metadata: f.opt("metadata").map(decode_metadata),
    }
}
