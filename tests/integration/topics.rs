//! Topics: created right by the gateway, checked when created by someone else.

use std::time::Duration;

use hookbridge::config::Config;
use hookbridge::providers::PROVIDERS;
use hookbridge::sink::kafka::undersized_topics;
use hookbridge::topic::TopicName;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

use crate::support::*;

#[tokio::test]
async fn created_topics_fit_large_records_and_foreign_ones_are_checked() {
    let broker = broker().await;

    // Created by the gateway: sized for large bodies.
    let app = spawn_app(&broker, "sized").await;
    let env = base_env(&broker, &app.prefix).await;
    let config = Config::from_sources(None, &env, &PROVIDERS).expect("valid");
    let ours = TopicName::parse(&app.topic("group_channel")).expect("topic");
    // Right after a broker restart (the outage test) a description can come back empty for a
    // moment; the gateway reports that as "unchecked", and so may this test, briefly.
    let mut sizes = undersized_topics(
        &config.kafka,
        std::slice::from_ref(&ours),
        &Default::default(),
    )
    .await
    .expect("describe");
    for _ in 0..20 {
        if sizes.unchecked.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        sizes = undersized_topics(
            &config.kafka,
            std::slice::from_ref(&ours),
            &Default::default(),
        )
        .await
        .expect("describe");
    }
    assert!(sizes.unchecked.is_empty(), "{sizes:?}");
    assert!(sizes.too_small.is_empty(), "{sizes:?}");
    app.stop().await;

    // Created by someone else with the broker's defaults, and the rest missing.
    let prefix = unique_prefix("foreign");
    let mut env = base_env(&broker, &prefix).await;
    env.insert("HOOKBRIDGE_CREATE_TOPICS".into(), "false".into());
    let foreign = format!("{prefix}group_channel");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &broker.stack.bootstrap)
        .create()
        .expect("admin");
    let created = admin
        .create_topics(
            &[NewTopic::new(&foreign, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create topic");
    assert!(created[0].is_ok(), "{created:?}");
    let config = Config::from_sources(None, &env, &PROVIDERS).expect("valid");
    let topic = TopicName::parse(&foreign).expect("topic");
    // A topic just created may not be describable for a moment.
    let mut sizes = undersized_topics(
        &config.kafka,
        std::slice::from_ref(&topic),
        &Default::default(),
    )
    .await
    .expect("describe");
    for _ in 0..20 {
        if sizes.unchecked.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        sizes = undersized_topics(
            &config.kafka,
            std::slice::from_ref(&topic),
            &Default::default(),
        )
        .await
        .expect("describe");
    }
    assert!(sizes.unchecked.is_empty(), "{sizes:?}");
    assert_eq!(sizes.too_small.len(), 1, "{sizes:?}");
    assert!(sizes.too_small[0].1 < 2 * 1024 * 1024, "{sizes:?}");

    // The gateway starts but is not ready while its topics are missing.
    let app = spawn_app_with(&prefix, env, None).await;
    let response = app
        .client
        .get(format!("http://{}/readyz", app.admin))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("readyz");
    assert_eq!(response.status(), 503);
    let text = response.text().await.expect("body");
    assert!(
        text.contains("topics missing") && text.contains(&format!("{prefix}user")),
        "{text}"
    );
    let live = app
        .client
        .get(format!("http://{}/livez", app.admin))
        .send()
        .await
        .expect("livez");
    assert_eq!(live.status(), 200);
}
