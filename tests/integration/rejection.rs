//! What never reaches Kafka, and what reaches only the dead-letter topic.

use std::time::Duration;

use rdkafka::message::Message;

use crate::support::*;

#[tokio::test]
async fn forged_requests_reach_no_topic() {
    // Exclusive, so the process-wide counters below move only for this test's requests.
    let broker = broker_exclusive().await;
    let app = spawn_app(&broker, "forged").await;
    let body = fixture("group_channel__message_send");
    let good = sign(&body);

    let other_token = hookbridge::providers::sendbird::ApiToken::parse("someone-elses-token")
        .expect("valid")
        .sign(&body);
    let mut flipped = body.clone();
    flipped[10] ^= 0x01;
    let poison = b"this is not json".to_vec();
    let failures = |m: &str, reason: &str| {
        counter_value(
            m,
            "hookbridge_signature_failures_total",
            &[("reason", reason)],
        )
    };
    let before = app.metrics().await;
    let cases: Vec<(&str, Vec<u8>, Option<String>)> = vec![
        ("no signature", body.clone(), None),
        ("other token", body.clone(), Some(other_token)),
        (
            "truncated signature",
            body.clone(),
            Some(good[..63].to_owned()),
        ),
        ("not hex", body.clone(), Some("g".repeat(64))),
        ("flipped body byte", flipped, Some(good.clone())),
        ("poison with a wrong signature", poison, Some(good.clone())),
    ];
    for (what, body, sig) in &cases {
        let response = app.post_with_signature(body, sig.as_deref()).await;
        assert_eq!(response.status(), 401, "{what}");
        let text = response.text().await.expect("body");
        assert_eq!(text, r#"{"error":"unauthorized"}"#, "{what}: generic body");
    }
    // x-signature is read only when x-sendbird-signature is absent.
    let zeros = "0".repeat(64);
    let response = app
        .post_to(
            "/webhooks/sendbird",
            &body,
            &[
                ("x-sendbird-signature", Some(&zeros)),
                ("x-signature", Some(&good)),
            ],
        )
        .await;
    assert_eq!(response.status(), 401);

    // One authentic marker, so "nothing arrived" is not just "nothing was read yet".
    let marker = fixture("user__block");
    assert_eq!(app.post_signed(&marker).await.status(), 200);
    let marker_id = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&marker));
    let seen = consume_through_marker(&all_topics(&app), &marker_id, Duration::from_secs(3)).await;
    assert_eq!(seen.len(), 1, "only the authentic marker reached Kafka");
    assert_eq!(seen[0].topic(), app.topic("user"));

    // Counters are process-wide; holding the lock exclusively makes the deltas exact.
    let after = app.metrics().await;
    assert!(failures(&after, "missing") - failures(&before, "missing") == 1.0);
    assert!(failures(&after, "malformed") - failures(&before, "malformed") == 2.0);
    assert!(failures(&after, "mismatch") - failures(&before, "mismatch") == 4.0);
    let unauthorized = |m: &str| {
        counter_value(
            m,
            "hookbridge_webhook_requests_total",
            &[("outcome", "unauthorized")],
        )
    };
    assert!(
        unauthorized(&after) - unauthorized(&before) == 7.0,
        "{after}"
    );
}

