//! The typed view of a Sendbird payload. Lenient on purpose: an optional field with an
//! unexpected type becomes `None`, never an error, because Sendbird's field types drift
//! (booleans as integers, strings as booleans) and the raw body is kept whole anyway. Only a
//! body that is not a UTF-8 JSON object with a `category` is refused, as poison.
//!
//! Bounded on purpose: the body is read through [`crate::json`], which keeps only the fields
//! the view uses, so an authentic body of any shape costs memory in proportion to the view. A
//! typed list longer than the cap is left out and named in [`SendbirdEvent::truncated`].

use std::collections::BTreeMap;

use super::catalogue;
use serde_json::value::RawValue;

use crate::config::DEFAULT_MAX_TYPED_TEXT_BYTES;
use crate::json::{self, Node, Spec, Want::*};

/// Why an authentic body cannot be turned into an event; sent as the dead letter's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoisonReason {
    #[error("body is not valid UTF-8")]
    NotUtf8,
    #[error("body is not valid JSON")]
    NotJson,
    #[error("body is not a JSON object")]
    NotObject,
    #[error("body has no category string")]
    NoCategory,
    #[error("category is longer than {MAX_CATEGORY_BYTES} bytes")]
    CategoryTooLong,
}

/// Longer categories are not Sendbird's; they would also bloat every record's header.
pub const MAX_CATEGORY_BYTES: usize = 256;
/// Typed lists (members, affected users, mentions, metadata entries) longer than this are left
/// out of the typed view unless configured otherwise (`max_typed_items`).
pub const DEFAULT_MAX_TYPED_ITEMS: usize = 1000;

