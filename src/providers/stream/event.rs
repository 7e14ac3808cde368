//! The typed view of a Stream Chat payload. Lenient on purpose: an optional field with an
//! unexpected type becomes `None`, never an error, because every field but `type` is optional
//! in Stream's own SDK types and the raw body is kept whole anyway. Only a body that is not a
//! UTF-8 JSON object with a `type` string is refused, as poison.
//!
//! Bounded on purpose: the body is read through [`crate::json`], which keeps only the fields the
//! view uses. The one typed list (a message's mentioned users) longer than the cap is left out
//! and named in [`StreamEvent::truncated`].

use std::time::UNIX_EPOCH;

use serde_json::value::RawValue;

use crate::config::DEFAULT_MAX_TYPED_TEXT_BYTES;
use crate::json::{self, Fields};

/// Why an authentic body cannot be turned into an event; sent as the dead letter's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoisonReason {
    #[error("body is not valid UTF-8")]
    NotUtf8,
    #[error("body is not valid JSON")]
    NotJson,
    #[error("body is not a JSON object")]
    NotObject,
    #[error("body has no type string")]
    NoType,
    #[error("type is longer than {MAX_TYPE_BYTES} bytes")]
    TypeTooLong,
}

impl PoisonReason {
    /// Stable, bounded label for headers and metrics.
    pub fn code(self) -> &'static str {
        match self {
            PoisonReason::NotUtf8 => "not_utf8",
            PoisonReason::NotJson => "not_json",
            PoisonReason::NotObject => "not_object",
            PoisonReason::NoType => "no_type",
            PoisonReason::TypeTooLong => "type_too_long",
        }
    }
}

