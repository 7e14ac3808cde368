//! Type → family → topic, and the record key. One topic per entity family (the type's prefix
//! before the first '.'), because Kafka keeps order only inside one topic; records are keyed by
//! channel (`cid`) so one channel's events share a partition within each family topic.

use super::catalogue::{KNOWN, OCCURRED_AT};
use super::event::StreamEvent;
use crate::providers::CatalogueEntry;
use crate::topic::{RouteOverride, TopicName, Topics};

/// The entity family of an event type; one default topic each. Also a bounded metrics label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Message,
    Channel,
    Member,
    User,
    Reaction,
    Other,
}

impl Family {
    pub const ALL: [Family; 6] = [
        Family::Message,
        Family::Channel,
        Family::Member,
        Family::User,
        Family::Reaction,
        Family::Other,
    ];

    pub fn of(event_type: &str) -> Family {
        match event_type.split_once('.').map_or("", |(prefix, _)| prefix) {
            "message" => Family::Message,
            "channel" => Family::Channel,
            "member" => Family::Member,
            "user" => Family::User,
            "reaction" => Family::Reaction,
            _ => Family::Other,
        }
    }

    /// Label for metrics and the default topic's suffix.
    pub fn label(self) -> &'static str {
        match self {
            Family::Message => "message",
            Family::Channel => "channel",
            Family::Member => "member",
            Family::User => "user",
            Family::Reaction => "reaction",
            Family::Other => "other",
        }
    }

    /// How [`record_key`] keys the family's events, in words.
    pub fn key_rule(self) -> &'static str {
        match self {
            Family::User => "`cid`, else the `user.id`, else none",
            _ => "`cid`, else none",
        }
    }
}

/// Where one event goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route<'a> {
    pub family: Family,
    pub topic: &'a TopicName,
    pub key: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Router {
    topics: Topics,
}

impl Router {
    pub fn new(prefix: &str, overrides: Vec<RouteOverride>) -> Result<Router, String> {
        let families = Family::ALL.map(Family::label);
        Ok(Router {
            topics: Topics::new(prefix, &families, overrides)?,
        })
    }

    pub fn family_topic(&self, family: Family) -> &TopicName {
        self.topics.family(family.label())
    }

    /// The topic for a type: the first matching override, else its family's topic.
    pub fn topic_for(&self, event_type: &str) -> &TopicName {
        self.topics
            .route(event_type, Family::of(event_type).label())
    }

    pub fn route<'a>(&'a self, event: &StreamEvent) -> Route<'a> {
        let family = Family::of(&event.event_type);
        Route {
            family,
            topic: self.topic_for(&event.event_type),
            key: record_key(event, family),
        }
    }

    /// Every topic that carries Avro event records (each needs a registered schema).
    pub fn event_topics(&self) -> Vec<TopicName> {
        self.topics.event_topics()
    }

    /// Where authentic but unparseable bodies go, byte for byte.
    pub fn dlq_topic(&self) -> &TopicName {
        self.topics.dlq()
    }

    /// The known types ([`KNOWN`]) as this router treats them.
    pub fn catalogue(&self) -> Vec<CatalogueEntry> {
        KNOWN
            .iter()
            .map(|known| {
                let family = Family::of(known.event_type);
                CatalogueEntry {
                    category: known.event_type.to_owned(),
                    family: family.label(),
                    topic: self.topic_for(known.event_type).to_string(),
                    key: family.key_rule().to_owned(),
                    occurred_at: OCCURRED_AT.to_owned(),
                    typed_fields: known.typed.iter().map(|f| (*f).to_owned()).collect(),
                }
            })
            .collect()
    }
}

