//! `examples/notify` end to end: signed webhooks into the gateway, the example's binary as a
//! consumer group member against the real Kafka and registry, and what its adapters handed off:
//! who was notified, by which channel, once even when Sendbird sends a webhook twice; skips
//! logged with their reason; offsets committed only after a hand-off (a consumer killed while
//! its notifier fails re-delivers on restart, and a cleanly stopped one never repeats).
//!
//! The example's binary comes from `cargo build --examples` (`make test` runs it first; `cargo
//! test` builds an example with `test = true` only as a test harness): this test names the
//! command when the binary is missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::support::{Stack, TestApp, broker, fixture, spawn_app, unique_prefix};

const CONTACTS: &str = "variants/group_channel__message_send.member_contacts";

fn example_binary() -> PathBuf {
    // The suite runs from target/<profile>/deps; examples are built into target/<profile>/examples.
    let exe = std::env::current_exe().expect("test binary path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("examples").join("notify"))
        .expect("target dir");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --example notify` (make test does)",
        bin.display()
    );
    bin
}

/// The contacts fixture with its message text (and so its event id) changed, plus `edit`.
fn message(text: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(&fixture(CONTACTS)).expect("fixture JSON");
    body["payload"]["message"] = Value::from(text);
    edit(&mut body);
    serde_json::to_vec(&body).expect("JSON")
}

async fn send(app: &TestApp, body: &[u8]) {
    let answer = app.post_signed(body).await;
    assert_eq!(answer.status(), 200, "the gateway accepts the webhook");
}

struct Consumer {
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Consumer {
    async fn start(s: &Stack, topic: &str, group: &str, adapter: &[&str]) -> Consumer {
        let log = tempfile::NamedTempFile::new().expect("log file");
        let child = Command::new(example_binary())
            .args(["--topic", topic])
            .args(["--group-id", group, "--from-beginning"])
            // A killed member is evicted after 6 s rather than 45, so the next one takes over.
            .args(["--consumer-property", "session.timeout.ms=6000"])
            .args(adapter)
            .env("KAFKA_BOOTSTRAP_SERVERS", &s.bootstrap)
            .env("SCHEMA_REGISTRY_URL", &s.registry_url)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log.reopen().expect("log handle")))
            .kill_on_drop(true)
            .spawn()
            .expect("the notify example starts");
        Consumer { child, log }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    async fn terminate(mut self) -> String {
        let pid = self.child.id().expect("running").to_string();
        let kill = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .expect("kill");
        assert!(kill.success());
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("no exit within 20 s of SIGTERM:\n{}", self.logs()))
            .expect("wait");
        assert!(status.success(), "exit {status}:\n{}", self.logs());
        self.logs()
    }

    async fn kill(mut self) {
        self.child.kill().await.expect("SIGKILL");
    }
}

/// Who the contacts fixture's message notifies, and how.
fn expected() -> Vec<(String, String, String)> {
    [
        ("marc", "push", "marc"),
        ("lukasz", "sms", "+48601234567"),
        ("ana", "email", "ana@example.org"),
    ]
    .iter()
    .map(|(a, b, c)| ((*a).into(), (*b).into(), (*c).into()))
    .collect()
}

/// `(recipient, via, to)` of each notification for `event_id`, in hand-off order.
fn for_event(notes: &[Value], event_id: &str) -> Vec<(String, String, String)> {
    notes
        .iter()
        .filter(|n| n["event_id"] == event_id)
        .map(|n| {
            let s = |k: &str| n[k].as_str().expect("string field").to_owned();
            (s("recipient"), s("via"), s("to"))
        })
        .collect()
}

async fn wait_for(what: &str, logs: impl Fn() -> String, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; consumer log:\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn event_id(body: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(body))
}

/// A notification service that answers 503 until told otherwise, recording every POST.
#[derive(Default)]
struct Service {
    accepting: AtomicBool,
    /// (answered 200, the notification)
    seen: Mutex<Vec<(bool, Value)>>,
}

async fn receive(State(svc): State<Arc<Service>>, body: Bytes) -> StatusCode {
    let note: Value = serde_json::from_slice(&body).expect("the adapter POSTs JSON");
    let ok = svc.accepting.load(Ordering::SeqCst);
    svc.seen.lock().expect("lock").push((ok, note));
    if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

#[tokio::test]
async fn notify_example_notifies_each_member_once_and_commits_only_after_hand_off() {
    let broker = broker().await;
    let app = spawn_app(&broker, "notify").await;
    let topic = app.topic("group_channel");
    let group = unique_prefix("notify");

    // Everything goes to one channel, so one partition, read in order: the marker comes last.
    let first = fixture(CONTACTS);
    let silent = message("shh", |b| b["silent"] = Value::from(true));
    let memberless = message("nobody listed", |b| {
        b.as_object_mut().expect("object").remove("members");
    });
    let supergroup = message("too many to list", |b| {
        b.as_object_mut().expect("object").remove("members");
        b["channel"]["is_super"] = Value::from(true);
    });
    let join = fixture("group_channel__join");
    let marker = message("marker", |_| {});
    for body in [
        &first,
        &first,
        &silent,
        &memberless,
        &supergroup,
        &join,
        &marker,
    ] {
        send(&app, body).await;
    }

    let out = tempfile::NamedTempFile::new().expect("output file");
    let path = out.path().to_str().expect("utf-8 path").to_owned();
    let consumer = Consumer::start(broker.stack, &topic, &group, &["--jsonl", &path]).await;
    let read = || -> Vec<Value> {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        // Only whole lines: the consumer may be writing the last one.
        let whole = text.rsplit_once('\n').map_or("", |(done, _)| done);
        whole
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect()
    };
    let marker_id = event_id(&marker);
    wait_for(
        "the marker's notifications",
        || consumer.logs(),
        || for_event(&read(), &marker_id).len() == 3,
    )
    .await;
    let logs = consumer.terminate().await;

    let notes = read();
    let first_id = event_id(&first);
    assert_eq!(
        for_event(&notes, &first_id),
        expected(),
        "sent twice, notified once"
    );
    assert_eq!(for_event(&notes, &marker_id), expected());
    assert_eq!(notes.len(), 6, "nothing else was notified: {notes:#?}");
    let note = &notes[0];
    assert_eq!(note["idempotency_key"], format!("{first_id}:marc"));
    assert_eq!(note["sender"]["user_id"], "zoe");
    assert_eq!(note["message_id"], 7340032200_i64);
    assert_eq!(note["text"], "Zoë: Who is in for lunch?");
    for said in [
        "already handled (a retried webhook)",
        "silent message",
        "turn on include_members",
        "supergroup channel",
        "offline member without a phone number or e-mail address",
        "skipped=not_message_send=1 silent=1 supergroup=1 no_members=1 no_contact=2",
        "duplicates=1",
    ] {
        assert!(logs.contains(said), "the log says {said:?}:\n{logs}");
    }

    // A notifier that fails: the record is retried, not committed; a kill loses nothing.
    let service = Arc::new(Service::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/notify", listener.local_addr().expect("addr"));
    let router = Router::new()
        .route("/notify", post(receive))
        .with_state(service.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let third = message("third", |_| {});
    let third_id = event_id(&third);
    let failing = Consumer::start(broker.stack, &topic, &group, &["--webhook-url", &url]).await;
    send(&app, &third).await;
    wait_for(
        "two refused hand-offs",
        || failing.logs(),
        || service.seen.lock().expect("lock").len() >= 2,
    )
    .await;
    assert!(failing.logs().contains("hand-off failed; retrying"));
    failing.kill().await;

    service.accepting.store(true, Ordering::SeqCst);
    let restarted = Consumer::start(broker.stack, &topic, &group, &["--webhook-url", &url]).await;
    let delivered = || -> Vec<Value> {
        service
            .seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|(ok, _)| *ok)
            .map(|(_, n)| n.clone())
            .collect()
    };
    wait_for(
        "the third message's notifications after the restart",
        || restarted.logs(),
        || for_event(&delivered(), &third_id).len() == 3,
    )
    .await;
    let logs = restarted.terminate().await;
    let delivered = delivered();
    assert_eq!(for_event(&delivered, &third_id), expected());
    let by_event: BTreeMap<String, usize> = delivered.iter().fold(BTreeMap::new(), |mut m, n| {
        *m.entry(n["event_id"].as_str().unwrap_or("").to_owned())
            .or_default() += 1;
        m
    });
    assert_eq!(
        by_event.len(),
        1,
        "records committed before the kill were not handled again: {by_event:?}\n{logs}"
    );
    app.stop().await;
}
