//! SIGTERM on the real binary: readiness goes 503, the listener closes, the in-flight request
//! finishes with 200, the record is in Kafka, the process exits 0.

use std::process::{Command, Stdio};
use std::time::Duration;

use rdkafka::message::Message;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

async fn get_status(url: &str) -> u16 {
    match reqwest::get(url).await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let broker = broker().await;
    let prefix = unique_prefix("sigterm");
    let mut env = base_env(&broker, &prefix).await;
    env.insert("HOOKBRIDGE_LOG_FORMAT".into(), "text".into());
    let mut serve = Serve::start(env).await;
    let (http, readyz) = (serve.http.clone(), serve.readyz());

    let healthcheck = || {
        Command::new(env!("CARGO_BIN_EXE_hookbridge"))
            .args(["healthcheck", "--url", &readyz])
            .stderr(Stdio::null())
            .status()
            .expect("run healthcheck")
            .code()
    };
    assert_eq!(healthcheck(), Some(0), "healthcheck passes while ready");

    // A request whose body is still arriving when SIGTERM comes.
    let body = fixture("group_channel__message_send");
    let (first, second) = body.split_at(body.len() / 2);
    let mut stream = TcpStream::connect(&http).await.expect("connect");
    let head = format!(
        "POST /webhooks/sendbird HTTP/1.1\r\nhost: {http}\r\ncontent-type: application/json\r\n\
         x-sendbird-signature: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        sign(&body),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(first).await.expect("write first half");
    stream.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(300)).await;

    serve.terminate();
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(
        get_status(&readyz).await,
        503,
        "readiness fails while draining"
    );
    assert!(
        TcpStream::connect(&http).await.is_err(),
        "the listener stopped accepting new connections"
    );

    stream.write_all(second).await.expect("write second half");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("answer before the timeout")
        .expect("read answer");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "in-flight request finished: {answer}\n{}",
        serve.logs()
    );

    let status = serve
        .exit_within(Duration::from_secs(15))
        .await
        .unwrap_or_else(|| panic!("did not exit within 15 s of SIGTERM:\n{}", serve.logs()));
    assert_eq!(status.code(), Some(0), "exit code:\n{}", serve.logs());
    assert!(
        serve.logs().contains("producer flushed"),
        "{}",
        serve.logs()
    );

    let records = consume(
        &[format!("{prefix}group_channel")],
        1,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(records.len(), 1);
    let id = hex::encode(Sha256::digest(&body));
    assert_eq!(
        header(&records[0], "hookbridge-event-id"),
        Some(id.as_bytes())
    );
    assert!(records[0].payload().is_some());
}
