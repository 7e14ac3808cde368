//! What one `group_channel:message_send` record asks for: who is notified, by which channel, or
//! why nothing is sent. Pure functions over the decoded record, so the rules are unit-tested.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The part of a `sendbird.group_channel` record this consumer reads. Decoded from the registry's
/// writer schema with serde; fields it does not name (and fields added later) are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    pub event_id: String,
    pub category: String,
    pub channel_url: Option<String>,
    pub channel: Option<Channel>,
    pub sender: Option<User>,
    pub message: Option<Message>,
    pub members: Option<Vec<Member>>,
    /// Typed fields the gateway left out because the body held too many entries.
    pub truncated: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Channel {
    pub name: Option<String>,
    pub is_super: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct User {
    pub user_id: Option<String>,
    pub nickname: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub message_id: Option<i64>,
    #[serde(rename = "type")]
    pub message_type: Option<String>,
    pub text: Option<String>,
    pub silent: Option<bool>,
    pub filename: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Member {
    pub user_id: Option<String>,
    pub is_online: Option<bool>,
    pub state: Option<String>,
    /// The user's Sendbird metadata: where this app keeps phone numbers and e-mail addresses.
    /// Absent in records written before the gateway typed it; then no one has a contact.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// How a notification travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// The member is online: a push to their devices.
    Push,
    Sms,
    Email,
}

/// One notification, as adapters hand it on (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// `event_id:recipient`: stable across re-deliveries, for the provider's own deduplication.
    pub idempotency_key: String,
    pub event_id: String,
    pub channel_url: String,
    pub channel_name: Option<String>,
    pub message_id: Option<i64>,
    pub sender: User,
    pub recipient: String,
    pub via: Via,
    /// The user id for a push, the phone number for an SMS, the address for an e-mail.
    pub to: String,
    pub text: String,
}

/// Why a record or a member got no notification. Counted and logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Skip {
    /// Another category: nothing to notify.
    NotMessageSend,
    /// `silent: true`: the sender asked for no notification.
    Silent,
    /// A Supergroup channel: Sendbird never sends its members.
    Supergroup,
    /// No `members` in the body: the webhook settings' `include_members` is off.
    NoMembers,
    /// The gateway left members out (more than its `max_typed_items`).
    MembersTruncated,
    /// No `channel_url`: nowhere to point the recipient.
    NoChannel,
    /// A member who is offline and has neither a phone number nor an e-mail address.
    NoContact,
    /// A member only invited, not joined.
    NotJoined,
}

impl Skip {
    pub fn reason(self) -> &'static str {
        match self {
            Skip::NotMessageSend => "not a group_channel:message_send",
            Skip::Silent => "silent message",
            Skip::Supergroup => "supergroup channel: Sendbird never sends its members",
            Skip::NoMembers => {
                "no members in the webhook: turn on include_members \
                 (hookbridge sendbird webhook set --include-members)"
            }
            Skip::MembersTruncated => {
                "members left out by the gateway (more than its max_typed_items)"
            }
            Skip::NoChannel => "no channel_url",
            Skip::NoContact => "offline member without a phone number or e-mail address",
            Skip::NotJoined => "member not joined (invited)",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Skip::NotMessageSend => "not_message_send",
            Skip::Silent => "silent",
            Skip::Supergroup => "supergroup",
            Skip::NoMembers => "no_members",
            Skip::MembersTruncated => "members_truncated",
            Skip::NoChannel => "no_channel",
            Skip::NoContact => "no_contact",
            Skip::NotJoined => "not_joined",
        }
    }
}

/// The metadata keys that hold contact details.
#[derive(Debug, Clone)]
pub struct ContactKeys {
    pub phone: String,
    pub email: String,
}

/// What to do for one record.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub notifications: Vec<Notification>,
    /// Members skipped, with the reason: (user id, why).
    pub skipped_members: Vec<(String, Skip)>,
}

/// The longest text passed on; SMS gateways split or refuse longer ones.
const MAX_TEXT_CHARS: usize = 280;

