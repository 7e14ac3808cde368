//! Handler behaviour that needs a Kafka that misbehaves on cue: these run the real HTTP stack
//! in-process with a scripted [`Publisher`]. Everything about real delivery is tested against
//! the real broker in the other modules.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookbridge::config::Config;
use hookbridge::providers::PROVIDERS;
use hookbridge::sink::kafka::{
    BoxFuture, BrokerHealth, Delivered, OutRecord, PublishError, Publisher,
};
use hookbridge::startup::Application;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::support::{APP_ID, TOKEN, fixture, sign};

pub(crate) enum Script {
    Fail(PublishError),
    /// Waits for a permit on the semaphore before acknowledging.
    Hold(Arc<Semaphore>),
}

pub(crate) struct ScriptedPublisher {
    script: Script,
    pub(crate) seen: Mutex<Vec<OutRecord>>,
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

pub(crate) struct InProcess {
    pub(crate) http: std::net::SocketAddr,
    pub(crate) base: String,
    pub(crate) publisher: Arc<ScriptedPublisher>,
    pub(crate) client: reqwest::Client,
    pub(crate) stop: tokio::sync::oneshot::Sender<()>,
    pub(crate) stopped: tokio::task::JoinHandle<anyhow::Result<()>>,
}

pub(crate) async fn start(script: Script, extra: &[(&str, &str)]) -> InProcess {
    start_with(
        script,
        &[
            [
                ("HOOKBRIDGE_SENDBIRD_APP_ID", APP_ID),
                ("HOOKBRIDGE_SENDBIRD_API_TOKENS", TOKEN),
            ]
            .as_slice(),
            extra,
        ]
        .concat(),
        None,
    )
    .await
}

pub(crate) async fn start_with(
    script: Script,
    extra: &[(&str, &str)],
    toml: Option<&str>,
) -> InProcess {
    let mut env: BTreeMap<String, String> = [
        ("HOOKBRIDGE_KAFKA_BROKERS", "unused:9092"),
        ("HOOKBRIDGE_SCHEMA_REGISTRY_URL", "http://unused"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    let file = toml.map(|text| {
        let f = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(f.path(), text).expect("write config");
        f
    });
    let config = Config::from_sources(file.as_ref().map(|f| f.path()), &env, &PROVIDERS)
        .expect("valid config");
    let ids: HashMap<_, _> = PROVIDERS
        .event_topics(&config.sources)
        .expect("topics")
        .into_iter()
        .map(|(t, _)| (t, 1))
        .collect();
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
        &ids,
        health,
    )
    .expect("assemble");
    let http = app.http_addr();
    let base = format!("http://{http}/webhooks/sendbird");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let stopped = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    InProcess {
        http,
        base,
        publisher,
        client: reqwest::Client::new(),
        stop: tx,
        stopped,
    }
}

impl InProcess {
    pub(crate) async fn post(&self, body: Vec<u8>) -> reqwest::Response {
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
    let _broker = crate::support::broker().await;
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
    let _broker = crate::support::broker().await;
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
    let _broker = crate::support::broker().await;
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
    let _broker = crate::support::broker().await;
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

/// Sends the head and part of the body, then `rest` after `pause`; returns the status line.
async fn trickle(app: &InProcess, signature: Option<&str>, body: &[u8], pause: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.http)
        .await
        .expect("connect");
    let sig = signature.map_or(String::new(), |s| format!("x-sendbird-signature: {s}\r\n"));
    let head = format!(
        "POST /webhooks/sendbird HTTP/1.1\r\nhost: x\r\n{sig}content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream
        .write_all(&body[..body.len() / 2])
        .await
        .expect("first half");
    let mut answer = Vec::new();
    // The gateway may answer before the rest is sent; read what comes within `pause`.
    let early = tokio::time::timeout(pause, stream.read_to_end(&mut answer)).await;
    if early.is_err() {
        let _ = stream.write_all(&body[body.len() / 2..]).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    }
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn a_body_that_trickles_in_past_the_deadline_gets_408_and_is_not_published() {
    let _broker = crate::support::broker().await;
    let gate = Arc::new(Semaphore::new(100));
    let app = start(
        Script::Hold(gate),
        &[("HOOKBRIDGE_PUBLISH_TIMEOUT", "500ms")],
    )
    .await;
    let body = fixture("group_channel__join");
    let status = trickle(&app, Some(&sign(&body)), &body, Duration::from_secs(2)).await;
    assert!(status.starts_with("HTTP/1.1 408"), "{status}");
    assert!(app.publisher.seen.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn a_request_without_a_usable_signature_is_refused_before_its_body_is_read() {
    let _broker = crate::support::broker().await;
    let app = start(Script::Fail(PublishError::Timeout), &[]).await;
    let body = fixture("group_channel__join");
    for signature in [None, Some("not-a-signature")] {
        let started = std::time::Instant::now();
        let status = trickle(&app, signature, &body, Duration::from_secs(3)).await;
        assert!(
            status.starts_with("HTTP/1.1 401"),
            "{signature:?}: {status}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "answered without waiting for the body"
        );
    }
    assert!(app.publisher.seen.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn with_several_apps_each_route_takes_only_its_own_tokens() {
    let _broker = crate::support::broker().await;
    let gate = Arc::new(Semaphore::new(100));
    let toml = r#"
        [[apps]]
        app_id = "APP-A"
        api_tokens = ["token-a"]
        [[apps]]
        app_id = "APP-B"
        api_tokens = ["token-b-old", "token-b-new"]
    "#;
    let app = start_with(Script::Hold(gate), &[], Some(toml)).await;
    let body = br#"{"category":"group_channel:join","channel":{"channel_url":"c"}}"#.to_vec();
    let signed = |token: &str| {
        hookbridge::providers::sendbird::ApiToken::parse(token)
            .expect("token")
            .sign(&body)
    };
    let post = |path: &str, sig: String| {
        app.client
            .post(format!("{}{path}", app.base))
            .header("x-sendbird-signature", sig)
            .body(body.clone())
            .send()
    };
    assert_eq!(
        post("/APP-A", signed("token-a"))
            .await
            .expect("req")
            .status(),
        200
    );
    assert_eq!(
        post("/APP-B", signed("token-b-old"))
            .await
            .expect("req")
            .status(),
        200
    );
    assert_eq!(
        post("/APP-B", signed("token-b-new"))
            .await
            .expect("req")
            .status(),
        200
    );
    assert_eq!(
        post("/APP-B", signed("token-a"))
            .await
            .expect("req")
            .status(),
        401
    );
    assert_eq!(
        post("/APP-A", signed("token-b-new"))
            .await
            .expect("req")
            .status(),
        401
    );
    // Without an app id in the path the route exists only for a single configured app.
    assert_eq!(
        post("", signed("token-a")).await.expect("req").status(),
        404
    );
    assert_eq!(app.publisher.seen.lock().expect("lock").len(), 3);
}

#[test]
fn sign_prints_the_signature_a_sender_would_send_and_refuses_token_lists() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("body.json");
    let body = fixture("group_channel__message_send");
    std::fs::write(&file, &body).expect("write body");
    let run = |token: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hookbridge"))
            .args(["sign", "--token-env", "HB_TEST_TOKEN"])
            .arg(&file)
            .env("HB_TEST_TOKEN", token)
            .output()
            .expect("run sign")
    };
    let out = run(TOKEN);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), sign(&body));
    let out = run("one,two");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("comma") && !stderr.contains("one,two"),
        "{stderr}"
    );
}

#[tokio::test]
async fn send_posts_a_signed_body_and_exits_by_the_answer() {
    let _broker = crate::support::broker().await;
    let app = start(Script::Hold(Arc::new(Semaphore::new(100))), &[]).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("body.json");
    let body = fixture("group_channel__message_send");
    std::fs::write(&file, &body).expect("write body");
    let send = |token: &'static str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_hookbridge"))
            .args(["send", "--url", &app.base, "--token-env", "HB_TEST_TOKEN"])
            .arg(&file)
            .env("HB_TEST_TOKEN", token)
            .output()
    };
    let out = send(TOKEN).await.expect("run send");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.starts_with("200 ") && stdout.contains("accepted"),
        "{stdout}"
    );
    let seen = app.publisher.seen.lock().expect("lock").len();
    assert_eq!(seen, 1, "the body was published once");
    let out = send("not-the-token").await.expect("run send");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("401 "));
    assert_eq!(app.publisher.seen.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn a_rotated_tokens_file_takes_effect_without_a_restart() {
    let _broker = crate::support::broker().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "old-token\n").expect("write tokens");
    let toml = format!(
        "[[apps]]\napp_id = \"APP-R\"\napi_tokens_file = \"{}\"\n",
        tokens.display()
    );
    let gate = Arc::new(Semaphore::new(100));
    let app = start_with(
        Script::Hold(gate),
        &[("HOOKBRIDGE_TOKENS_RELOAD_INTERVAL", "100ms")],
        Some(&toml),
    )
    .await;
    let body = br#"{"category":"group_channel:join","channel":{"channel_url":"c"}}"#.to_vec();
    let post = |token: &'static str| {
        let sig = hookbridge::providers::sendbird::ApiToken::parse(token)
            .expect("token")
            .sign(&body);
        app.client
            .post(&app.base)
            .header("x-sendbird-signature", sig)
            .body(body.clone())
            .send()
    };
    // Polls until `token` gets `status` (reloads take two reads one interval apart).
    let becomes = |token: &'static str, status: u16| {
        let post = &post;
        async move {
            for _ in 0..30 {
                if post(token).await.expect("req").status() == status {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        }
    };
    assert_eq!(post("old-token").await.expect("req").status(), 200);
    assert_eq!(post("new-token").await.expect("req").status(), 401);

    // Kubernetes updates a mounted Secret in place; the new token is accepted soon after.
    std::fs::write(&tokens, "old-token\nnew-token\n").expect("rotate");
    assert!(
        becomes("new-token", 200).await,
        "new token accepted without a restart"
    );
    assert_eq!(post("old-token").await.expect("req").status(), 200);

    // A file caught half-written (empty, or holding junk) keeps the current tokens.
    std::fs::write(&tokens, "").expect("truncate");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(post("new-token").await.expect("req").status(), 200);
    std::fs::write(&tokens, "new-token\n").expect("retire old");
    assert!(
        becomes("old-token", 401).await,
        "old token refused once removed from the file"
    );
}