#[tokio::test]
async fn the_fallback_signature_header_is_accepted_when_the_documented_one_is_absent() {
    let broker = broker().await;
    let app = spawn_app(&broker, "fallback").await;
    let body = fixture("user__unblock");
    let sig = sign(&body);
    let response = app
        .post_to("/webhooks/sendbird", &body, &[("x-signature", Some(&sig))])
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn poison_bodies_go_to_the_dead_letter_topic_byte_for_byte() {
    let broker = broker().await;
    let app = spawn_app(&broker, "poison").await;
    let long_category = format!(r#"{{"category":"{}"}}"#, "x".repeat(257));
    let cases: Vec<(&[u8], &str)> = vec![
        (long_category.as_bytes(), "category_too_long"),
        (b"\xff\xfe not utf-8 \x80", "not_utf8"),
        (b"{\"category\": \"group_channel:join\"", "not_json"),
        (b"[\"an\", \"array\"]", "not_object"),
        (
            b"{\"app_id\": \"A1B2C3D4-0000-4000-8000-000000000001\"}",
            "no_category",
        ),
        // Signed with this app's token but naming another app: kept for a human, not retried.
        (
            b"{\"category\":\"group_channel:join\",\"app_id\":\"SOMEONE-ELSE\"}",
            "app_id_mismatch",
        ),
    ];
    for (body, _) in &cases {
        let response = app.post_signed(body).await;
        assert_eq!(response.status(), 200);
        let answer: serde_json::Value = response.json().await.expect("JSON");
        assert_eq!(answer["status"], "dead_lettered");
    }
    let records = consume(&[app.topic("dlq")], cases.len(), Duration::from_secs(30)).await;
    assert_eq!(records.len(), cases.len());
    for (body, reason) in &cases {
        let m = records
            .iter()
            .find(|m| m.payload() == Some(*body))
            .unwrap_or_else(|| panic!("{reason}: body not found byte for byte"));
        assert_eq!(header(m, "hookbridge-dlq-reason"), Some(reason.as_bytes()));
        assert!(header(m, "hookbridge-event-id").is_some());
        assert_eq!(m.key(), None);
    }
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_write_nothing() {
    // Exclusive, so the process-wide counters below move only for this test's requests.
    let broker = broker_exclusive().await;
    let prefix = unique_prefix("badreq");
    let mut env = base_env(&broker, &prefix).await;
    env.insert("HOOKBRIDGE_MAX_BODY_BYTES".into(), "4096".into());
    let app = spawn_app_with(&prefix, env, None).await;

    let before = app.metrics().await;
    let body = br#"{"category":"group_channel:join","channel":{"channel_url":"c"}}"#;

    // Unknown app id in the route.
    let sig = sign(body);
    let response = app
        .post_to(
            "/webhooks/sendbird/NO-SUCH-APP",
            body,
            &[("x-sendbird-signature", Some(&sig))],
        )
        .await;
    assert_eq!(response.status(), 404);

    // The app's own route works as well as the single-app route.
    let ok = fixture("group_channel__join");
    let sig = sign(&ok);
    let response = app
        .post_to(
            &format!("/webhooks/sendbird/{APP_ID}"),
            &ok,
            &[("x-sendbird-signature", Some(&sig))],
        )
        .await;
    assert_eq!(response.status(), 200);

    // Wrong method.
    let response = app
        .client
        .get(app.url("/webhooks/sendbird"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 405);

    // Over the limit, declared and streamed.
    let big = vec![b'x'; 5000];
    let response = app.post_signed(&big).await;
    assert_eq!(response.status(), 413);
    let stream = futures_util_stream(big.clone());
    let response = app
        .client
        .post(app.url("/webhooks/sendbird"))
        .header("x-sendbird-signature", sign(&big))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 413);

    let ok_id = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&ok));
    let seen = consume_through_marker(&all_topics(&app), &ok_id, Duration::from_secs(3)).await;
    assert_eq!(seen.len(), 1, "only the one good event was written");

    let after = app.metrics().await;
    let outcome =
        |m: &str, o: &str| counter_value(m, "hookbridge_webhook_requests_total", &[("outcome", o)]);
    assert!(
        outcome(&after, "too_large") - outcome(&before, "too_large") == 2.0,
        "{after}"
    );
    assert!(
        outcome(&after, "rejected") - outcome(&before, "rejected") == 1.0,
        "{after}"
    );
}

/// A chunked body without content-length, so the limit must be enforced while reading.
fn futures_util_stream(
    body: Vec<u8>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(1000).map(|c| Ok(c.to_vec())).collect();
    tokio_stream::iter(chunks)
}

#[tokio::test]
async fn start_up_fails_when_auto_registration_is_off_and_the_schema_is_absent() {
    let broker = broker().await;
    let prefix = unique_prefix("noschema");
    let mut env = base_env(&broker, &prefix).await;
    env.insert("HOOKBRIDGE_AUTO_REGISTER_SCHEMAS".into(), "false".into());
    let config =
        hookbridge::config::Config::from_sources(None, &env, &hookbridge::providers::PROVIDERS)
            .expect("valid");
    let http = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let err =
        match hookbridge::startup::Application::build_with_listeners(config, http, admin).await {
            Ok(_) => panic!("start-up must fail without registered schemas"),
            Err(e) => format!("{e:#}"),
        };
    assert!(err.contains("is not registered"), "{err}");
    assert!(err.contains(prefix.as_str()), "{err}");
}

#[tokio::test]
async fn schemas_check_reports_new_compatible_and_incompatible_subjects() {
    let broker = broker().await;
    let stack = broker.stack;
    let prefix = unique_prefix("schemacheck");
    let check = |prefix: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hookbridge"))
            .args([
                "schemas",
                "check",
                "--registry-url",
                &stack.registry_url,
                "--topic-prefix",
                prefix,
            ])
            .output()
            .expect("run schemas check")
    };
    let out = check(&prefix);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("new subject"));

    // Registered by a gateway start: compatible with itself.
    let app = spawn_app_with(&prefix, base_env(&broker, &prefix).await, None).await;
    app.stop().await;
    let out = check(&prefix);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("compatible"));

    // A registered version whose event_id is a long cannot be read by schemas/ (string).
    let other = unique_prefix("schemaclash");
    let subject = format!("{other}user-value");
    let old = r#"{"type":"record","name":"SendbirdEvent","namespace":"io.hookbridge.sendbird","fields":[{"name":"event_id","type":"long"}]}"#;
    let response = reqwest::Client::new()
        .post(format!(
            "{}/subjects/{subject}/versions",
            stack.registry_url
        ))
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .json(&serde_json::json!({"schema": old}))
        .send()
        .await
        .expect("registry");
    assert!(
        response.status().is_success(),
        "{:?}",
        response.text().await
    );
    let out = check(&other);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("INCOMPATIBLE    {subject}")),
        "{stdout}"
    );
}