impl PoisonReason {
    /// Stable, bounded label for headers and metrics.
    pub fn code(self) -> &'static str {
        match self {
            PoisonReason::NotUtf8 => "not_utf8",
            PoisonReason::NotJson => "not_json",
            PoisonReason::NotObject => "not_object",
            PoisonReason::NoCategory => "no_category",
            PoisonReason::CategoryTooLong => "category_too_long",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Channel {
    pub channel_url: Option<String>,
    pub name: Option<String>,
    pub custom_type: Option<String>,
    pub data: Option<String>,
    pub is_distinct: Option<bool>,
    pub is_public: Option<bool>,
    pub is_super: Option<bool>,
    pub is_ephemeral: Option<bool>,
    pub is_discoverable: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct User {
    pub user_id: Option<String>,
    pub nickname: Option<String>,
    pub profile_url: Option<String>,
    pub metadata: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    pub message_id: Option<i64>,
    pub message_type: Option<String>,
    pub text: Option<String>,
    pub custom_type: Option<String>,
    pub data: Option<String>,
    pub created_at: Option<i64>,
    pub mention_type: Option<String>,
    pub mentioned_user_ids: Option<Vec<String>>,
    pub silent: Option<bool>,
    pub sdk: Option<String>,
    /// A FILE message's file: where it is, its name, MIME type and size in bytes.
    pub url: Option<String>,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub content_size: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Member {
    pub user_id: Option<String>,
    pub nickname: Option<String>,
    pub profile_url: Option<String>,
    pub is_online: Option<bool>,
    pub is_hidden: Option<bool>,
    pub state: Option<String>,
    pub push_enabled: Option<bool>,
    pub push_trigger_option: Option<String>,
    pub unread_message_count: Option<i64>,
    /// The member's user metadata, where apps often keep contact details.
    pub metadata: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SendbirdEvent {
    pub category: String,
    /// The body's `app_id`, when it is a string.
    pub app_id: Option<String>,
    pub channel: Option<Channel>,
    pub sender: Option<User>,
    /// The acting user: first present of sender, blocker, unblocker, user, inviter, reporting_user.
    pub actor: Option<User>,
    pub message: Option<Message>,
    pub members: Option<Vec<Member>>,
    pub affected_users: Option<Vec<User>>,
    /// The category's own timestamp in milliseconds.
    pub occurred_at_ms: Option<i64>,
    /// Typed fields left out, by path: lists with more than `max_typed_items` entries
    /// (`members`, `sender.metadata`, ...) and texts longer than `max_typed_text_bytes`
    /// (`message.text`, `message.data`, `channel.data`). The raw body always has them.
    pub truncated: Vec<&'static str>,
}

const ACTOR_FIELDS: &[&str] = &[
    "sender",
    "blocker",
    "unblocker",
    "user",
    "inviter",
    "reporting_user",
];
const AFFECTED_FIELDS: &[&str] = &[
    "users",
    "invitees",
    "blockee",
    "unblockee",
    "operators",
    "offending_user",
];

const CHANNEL: &Spec = &[
    ("channel_url", Raw),
    ("name", Raw),
    ("custom_type", Raw),
    ("data", Raw),
    ("is_distinct", Raw),
    ("is_public", Raw),
    ("is_super", Raw),
    ("is_ephemeral", Raw),
    ("is_discoverable", Raw),
];
const USER: &Spec = &[
    ("user_id", Raw),
    ("nickname", Raw),
    ("profile_url", Raw),
    ("metadata", Entries),
];
const MEMBER: &Spec = &[
    ("user_id", Raw),
    ("nickname", Raw),
    ("profile_url", Raw),
    ("is_online", Raw),
    ("is_hidden", Raw),
    ("state", Raw),
    ("push_enabled", Raw),
    ("push_trigger_option", Raw),
    ("unread_message_count", Raw),
    ("metadata", Entries),
];
/// The message's own fields, and the timestamps the catalogue reads inside it.
const PAYLOAD: &Spec = &[
    ("message_id", Raw),
    ("message", Raw),
    ("custom_type", Raw),
    ("data", Raw),
    ("created_at", Raw),
    ("updated_at", Raw),
    ("deleted_at", Raw),
    ("url", Raw),
    ("filename", Raw),
    ("content_type", Raw),
    ("content_size", Raw),
];
/// The fields Sendbird puts beside a message's payload (the event itself, or the reported
/// message of `message:report`).
const REPORTED: &Spec = &[
    ("channel", Object(CHANNEL)),
    ("payload", Object(PAYLOAD)),
    ("mentioned_users", Array(&Raw)),
    ("type", Raw),
    ("custom_type", Raw),
    ("mention_type", Raw),
    ("silent", Raw),
    ("sdk", Raw),
];

/// Every top-level key the view reads: identity, the entities, and each category's timestamp
/// (every path in [`catalogue::KNOWN`] and [`catalogue::GUESSES`] leads through here).
const TOP_LEVEL: &Spec = &[
    ("category", Raw),
    ("app_id", Raw),
    ("channel", Object(CHANNEL)),
    ("reported_message", Object(REPORTED)),
    ("payload", Object(PAYLOAD)),
    ("sender", Object(USER)),
    ("blocker", Object(USER)),
    ("unblocker", Object(USER)),
    ("user", Object(USER)),
    ("inviter", Object(USER)),
    ("reporting_user", Object(USER)),
    ("members", Array(&Object(MEMBER))),
    ("users", OneOrMany(USER)),
    ("invitees", OneOrMany(USER)),
    ("blockee", OneOrMany(USER)),
    ("unblockee", OneOrMany(USER)),
    ("operators", OneOrMany(USER)),
    ("offending_user", OneOrMany(USER)),
    ("mentioned_users", Array(&Raw)),
    ("type", Raw),
    ("custom_type", Raw),
    ("mention_type", Raw),
    ("silent", Raw),
    ("sdk", Raw),
    ("created_at", Raw),
    ("updated_at", Raw),
    ("deleted_at", Raw),
    ("requested_at", Raw),
    ("read_updates", Raw),
    ("changed_at", Raw),
    ("removed_at", Raw),
    ("invited_at", Raw),
    ("declined_invite_at", Raw),
    ("joined_at", Raw),
    ("left_at", Raw),
    ("ts", Raw),
    ("entered_at", Raw),
    ("exited_at", Raw),
    ("moderated_at", Raw),
    ("blocked_at", Raw),
];

/// Below this, a "milliseconds" value is really seconds (1e11 ms is March 1973; 1e11 s is the
/// year 5138), so it is scaled. This guards against fields whose unit Sendbird never documented,
/// and reads message:report's created_at, documented in seconds, as milliseconds.
const SECONDS_THRESHOLD: i64 = 100_000_000_000;

/// How many lists' worth of items one event's typed view may hold in all: besides each list's
/// cap, all lists and metadata maps of one event share a budget of this many caps, counted in
/// the order the body holds them, so that many capped lists (three hundred users with a
/// thousand metadata entries each) cannot multiply the cost. Every list under a key the view
/// reads counts, whether or not the view ends up using it (a second acting-user field, say).
const ITEMS_PER_EVENT: usize = 4;

/// Turns the read tree into the view, noting the typed lists and texts left out.
struct Reader {
    /// Longest free text kept, in bytes of its JSON text.
    max_text: usize,
    truncated: Vec<&'static str>,
}

impl Reader {
    /// A free text (message text or data, channel data) within `max_text` bytes of JSON text,
    /// else `None` with `path` noted.
    fn text(&mut self, raw: Option<&RawValue>, path: &'static str) -> Option<String> {
        let raw = raw?;
        if json::string_longer_than(raw, self.max_text) {
            self.note(path);
            return None;
        }
        json::string(Some(raw))
    }

    fn note(&mut self, path: &'static str) {
        if !self.truncated.contains(&path) {
            self.truncated.push(path);
        }
    }

    /// The items of an array within the caps, else `None` (with `path` noted when left out).
    fn list<'n, 'a>(
        &mut self,
        node: Option<&'n Node<'a>>,
        path: &'static str,
    ) -> Option<&'n [Node<'a>]> {
        match node? {
            Node::Array(items) => Some(items),
            Node::Truncated => {
                self.note(path);
                None
            }
            _ => None,
        }
    }

    fn channel(&mut self, node: Option<&Node<'_>>) -> Option<Channel> {
        let f = node?.object()?;
        Some(Channel {
            channel_url: json::string(f.raw("channel_url")),
            name: json::string(f.raw("name")),
            custom_type: json::string(f.raw("custom_type")),
            data: self.text(f.raw("data"), "channel.data"),
            is_distinct: json::bool(f.raw("is_distinct")),
            is_public: json::bool(f.raw("is_public")),
            is_super: json::bool(f.raw("is_super")),
            is_ephemeral: json::bool(f.raw("is_ephemeral")),
            is_discoverable: json::bool(f.raw("is_discoverable")),
        })
    }

    /// A metadata object within the caps, else `None` (with `path` noted when left out).
    fn metadata(
        &mut self,
        node: Option<&Node<'_>>,
        path: &'static str,
    ) -> Option<BTreeMap<String, String>> {
        match node? {
            Node::Entries(entries) => Some(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), json::text(v)))
                    .collect(),
            ),
            Node::Truncated => {
                self.note(path);
                None
            }
            _ => None,
        }
    }

    fn user(&mut self, f: &json::Object<'_>, metadata_path: &'static str) -> User {
        User {
            user_id: json::string(f.raw("user_id")),
            nickname: json::string(f.raw("nickname")),
            profile_url: json::string(f.raw("profile_url")),
            metadata: self.metadata(f.get("metadata"), metadata_path),
        }
    }

    fn member(&mut self, node: &Node<'_>) -> Option<Member> {
        let f = node.object()?;
        Some(Member {
            metadata: self.metadata(f.get("metadata"), "members.metadata"),
            user_id: json::string(f.raw("user_id")),
            nickname: json::string(f.raw("nickname")),
            profile_url: json::string(f.raw("profile_url")),
            is_online: json::bool(f.raw("is_online")),
            is_hidden: json::bool(f.raw("is_hidden")),
            state: json::string(f.raw("state")),
            push_enabled: json::bool(f.raw("push_enabled")),
            push_trigger_option: json::string(f.raw("push_trigger_option")),
            unread_message_count: json::int(f.raw("unread_message_count")),
        })
    }

    /// The message of a message event: `payload` plus the fields Sendbird puts beside it.
    fn message(&mut self, outer: &json::Object<'_>) -> Option<Message> {
        let payload = outer.get("payload")?.object()?;
        let mentioned_user_ids = self
            .list(outer.get("mentioned_users"), "message.mentioned_user_ids")
            .map(|users| {
                users
                    .iter()
                    .filter_map(Node::raw)
                    .filter_map(|u| {
                        json::string(Some(u)).or_else(|| {
                            json::object(u, &["user_id"])
                                .and_then(|m| json::string(m.get("user_id")))
                        })
                    })
                    .collect()
            });
        Some(Message {
            message_id: json::int(payload.raw("message_id")),
            message_type: json::string(outer.raw("type")),
            text: self.text(payload.raw("message"), "message.text"),
            custom_type: json::string(payload.raw("custom_type"))
                .or_else(|| json::string(outer.raw("custom_type"))),
            data: self.text(payload.raw("data"), "message.data"),
            created_at: json::int(payload.raw("created_at")).map(normalise_millis),
            mention_type: json::string(outer.raw("mention_type")),
            mentioned_user_ids,
            silent: json::bool(outer.raw("silent")),
            sdk: json::string(outer.raw("sdk")),
            url: json::string(payload.raw("url")),
            filename: json::string(payload.raw("filename")),
            content_type: json::string(payload.raw("content_type")),
            content_size: json::int(payload.raw("content_size")),
        })
    }
}

fn normalise_millis(value: i64) -> i64 {
    if (0..SECONDS_THRESHOLD).contains(&value) {
        value.saturating_mul(1000)
    } else {
        value
    }
}

impl SendbirdEvent {
    /// Parses the raw body. Errors only for poison: not UTF-8, not a JSON object, no category.
    pub fn parse(body: &[u8]) -> Result<SendbirdEvent, PoisonReason> {
        let text = std::str::from_utf8(body).map_err(|_| PoisonReason::NotUtf8)?;
        SendbirdEvent::parse_str(text, DEFAULT_MAX_TYPED_ITEMS)
    }

