//! The categories hookbridge knows, in one table ([`KNOWN`]): for each, the family the router
//! must give it, where the parser reads its `occurred_at`, and which typed fields its payload
//! fills. The parser reads the timestamp rule from here, [`super::Router::catalogue`] prints the
//! table (`hookbridge events`, docs/events.md), and the tests check the rest against the router
//! and the fixtures, so the printed catalogue cannot drift from what the code does.
//!
//! A category missing from the table is still delivered: to its namespace's family topic (or
//! `other`), with `occurred_at` guessed from the usual field names ([`OccurredAt::Guessed`]).

/// One known category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    /// The category as Sendbird writes it.
    pub category: &'static str,
    /// The label of the family the router must give it: the oracle the routing tests hold
    /// `Family::of` to. The catalogue prints what the router does, not this.
    pub family: &'static str,
    /// Where the category keeps its own timestamp.
    pub occurred_at: OccurredAt,
    /// The typed fields of the record its payload fills (besides those every record has), in
    /// the schema's order; checked against each category's fixture.
    pub typed: &'static [&'static str],
}

/// Where a category keeps its own timestamp. Whatever the unit, the parser takes a value below
/// 1e11 as seconds and scales it, so an undocumented unit cannot read as 1970.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OccurredAt {
    /// Sendbird sends no timestamp of the category's own: `occurred_at` stays null.
    NotSent,
    /// The first of these JSON paths that holds an integer.
    Field(&'static [&'static [&'static str]], Unit),
    /// No field is known: the usual names ([`GUESSES`]) are tried in order.
    Guessed,
}

/// The unit Sendbird writes a timestamp in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Milliseconds, documented.
    Millis,
    /// Seconds, documented (scaled to milliseconds).
    Seconds,
    /// Not documented; milliseconds assumed.
    Undocumented,
}

/// The field names tried for a category without a known timestamp field, in this order.
pub const GUESSES: &[&[&str]] = &[
    &["created_at"],
    &["updated_at"],
    &["deleted_at"],
    &["requested_at"],
    &["ts"],
];

impl OccurredAt {
    /// The JSON paths the parser tries, first present wins.
    pub fn paths(self) -> &'static [&'static [&'static str]] {
        match self {
            OccurredAt::NotSent => &[],
            OccurredAt::Field(paths, _) => paths,
            OccurredAt::Guessed => GUESSES,
        }
    }

    /// The rule in words, for the catalogue; empty when `occurred_at` is never set.
    pub fn describe(self) -> String {
        let fields = |paths: &[&[&str]]| {
            paths
                .iter()
                .map(|p| format!("`{}`", dotted(p)))
                .collect::<Vec<_>>()
        };
        match self {
            OccurredAt::NotSent => String::new(),
            OccurredAt::Field(paths, unit) => {
                format!("{} ({})", fields(paths).join(", else "), unit.describe())
            }
            OccurredAt::Guessed => format!(
                "none documented; first of {} ({})",
                fields(GUESSES).join(", "),
                Unit::Undocumented.describe()
            ),
        }
    }
}

impl Unit {
    fn describe(self) -> &'static str {
        match self {
            Unit::Millis => "ms",
            Unit::Seconds => "s, scaled to ms",
            Unit::Undocumented => "unit undocumented: ms, or s below 1e11",
        }
    }
}

/// `read_updates[0].read_ts` for `["read_updates", "0", "read_ts"]`.
fn dotted(path: &[&str]) -> String {
    let mut out = String::new();
    for segment in path {
        if segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

/// The known category named `category`, if any.
pub fn known(category: &str) -> Option<&'static Known> {
    KNOWN.iter().find(|k| k.category == category)
}

/// Where the parser reads `category`'s timestamp: its known rule, else the usual guesses.
pub fn occurred_at(category: &str) -> OccurredAt {
    known(category).map_or(OccurredAt::Guessed, |k| k.occurred_at)
}

const fn entry(
    category: &'static str,
    family: &'static str,
    occurred_at: OccurredAt,
    typed: &'static [&'static str],
) -> Known {
    Known {
        category,
        family,
        occurred_at,
        typed,
    }
}

use OccurredAt::{Field, Guessed, NotSent};
use Unit::{Millis, Seconds, Undocumented};