/// Longer types are not Stream's; they would also bloat every record's header.
pub const MAX_TYPE_BYTES: usize = 256;
/// Typed lists longer than this are left out unless configured otherwise (`max_typed_items`).
pub const DEFAULT_MAX_TYPED_ITEMS: usize = 1000;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct User {
    pub id: Option<String>,
    pub role: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    pub id: Option<String>,
    pub text: Option<String>,
    pub message_type: Option<String>,
    pub parent_id: Option<String>,
    pub created_at_ms: Option<i64>,
    /// `message.user.id`.
    pub user_id: Option<String>,
    pub mentioned_user_ids: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Member {
    pub user_id: Option<String>,
    pub role: Option<String>,
    pub channel_role: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reaction {
    pub reaction_type: Option<String>,
    pub message_id: Option<String>,
    /// `reaction.user.id`.
    pub user_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamEvent {
    pub event_type: String,
    /// `<channel_type>:<channel_id>`, when a non-empty string.
    pub cid: Option<String>,
    /// The body's `channel_type`, else derived from `cid`.
    pub channel_type: Option<String>,
    /// The body's `channel_id`, else derived from `cid`.
    pub channel_id: Option<String>,
    /// `created_at` in milliseconds.
    pub occurred_at_ms: Option<i64>,
    pub user: Option<User>,
    pub message: Option<Message>,
    pub member: Option<Member>,
    pub reaction: Option<Reaction>,
    /// Typed fields left out, by path: lists with more than `max_typed_items` entries
    /// (`message.mentioned_user_ids`) and a text longer than `max_typed_text_bytes`
    /// (`message.text`). The raw body always has them.
    pub truncated: Vec<&'static str>,
}

/// Every top-level key the view reads.
const TOP_LEVEL: &[&str] = &[
    "type",
    "cid",
    "channel_type",
    "channel_id",
    "created_at",
    "user",
    "message",
    "member",
    "reaction",
];
const USER: &[&str] = &["id", "role", "name"];
const MESSAGE: &[&str] = &[
    "id",
    "text",
    "type",
    "parent_id",
    "created_at",
    "user",
    "mentioned_users",
];
const MEMBER: &[&str] = &["user_id", "role", "channel_role"];
const REACTION: &[&str] = &["type", "message_id", "user"];
const ID: &[&str] = &["id"];

/// A string that is not empty once trimmed (ids and keys: an empty one names nothing).
fn non_empty(raw: Option<&RawValue>) -> Option<String> {
    json::string(raw).filter(|s| !s.trim().is_empty())
}

/// `<object>.id` as a non-empty string.
fn id_of(raw: Option<&RawValue>) -> Option<String> {
    non_empty(json::object(raw?, ID)?.get("id"))
}

/// An RFC 3339 timestamp (`2019-04-24T09:49:48.481994Z`, `2019-04-24T10:51:28.142291+02:00`;
/// Stream's docs show both) in milliseconds since the epoch. Anything else is `None`.
pub fn rfc3339_millis(text: &str) -> Option<i64> {
    let text = text.trim();
    if !text.is_ascii() || text.len() < 20 {
        return None;
    }
    // The offset is taken off and applied here: humantime reads UTC only.
    let (local, offset_minutes) = if let Some(local) = text.strip_suffix(['Z', 'z']) {
        (local, 0)
    } else {
        let (local, offset) = text.split_at(text.len() - 6);
        let sign = match offset.as_bytes()[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let (hours, minutes) = offset[1..].split_once(':')?;
        if hours.len() != 2 || minutes.len() != 2 {
            return None;
        }
        let hours: i64 = hours.parse().ok()?;
        let minutes: i64 = minutes.parse().ok()?;
        if hours > 23 || minutes > 59 {
            return None;
        }
        (local, sign * (hours * 60 + minutes))
    };
    // RFC 3339 separates date and time with 'T' (any case); the weak parser would also take a
    // space, and would read a missing offset as UTC.
    if !matches!(local.as_bytes().get(10), Some(b'T' | b't')) {
        return None;
    }
    let mut utc = local.to_owned();
    utc.replace_range(10..11, "T");
    utc.push('Z');
    let at = humantime::parse_rfc3339(&utc).ok()?;
    let millis = i64::try_from(at.duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()?;
    Some(millis - offset_minutes * 60_000)
}

fn timestamp(raw: Option<&RawValue>) -> Option<i64> {
    rfc3339_millis(&json::string(raw)?)
}

/// Reads the typed parts, noting lists left out.
struct Reader {
    cap: usize,
    /// Longest text kept, in bytes of its JSON text (never shorter than the decoded text).
    max_text: usize,
    truncated: Vec<&'static str>,
}

impl Reader {
    fn user(raw: Option<&RawValue>) -> Option<User> {
        let f = json::object(raw?, USER)?;
        Some(User {
            id: non_empty(f.get("id")),
            role: json::string(f.get("role")),
            name: json::string(f.get("name")),
        })
    }

    fn member(raw: Option<&RawValue>) -> Option<Member> {
        let f = json::object(raw?, MEMBER)?;
        Some(Member {
            user_id: non_empty(f.get("user_id")),
            role: json::string(f.get("role")),
            channel_role: json::string(f.get("channel_role")),
        })
    }

    fn reaction(raw: Option<&RawValue>) -> Option<Reaction> {
        let f = json::object(raw?, REACTION)?;
        Some(Reaction {
            reaction_type: json::string(f.get("type")),
            message_id: non_empty(f.get("message_id")),
            user_id: id_of(f.get("user")),
        })
    }

    fn message(&mut self, raw: Option<&RawValue>) -> Option<Message> {
        let f: Fields<'_, '_> = json::object(raw?, MESSAGE)?;
        let mentioned_user_ids = f.get("mentioned_users").and_then(|raw| {
            let items = json::array(raw, self.cap)?;
            if items.truncated() {
                self.truncated.push("message.mentioned_user_ids");
                return None;
            }
            // Stream sends user objects; a bare id string is taken as it is.
            Some(
                items
                    .items
                    .into_iter()
                    .filter_map(|u| non_empty(Some(u)).or_else(|| id_of(Some(u))))
                    .collect(),
            )
        });
        Some(Message {
            id: non_empty(f.get("id")),
            text: match f.get("text") {
                Some(raw) if json::string_longer_than(raw, self.max_text) => {
                    self.truncated.push("message.text");
                    None
                }
                raw => json::string(raw),
            },
            message_type: json::string(f.get("type")),
            parent_id: non_empty(f.get("parent_id")),
            created_at_ms: timestamp(f.get("created_at")),
            user_id: id_of(f.get("user")),
            mentioned_user_ids,
        })
    }
}

impl StreamEvent {
    /// Parses the raw body. Errors only for poison: not UTF-8, not a JSON object, no type.
    pub fn parse(body: &[u8]) -> Result<StreamEvent, PoisonReason> {
        let text = std::str::from_utf8(body).map_err(|_| PoisonReason::NotUtf8)?;
        StreamEvent::parse_str(text, DEFAULT_MAX_TYPED_ITEMS)
    }

    /// [`StreamEvent::parse`] for a body already known to be UTF-8 (the source checks once and
    /// keeps the `&str` for the record's `raw_body`), with typed lists capped at `max_items`.
    pub fn parse_str(text: &str, max_items: usize) -> Result<StreamEvent, PoisonReason> {
        StreamEvent::parse_with(text, max_items, DEFAULT_MAX_TYPED_TEXT_BYTES)
    }

    /// [`StreamEvent::parse_str`] with a message text longer than `max_text_bytes` (of JSON
    /// text) left out of the view and named in `truncated`.
    pub fn parse_with(
        text: &str,
        max_items: usize,
        max_text_bytes: usize,
    ) -> Result<StreamEvent, PoisonReason> {
        let top = json::document(text, TOP_LEVEL).map_err(|shape| match shape {
            json::Shape::NotJson => PoisonReason::NotJson,
            json::Shape::NotObject => PoisonReason::NotObject,
        })?;
        let event_type = match json::string(top.get("type")) {
            Some(t) if t.trim().len() > MAX_TYPE_BYTES => return Err(PoisonReason::TypeTooLong),
            Some(t) if !t.trim().is_empty() => t.trim().to_owned(),
            _ => return Err(PoisonReason::NoType),
        };
        let cid = non_empty(top.get("cid"));
        let (cid_type, cid_id) = match cid.as_deref().and_then(|c| c.split_once(':')) {
            Some((t, id)) => (
                Some(t.to_owned()).filter(|t| !t.is_empty()),
                Some(id.to_owned()).filter(|id| !id.is_empty()),
            ),
            None => (None, None),
        };
        let mut r = Reader {
            cap: max_items,
            max_text: max_text_bytes,
            truncated: Vec::new(),
        };
        Ok(StreamEvent {
            channel_type: non_empty(top.get("channel_type")).or(cid_type),
            channel_id: non_empty(top.get("channel_id")).or(cid_id),
            cid,
            occurred_at_ms: timestamp(top.get("created_at")),
            user: Reader::user(top.get("user")),
            message: r.message(top.get("message")),
            member: Reader::member(top.get("member")),
            reaction: Reader::reaction(top.get("reaction")),
            truncated: r.truncated,
            event_type,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/stream/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn parse(name: &str) -> StreamEvent {
        StreamEvent::parse(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn parses_a_message_new_as_stream_writes_it() {
        let ev = parse("message.new");
        assert_eq!(ev.event_type, "message.new");
        assert_eq!(
            ev.cid.as_deref(),
            Some("messaging:fun-d5f396e3-fbaf-469c-9b45-8837b4f75baa")
        );
        assert_eq!(ev.channel_type.as_deref(), Some("messaging"));
        assert_eq!(
            ev.channel_id.as_deref(),
            Some("fun-d5f396e3-fbaf-469c-9b45-8837b4f75baa")
        );
        // 2020-03-30T07:54:46.295138Z
        assert_eq!(ev.occurred_at_ms, Some(1_585_554_886_295));
        let user = ev.user.as_ref().expect("user");
        assert_eq!(
            user.id.as_deref(),
            Some("tommaso-52ec3a5f-e916-469f-bf54-b53b5247a4b0")
        );
        assert_eq!(user.role.as_deref(), Some("user"));
        let msg = ev.message.as_ref().expect("message");
        assert_eq!(
            msg.id.as_deref(),
            Some("8bffc454-e1da-4d91-8b88-a87853dfb41c")
        );
        assert_eq!(msg.message_type.as_deref(), Some("regular"));
        assert_eq!(msg.user_id, user.id);
        assert_eq!(msg.created_at_ms, Some(1_585_554_886_277));
        assert_eq!(msg.mentioned_user_ids, Some(Vec::new()));
        assert_eq!(ev.member, None);
        assert_eq!(ev.reaction, None);
        assert!(ev.truncated.is_empty());
    }

    #[test]
    fn reads_reactions_members_and_mentions() {
        let ev = parse("reaction.new");
        let reaction = ev.reaction.expect("reaction");
        assert_eq!(reaction.reaction_type.as_deref(), Some("lol"));
        assert_eq!(
            reaction.message_id.as_deref(),
            Some("4b3c7b6c-a39d-4069-9450-2a3716cf4ca6")
        );
        assert_eq!(
            reaction.user_id.as_deref(),
            Some("57fabaed-446a-40b4-a6ec-e0ac8cad57e3")
        );

        let ev = parse("member.added");
        let member = ev.member.expect("member");
        assert_eq!(
            member.user_id.as_deref(),
            Some("d4d7b21a-78d4-4148-9830-eb2d3b99c1ec")
        );

        let ev = StreamEvent::parse(
            br#"{"type":"message.new","message":{"parent_id":"p1","mentioned_users":[{"id":"a"},"b",{"name":"no id"},7]},
                "member":{"user_id":"u","role":"owner","channel_role":"channel_moderator"}}"#,
        )
        .expect("parses");
        let msg = ev.message.expect("message");
        assert_eq!(msg.parent_id.as_deref(), Some("p1"));
        assert_eq!(
            msg.mentioned_user_ids,
            Some(vec!["a".to_owned(), "b".to_owned()])
        );
        let member = ev.member.expect("member");
        assert_eq!(member.role.as_deref(), Some("owner"));
        assert_eq!(member.channel_role.as_deref(), Some("channel_moderator"));
    }

    #[test]
    fn channel_type_and_id_are_derived_from_the_cid_when_absent() {
        let ev = parse("channel.updated");
        assert_eq!(ev.cid.as_deref(), Some("messaging:fun"));
        assert_eq!(ev.channel_type.as_deref(), Some("messaging"));
        assert_eq!(ev.channel_id.as_deref(), Some("fun"));
        // Only the first ':' separates: ids may hold more.
        let ev =
            StreamEvent::parse(br#"{"type":"channel.created","cid":"team:a:b"}"#).expect("parses");
        assert_eq!(ev.channel_type.as_deref(), Some("team"));
        assert_eq!(ev.channel_id.as_deref(), Some("a:b"));
        // The body's own fields win.
        let ev = StreamEvent::parse(
            br#"{"type":"channel.created","cid":"x:y","channel_type":"t","channel_id":"i"}"#,
        )
        .expect("parses");
        assert_eq!(
            (ev.channel_type.as_deref(), ev.channel_id.as_deref()),
            (Some("t"), Some("i"))
        );
        for body in [
            &br#"{"type":"user.updated"}"#[..],
            br#"{"type":"channel.created","cid":"nocolon"}"#,
            br#"{"type":"channel.created","cid":""}"#,
        ] {
            let ev = StreamEvent::parse(body).expect("parses");
            assert_eq!((ev.channel_type, ev.channel_id), (None, None));
        }
        let ev = StreamEvent::parse(br#"{"type":"channel.created","cid":":id"}"#).expect("parses");
        assert_eq!(
            (ev.channel_type.as_deref(), ev.channel_id.as_deref()),
            (None, Some("id"))
        );
    }

    #[test]
    fn created_at_becomes_milliseconds_whatever_the_offset() {
        let cases: &[(&str, Option<i64>)] = &[
            ("2019-04-24T09:49:48.488497Z", Some(1_556_099_388_488)),
            ("2019-04-24T09:49:48Z", Some(1_556_099_388_000)),
            ("2024-10-15T10:12:00.402858186Z", Some(1_728_987_120_402)),
            // message.updated in Stream's docs: the same instant as 08:51:28.142291Z.
            ("2019-04-24T10:51:28.142291+02:00", Some(1_556_095_888_142)),
            ("2019-04-24T08:51:28.142291-00:30", Some(1_556_097_688_142)),
            ("2019-04-24t08:51:28z", Some(1_556_095_888_000)),
            ("1970-01-01T00:30:00+01:00", Some(-1_800_000)),
            ("2019-04-24 09:49:48Z", None),
            ("2019-04-24T09:49:48", None),
            ("2019-04-24T09:49:48+0200", None),
            ("2019-04-24T09:49:48+24:00", None),
            ("0001-01-01T00:00:00Z", None),
            ("yesterday", None),
            ("2019-04-24T09:49:48.4é8Z", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(rfc3339_millis(text), *want, "{text}");
        }
        let ev = parse("message.updated");
        assert_eq!(ev.occurred_at_ms, Some(1_556_095_888_142));
    }

    #[test]
    fn a_text_longer_than_the_cap_is_left_out_and_named() {
        let body = |text: &str| {
            format!(
                r#"{{"type":"message.new","cid":"messaging:c","message":{{"id":"m","text":"{text}"}}}}"#
            )
        };
        let text = |ev: &StreamEvent| ev.message.as_ref().and_then(|m| m.text.clone());
        let ev = StreamEvent::parse_with(&body("0123456789"), 10, 10).expect("parses");
        assert_eq!(text(&ev).as_deref(), Some("0123456789"));
        assert!(ev.truncated.is_empty());
        let ev = StreamEvent::parse_with(&body("0123456789a"), 10, 10).expect("parses");
        assert_eq!(text(&ev), None);
        assert_eq!(ev.message.as_ref().and_then(|m| m.id.as_deref()), Some("m"));
        assert_eq!(ev.truncated, vec!["message.text"]);
    }

    #[test]
    fn wrong_types_become_none_never_an_error() {
        let ev = StreamEvent::parse(
            br#"{"type":"message.new","cid":42,"channel_type":["x"],"created_at":1556099388488,
                "user":{"id":7,"role":true,"name":{"first":"a"}},
                "message":{"id":1,"text":null,"type":3,"created_at":"not a date","user":"u","mentioned_users":"a,b"},
                "member":[{"user_id":"u"}],"reaction":"like"}"#,
        )
        .expect("drift is never an error");
        assert_eq!(ev.cid, None);
        assert_eq!(ev.channel_type, None);
        assert_eq!(ev.occurred_at_ms, None);
        assert_eq!(ev.user, Some(User::default()));
        assert_eq!(ev.message, Some(Message::default()));
        assert_eq!(ev.member, None);
        assert_eq!(ev.reaction, None);
    }

    #[test]
    fn long_mention_lists_are_left_out_and_named() {
        let ids: Vec<String> = (0..5).map(|i| format!(r#"{{"id":"u{i}"}}"#)).collect();
        let body = format!(
            r#"{{"type":"message.new","message":{{"id":"m","mentioned_users":[{}]}}}}"#,
            ids.join(",")
        );
        let ev = StreamEvent::parse_str(&body, 4).expect("parses");
        let msg = ev.message.expect("message");
        assert_eq!(msg.id.as_deref(), Some("m"));
        assert_eq!(msg.mentioned_user_ids, None);
        assert_eq!(ev.truncated, vec!["message.mentioned_user_ids"]);
        let ev = StreamEvent::parse_str(&body, 5).expect("parses");
        assert_eq!(
            ev.message
                .and_then(|m| m.mentioned_user_ids)
                .map(|v| v.len()),
            Some(5)
        );
        assert!(ev.truncated.is_empty());
    }

    #[test]
    fn poison_bodies_are_classified() {
        let long = format!(r#"{{"type":"{}"}}"#, "x".repeat(MAX_TYPE_BYTES + 1));
        let just_fits = format!(r#"{{"type":"{}"}}"#, "x".repeat(MAX_TYPE_BYTES));
        let cases: &[(&[u8], PoisonReason)] = &[
            (b"\xff\xfe{}", PoisonReason::NotUtf8),
            (b"{\"type\":", PoisonReason::NotJson),
            (b"not json at all", PoisonReason::NotJson),
            (b"[1,2]", PoisonReason::NotObject),
            (b"\"message.new\"", PoisonReason::NotObject),
            (b"{}", PoisonReason::NoType),
            (br#"{"type":7}"#, PoisonReason::NoType),
            (br#"{"type":"  "}"#, PoisonReason::NoType),
            (br#"{"type":null,"cid":"a:b"}"#, PoisonReason::NoType),
            (long.as_bytes(), PoisonReason::TypeTooLong),
        ];
        for (body, reason) in cases {
            assert_eq!(
                StreamEvent::parse(body),
                Err(*reason),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(StreamEvent::parse(just_fits.as_bytes()).is_ok());
        assert_eq!(
            StreamEvent::parse(br#"{"type":" message.new "}"#)
                .expect("parses")
                .event_type,
            "message.new"
        );
    }

    #[test]
    fn every_fixture_parses_and_is_named_for_its_type() {
        let dir = format!("{}/tests/fixtures/stream", env!("CARGO_MANIFEST_DIR"));
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("fixture dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "json") {
                let body = std::fs::read(&path).expect("read");
                let ev =
                    StreamEvent::parse(&body).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let stem = path.file_stem().and_then(|s| s.to_str()).expect("name");
                assert_eq!(ev.event_type, stem, "{}", path.display());
                assert!(ev.occurred_at_ms.is_some(), "{stem}: created_at");
                n += 1;
            }
        }
        assert!(n >= 14, "only {n} fixtures");
    }
}
