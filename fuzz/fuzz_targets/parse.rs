//! `SendbirdEvent::parse` on arbitrary bytes: never panics, is deterministic, classifies poison
//! as serde_json sees it, and for every object with a category agrees with an independent typed
//! view built from a whole tree read by serde_json (category, app id, channel, sender, actor,
//! members, affected users, message, and which capped lists were left out). The category's
//! timestamp table is covered by the unit tests, not re-derived here.
//!
//! The tree keeps repeated keys (serde_json's `Value` would merge them), so "the last one wins"
//! and "repeats count toward the cap" are checked too. Where the bounded parser is deliberately
//! more lenient than serde_json (a leading BOM, lone surrogate escapes, numbers beyond f64,
//! nesting deeper than 128), only "no panic" and determinism are checked.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use hookbridge::providers::sendbird::event::{
    DEFAULT_MAX_TYPED_ITEMS, MAX_CATEGORY_BYTES, PoisonReason,
};
use hookbridge::providers::sendbird::{Channel, Member, Message, SendbirdEvent, User};
use libfuzzer_sys::fuzz_target;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

fuzz_target!(|data: &[u8]| {
    let parsed = SendbirdEvent::parse(data);
    assert_eq!(
        parsed,
        SendbirdEvent::parse(data),
        "parse is not deterministic"
    );

    let Ok(text) = std::str::from_utf8(data) else {
        assert_eq!(parsed, Err(PoisonReason::NotUtf8));
        return;
    };
    assert_eq!(
        SendbirdEvent::parse_str(text, DEFAULT_MAX_TYPED_ITEMS),
        parsed,
        "parse_str differs"
    );
    // A small cap, so that leaving out long lists is exercised too.
    let cap = data.len() % 4;
    let capped = SendbirdEvent::parse_str(text, cap);

    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let root: J = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            // Invalid JSON is poison, unless serde_json refused it only for what the bounded
            // parser accepts on purpose.
            let lenient = ["recursion limit", "number out of range"]
                .iter()
                .any(|m| e.to_string().contains(m));
            if !lenient && serde_json::from_str::<J>(&neutral_escapes(text)).is_err() {
                assert_eq!(parsed, Err(PoisonReason::NotJson), "serde_json: {e}");
                assert_eq!(capped, Err(PoisonReason::NotJson), "serde_json: {e}");
            }
            return;
        }
    };
    check(&root, &parsed, DEFAULT_MAX_TYPED_ITEMS);
    check(&root, &capped, cap);
});