const CREATED: &[&[&str]] = &[&["created_at"]];
const PAYLOAD_CREATED: &[&[&str]] = &[&["payload", "created_at"]];
// payload.created_at of an edit or deletion is the original send time, not this event's.
const UPDATED: &[&[&str]] = &[&["updated_at"], &["payload", "updated_at"]];
const DELETED: &[&[&str]] = &[&["deleted_at"], &["payload", "deleted_at"]];
const JOINED: &[&[&str]] = &[&["joined_at"]];
const INVITED: &[&[&str]] = &[&["invited_at"]];
const REMOVED: &[&[&str]] = &[&["removed_at"]];
const REQUESTED: &[&[&str]] = &[&["requested_at"]];
const BLOCKED: &[&[&str]] = &[&["blocked_at"]];
const TS: &[&[&str]] = &[&["ts"]];

/// Every category in Sendbird's documentation and settings UI, grouped as
/// sendbird-webhooks.md groups them. Field names and units: tests/fixtures/sendbird/CATEGORIES.md
/// gives the evidence for each row ("Undocumented" where only an SDK or an analogy backs it).
#[rustfmt::skip]
pub const KNOWN: &[Known] = &[
    entry("group_channel:create", "group_channel", Field(CREATED, Millis), &["channel", "actor", "members"]),
    // One source shows changed_at, an older client reads created_at.
    entry("group_channel:changed", "group_channel", Field(&[&["changed_at"], &["created_at"]], Undocumented), &["channel"]),
    entry("group_channel:remove", "group_channel", Field(REMOVED, Undocumented), &["channel"]),
    entry("group_channel:invite", "group_channel", Field(INVITED, Undocumented), &["channel", "actor", "affected_users"]),
    entry("group_channel:decline_invite", "group_channel", Field(&[&["declined_invite_at"]], Undocumented), &["channel", "affected_users"]),
    entry("group_channel:join", "group_channel", Field(JOINED, Undocumented), &["channel", "members", "affected_users"]),
    entry("group_channel:leave", "group_channel", Field(&[&["left_at"]], Undocumented), &["channel", "members", "affected_users"]),
    entry("group_channel:message_send", "group_channel", Field(PAYLOAD_CREATED, Millis), &["channel", "sender", "actor", "message", "members"]),
    entry("group_channel:message_read", "group_channel", Field(&[&["read_updates", "0", "read_ts"]], Millis), &["channel", "members"]),
    entry("group_channel:message_update", "group_channel", Field(UPDATED, Undocumented), &["channel", "sender", "actor", "message"]),
    entry("group_channel:message_delete", "group_channel", Field(DELETED, Undocumented), &["channel", "sender", "actor", "message"]),
    entry("group_channel:freeze_unfreeze", "group_channel", Guessed, &["channel"]),
    entry("group_channel:reaction_add", "group_channel", Field(TS, Undocumented), &["channel", "actor"]),
    entry("group_channel:reaction_delete", "group_channel", Field(TS, Undocumented), &["channel", "actor"]),
    entry("group_channel:report", "group_channel", Field(CREATED, Undocumented), &["channel", "actor"]),
    // Legacy categories the settings UI still lists; shaped as join and invite (assumed).
    entry("group_channel:old_kick_out:join", "group_channel", Field(JOINED, Undocumented), &["channel", "members", "affected_users"]),
    entry("group_channel:old_kick_out:invite", "group_channel", Field(INVITED, Undocumented), &["channel", "actor", "affected_users"]),
    entry("open_channel:create", "open_channel", Field(CREATED, Millis), &["channel", "affected_users"]),
    entry("open_channel:remove", "open_channel", Field(REMOVED, Millis), &["channel"]),
    entry("open_channel:enter", "open_channel", Field(&[&["entered_at"]], Undocumented), &["channel", "actor"]),
    entry("open_channel:exit", "open_channel", Field(&[&["exited_at"]], Undocumented), &["channel", "actor"]),
    entry("open_channel:message_send", "open_channel", Field(PAYLOAD_CREATED, Undocumented), &["channel", "sender", "actor", "message"]),
    entry("open_channel:message_update", "open_channel", Field(UPDATED, Undocumented), &["channel", "sender", "actor", "message"]),
    entry("open_channel:message_delete", "open_channel", Field(DELETED, Undocumented), &["channel", "sender", "actor", "message"]),
    entry("open_channel:report", "open_channel", Field(CREATED, Undocumented), &["channel", "actor"]),
    entry("user:block", "user", NotSent, &["actor", "affected_users"]),
    entry("user:unblock", "user", NotSent, &["actor", "affected_users"]),
    entry("user:push_preference", "user", Guessed, &[]),
    entry("user:push_channel_preference", "user", Guessed, &[]),
    entry("user:device_token_register", "user", Guessed, &["actor"]),
    entry("user:device_token_unregister", "user", Guessed, &["actor"]),
    entry("user:mute", "user", Guessed, &["channel", "actor"]),
    entry("user:ban", "user", Guessed, &["channel", "actor"]),
    entry("user:deactivate", "user", Guessed, &["actor"]),
    entry("user:report", "user", Field(CREATED, Undocumented), &["channel", "actor", "affected_users"]),
    entry("operators:register_by_operator", "user", Field(REQUESTED, Millis), &["channel", "affected_users"]),
    entry("operators:unregister_by_operator", "user", Field(REQUESTED, Millis), &["channel", "affected_users"]),
    // Documented in seconds: the parser scales it (and would not, should Sendbird switch to ms).
    entry("message:report", "moderation", Field(CREATED, Seconds), &["channel", "actor", "message", "affected_users"]),
    entry("alert:user_message_rate_limit_exceeded", "moderation", NotSent, &["actor"]),
    entry("profanity_filter:replace", "moderation", Field(PAYLOAD_CREATED, Millis), &["channel", "sender", "actor", "message", "members"]),
    entry("profanity_filter:block", "moderation", Field(BLOCKED, Undocumented), &["channel", "sender", "actor"]),
    entry("profanity_filter:moderate", "moderation", Field(&[&["moderated_at"]], Millis), &["channel", "sender", "actor"]),
    entry("profanity_filter:detect", "moderation", Guessed, &["channel", "sender", "actor", "message"]),
    entry("image_moderation:block", "moderation", Field(BLOCKED, Millis), &["channel", "sender", "actor"]),
    entry("message:moderation_extension_triggered", "moderation", Guessed, &[]),
    entry("announcement:create_channels", "announcement", Field(CREATED, Undocumented), &["channel"]),
    entry("announcement:send_messages", "announcement", Field(CREATED, Undocumented), &["channel", "sender", "actor"]),
    entry("notification:send_realtime", "notification", Guessed, &[]),
    entry("notification:send_batch", "notification", Guessed, &[]),
    entry("notification:template_create", "notification", Guessed, &[]),
    entry("notification:template_archive", "notification", Guessed, &[]),
    entry("notification:template_unarchive", "notification", Guessed, &[]),
    entry("notification:template_edit", "notification", Guessed, &[]),
    entry("notification:template_approval_update", "notification", Guessed, &[]),
];