/// `cid`; for a `user.*` event without one (user.updated, user.deleted, ...), the user's id, so
/// one user's events stay in order; otherwise none.
pub fn record_key(event: &StreamEvent, family: Family) -> Option<String> {
    if let Some(cid) = &event.cid {
        return Some(cid.clone());
    }
    match family {
        Family::User => event.user.as_ref()?.id.clone(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::CategoryPattern;
    use std::path::PathBuf;

    fn router() -> Router {
        Router::new("stream.", Vec::new()).expect("valid prefix")
    }

    fn fixture(name: &str) -> StreamEvent {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/stream")
            .join(format!("{name}.json"));
        let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        StreamEvent::parse(&body).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// Every fixture with its topic and key, written out (not derived from the rules).
    const FIXTURES: &[(&str, &str, Option<&str>)] = &[
        (
            "message.new",
            "stream.message",
            Some("messaging:fun-d5f396e3-fbaf-469c-9b45-8837b4f75baa"),
        ),
        ("message.updated", "stream.message", Some("messaging:fun")),
        ("message.deleted", "stream.message", Some("messaging:fun")),
        ("message.read", "stream.message", Some("messaging:fun")),
        ("reaction.new", "stream.reaction", Some("messaging:fun")),
        ("reaction.deleted", "stream.reaction", Some("messaging:fun")),
        ("member.added", "stream.member", Some("messaging:fun")),
        ("member.updated", "stream.member", Some("messaging:fun")),
        ("member.removed", "stream.member", Some("messaging:fun")),
        (
            "channel.created",
            "stream.channel",
            Some("messaging:custom-channel-7-channel-chat-1"),
        ),
        ("channel.updated", "stream.channel", Some("messaging:fun")),
        ("channel.deleted", "stream.channel", Some("messaging:fun")),
        ("user.updated", "stream.user", Some("thierry")),
        (
            "user.deleted",
            "stream.user",
            Some("bfdf5075-fe36-4b84-9732-39c09843dfd8"),
        ),
        (
            "user.banned",
            "stream.user",
            Some("2a653a76-ae41-4608-8092-5ce9adf5e608"),
        ),
        (
            "user.messages.deleted",
            "stream.user",
            Some("messaging:055e05e7-d0ed-4563-962e-db6b21ce2a5c"),
        ),
        ("call.created", "stream.other", None),
    ];

    #[test]
    fn every_fixture_routes_to_its_family_topic_with_its_key() {
        let r = router();
        for (name, topic, key) in FIXTURES {
            let event = fixture(name);
            let route = r.route(&event);
            assert_eq!(route.topic.as_str(), *topic, "{name}");
            assert_eq!(route.key.as_deref(), *key, "{name}");
            assert_eq!(
                format!("stream.{}", route.family.label()),
                *topic,
                "{name}: family label"
            );
        }
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stream");
        let on_disk = std::fs::read_dir(dir)
            .expect("fixture dir")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))
            })
            .count();
        assert_eq!(on_disk, FIXTURES.len(), "every fixture is in the table");
    }

    #[test]
    fn families_are_the_prefix_before_the_first_dot() {
        for (event_type, family) in [
            ("message.new", Family::Message),
            ("message.flagged", Family::Message),
            ("channel.truncated", Family::Channel),
            ("member.updated", Family::Member),
            ("user.messages.deleted", Family::User),
            ("user.unread_message_reminder", Family::User),
            ("reaction.updated", Family::Reaction),
            ("notification.reminder_due", Family::Other),
            ("export.users.success", Family::Other),
            ("health.check", Family::Other),
            ("messages.new", Family::Other),
            ("message", Family::Other),
            ("Message.new", Family::Other),
            ("", Family::Other),
        ] {
            assert_eq!(Family::of(event_type), family, "{event_type}");
        }
    }

    #[test]
    fn only_user_events_fall_back_to_the_user_id() {
        let r = router();
        let cases: &[(&[u8], Option<&str>)] = &[
            (
                br#"{"type":"user.banned","cid":"messaging:c","user":{"id":"u"}}"#,
                Some("messaging:c"),
            ),
            (br#"{"type":"user.banned","user":{"id":"u"}}"#, Some("u")),
            (br#"{"type":"user.banned","user":{"id":""}}"#, None),
            (br#"{"type":"user.banned"}"#, None),
            (br#"{"type":"message.read","user":{"id":"u"}}"#, None),
            (br#"{"type":"channel.muted","user":{"id":"u"}}"#, None),
            (
                br#"{"type":"call.created","cid":"default:x"}"#,
                Some("default:x"),
            ),
        ];
        for (body, key) in cases {
            let ev = StreamEvent::parse(body).expect("parses");
            assert_eq!(
                r.route(&ev).key.as_deref(),
                *key,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn overrides_win_in_order_and_keep_the_family_key() {
        let overrides = vec![
            RouteOverride {
                pattern: CategoryPattern::parse("message.read").expect("valid"),
                topic: TopicName::parse("chat.reads").expect("valid"),
            },
            RouteOverride {
                pattern: CategoryPattern::parse("message.*").expect("valid"),
                topic: TopicName::parse("chat.messages").expect("valid"),
            },
            RouteOverride {
                pattern: CategoryPattern::parse("message.new").expect("valid"),
                topic: TopicName::parse("never.used").expect("valid"),
            },
        ];
        let r = Router::new("p.", overrides).expect("valid");
        assert_eq!(r.topic_for("message.read").as_str(), "chat.reads");
        assert_eq!(r.topic_for("message.new").as_str(), "chat.messages");
        assert_eq!(r.topic_for("member.added").as_str(), "p.member");
        assert_eq!(r.dlq_topic().as_str(), "p.dlq");
        let ev = StreamEvent::parse(br#"{"type":"message.new","cid":"m:c"}"#).expect("parses");
        let route = r.route(&ev);
        assert_eq!(
            (route.topic.as_str(), route.key.as_deref(), route.family),
            ("chat.messages", Some("m:c"), Family::Message)
        );
        let topics: Vec<String> = r.event_topics().iter().map(|t| t.to_string()).collect();
        assert_eq!(
            topics,
            [
                "chat.messages",
                "chat.reads",
                "never.used",
                "p.channel",
                "p.member",
                "p.message",
                "p.other",
                "p.reaction",
                "p.user"
            ]
        );
    }

    #[test]
    fn a_prefix_that_makes_illegal_topics_is_refused() {
        assert!(Router::new("bad prefix.", Vec::new()).is_err());
        assert!(Router::new(&"p".repeat(247), Vec::new()).is_err());
    }
}