    /// [`SendbirdEvent::parse`] for a body already known to be UTF-8 (the handler checks once
    /// and keeps the `&str` for the record's `raw_body`), with typed lists capped at `max_items`.
    /// The body is read in one pass ([`json::tree`]).
    pub fn parse_str(text: &str, max_items: usize) -> Result<SendbirdEvent, PoisonReason> {
        SendbirdEvent::parse_with(text, max_items, DEFAULT_MAX_TYPED_TEXT_BYTES)
    }

    /// [`SendbirdEvent::parse_str`] with free texts longer than `max_text_bytes` (of JSON text)
    /// left out of the view and named in `truncated`.
    pub fn parse_with(
        text: &str,
        max_items: usize,
        max_text_bytes: usize,
    ) -> Result<SendbirdEvent, PoisonReason> {
        let budget = max_items.saturating_mul(ITEMS_PER_EVENT);
        let top = json::tree(text, TOP_LEVEL, max_items, budget).map_err(|shape| match shape {
            json::Shape::NotJson => PoisonReason::NotJson,
            json::Shape::NotObject => PoisonReason::NotObject,
        })?;
        let category = match json::string(top.raw("category")) {
            Some(c) if c.trim().len() > MAX_CATEGORY_BYTES => {
                return Err(PoisonReason::CategoryTooLong);
            }
            Some(c) if !c.trim().is_empty() => c.trim().to_owned(),
            _ => return Err(PoisonReason::NoCategory),
        };
        let mut r = Reader {
            max_text: max_text_bytes,
            truncated: Vec::new(),
        };

        // message:report names the reported message's channel inside reported_message.
        let reported = top.get("reported_message").and_then(Node::object);
        let channel = r
            .channel(top.get("channel"))
            .or_else(|| r.channel(reported?.get("channel")));
        let message = r
            .message(&top)
            .or_else(|| reported.and_then(|rep| r.message(rep)));
        let sender = top
            .get("sender")
            .and_then(Node::object)
            .map(|f| r.user(f, "sender.metadata"));
        // The first acting-user field that names a user id; failing that, the first present.
        let actors: Vec<&json::Object<'_>> = ACTOR_FIELDS
            .iter()
            .filter_map(|f| top.get(f)?.object())
            .collect();
        let actor = actors
            .iter()
            .find(|u| u.raw("user_id").is_some_and(|v| v.get().starts_with('"')))
            .or_else(|| actors.first())
            .map(|f| r.user(f, "actor.metadata"));
        let members = r
            .list(top.get("members"), "members")
            .map(|items| items.iter().filter_map(|m| r.member(m)).collect());
        let affected_users = AFFECTED_FIELDS.iter().find_map(|f| match top.get(f)? {
            Node::Object(one) => Some(Some(vec![r.user(one, "affected_users.metadata")])),
            Node::Array(items) => Some(Some(
                items
                    .iter()
                    .filter_map(Node::object)
                    .map(|u| r.user(u, "affected_users.metadata"))
                    .collect(),
            )),
            Node::Truncated => {
                r.note("affected_users");
                Some(None)
            }
            // Any other kind of value: try the next field.
            _ => None,
        });

        // Where the category keeps its own timestamp: catalogue::KNOWN (first present wins).
        let occurred_at_ms = catalogue::occurred_at(&category)
            .paths()
            .iter()
            .find_map(|p| {
                let (first, rest) = p.split_first()?;
                json::int(top.get(first)?.path(rest))
            })
            .map(normalise_millis);

        Ok(SendbirdEvent {
            app_id: json::string(top.raw("app_id")),
            category,
            channel,
            sender,
            actor,
            message,
            members,
            affected_users: affected_users.flatten(),
            occurred_at_ms,
            truncated: r.truncated,
        })
    }
    pub fn channel_url(&self) -> Option<&str> {
        self.channel.as_ref()?.channel_url.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/sendbird/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn parses_a_message_send_as_sendbird_writes_it() {
        let ev = SendbirdEvent::parse(&fixture("group_channel__message_send")).expect("parses");
        assert_eq!(ev.category, "group_channel:message_send");
        assert_eq!(
            ev.app_id.as_deref(),
            Some("A1B2C3D4-0000-4000-8000-000000000001")
        );
        assert!(
            ev.channel_url()
                .expect("channel")
                .starts_with("sendbird_group_channel_")
        );
        let sender = ev.sender.as_ref().expect("sender");
        assert_eq!(sender.nickname.as_deref(), Some("Zoë"));
        assert_eq!(ev.actor, ev.sender);
        let msg = ev.message.as_ref().expect("message");
        assert_eq!(msg.message_id, Some(7340032109));
        assert_eq!(msg.message_type.as_deref(), Some("MESG"));
        assert!(
            msg.text
                .as_deref()
                .expect("text")
                .contains("https://example.com/menu")
        );
        assert_eq!(ev.occurred_at_ms, Some(1718000700123));
        assert_eq!(ev.members.as_ref().map(Vec::len), Some(2));
    }

    #[test]
    fn drifted_types_become_null_or_are_read_leniently() {
        let ev = SendbirdEvent::parse(&fixture("group_channel__message_send")).expect("parses");
        let members = ev.members.expect("members");
        // is_hidden sent as the integer 0; push_trigger_option once sent as a boolean.
        assert_eq!(members[0].is_hidden, Some(false));
        assert_eq!(members[0].push_trigger_option.as_deref(), Some("default"));
        assert_eq!(members[1].push_trigger_option, None);

        let ev = SendbirdEvent::parse(
            br#"{"category":"group_channel:join","channel":{"channel_url":42,"name":["x"],"is_super":"true","is_public":7},
                "joined_at":"1718000000000","users":"not-a-list","members":{"user_id":"x"}}"#,
        )
        .expect("drift is never an error");
        let ch = ev.channel.expect("channel object kept");
        assert_eq!(ch.channel_url, None);
        assert_eq!(ch.name, None);
        assert_eq!(ch.is_super, Some(true));
        assert_eq!(ch.is_public, None);
        assert_eq!(ev.occurred_at_ms, Some(1718000000000));
        assert_eq!(ev.affected_users, None);
        assert_eq!(ev.members, None);
    }

