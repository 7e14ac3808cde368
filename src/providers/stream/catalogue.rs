//! The Stream Chat event types hookbridge has a documented example of ([`KNOWN`]), with the
//! typed fields each example fills. [`super::routing::Router::catalogue`] prints the table
//! (`hookbridge events`, docs/events.md) as the router treats each type, and the tests hold the
//! table to the fixtures (one per type, copied from Stream's "Webhook Events" page), so the
//! printed catalogue cannot drift from what the parser does.
//!
//! A type missing from the table is still delivered: to the topic of the family its prefix
//! names (`message`, `channel`, `member`, `user`, `reaction`), else to `other`.

/// One event type with a documented example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    /// The `type` as Stream writes it.
    pub event_type: &'static str,
    /// The typed fields of the record the example fills (besides those every record has), in
    /// the schema's order; checked against the type's fixture.
    pub typed: &'static [&'static str],
}

/// Where every record's `occurred_at` comes from, in words.
pub const OCCURRED_AT: &str = "`created_at` (RFC 3339, as ms)";

const CHANNEL: &[&str] = &["cid", "channel_type", "channel_id"];
const CHANNEL_USER: &[&str] = &["cid", "channel_type", "channel_id", "user"];
const CHANNEL_USER_MESSAGE: &[&str] = &["cid", "channel_type", "channel_id", "user", "message"];
const CHANNEL_USER_MEMBER: &[&str] = &["cid", "channel_type", "channel_id", "user", "member"];
const CHANNEL_USER_MESSAGE_REACTION: &[&str] = &[
    "cid",
    "channel_type",
    "channel_id",
    "user",
    "message",
    "reaction",
];
const USER: &[&str] = &["user"];

/// The event types of Stream's "Webhook Events" page that carry an example, in its order.
pub const KNOWN: &[Known] = &[
    Known {
        event_type: "message.new",
        typed: CHANNEL_USER_MESSAGE,
    },
    Known {
        event_type: "message.read",
        typed: CHANNEL_USER,
    },
    Known {
        event_type: "message.updated",
        typed: CHANNEL_USER_MESSAGE,
    },
    Known {
        event_type: "message.deleted",
        typed: &["cid", "channel_type", "channel_id", "message"],
    },
    Known {
        event_type: "reaction.new",
        typed: CHANNEL_USER_MESSAGE_REACTION,
    },
    Known {
        event_type: "reaction.deleted",
        typed: CHANNEL_USER_MESSAGE_REACTION,
    },
    Known {
        event_type: "member.added",
        typed: CHANNEL_USER_MEMBER,
    },
    Known {
        event_type: "member.updated",
        typed: CHANNEL_USER_MEMBER,
    },
    Known {
        event_type: "member.removed",
        typed: CHANNEL_USER,
    },
    Known {
        event_type: "channel.created",
        typed: CHANNEL_USER,
    },
    Known {
        event_type: "channel.updated",
        typed: CHANNEL,
    },
    Known {
        event_type: "channel.deleted",
        typed: CHANNEL,
    },
    Known {
        event_type: "user.updated",
        typed: USER,
    },
    Known {
        event_type: "user.deleted",
        typed: USER,
    },
    Known {
        event_type: "user.banned",
        typed: USER,
    },
    Known {
        event_type: "user.messages.deleted",
        typed: CHANNEL_USER,
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::stream::event::StreamEvent;
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    fn fixture_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stream")
    }

    /// The typed fields a parsed event fills, in the schema's order.
    fn filled(event: &StreamEvent) -> Vec<&'static str> {
        [
            ("cid", event.cid.is_some()),
            ("channel_type", event.channel_type.is_some()),
            ("channel_id", event.channel_id.is_some()),
            ("user", event.user.is_some()),
            ("message", event.message.is_some()),
            ("member", event.member.is_some()),
            ("reaction", event.reaction.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }

    #[test]
    fn each_known_type_fills_what_its_fixture_fills() {
        for known in KNOWN {
            let path = fixture_dir().join(format!("{}.json", known.event_type));
            let body = std::fs::read(&path).unwrap_or_else(|e| {
                panic!("{}: {e} (a known type needs its example)", path.display())
            });
            let event = StreamEvent::parse(&body).expect("the fixture parses");
            assert_eq!(event.event_type, known.event_type);
            assert_eq!(filled(&event), known.typed, "{}", known.event_type);
        }
    }

    #[test]
    fn every_fixture_but_the_unknown_type_is_known_and_listed_once() {
        let on_disk: BTreeSet<String> = std::fs::read_dir(fixture_dir())
            .expect("fixture dir")
            .filter_map(|e| {
                let path = e.expect("entry").path();
                (path.extension()? == "json")
                    .then(|| path.file_stem()?.to_str().map(str::to_owned))?
            })
            .collect();
        let known: BTreeSet<String> = KNOWN.iter().map(|k| k.event_type.to_owned()).collect();
        assert_eq!(known.len(), KNOWN.len(), "a type is listed twice");
        let unknown: Vec<&String> = on_disk.difference(&known).collect();
        // call.created stands for a type the gateway does not know (tests/fixtures/stream/SOURCES.md).
        assert_eq!(unknown, ["call.created"]);
    }
}