#[cfg(test)]
mod tests {
    use super::super::event::SendbirdEvent;
    use super::*;
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    /// The fixture of a known category: its name with `:` written `__`.
    fn fixture(category: &str) -> Vec<u8> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/sendbird")
            .join(format!("{}.json", category.replace(':', "__")));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The typed fields `event` fills, named as in the schema and in its order.
    fn filled(event: &SendbirdEvent) -> Vec<&'static str> {
        [
            ("channel", event.channel.is_some()),
            ("sender", event.sender.is_some()),
            ("actor", event.actor.is_some()),
            ("message", event.message.is_some()),
            ("members", event.members.is_some()),
            ("affected_users", event.affected_users.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }

    #[test]
    fn every_category_is_listed_once() {
        let mut seen = BTreeSet::new();
        for k in KNOWN {
            assert!(seen.insert(k.category), "{} listed twice", k.category);
        }
    }

    #[test]
    fn the_typed_fields_listed_are_those_each_fixture_fills() {
        for k in KNOWN {
            let event = SendbirdEvent::parse(&fixture(k.category)).expect("fixture parses");
            assert_eq!(event.category, k.category);
            assert_eq!(filled(&event), k.typed, "{}", k.category);
        }
    }

    #[test]
    fn rules_read_in_words() {
        let describe = |c: &str| occurred_at(c).describe();
        assert_eq!(describe("group_channel:create"), "`created_at` (ms)");
        assert_eq!(
            describe("group_channel:message_read"),
            "`read_updates[0].read_ts` (ms)"
        );
        assert_eq!(describe("message:report"), "`created_at` (s, scaled to ms)");
        assert_eq!(
            describe("group_channel:changed"),
            "`changed_at`, else `created_at` (unit undocumented: ms, or s below 1e11)"
        );
        assert_eq!(describe("user:block"), "");
        assert_eq!(
            describe("poll:vote"),
            "none documented; first of `created_at`, `updated_at`, `deleted_at`, `requested_at`, \
             `ts` (unit undocumented: ms, or s below 1e11)"
        );
    }
}