/// Who gets what for this record, or why the whole record is skipped.
pub fn plan(event: &Event, keys: &ContactKeys) -> Result<Plan, Skip> {
    if event.category != "group_channel:message_send" {
        return Err(Skip::NotMessageSend);
    }
    let message = event.message.as_ref();
    if message.and_then(|m| m.silent) == Some(true) {
        return Err(Skip::Silent);
    }
    let channel_url = event.channel_url.clone().ok_or(Skip::NoChannel)?;
    let Some(members) = &event.members else {
        let truncated = event
            .truncated
            .as_deref()
            .is_some_and(|t| t.iter().any(|p| p == "members"));
        return Err(if truncated {
            Skip::MembersTruncated
        } else if event.channel.as_ref().and_then(|c| c.is_super) == Some(true) {
            Skip::Supergroup
        } else {
            Skip::NoMembers
        });
    };
    let sender = event.sender.clone().unwrap_or(User {
        user_id: None,
        nickname: None,
    });
    let text = preview(message, &sender);
    let mut plan = Plan::default();
    for member in members {
        let Some(user_id) = member.user_id.as_deref() else {
            continue;
        };
        if Some(user_id) == sender.user_id.as_deref() {
            continue;
        }
        // Members who were invited but have not joined do not follow the channel yet.
        if member.state.as_deref().is_some_and(|s| s != "joined") {
            plan.skipped_members
                .push((user_id.to_owned(), Skip::NotJoined));
            continue;
        }
        let Some((via, to)) = route(member, user_id, keys) else {
            plan.skipped_members
                .push((user_id.to_owned(), Skip::NoContact));
            continue;
        };
        plan.notifications.push(Notification {
            idempotency_key: format!("{}:{user_id}", event.event_id),
            event_id: event.event_id.clone(),
            channel_url: channel_url.clone(),
            channel_name: event.channel.as_ref().and_then(|c| c.name.clone()),
            message_id: message.and_then(|m| m.message_id),
            sender: sender.clone(),
            recipient: user_id.to_owned(),
            via,
            to,
            text: text.clone(),
        });
    }
    Ok(plan)
}

