//! What lands where: topics, keys, partitions, record contents, order.

use std::collections::BTreeMap;
use std::time::Duration;

use apache_avro::types::Value;
use rdkafka::message::Message;
use sha2::{Digest, Sha256};

use crate::support::*;

const PARTITIONS: i32 = 6;

#[test]
fn murmur2_matches_javas_reference_values() {
    // From Apache Kafka's UtilsTest.testMurmur2.
    let cases: &[(&[u8], i32)] = &[
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (
            b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58897971,
        ),
        (b"abc", 479470107),
    ];
    for (data, expected) in cases {
        assert_eq!(
            murmur2(data),
            *expected,
            "{}",
            String::from_utf8_lossy(data)
        );
    }
}

fn expected_family(category: &str) -> &'static str {
    match category.split_once(':').map(|(ns, _)| ns).unwrap_or("") {
        "group_channel" => "group_channel",
        "open_channel" => "open_channel",
        "user" | "operators" => "user",
        "message" | "alert" | "profanity_filter" | "image_moderation" => "moderation",
        "announcement" => "announcement",
        "notification" => "notification",
        _ => "other",
    }
}

fn expected_key(body: &[u8], family: &str) -> Option<String> {
    if family == "announcement" || family == "notification" {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(body).expect("JSON");
    json["channel"]["channel_url"]
        .as_str()
        .or_else(|| json["reported_message"]["channel"]["channel_url"].as_str())
        .map(str::to_owned)
        .or_else(|| {
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
        })
}

#[tokio::test]
async fn every_category_lands_in_its_family_topic_with_key_partition_and_exact_body() {
    let broker = broker().await;
    let app = spawn_app(&broker, "families").await;
    let mut bodies = all_fixtures();
    // A category Sendbird may add tomorrow still arrives, in the catch-all topic.
    bodies.push((
        "poll:vote".into(),
        br#"{"category":"poll:vote","app_id":"A1B2C3D4-0000-4000-8000-000000000001","channel":{"channel_url":"sendbird_group_channel_poll"},"user":{"user_id":"zoe"}}"#.to_vec(),
    ));
    assert!(bodies.len() >= 53);

    let mut sent = BTreeMap::new();
    for (category, body) in &bodies {
        let response = app.post_signed(body).await;
        assert_eq!(response.status(), 200, "{category}");
        let answer: serde_json::Value = response.json().await.expect("JSON answer");
        assert_eq!(answer["status"], "accepted", "{category}");
        let event_id = hex::encode(Sha256::digest(body));
        assert_eq!(answer["event_id"], event_id.as_str());
        sent.insert(event_id, (category.clone(), body.clone()));
    }

    // Every topic including the DLQ: nothing of a valid body may land there.
    let topics = all_topics(&app);
    let records = consume(&topics, sent.len(), Duration::from_secs(60)).await;
    assert_eq!(
        records.len(),
        sent.len(),
        "every accepted event is in Kafka"
    );

    for m in &records {
        let event_id =
            std::str::from_utf8(header(m, "hookbridge-event-id").expect("event id header"))
                .expect("utf-8")
                .to_owned();
        let (category, body) = sent.get(&event_id).expect("a record we sent");
        let family = expected_family(category);
        assert_eq!(m.topic(), app.topic(family), "{category}");
        assert_eq!(header(m, "hookbridge-category"), Some(category.as_bytes()));
        assert_eq!(header(m, "hookbridge-app-id"), Some(APP_ID.as_bytes()));
        assert_eq!(header(m, "hookbridge-source"), Some(&b"sendbird"[..]));

        let key = m
            .key()
            .map(|k| String::from_utf8(k.to_vec()).expect("utf-8 key"));
        assert_eq!(key, expected_key(body, family), "{category}");
        if let Some(key) = &key {
            assert_eq!(
                m.partition(),
                java_partition(key.as_bytes(), PARTITIONS),
                "{category}: partition must be the one Java's murmur2 partitioner picks"
            );
        }

        let record = decode(m.payload().expect("value")).await;
        assert_eq!(
            string_field(&record, "raw_body")
                .as_deref()
                .map(str::as_bytes),
            Some(body.as_slice()),
            "{category}: raw body kept byte for byte"
        );
        assert_eq!(string_field(&record, "event_id"), Some(event_id.clone()));
        assert_eq!(
            string_field(&record, "category").as_deref(),
            Some(category.as_str())
        );
        assert_eq!(string_field(&record, "app_id").as_deref(), Some(APP_ID));
        let json: serde_json::Value = serde_json::from_slice(body).expect("JSON");
        if let Some(url) = json["channel"]["channel_url"].as_str() {
            assert_eq!(string_field(&record, "channel_url").as_deref(), Some(url));
        }
        let Some(Value::TimestampMillis(received)) = record.get("received_at") else {
            panic!("received_at is timestamp-millis")
        };
        assert_eq!(m.timestamp().to_millis(), Some(*received));
    }
}

#[tokio::test]
async fn a_channels_events_share_one_partition_in_the_order_they_were_accepted() {
    let broker = broker().await;
    let app = spawn_app(&broker, "order").await;
    let channel = "sendbird_group_channel_order_test";
    let categories = [
        "group_channel:join",
        "group_channel:message_send",
        "group_channel:message_update",
    ];
    let n = 40;
    for i in 0..n {
        let category = categories[i % categories.len()];
        let body = format!(
            r#"{{"category":"{category}","app_id":"{APP_ID}","channel":{{"channel_url":"{channel}"}},"sender":{{"user_id":"u{i}"}},"payload":{{"message_id":{i},"message":"m{i}","created_at":{}}}}}"#,
            1_718_000_000_000i64 + i as i64
        );
        let response = app.post_signed(body.as_bytes()).await;
        assert_eq!(response.status(), 200);
    }
    let records = consume(&[app.topic("group_channel")], n, Duration::from_secs(60)).await;
    assert_eq!(records.len(), n);
    let partition = java_partition(channel.as_bytes(), PARTITIONS);
    let mut ids = Vec::new();
    for m in &records {
        assert_eq!(m.partition(), partition);
        let record = decode(m.payload().expect("value")).await;
        let Some(Value::Union(1, message)) = record.get("message") else {
            panic!("message record")
        };
        let Value::Record(fields) = message.as_ref() else {
            panic!("record")
        };
        let id = fields
            .iter()
            .find(|(k, _)| k == "message_id")
            .map(|(_, v)| unwrap_union(v).clone());
        let Some(Value::Long(id)) = id else {
            panic!("message_id")
        };
        ids.push(id);
    }
    assert_eq!(
        ids,
        (0..n as i64).collect::<Vec<_>>(),
        "order kept within the channel"
    );
}

#[tokio::test]
async fn routing_overrides_send_categories_to_the_configured_topic() {
    let broker = broker().await;
    let prefix = unique_prefix("override");
    let target = format!("{prefix}messages-only");
    let env = base_env(&broker, &prefix).await;
    let toml =
        format!("[[routes]]\ncategory = \"group_channel:message_*\"\ntopic = \"{target}\"\n");
    let app = spawn_app_with(&prefix, env, Some(&toml)).await;
    let body = fixture("group_channel__message_send");
    assert_eq!(app.post_signed(&body).await.status(), 200);
    let join = fixture("group_channel__join");
    assert_eq!(app.post_signed(&join).await.status(), 200);
    let moved = consume(std::slice::from_ref(&target), 1, Duration::from_secs(30)).await;
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].payload().map(|p| p.len() > 5), Some(true));
    let record = decode(moved[0].payload().expect("value")).await;
    assert_eq!(
        string_field(&record, "category").as_deref(),
        Some("group_channel:message_send")
    );
    let rest = consume(&[app.topic("group_channel")], 1, Duration::from_secs(30)).await;
    assert_eq!(rest.len(), 1);
    assert_eq!(
        header(&rest[0], "hookbridge-category"),
        Some(&b"group_channel:join"[..])
    );
}