    #[test]
    fn message_report_created_at_is_seconds_and_is_normalised() {
        let ev = SendbirdEvent::parse(&fixture("message__report")).expect("parses");
        assert_eq!(ev.occurred_at_ms, Some(1_718_005_000_000));
        // Should Sendbird switch it to milliseconds, it is not scaled again.
        let ms =
            SendbirdEvent::parse(br#"{"category":"message:report","created_at":1718005000123}"#)
                .expect("parses");
        assert_eq!(ms.occurred_at_ms, Some(1_718_005_000_123));
        // The reported message keeps its own millisecond timestamp.
        assert_eq!(
            ev.message.as_ref().and_then(|m| m.created_at),
            Some(1718004990123)
        );
        assert_eq!(ev.actor.and_then(|a| a.user_id).as_deref(), Some("marc"));
        assert!(ev.channel.is_some(), "reported message's channel is used");
    }

    #[test]
    fn category_timestamps_are_read_from_their_own_fields() {
        let cases: &[(&str, &str, Option<i64>)] = &[
            (
                "group_channel:create",
                r#""created_at":1540867938000"#,
                Some(1540867938000),
            ),
            (
                "group_channel:leave",
                r#""left_at":1540867938001"#,
                Some(1540867938001),
            ),
            (
                "group_channel:message_read",
                r#""read_updates":[{"user_id":"u","read_ts":1540864257418}]"#,
                Some(1540864257418),
            ),
            (
                "open_channel:remove",
                r#""removed_at":1586446261706"#,
                Some(1586446261706),
            ),
            (
                "image_moderation:block",
                r#""blocked_at":1586446261000"#,
                Some(1586446261000),
            ),
            // A seconds value where milliseconds are expected is scaled, not taken as 1970.
            (
                "group_channel:join",
                r#""joined_at":1540867938"#,
                Some(1540867938000),
            ),
            // The original send time is not the deletion time.
            (
                "group_channel:message_delete",
                r#""payload":{"created_at":1540867938000}"#,
                None,
            ),
            ("user:block", r#""created_at":1540867938000"#, None),
            (
                "brand_new:category",
                r#""created_at":1540867938000"#,
                Some(1540867938000),
            ),
        ];
        for (category, fields, expected) in cases {
            let body = format!(r#"{{"category":"{category}",{fields}}}"#);
            let ev = SendbirdEvent::parse(body.as_bytes()).expect("parses");
            assert_eq!(ev.occurred_at_ms, *expected, "{category}");
        }
    }

    #[test]
    fn poison_bodies_are_classified() {
        assert_eq!(
            SendbirdEvent::parse(b"\xff\xfe{}"),
            Err(PoisonReason::NotUtf8)
        );
        assert_eq!(
            SendbirdEvent::parse(b"{\"category\":"),
            Err(PoisonReason::NotJson)
        );
        assert_eq!(SendbirdEvent::parse(b"[1,2]"), Err(PoisonReason::NotObject));
        assert_eq!(SendbirdEvent::parse(b"{}"), Err(PoisonReason::NoCategory));
        assert_eq!(
            SendbirdEvent::parse(br#"{"category":7}"#),
            Err(PoisonReason::NoCategory)
        );
        assert_eq!(
            SendbirdEvent::parse(br#"{"category":"  "}"#),
            Err(PoisonReason::NoCategory)
        );
    }

    #[test]
    fn every_fixture_parses() {
        let dir = format!("{}/tests/fixtures/sendbird", env!("CARGO_MANIFEST_DIR"));
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("fixture dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "json") {
                let body = std::fs::read(&path).expect("read");
                SendbirdEvent::parse(&body).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                n += 1;
            }
        }
        assert!(n >= 52, "only {n} fixtures");
    }

    /// A further shape of a known category (`variants/<category file>.<fact>.json`): kept out
    /// of the main folder, which holds one fixture per category.
    fn variant(name: &str) -> Vec<u8> {
        fixture(&format!("variants/{name}"))
    }

    #[test]
    fn every_variant_parses_as_the_category_its_name_gives() {
        let dir = format!(
            "{}/tests/fixtures/sendbird/variants",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("variants dir") {
            let path = entry.expect("entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).expect("name");
            let category = name.split('.').next().expect("stem").replace("__", ":");
            let ev = SendbirdEvent::parse(&std::fs::read(&path).expect("read"))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(ev.category, category, "{name}");
            assert!(
                catalogue::known(&category).is_some(),
                "{name}: not a known category"
            );
            n += 1;
        }
        assert!(n >= 6, "only {n} variants");
    }

    #[test]
    fn members_keep_their_user_metadata() {
        let ev = SendbirdEvent::parse(&variant("group_channel__message_send.member_contacts"))
            .expect("parses");
        let members = ev.members.expect("members");
        let of = |id: &str| {
            members
                .iter()
                .find(|m| m.user_id.as_deref() == Some(id))
                .and_then(|m| m.metadata.clone())
                .expect("metadata")
        };
        assert_eq!(
            of("lukasz").get("phone_number").map(String::as_str),
            Some("+48601234567")
        );
        assert_eq!(
            of("ana").get("email").map(String::as_str),
            Some("ana@example.org")
        );
        assert!(of("bob").is_empty());
        assert!(ev.truncated.is_empty());
    }

    #[test]
    fn member_metadata_shares_the_event_budget() {
        let member = |i: usize| {
            let entries: Vec<String> = (0..3).map(|k| format!("\"k{k}\":\"v\"")).collect();
            format!(
                r#"{{"user_id":"u{i}","metadata":{{{}}}}}"#,
                entries.join(",")
            )
        };
        let members: Vec<String> = (0..4).map(member).collect();
        let body = format!(
            r#"{{"category":"group_channel:message_send","members":[{}]}}"#,
            members.join(",")
        );
        // A cap of 4 leaves 16 items per event: 4 members, then 12 metadata entries fit.
        let ev = SendbirdEvent::parse_str(&body, 4).expect("parses");
        let with_metadata = ev
            .members
            .as_ref()
            .expect("members")
            .iter()
            .filter(|m| m.metadata.is_some())
            .count();
        assert_eq!(with_metadata, 4);
        assert!(ev.truncated.is_empty());
        // A cap of 3 leaves 12: the members list (4 > 3) is left out entirely.
        let ev = SendbirdEvent::parse_str(&body, 3).expect("parses");
        assert!(ev.members.is_none());
        assert_eq!(ev.truncated, vec!["members"]);
    }

    #[test]
    fn texts_longer_than_the_cap_are_left_out_and_named() {
        let body = |text: &str| {
            format!(
                r#"{{"category":"group_channel:message_send","channel":{{"channel_url":"c","data":"{text}"}},
                    "payload":{{"message_id":1,"message":"{text}","data":"x"}}}}"#
            )
        };
        let ev = SendbirdEvent::parse_with(&body("0123456789"), 10, 10).expect("parses");
        let text = |ev: &SendbirdEvent| ev.message.as_ref().and_then(|m| m.text.clone());
        assert_eq!(text(&ev).as_deref(), Some("0123456789"));
        assert!(ev.truncated.is_empty());

        let ev = SendbirdEvent::parse_with(&body("0123456789a"), 10, 10).expect("parses");
        assert_eq!(text(&ev), None);
        assert_eq!(ev.channel.as_ref().and_then(|c| c.data.clone()), None);
        assert_eq!(
            ev.message.as_ref().and_then(|m| m.data.as_deref()),
            Some("x")
        );
        assert_eq!(ev.channel_url(), Some("c"));
        assert_eq!(ev.truncated, vec!["channel.data", "message.text"]);

        // Measured as sent: an escape counts as written.
        let ev = SendbirdEvent::parse_with(&body(r"\u00e9\u00e9"), 10, 10).expect("parses");
        assert_eq!(text(&ev), None);
        // The default keeps 64 KiB.
        let long = "x".repeat(64 * 1024);
        let ev = SendbirdEvent::parse(body(&long).as_bytes()).expect("parses");
        assert_eq!(text(&ev).map(|t| t.len()), Some(64 * 1024));
        let ev = SendbirdEvent::parse(body(&format!("{long}x")).as_bytes()).expect("parses");
        assert_eq!(text(&ev), None);
    }

    #[test]
    fn every_timestamp_path_leads_through_keys_the_view_reads() {
        let paths = catalogue::KNOWN
            .iter()
            .flat_map(|k| k.occurred_at.paths())
            .chain(catalogue::GUESSES);
        for path in paths {
            // Each segment is a wanted key of the object before it, until a value kept raw.
            let mut spec = TOP_LEVEL;
            for (i, segment) in path.iter().enumerate() {
                let want = spec.iter().find(|(k, _)| k == segment).map(|(_, w)| *w);
                match want {
                    Some(Raw) => break,
                    Some(Object(inner)) if i + 1 < path.len() => spec = inner,
                    other => panic!("{path:?} stops at {segment:?}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn group_channel_changed_reads_changed_at_else_created_at() {
        let ev =
            SendbirdEvent::parse(&variant("group_channel__changed.created_at")).expect("parses");
        assert_eq!(ev.occurred_at_ms, Some(1718000150000));
        let ev = SendbirdEvent::parse(&fixture("group_channel__changed")).expect("parses");
        assert_eq!(ev.occurred_at_ms, Some(1718000100000));
        let both = SendbirdEvent::parse(
            br#"{"category":"group_channel:changed","created_at":1540867938000,"changed_at":1540867939000}"#,
        )
        .expect("parses");
        assert_eq!(both.occurred_at_ms, Some(1540867939000));
    }

    #[test]
    fn reactions_take_occurred_at_from_ts() {
        for (name, ts) in [
            ("group_channel__reaction_add", 1718000900000),
            ("group_channel__reaction_delete", 1718000950000),
        ] {
            let ev = SendbirdEvent::parse(&fixture(name)).expect("parses");
            assert_eq!(ev.occurred_at_ms, Some(ts), "{name}");
            assert_eq!(
                ev.actor.and_then(|a| a.user_id).as_deref(),
                Some("marc"),
                "{name}"
            );
        }
    }

    #[test]
    fn a_supergroup_message_has_no_members() {
        let ev = SendbirdEvent::parse(&variant("group_channel__message_send.supergroup"))
            .expect("parses");
        assert_eq!(ev.members, None);
        assert_eq!(ev.channel.as_ref().and_then(|c| c.is_super), Some(true));
        assert_eq!(
            ev.channel_url(),
            Some("sendbird_group_channel_90210_0a1b2c3d4e5f60718293a4b5c6d7e8f901234567")
        );
        assert_eq!(ev.occurred_at_ms, Some(1718010000321));
        assert!(ev.truncated.is_empty());
    }

    #[test]
    fn app_id_is_read_wherever_it_sits() {
        let body = variant("group_channel__join.app_id_in_the_middle");
        assert!(!body.ends_with(br#""app_id":"A1B2C3D4-0000-4000-8000-000000000001"}"#));
        let ev = SendbirdEvent::parse(&body).expect("parses");
        assert_eq!(
            ev.app_id.as_deref(),
            Some("A1B2C3D4-0000-4000-8000-000000000001")
        );
        assert_eq!(ev.occurred_at_ms, Some(1718000550000));
        assert_eq!(ev.members.as_ref().map(Vec::len), Some(2));
    }

    /// Decided: `push_trigger_option` is a string field; a boolean is drift and reads as null
    /// (the raw body keeps it), like any optional field of an unexpected type.
    #[test]
    fn a_boolean_push_trigger_option_reads_as_null() {
        let ev = SendbirdEvent::parse(&variant(
            "group_channel__message_send.push_trigger_option_true",
        ))
        .expect("parses");
        let members = ev.members.expect("members");
        assert_eq!(
            members[0].push_trigger_option.as_deref(),
            Some("mention_only")
        );
        assert_eq!(members[1].push_trigger_option, None);
        // The member's other fields are still read.
        assert_eq!(members[1].user_id.as_deref(), Some("marc"));
        assert_eq!(members[1].unread_message_count, Some(1));
    }

    #[test]
    fn a_file_message_carries_its_file() {
        let ev =
            SendbirdEvent::parse(&variant("group_channel__message_send.file")).expect("parses");
        let msg = ev.message.expect("message");
        assert_eq!(msg.message_type.as_deref(), Some("FILE"));
        assert_eq!(
            msg.url.as_deref(),
            Some("https://file-us-1.sendbird.com/8c5d1a2b3c4d4e6f/menu-caf\u{e9}.pdf")
        );
        assert_eq!(msg.filename.as_deref(), Some("menu-caf\u{e9}.pdf"));
        assert_eq!(msg.content_type.as_deref(), Some("application/pdf"));
        assert_eq!(msg.content_size, Some(48213));
        assert_eq!(msg.text, None);
        assert_eq!(msg.created_at, Some(1718010200321));
        // A text message has none of them.
        let ev = SendbirdEvent::parse(&fixture("group_channel__message_send")).expect("parses");
        let msg = ev.message.expect("message");
        assert_eq!(
            (msg.url, msg.filename, msg.content_type, msg.content_size),
            (None, None, None, None)
        );
    }

    #[test]
    fn unread_counts_from_include_unread_count_leave_the_members_readable() {
        let ev = SendbirdEvent::parse(&variant("group_channel__message_send.include_unread_count"))
            .expect("parses");
        let counts: Vec<Option<i64>> = ev
            .members
            .expect("members")
            .iter()
            .map(|m| m.unread_message_count)
            .collect();
        assert_eq!(counts, [Some(0), Some(3)]);
    }

    #[test]
    fn legacy_kick_out_categories_read_like_join_and_invite() {
        let ev =
            SendbirdEvent::parse(&fixture("group_channel__old_kick_out__join")).expect("parses");
        assert_eq!(ev.category, "group_channel:old_kick_out:join");
        assert_eq!(ev.occurred_at_ms, Some(1718009000000));
        let joined: Vec<_> = ev
            .affected_users
            .expect("users")
            .into_iter()
            .map(|u| u.user_id)
            .collect();
        assert_eq!(joined, [Some("lukasz".to_owned())]);
        let ev =
            SendbirdEvent::parse(&fixture("group_channel__old_kick_out__invite")).expect("parses");
        assert_eq!(ev.occurred_at_ms, Some(1718009100000));
        assert_eq!(ev.actor.and_then(|a| a.user_id).as_deref(), Some("zoe"));
    }
}