/// Online members get a push; the others an SMS when they have a phone number, else an e-mail.
fn route(member: &Member, user_id: &str, keys: &ContactKeys) -> Option<(Via, String)> {
    if member.is_online == Some(true) {
        return Some((Via::Push, user_id.to_owned()));
    }
    let contact = |key: &str| {
        member
            .metadata
            .as_ref()?
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    contact(&keys.phone)
        .map(|phone| (Via::Sms, phone))
        .or_else(|| contact(&keys.email).map(|address| (Via::Email, address)))
}

/// `Zoë: Who is in for lunch?`, or `Zoë sent a file: menu.pdf`, cut to [`MAX_TEXT_CHARS`].
fn preview(message: Option<&Message>, sender: &User) -> String {
    let who = sender
        .nickname
        .as_deref()
        .filter(|n| !n.is_empty())
        .or(sender.user_id.as_deref())
        .unwrap_or("Someone");
    let body = match message {
        Some(Message {
            message_type: Some(t),
            filename,
            ..
        }) if t == "FILE" => format!("{who} sent a file: {}", filename.as_deref().unwrap_or("")),
        Some(Message { text: Some(t), .. }) => format!("{who}: {t}"),
        _ => format!("{who} sent a message"),
    };
    if body.chars().count() <= MAX_TEXT_CHARS {
        return body;
    }
    let mut cut: String = body.chars().take(MAX_TEXT_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ContactKeys {
        ContactKeys {
            phone: "phone_number".into(),
            email: "email".into(),
        }
    }

    fn member(id: &str, online: bool, meta: &[(&str, &str)]) -> Member {
        Member {
            user_id: Some(id.into()),
            is_online: Some(online),
            state: Some("joined".into()),
            metadata: Some(
                meta.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
        }
    }

    fn event(members: Option<Vec<Member>>) -> Event {
        Event {
            event_id: "e1".into(),
            category: "group_channel:message_send".into(),
            channel_url: Some("ch".into()),
            channel: Some(Channel {
                name: Some("Lunch".into()),
                is_super: Some(false),
            }),
            sender: Some(User {
                user_id: Some("zoe".into()),
                nickname: Some("Zoë".into()),
            }),
            message: Some(Message {
                message_id: Some(7),
                message_type: Some("MESG".into()),
                text: Some("hi".into()),
                silent: Some(false),
                filename: None,
            }),
            members,
            truncated: None,
        }
    }

    fn sent(plan: &Plan) -> Vec<(&str, Via, &str)> {
        plan.notifications
            .iter()
            .map(|n| (n.recipient.as_str(), n.via, n.to.as_str()))
            .collect()
    }

    #[test]
    fn online_push_offline_sms_then_email_never_the_sender() {
        let ev = event(Some(vec![
            member("zoe", true, &[]),
            member("marc", true, &[("phone_number", "+331")]),
            member(
                "lukasz",
                false,
                &[("phone_number", "+481"), ("email", "l@x")],
            ),
            member("ana", false, &[("email", "ana@x")]),
            member("bob", false, &[("phone_number", "  ")]),
        ]));
        let plan = plan(&ev, &keys()).expect("a plan");
        assert_eq!(
            sent(&plan),
            vec![
                ("marc", Via::Push, "marc"),
                ("lukasz", Via::Sms, "+481"),
                ("ana", Via::Email, "ana@x"),
            ]
        );
        assert_eq!(plan.skipped_members, vec![("bob".into(), Skip::NoContact)]);
        assert_eq!(plan.notifications[0].idempotency_key, "e1:marc");
        assert_eq!(plan.notifications[0].text, "Zoë: hi");
    }

    #[test]
    fn invited_members_are_not_notified() {
        let mut invited = member("marc", true, &[]);
        invited.state = Some("invited".into());
        let plan = plan(&event(Some(vec![invited])), &keys()).expect("a plan");
        assert!(plan.notifications.is_empty());
        assert_eq!(plan.skipped_members, vec![("marc".into(), Skip::NotJoined)]);
    }

    #[test]
    fn whole_records_skipped_say_why() {
        let mut silent = event(Some(vec![member("marc", true, &[])]));
        silent.message.as_mut().expect("message").silent = Some(true);
        assert_eq!(plan(&silent, &keys()), Err(Skip::Silent));

        assert_eq!(plan(&event(None), &keys()), Err(Skip::NoMembers));

        let mut supergroup = event(None);
        supergroup.channel.as_mut().expect("channel").is_super = Some(true);
        assert_eq!(plan(&supergroup, &keys()), Err(Skip::Supergroup));

        let mut truncated = event(None);
        truncated.truncated = Some(vec!["members".into()]);
        assert_eq!(plan(&truncated, &keys()), Err(Skip::MembersTruncated));

        let mut join = event(Some(vec![]));
        join.category = "group_channel:join".into();
        assert_eq!(plan(&join, &keys()), Err(Skip::NotMessageSend));

        let mut nowhere = event(Some(vec![]));
        nowhere.channel_url = None;
        assert_eq!(plan(&nowhere, &keys()), Err(Skip::NoChannel));
    }

    #[test]
    fn files_and_long_texts_preview_briefly() {
        let mut file = event(Some(vec![member("marc", true, &[])]));
        let m = file.message.as_mut().expect("message");
        m.message_type = Some("FILE".into());
        m.filename = Some("menu.pdf".into());
        let plan_file = plan(&file, &keys()).expect("a plan");
        assert_eq!(plan_file.notifications[0].text, "Zoë sent a file: menu.pdf");

        let mut long = event(Some(vec![member("marc", true, &[])]));
        long.message.as_mut().expect("message").text = Some("é".repeat(1000));
        let text = &plan(&long, &keys()).expect("a plan").notifications[0].text;
        assert_eq!(text.chars().count(), MAX_TEXT_CHARS);
        assert!(text.ends_with('…'));
    }
}