#[tokio::test]
async fn a_body_at_the_two_mib_limit_reaches_a_broker_with_default_settings() {
    let broker = broker().await;
    let app = spawn_app(&broker, "large").await;
    // Incompressible-ish text, so compression alone would not save a too-small size limit.
    let mut text = String::new();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let head = format!(
        r#"{{"category":"group_channel:message_send","app_id":"{APP_ID}","channel":{{"channel_url":"big"}},"payload":{{"message":""#
    );
    let tail = r#""}}"#;
    while head.len() + text.len() + tail.len() < 2 * 1024 * 1024 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        text.push(char::from(b'a' + (x % 26) as u8));
    }
    let body = format!("{head}{text}{tail}");
    assert_eq!(body.len(), 2 * 1024 * 1024);
    let response = app.post_signed(body.as_bytes()).await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    let records = consume(&[app.topic("group_channel")], 1, Duration::from_secs(60)).await;
    assert_eq!(records.len(), 1);
    let record = decode(records[0].payload().expect("value")).await;
    assert_eq!(
        string_field(&record, "raw_body").map(|b| b.len()),
        Some(body.len())
    );
    // The text is far beyond max_typed_text_bytes: it is carried once, in raw_body, and the
    // typed view names what it left out.
    let Some(Value::Record(message)) = record.get("message").map(unwrap_union) else {
        panic!("message: {:?}", record.get("message"));
    };
    let text = message
        .iter()
        .find(|(name, _)| name == "text")
        .map(|(_, v)| unwrap_union(v));
    assert_eq!(text, Some(&Value::Null));
    let truncated = record.get("truncated").map(unwrap_union);
    assert_eq!(
        truncated,
        Some(&Value::Array(vec![Value::String("message.text".into())]))
    );
    app.stop().await;
}