#[tokio::test]
async fn schemas_check_with_a_config_covers_every_sources_topics_with_its_own_schema() {
    let broker = broker().await;
    let stack = broker.stack;
    let prefix = unique_prefix("schemacfg");
    let config = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(
        config.path(),
        format!(
            r#"
kafka_brokers = "{kafka}"
schema_registry_url = "{registry}"
topic_prefix = "{prefix}sb."
[[apps]]
app_id = "A"
api_tokens = ["t"]
[[sources]]
provider = "stream"
id = "chat"
secrets = ["s"]
topic_prefix = "{prefix}st."
[[sources]]
provider = "standard"
id = "billing"
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
topic_prefix = "{prefix}sw."
"#,
            kafka = stack.bootstrap,
            registry = stack.registry_url,
        ),
    )
    .expect("write config");
    // Each subject is checked against its own provider's schema: the Stream schema registered
    // under a Stream topic is compatible, the Sendbird schema registered under another is not.
    let register = |subject: String, schema: &'static str| {
        let url = format!("{}/subjects/{subject}/versions", stack.registry_url);
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/vnd.schemaregistry.v1+json")
                .json(&serde_json::json!({ "schema": schema }))
                .send()
                .await
                .expect("registry");
            assert!(
                response.status().is_success(),
                "{:?}",
                response.text().await
            );
        }
    };
    let stream_schema = hookbridge::providers::PROVIDERS
        .get("stream")
        .expect("registered")
        .schema()
        .json;
    let sendbird_schema = hookbridge::providers::PROVIDERS
        .default_provider()
        .schema()
        .json;
    register(format!("{prefix}st.message-value"), stream_schema).await;
    register(format!("{prefix}st.user-value"), sendbird_schema).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookbridge"))
        .args(["schemas", "check", "--registry-url", &stack.registry_url])
        .arg("--config")
        .arg(config.path())
        .env_remove("HOOKBRIDGE_TOPIC_PREFIX")
        .output()
        .expect("run schemas check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("compatible      {prefix}st.message-value")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "INCOMPATIBLE    {prefix}st.user-value (schemas/stream_event.avsc)"
        )),
        "{stdout}"
    );
    for topic in [
        "sb.group_channel",
        "sb.other",
        "st.reaction",
        "st.other",
        "sw.events",
    ] {
        assert!(
            stdout.contains(&format!("new subject     {prefix}{topic}-value")),
            "{topic} missing from:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("dlq"),
        "dead letters hold raw bytes:\n{stdout}"
    );
}
