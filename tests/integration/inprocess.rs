//! Handler behaviour that needs a Kafka that misbehaves on cue: these run the real HTTP stack
//! in-process with a scripted [`Publisher`]. Everything about real delivery is tested against
//! the real broker in the other modules.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookbridge::avro::EventEncoder;
use hookbridge::config::Config;
use hookbridge::kafka::{BoxFuture, BrokerHealth, Delivered, OutRecord, PublishError, Publisher};
use hookbridge::sendbird::Router;
use hookbridge::startup::Application;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::support::{APP_ID, TOKEN, fixture, sign};

enum Script {
    Fail(PublishError),
    /// Waits for a permit on the semaphore before acknowledging.
    Hold(Arc<Semaphore>),
}

struct ScriptedPublisher {
    script: Script,
    seen: Mutex<Vec<OutRecord>>,
}

impl Publisher for ScriptedPublisher {
    fn publish(
        &self,
        record: OutRecord,
        deadline: tokio::time::Instant,
    ) -> BoxFuture<'_, Result<Delivered, PublishError>> {
        Box::pin(async move {
            self.seen.lock().expect("lock").push(record);
            match &self.script {
                Script::Fail(e) => Err(e.clone()),
                Script::Hold(gate) => match tokio::time::timeout_at(deadline, gate.acquire()).await
                {
                    Ok(_) => Ok(Delivered {
                        partition: 0,
                        offset: 0,
                    }),
                    Err(_) => Err(PublishError::Timeout),
                },
            }
        })
    }

    fn flush(&self, _timeout: Duration) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

struct InProcess {
    base: String,
    publisher: Arc<ScriptedPublisher>,
    client: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(script: Script, extra: &[(&str, &str)]) -> InProcess {
    let mut env: BTreeMap<String, String> = [
        ("HOOKBRIDGE_KAFKA_BROKERS", "unused:9092"),
        ("HOOKBRIDGE_SCHEMA_REGISTRY_URL", "http://unused"),
        ("HOOKBRIDGE_SENDBIRD_APP_ID", APP_ID),
        ("HOOKBRIDGE_SENDBIRD_API_TOKENS", TOKEN),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    let config = Config::from_sources(None, &env).expect("valid config");
    let router = Router::new(&config.topic_prefix, Vec::new()).expect("router");
    let ids: HashMap<_, _> = router.event_topics().into_iter().map(|t| (t, 1)).collect();
    let health = Arc::new(BrokerHealth::default());
    let publisher = Arc::new(ScriptedPublisher {
        script,
        seen: Mutex::new(Vec::new()),
    });
    let app = Application::assemble(
        &config,
        TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        publisher.clone(),
        router,
        EventEncoder::new().expect("schema"),
        ids,
        health,
    )
    .expect("assemble");
    let base = format!("http://{}/webhooks/sendbird", app.http_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    InProcess {
        base,
        publisher,
        client: reqwest::Client::new(),
        _stop: tx,
    }
}

impl InProcess {
    async fn post(&self, body: Vec<u8>) -> reqwest::Response {
        self.client
            .post(&self.base)
            .header("x-sendbird-signature", sign(&body))
            .body(body)
            .send()
            .await
            .expect("request")
    }
}

#[tokio::test]
async fn kafka_refusals_become_503_with_retry_after() {
    for error in [
        PublishError::QueueFull,
        PublishError::Timeout,
        PublishError::Retryable("broker down".into()),
        PublishError::Permanent("message too large".into()),
    ] {
        let app = start(Script::Fail(error.clone()), &[]).await;
        let response = app.post(fixture("group_channel__join")).await;
        assert_eq!(response.status(), 503, "{error}");
        assert_eq!(
            response.headers().get("retry-after").map(|v| v.as_bytes()),
            Some(&b"5"[..])
        );
        let text = response.text().await.expect("body");
        assert!(
            !text.contains("broker down") && !text.contains("too large"),
            "internals stay in the logs: {text}"
        );
    }
}

#[tokio::test]
async fn a_failed_dead_letter_write_is_503_not_200() {
    let app = start(Script::Fail(PublishError::Timeout), &[]).await;
    let response = app.post(b"not json at all".to_vec()).await;
    assert_eq!(response.status(), 503);
    let seen = app.publisher.seen.lock().expect("lock");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].topic, "sendbird.dlq");
    assert_eq!(&seen[0].value[..], b"not json at all");
}

#[tokio::test]
async fn sheds_load_beyond_the_in_flight_cap_instead_of_queueing() {
    let gate = Arc::new(Semaphore::new(0));
    let app = Arc::new(
        start(
            Script::Hold(gate.clone()),
            &[("HOOKBRIDGE_MAX_IN_FLIGHT", "2")],
        )
        .await,
    );
    let mut held = Vec::new();
    for _ in 0..2 {
        let app = app.clone();
        held.push(tokio::spawn(async move {
            app.post(fixture("group_channel__join")).await.status()
        }));
    }
    // Wait until both requests sit in the publisher.
    for _ in 0..100 {
        if app.publisher.seen.lock().expect("lock").len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.publisher.seen.lock().expect("lock").len(), 2);
    let shed = app.post(fixture("group_channel__join")).await;
    assert_eq!(shed.status(), 503, "third request is shed");
    assert!(shed.headers().contains_key("retry-after"));
    gate.add_permits(2);
    for h in held {
        assert_eq!(h.await.expect("task"), 200);
    }
    assert_eq!(
        app.publisher.seen.lock().expect("lock").len(),
        2,
        "the shed request was never published"
    );
}

#[tokio::test]
async fn no_acknowledgement_within_the_deadline_is_503() {
    let gate = Arc::new(Semaphore::new(0));
    let app = start(
        Script::Hold(gate),
        &[("HOOKBRIDGE_PUBLISH_TIMEOUT", "300ms")],
    )
    .await;
    let started = std::time::Instant::now();
    let response = app.post(fixture("group_channel__join")).await;
    assert_eq!(response.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(3));
}
