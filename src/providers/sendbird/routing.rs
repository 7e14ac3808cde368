//! Category → family → topic, and the record key. One topic per entity family (not per
//! category), because Kafka keeps order only inside one topic: a channel's create, join, message
//! and delete events must share a topic and a key to stay in order.

use super::catalogue::KNOWN;
use super::event::SendbirdEvent;
use crate::providers::CatalogueEntry;
use crate::topic::{RouteOverride, TopicName, Topics};

/// The entity family a category belongs to; one default topic each. Also a bounded metrics label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    GroupChannel,
    OpenChannel,
    User,
    Moderation,
    Announcement,
    Notification,
    Other,
}

impl Family {
    pub const ALL: [Family; 7] = [
        Family::GroupChannel,
        Family::OpenChannel,
        Family::User,
        Family::Moderation,
        Family::Announcement,
        Family::Notification,
        Family::Other,
    ];

    pub fn of(category: &str) -> Family {
        let namespace = category.split_once(':').map_or("", |(ns, _)| ns);
        match namespace {
            "group_channel" => Family::GroupChannel,
            "open_channel" => Family::OpenChannel,
            "user" | "operators" => Family::User,
            "message" | "alert" | "profanity_filter" | "image_moderation" => Family::Moderation,
            "announcement" => Family::Announcement,
            "notification" => Family::Notification,
            _ => Family::Other,
        }
    }

    /// Label for metrics and the default topic's suffix.
    pub fn label(self) -> &'static str {
        match self {
            Family::GroupChannel => "group_channel",
            Family::OpenChannel => "open_channel",
            Family::User => "user",
            Family::Moderation => "moderation",
            Family::Announcement => "announcement",
            Family::Notification => "notification",
            Family::Other => "other",
        }
    }

    /// Whether records of this family are keyed. Announcements and notifications fan out to
    /// many channels or users at once; no key spreads them over partitions.
    pub fn is_keyed(self) -> bool {
        !matches!(self, Family::Announcement | Family::Notification)
    }

    /// How [`Router::route`] keys this family's records, in words (`hookbridge events`).
    pub fn key_rule(self) -> &'static str {
        if self.is_keyed() {
            "`channel.channel_url`, else the acting user's `user_id`, else none"
        } else {
            "none: spread over partitions"
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

    /// The topic for a category: the first matching override, else its family's topic.
    pub fn topic_for(&self, category: &str) -> &TopicName {
        self.topics.route(category, Family::of(category).label())
    }

    pub fn route<'a>(&'a self, event: &SendbirdEvent) -> Route<'a> {
        let family = Family::of(&event.category);
        Route {
            family,
            topic: self.topic_for(&event.category),
            key: if family.is_keyed() {
                record_key(event)
            } else {
                None
            },
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

    /// Every known category as this router treats it (`hookbridge events`): its family, topic
    /// and key rule from the rules [`Router::route`] applies, its `occurred_at` rule and typed
    /// fields from [`KNOWN`], which the parser reads too.
    pub fn catalogue(&self) -> Vec<CatalogueEntry> {
        KNOWN
            .iter()
            .map(|known| {
                let family = Family::of(known.category);
                CatalogueEntry {
                    category: known.category.to_owned(),
                    family: family.label(),
                    topic: self.topic_for(known.category).to_string(),
                    key: family.key_rule().to_owned(),
                    occurred_at: known.occurred_at.describe(),
                    typed_fields: known.typed.iter().map(|f| (*f).to_owned()).collect(),
                }
            })
            .collect()
    }
}

