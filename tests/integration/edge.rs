//! The edge bounds, in-process with a scripted publisher and raw sockets: header and idle
//! timeouts, the connection cap, the body rate, the byte budget, the per-client cap, and what
//! odd but authentic bodies become.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hookbridge::sink::kafka::PublishError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::inprocess::{InProcess, Script, start};
use crate::support::{APP_ID, fixture, sign};

async fn connect(app: &InProcess) -> TcpStream {
    TcpStream::connect(app.http).await.expect("connect")
}

/// Reads until the server closes or `within` passes; `None` if it was still open then.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    match tokio::time::timeout(within, stream.read_to_end(&mut got)).await {
        Ok(_) => Some(got),
        Err(_) => None,
    }
}

fn head(path: &str, body: &[u8], extra: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\nx-sendbird-signature: {}\r\ncontent-length: {}\r\n{extra}\r\n",
        sign(body),
        body.len()
    )
    .into_bytes()
}

#[tokio::test]
async fn partial_headers_are_closed_after_the_header_read_timeout() {
    let _broker = crate::support::broker().await;
    let app = start(
        Script::Fail(PublishError::Timeout),
        &[("HOOKBRIDGE_HEADER_READ_TIMEOUT", "300ms")],
    )
    .await;
    let started = Instant::now();
    let mut stalled = Vec::new();
    for _ in 0..50 {
        let mut s = connect(&app).await;
        s.write_all(b"POST /webhooks/sendbird HTTP/1.1\r\nHost: x\r\nX-Pad: ")
            .await
            .expect("partial head");
        stalled.push(s);
    }
    for s in &mut stalled {
        let answer = read_until_closed(s, Duration::from_secs(5)).await;
        assert!(answer.is_some(), "a stalled connection was still open");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // The listener still serves.
    assert_eq!(app.post(fixture("group_channel__join")).await.status(), 503);
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_after_the_idle_timeout() {
    let _broker = crate::support::broker().await;
    let app = start(
        Script::Hold(Arc::new(Semaphore::new(100))),
        &[
            ("HOOKBRIDGE_IDLE_TIMEOUT", "400ms"),
            ("HOOKBRIDGE_HEADER_READ_TIMEOUT", "10s"),
        ],
    )
    .await;
    let body = fixture("group_channel__join");
    let mut s = connect(&app).await;
    s.write_all(&[head("/webhooks/sendbird", &body, ""), body.clone()].concat())
        .await
        .expect("request");
    let mut first = [0u8; 12];
    s.read_exact(&mut first).await.expect("answer");
    assert_eq!(&first, b"HTTP/1.1 200");
    // Still open shortly after the answer (keep-alive), closed once idle for 400 ms.
    let started = Instant::now();
    let rest = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(rest.is_some(), "idle connection was never closed");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "closed before the idle timeout: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn connections_beyond_the_cap_get_503_and_are_closed() {
    let _broker = crate::support::broker().await;
    let app = start(
        Script::Hold(Arc::new(Semaphore::new(100))),
        &[("HOOKBRIDGE_MAX_CONNECTIONS", "2")],
    )
    .await;
    let _a = connect(&app).await;
    let _b = connect(&app).await;
    // Give the listener a moment to accept both.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = connect(&app).await;
    let answer = read_until_closed(&mut c, Duration::from_secs(2))
        .await
        .expect("closed at once");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("retry-after"), "{text}");
    drop((_a, _b));
    // Places come back when connections close.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(app.post(fixture("group_channel__join")).await.status(), 200);
}

#[tokio::test]
async fn a_stalled_body_gets_408_long_before_the_deadline() {
    let _broker = crate::support::broker().await;
    let app = start(
        Script::Hold(Arc::new(Semaphore::new(100))),
        &[
            ("HOOKBRIDGE_BODY_MIN_RATE", "1000"),
            ("HOOKBRIDGE_BODY_RATE_GRACE", "300ms"),
        ],
    )
    .await;
    let body = vec![b' '; 10_000];
    let mut s = connect(&app).await;
    s.write_all(&head("/webhooks/sendbird", &body, "connection: close\r\n"))
        .await
        .expect("head");
    s.write_all(&body[..10]).await.expect("ten bytes");
    let started = Instant::now();
    let answer = read_until_closed(&mut s, Duration::from_secs(3))
        .await
        .expect("answered before the 4 s deadline");
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(app.publisher.seen.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn declared_lengths_hold_nothing_and_arriving_bytes_fill_only_the_body_share() {
    let _broker = crate::support::broker().await;
    // 64 KiB bodies make records of at most 320 KiB; of a 420000-byte budget, bodies may hold
    // the 92320 bytes beside that: one 64 KiB step, not two.
    let app = start(
        Script::Hold(Arc::new(Semaphore::new(100))),
        &[
            ("HOOKBRIDGE_MAX_BODY_BYTES", "65536"),
            ("HOOKBRIDGE_MAX_BUFFERED_BYTES", "420000"),
            ("HOOKBRIDGE_BODY_MIN_RATE", "0"),
            ("HOOKBRIDGE_BUFFER_WAIT", "200ms"),
        ],
    )
    .await;
    let big = vec![b' '; 65536];
    // Fifty uploads declaring 64 KiB and sending nothing: they hold no bytes.
    let mut silent = Vec::new();
    for _ in 0..50 {
        let mut s = connect(&app).await;
        s.write_all(&head("/webhooks/sendbird", &big, ""))
            .await
            .expect("head");
        silent.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.post(fixture("group_channel__join")).await.status(), 200);
    // One upload that sends bytes takes a 64 KiB step of the body share...
    let mut first = connect(&app).await;
    first
        .write_all(&[head("/webhooks/sendbird", &big, ""), big[..100].to_vec()].concat())
        .await
        .expect("some body");
    tokio::time::sleep(Duration::from_millis(200)).await;
    // ...so a second one finds no room and gets 503 at once, with Retry-After.
    let mut second = connect(&app).await;
    second
        .write_all(
            &[
                head("/webhooks/sendbird", &big, "connection: close\r\n"),
                big[..100].to_vec(),
            ]
            .concat(),
        )
        .await
        .expect("some body");
    let answer = read_until_closed(&mut second, Duration::from_secs(3))
        .await
        .expect("answered");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("retry-after"), "{text}");
    // A small webhook still fits beside it.
    assert_eq!(app.post(fixture("group_channel__join")).await.status(), 200);
    drop((silent, first));
}

#[tokio::test]
async fn chunked_bodies_over_the_limit_get_413() {
    let _broker = crate::support::broker().await;
    let app = start(
        Script::Hold(Arc::new(Semaphore::new(100))),
        &[("HOOKBRIDGE_MAX_BODY_BYTES", "2048")],
    )
    .await;
    let mut s = connect(&app).await;
    let sig = sign(b"whatever");
    let head = format!(
        "POST /webhooks/sendbird HTTP/1.1\r\nhost: x\r\nx-sendbird-signature: {sig}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("head");
    for _ in 0..3 {
        let chunk = vec![b'a'; 1000];
        s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .expect("size");
        s.write_all(&chunk).await.expect("chunk");
        s.write_all(b"\r\n").await.expect("crlf");
    }
    let answer = read_until_closed(&mut s, Duration::from_secs(3))
        .await
        .expect("answered");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 413"));
}

#[tokio::test]
async fn app_ids_match_in_any_case_and_records_carry_the_configured_form() {
    let _broker = crate::support::broker().await;
    let app = start(Script::Hold(Arc::new(Semaphore::new(100))), &[]).await;
    let body = fixture("group_channel__join");
    let url = format!("{}/{}", app.base, APP_ID.to_ascii_lowercase());
    let response = app
        .client
        .post(&url)
        .header("x-sendbird-signature", sign(&body).to_ascii_uppercase())
        .body(body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let seen = app.publisher.seen.lock().expect("lock");
    let app_header = seen[0]
        .headers
        .iter()
        .find(|(k, _)| *k == "hookbridge-app-id")
        .map(|(_, v)| v.clone());
    assert_eq!(app_header.as_deref(), Some(APP_ID.as_bytes()));
}

#[tokio::test]
async fn an_authentic_body_naming_another_app_is_dead_lettered_not_lost() {
    let _broker = crate::support::broker().await;
    let app = start(Script::Hold(Arc::new(Semaphore::new(100))), &[]).await;
    let body = br#"{"category":"group_channel:join","app_id":"SOME-OTHER-APP"}"#.to_vec();
    let response = app.post(body.clone()).await;
    assert_eq!(response.status(), 200);
    let seen = app.publisher.seen.lock().expect("lock");
    assert_eq!(seen[0].topic, "sendbird.dlq");
    assert_eq!(&seen[0].value[..], &body[..]);
    let reason = seen[0]
        .headers
        .iter()
        .find(|(k, _)| *k == "hookbridge-dlq-reason")
        .map(|(_, v)| v.clone());
    assert_eq!(reason.as_deref(), Some(&b"app_id_mismatch"[..]));
}

#[tokio::test]
async fn the_per_client_cap_sheds_a_clients_extra_requests() {
    let _broker = crate::support::broker().await;
    let gate = Arc::new(Semaphore::new(0));
    let app = Arc::new(
        start(
            Script::Hold(gate.clone()),
            &[("HOOKBRIDGE_MAX_REQUESTS_PER_CLIENT", "1")],
        )
        .await,
    );
    let first = {
        let app = app.clone();
        tokio::spawn(async move { app.post(fixture("group_channel__join")).await.status() })
    };
    for _ in 0..100 {
        if !app.publisher.seen.lock().expect("lock").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.post(fixture("group_channel__join")).await.status(), 503);
    gate.add_permits(10);
    assert_eq!(first.await.expect("task"), 200);
    assert_eq!(app.post(fixture("group_channel__join")).await.status(), 200);
}

#[tokio::test]
async fn a_two_mib_body_of_empty_members_becomes_a_small_record_quickly() {
    let _broker = crate::support::broker().await;
    let app = start(Script::Hold(Arc::new(Semaphore::new(100))), &[]).await;
    let prefix =
        br#"{"category":"group_channel:message_send","channel":{"channel_url":"c1"},"members":["#;
    let mut body = prefix.to_vec();
    while body.len() < 2 * 1024 * 1024 - 8 {
        body.extend_from_slice(b"{},");
    }
    body.extend_from_slice(b"{}]}");
    assert!(body.len() <= 2 * 1024 * 1024);
    let started = Instant::now();
    let response = app.post(body.clone()).await;
    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let seen = app.publisher.seen.lock().expect("lock");
    assert_eq!(seen[0].topic, "sendbird.group_channel");
    // The raw body plus a small typed view: the member list was left out, not expanded.
    assert!(
        seen[0].value.len() < body.len() + 4096,
        "{}",
        seen[0].value.len()
    );
}

#[tokio::test]
async fn shutdown_does_not_wait_for_half_sent_heads() {
    let _broker = crate::support::broker().await;
    let app = start(
        Script::Hold(Arc::new(Semaphore::new(100))),
        &[("HOOKBRIDGE_HEADER_READ_TIMEOUT", "30s")],
    )
    .await;
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut s = connect(&app).await;
        s.write_all(b"POST /webhooks/sendbird HTTP/1.1\r\nHost: x\r\nX-Pad: ")
            .await
            .expect("partial head");
        stalled.push(s);
    }
    // An idle keep-alive connection too.
    let body = fixture("group_channel__join");
    let mut idle = connect(&app).await;
    idle.write_all(&[head("/webhooks/sendbird", &body, ""), body.clone()].concat())
        .await
        .expect("request");
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await.expect("answer");
    let started = Instant::now();
    let _ = app.stop.send(());
    tokio::time::timeout(Duration::from_secs(5), app.stopped)
        .await
        .expect("stopped within 5 s, not after the 30 s header timeout")
        .expect("task")
        .expect("clean stop");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