/// A JSON tree whose objects keep every entry in order, repeated keys included.
#[derive(Debug, Clone, PartialEq)]
enum J {
    Null,
    Bool(bool),
    Num(Number),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

type Obj = [(String, J)];

impl<'de> Deserialize<'de> for J {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<J, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = J;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E: de::Error>(self) -> Result<J, E> {
                Ok(J::Null)
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<J, E> {
                Ok(J::Bool(b))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<J, E> {
                Ok(J::Num(n.into()))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<J, E> {
                Ok(J::Num(n.into()))
            }
            fn visit_f64<E: de::Error>(self, f: f64) -> Result<J, E> {
                Number::from_f64(f)
                    .map(J::Num)
                    .ok_or_else(|| E::custom("not a finite number"))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<J, E> {
                Ok(J::Str(s.to_owned()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<J, E> {
                Ok(J::Str(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<J, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(J::Arr(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<J, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(J::Obj(entries))
            }
        }
        d.deserialize_any(V)
    }
}

/// The value of `key`: the last one when it is repeated.
fn get<'a>(o: &'a Obj, key: &str) -> Option<&'a J> {
    o.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn as_object(v: Option<&J>) -> Option<&Obj> {
    match v? {
        J::Obj(entries) => Some(entries),
        _ => None,
    }
}

fn as_array(v: Option<&J>) -> Option<&[J]> {
    match v? {
        J::Arr(items) => Some(items),
        _ => None,
    }
}

fn as_str(v: Option<&J>) -> Option<String> {
    match v? {
        J::Str(s) => Some(s.clone()),
        _ => None,
    }
}

/// Documented leniency: booleans, 0/1 and "true"/"false". For the strings, `None` is accepted
/// too, since the parser compares the raw token: `"tru\u0065"` is not read as true (a known nit).
/// The expected value of a boolean field, given what the parser returned for it.
fn bool_field(got: Option<Option<bool>>, want: Option<&J>) -> Option<bool> {
    match (got, want) {
        (Some(None), Some(J::Str(s))) if s == "true" || s == "false" => None,
        _ => as_bool(want),
    }
}

fn as_bool(v: Option<&J>) -> Option<bool> {
    match v? {
        J::Bool(b) => Some(*b),
        J::Num(n) => match n.as_i64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        J::Str(s) if s == "true" => Some(true),
        J::Str(s) if s == "false" => Some(false),
        _ => None,
    }
}

/// Documented leniency: integers, integral floats within ±9e18, numeric strings.
fn as_i64(v: Option<&J>) -> Option<i64> {
    match v? {
        J::Num(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18)
                .map(|f| f as i64)
        }),
        J::Str(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `\uXXXX` escapes replaced by `\u0041`, so a lone surrogate is no longer a reason to refuse.
fn neutral_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c != '\\' {
            continue;
        }
        match chars.next() {
            Some('u') => {
                let hex: String = chars.clone().take(4).collect();
                if hex.len() == 4 && hex.chars().all(|h| h.is_ascii_hexdigit()) {
                    out.push_str("u0041");
                    for _ in 0..4 {
                        chars.next();
                    }
                } else {
                    out.push('u');
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// Lists are capped one by one, and all of one event's share a budget of `ITEMS_PER_EVENT`
/// caps, taken in the order the view reads them (message, sender, actor, members, affected
/// users); a list that does not fit is left out and named.
const ITEMS_PER_EVENT: usize = 4;

struct Budget {
    cap: usize,
    left: usize,
    truncated: BTreeSet<&'static str>,
}

impl Budget {
    /// A list of `total` items (repeats counted), of which `kept` are held: whether it is kept.
    fn take(&mut self, total: usize, kept: usize, path: &'static str) -> bool {
        if total > self.cap || kept > self.left {
            self.truncated.insert(path);
            return false;
        }
        self.left -= kept;
        true
    }
}

fn check(root: &J, parsed: &Result<SendbirdEvent, PoisonReason>, cap: usize) {
    let J::Obj(map) = root else {
        assert_eq!(parsed, &Err(PoisonReason::NotObject));
        return;
    };
    let category = as_str(get(map, "category"));
    let category = match category.as_deref().map(str::trim) {
        Some(c) if c.len() > MAX_CATEGORY_BYTES => {
            assert_eq!(parsed, &Err(PoisonReason::CategoryTooLong));
            return;
        }
        Some(c) if !c.is_empty() => c,
        _ => {
            assert_eq!(parsed, &Err(PoisonReason::NoCategory));
            return;
        }
    };
    let event = match parsed {
        Ok(event) => event,
        Err(e) => panic!("serde_json reads an object with category {category:?}; parse said {e:?}"),
    };
    let mut budget = Budget {
        cap,
        left: cap.saturating_mul(ITEMS_PER_EVENT),
        truncated: BTreeSet::new(),
    };
    assert_eq!(event.category, category);
    assert_eq!(event.app_id, as_str(get(map, "app_id")), "app_id");

    let reported = as_object(get(map, "reported_message"));
    let channel = as_object(get(map, "channel"))
        .or_else(|| reported.and_then(|r| as_object(get(r, "channel"))))
        .map(|m| channel(m, event.channel.as_ref()));
    assert_eq!(event.channel, channel, "channel");
    assert_eq!(
        event.channel_url(),
        channel.as_ref().and_then(|c| c.channel_url.as_deref())
    );

    let got = event.message.as_ref();
    let message = message(map, &mut budget, got)
        .or_else(|| reported.and_then(|r| message(r, &mut budget, got)));
    assert_eq!(event.message, message, "message");

    check_user(
        event.sender.as_ref(),
        as_object(get(map, "sender")),
        "sender",
        &mut budget,
    );
    const ACTORS: &[&str] = &[
        "sender",
        "blocker",
        "unblocker",
        "user",
        "inviter",
        "reporting_user",
    ];
    let actor = ACTORS
        .iter()
        .filter_map(|f| as_object(get(map, f)))
        .find(|u| matches!(get(u, "user_id"), Some(J::Str(_))))
        .or_else(|| ACTORS.iter().find_map(|f| as_object(get(map, f))));
    check_user(event.actor.as_ref(), actor, "actor", &mut budget);

    let members: Option<Vec<Member>> = match as_array(get(map, "members")) {
        Some(items) if !budget.take(items.len(), items.len(), "members") => None,
        Some(items) => Some(
            items
                .iter()
                .filter_map(|m| as_object(Some(m)))
                .enumerate()
                .map(|(i, m)| {
                    member(
                        m,
                        event.members.as_ref().and_then(|g| g.get(i)),
                        &mut budget,
                    )
                })
                .collect(),
        ),
        None => None,
    };
    assert_eq!(event.members, members, "members");

    const AFFECTED: &[&str] = &[
        "users",
        "invitees",
        "blockee",
        "unblockee",
        "operators",
        "offending_user",
    ];
    // The first of these that is an object or an array; a list over the cap is left out.
    let affected: Option<Vec<&Obj>> = AFFECTED
        .iter()
        .find_map(|f| match get(map, f)? {
            J::Arr(items) if !budget.take(items.len(), items.len(), "affected_users") => Some(None),
            J::Arr(items) => Some(Some(
                items.iter().filter_map(|u| as_object(Some(u))).collect(),
            )),
            J::Obj(one) => Some(Some(vec![one.as_slice()])),
            _ => None,
        })
        .flatten();
    match (&event.affected_users, &affected) {
        (None, None) => {}
        (Some(got), Some(want)) => {
            assert_eq!(got.len(), want.len(), "affected_users");
            for (g, w) in got.iter().zip(want) {
                check_user(Some(g), Some(w), "affected_users", &mut budget);
            }
        }
        _ => panic!(
            "affected_users: got {:?}, serde_json has {}",
            event.affected_users,
            affected.is_some()
        ),
    }

    let got: BTreeSet<&str> = event.truncated.iter().copied().collect();
    assert_eq!(
        got.len(),
        event.truncated.len(),
        "a path named twice: {:?}",
        event.truncated
    );
    assert_eq!(got, budget.truncated, "truncated");
}

fn channel(m: &Obj, got: Option<&Channel>) -> Channel {
    Channel {
        channel_url: as_str(get(m, "channel_url")),
        name: as_str(get(m, "name")),
        custom_type: as_str(get(m, "custom_type")),
        data: as_str(get(m, "data")),
        is_distinct: bool_field(got.map(|g| g.is_distinct), get(m, "is_distinct")),
        is_public: bool_field(got.map(|g| g.is_public), get(m, "is_public")),
        is_super: bool_field(got.map(|g| g.is_super), get(m, "is_super")),
        is_ephemeral: bool_field(got.map(|g| g.is_ephemeral), get(m, "is_ephemeral")),
        is_discoverable: bool_field(got.map(|g| g.is_discoverable), get(m, "is_discoverable")),
    }
}

/// Users: the string fields exactly; metadata keys, and string metadata values exactly (other
/// values are "their JSON text", whose spelling a parser may choose). Metadata with more
/// entries than the cap (repeats counted) is left out.
fn check_user(got: Option<&User>, want: Option<&Obj>, what: &'static str, budget: &mut Budget) {
    let (got, want) = match (got, want) {
        (None, None) => return,
        (Some(g), Some(w)) => (g, w),
        _ => panic!("{what}: got {got:?}, serde_json has {}", want.is_some()),
    };
    assert_eq!(got.user_id, as_str(get(want, "user_id")), "{what}.user_id");
    assert_eq!(
        got.nickname,
        as_str(get(want, "nickname")),
        "{what}.nickname"
    );
    assert_eq!(
        got.profile_url,
        as_str(get(want, "profile_url")),
        "{what}.profile_url"
    );
    let path = match what {
        "sender" => "sender.metadata",
        "actor" => "actor.metadata",
        _ => "affected_users.metadata",
    };
    check_metadata(got.metadata.as_ref(), want, path, budget);
}

/// `want`'s metadata as the parser should keep it (left out when over the cap or the event's
/// budget), against what it kept.
fn check_metadata(
    got: Option<&BTreeMap<String, String>>,
    want: &Obj,
    path: &'static str,
    budget: &mut Budget,
) {
    let mut metadata = as_object(get(want, "metadata"));
    if let Some(m) = metadata {
        let unique = m.iter().map(|(k, _)| k).collect::<BTreeSet<_>>().len();
        if !budget.take(m.len(), unique, path) {
            metadata = None;
        }
    }
    match (got, metadata) {
        (None, None) => {}
        (Some(g), Some(w)) => {
            let keys: Vec<&String> = g.keys().collect();
            let want_keys: Vec<&String> = w
                .iter()
                .map(|(k, _)| k)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            assert_eq!(keys, want_keys, "{path} keys");
            for (k, _) in w {
                if let Some(J::Str(s)) = get(w, k) {
                    assert_eq!(g.get(k), Some(s), "{path}[{k:?}]");
                }
            }
        }
        _ => panic!("{path}: got {got:?}"),
    }
}

fn member(m: &Obj, got: Option<&Member>, budget: &mut Budget) -> Member {
    let got_metadata = got.and_then(|g| g.metadata.as_ref());
    check_metadata(got_metadata, m, "members.metadata", budget);
    Member {
        metadata: got_metadata.cloned(),
        user_id: as_str(get(m, "user_id")),
        nickname: as_str(get(m, "nickname")),
        profile_url: as_str(get(m, "profile_url")),
        is_online: bool_field(got.map(|g| g.is_online), get(m, "is_online")),
        is_hidden: bool_field(got.map(|g| g.is_hidden), get(m, "is_hidden")),
        state: as_str(get(m, "state")),
        push_enabled: bool_field(got.map(|g| g.push_enabled), get(m, "push_enabled")),
        push_trigger_option: as_str(get(m, "push_trigger_option")),
        unread_message_count: as_i64(get(m, "unread_message_count")),
    }
}

/// Values below 1e11 are seconds (documented), scaled to milliseconds.
fn normalise_millis(v: i64) -> i64 {
    if (0..100_000_000_000).contains(&v) {
        v.saturating_mul(1000)
    } else {
        v
    }
}

fn message(outer: &Obj, budget: &mut Budget, got: Option<&Message>) -> Option<Message> {
    let payload = as_object(get(outer, "payload"))?;
    let mentioned_user_ids = match as_array(get(outer, "mentioned_users")) {
        Some(users) if !budget.take(users.len(), users.len(), "message.mentioned_user_ids") => None,
        Some(users) => Some(
            users
                .iter()
                .filter_map(|u| match u {
                    J::Str(s) => Some(s.clone()),
                    J::Obj(m) => as_str(get(m, "user_id")),
                    _ => None,
                })
                .collect(),
        ),
        None => None,
    };
    Some(Message {
        message_id: as_i64(get(payload, "message_id")),
        message_type: as_str(get(outer, "type")),
        text: as_str(get(payload, "message")),
        custom_type: as_str(get(payload, "custom_type"))
            .or_else(|| as_str(get(outer, "custom_type"))),
        data: as_str(get(payload, "data")),
        created_at: as_i64(get(payload, "created_at")).map(normalise_millis),
        mention_type: as_str(get(outer, "mention_type")),
        mentioned_user_ids,
        silent: bool_field(got.map(|g| g.silent), get(outer, "silent")),
        sdk: as_str(get(outer, "sdk")),
        url: as_str(get(payload, "url")),
        filename: as_str(get(payload, "filename")),
        content_type: as_str(get(payload, "content_type")),
        content_size: as_i64(get(payload, "content_size")),
    })
}