/// `channel.channel_url`; else the acting user's id; else none.
pub fn record_key(event: &SendbirdEvent) -> Option<String> {
    event
        .channel_url()
        .map(str::to_owned)
        .or_else(|| event.actor.as_ref().and_then(|a| a.user_id.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::CategoryPattern;
    use std::path::PathBuf;

    fn fixture_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sendbird")
    }

    fn router() -> Router {
        Router::new("sendbird.", Vec::new()).expect("valid prefix")
    }

    #[test]
    fn every_documented_category_routes_to_its_family_topic_with_the_right_key() {
        let r = router();
        for known in KNOWN {
            let category = known.category;
            let path = fixture_dir().join(format!("{}.json", category.replace(':', "__")));
            let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let event = SendbirdEvent::parse(&body).expect("fixture parses");
            assert_eq!(event.category, category);
            let route = r.route(&event);
            let family = route.family;
            assert_eq!(family.label(), known.family, "{category}");
            assert_eq!(
                route.topic.as_str(),
                format!("sendbird.{}", known.family),
                "{category}"
            );
            let json: serde_json::Value = serde_json::from_slice(&body).expect("fixture is JSON");
            let expected_key = if !family.is_keyed() {
                None
            } else if let Some(url) = json["channel"]["channel_url"].as_str() {
                Some(url.to_owned())
            } else if let Some(url) = json["reported_message"]["channel"]["channel_url"].as_str() {
                Some(url.to_owned())
            } else {
                [
                    "sender",
                    "blocker",
                    "unblocker",
                    "user",
                    "inviter",
                    "reporting_user",
                ]
                .iter()
                .find_map(|f| json[*f]["user_id"].as_str().map(str::to_owned))
            };
            assert_eq!(route.key, expected_key, "{category}");
        }
    }

    #[test]
    fn the_known_table_holds_every_documented_category() {
        // sendbird-webhooks.md's 52 categories and the settings UI's two legacy ones.
        assert_eq!(KNOWN.len(), 54);
        for (category, family) in [
            ("group_channel:old_kick_out:join", Family::GroupChannel),
            ("group_channel:old_kick_out:invite", Family::GroupChannel),
            ("operators:register_by_operator", Family::User),
            ("alert:user_message_rate_limit_exceeded", Family::Moderation),
        ] {
            let known = KNOWN.iter().find(|k| k.category == category);
            assert_eq!(known.map(|k| k.family), Some(family.label()), "{category}");
        }
    }

    #[test]
    fn the_catalogue_is_what_the_router_does() {
        let r = router();
        let catalogue = r.catalogue();
        assert_eq!(catalogue.len(), KNOWN.len());
        for (entry, known) in catalogue.iter().zip(KNOWN) {
            assert_eq!(entry.category, known.category);
            assert_eq!(entry.family, known.family, "{}", known.category);
            assert_eq!(
                entry.topic,
                r.topic_for(known.category).as_str(),
                "{}",
                known.category
            );
            assert_eq!(entry.typed_fields, known.typed, "{}", known.category);
        }
        let entry = |c: &str| {
            catalogue
                .iter()
                .find(|e| e.category == c)
                .expect("listed")
                .clone()
        };
        let send = entry("group_channel:message_send");
        assert_eq!(send.topic, "sendbird.group_channel");
        assert_eq!(
            send.key,
            "`channel.channel_url`, else the acting user's `user_id`, else none"
        );
        assert_eq!(send.occurred_at, "`payload.created_at` (ms)");
        assert_eq!(
            send.typed_fields,
            ["channel", "sender", "actor", "message", "members"]
        );
        let batch = entry("notification:send_batch");
        assert_eq!(batch.topic, "sendbird.notification");
        assert_eq!(batch.key, "none: spread over partitions");
        // Overrides show too: the catalogue is this router's view.
        let overrides = vec![RouteOverride {
            pattern: CategoryPattern::parse("group_channel:message_*").expect("valid"),
            topic: TopicName::parse("chat.messages").expect("valid"),
        }];
        let r = Router::new("p.", overrides).expect("valid");
        let topics: Vec<(String, String)> = r
            .catalogue()
            .into_iter()
            .filter(|e| e.category.starts_with("group_channel:me"))
            .map(|e| (e.category, e.topic))
            .collect();
        assert!(
            topics.iter().all(|(_, t)| t == "chat.messages"),
            "{topics:?}"
        );
    }

    #[test]
    fn variants_route_like_their_category() {
        let r = router();
        for entry in std::fs::read_dir(fixture_dir().join("variants")).expect("variants") {
            let path = entry.expect("entry").path();
            let body = std::fs::read(&path).expect("read");
            let event = SendbirdEvent::parse(&body).expect("parses");
            let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            let route = r.route(&event);
            assert_eq!(
                route.topic.as_str(),
                "sendbird.group_channel",
                "{}",
                path.display()
            );
            assert_eq!(
                route.key.as_deref(),
                json["channel"]["channel_url"].as_str(),
                "{}",
                path.display()
            );
        }
    }

    #[test]
    fn keys_channel_events_by_channel_url_and_user_events_by_actor() {
        let r = router();
        let ev = SendbirdEvent::parse(
            br#"{"category":"group_channel:join","channel":{"channel_url":"c1"},"users":[{"user_id":"u"}]}"#,
        )
        .expect("parses");
        assert_eq!(r.route(&ev).key.as_deref(), Some("c1"));
        let ev = SendbirdEvent::parse(
            br#"{"category":"user:unblock","unblocker":{"user_id":"u1"},"unblockee":{"user_id":"u2"}}"#,
        )
        .expect("parses");
        let route = r.route(&ev);
        assert_eq!(route.topic.as_str(), "sendbird.user");
        assert_eq!(route.key.as_deref(), Some("u1"));
        let ev = SendbirdEvent::parse(br#"{"category":"user:deactivate"}"#).expect("parses");
        assert_eq!(r.route(&ev).key, None);
    }

    #[test]
    fn expected_keys_for_some_fixtures_written_out() {
        let r = router();
        let channel = "sendbird_group_channel_48151623_6f1d0c7e2b9a4e3f8c5d1a2b3c4d5e6f7a8b9c0d";
        for (fixture, key) in [
            ("group_channel__message_send", Some(channel)),
            ("message__report", Some(channel)),
            ("user__block", Some("zoe")),
            ("announcement__send_messages", None),
            ("notification__send_batch", None),
        ] {
            let body =
                std::fs::read(fixture_dir().join(format!("{fixture}.json"))).expect("fixture");
            let ev = SendbirdEvent::parse(&body).expect("parses");
            assert_eq!(r.route(&ev).key.as_deref(), key, "{fixture}");
        }
    }

    #[test]
    fn the_acting_user_is_the_first_that_names_a_user_id() {
        let ev = SendbirdEvent::parse(
            br#"{"category":"user:ban","sender":{"nickname":"no id"},"user":{"user_id":"u7"}}"#,
        )
        .expect("parses");
        assert_eq!(router().route(&ev).key.as_deref(), Some("u7"));
    }

    #[test]
    fn unknown_categories_go_to_the_catch_all_topic() {
        let r = router();
        for category in ["poll:vote", "brand_new_thing", "group_channelx:create"] {
            let body = format!(r#"{{"category":"{category}","channel":{{"channel_url":"c9"}}}}"#);
            let ev = SendbirdEvent::parse(body.as_bytes()).expect("parses");
            let route = r.route(&ev);
            assert_eq!(route.topic.as_str(), "sendbird.other");
            assert_eq!(route.key.as_deref(), Some("c9"));
        }
    }

    #[test]
    fn overrides_win_in_order_and_keep_the_family_key() {
        let overrides = vec![
            RouteOverride {
                pattern: CategoryPattern::parse("group_channel:message_*").expect("valid"),
                topic: TopicName::parse("chat.messages").expect("valid"),
            },
            RouteOverride {
                pattern: CategoryPattern::parse("group_channel:message_read").expect("valid"),
                topic: TopicName::parse("never.used").expect("valid"),
            },
        ];
        let r = Router::new("p.", overrides).expect("valid");
        assert_eq!(
            r.topic_for("group_channel:message_read").as_str(),
            "chat.messages"
        );
        assert_eq!(
            r.topic_for("group_channel:join").as_str(),
            "p.group_channel"
        );
        assert_eq!(r.dlq_topic().as_str(), "p.dlq");
        let topics: Vec<String> = r.event_topics().iter().map(|t| t.to_string()).collect();
        assert!(topics.contains(&"chat.messages".to_owned()));
        assert!(!topics.contains(&"p.dlq".to_owned()));
    }
}
