//! SIGTERM on the real binary: readiness goes 503, the listener closes, the in-flight request
//! finishes with 200, the record is in Kafka, the process exits 0.

use std::process::{Command, Stdio};
use std::time::Duration;

use rdkafka::message::Message;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").to_string()
}

async fn get_status(url: &str) -> u16 {
    match reqwest::get(url).await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let _shared = BROKER_LOCK.read().await;
    let prefix = unique_prefix("sigterm");
    let mut env = base_env(&prefix).await;
    let http = free_addr();
    let admin = free_addr();
    env.insert("HOOKBRIDGE_HTTP_ADDR".into(), http.clone());
    env.insert("HOOKBRIDGE_ADMIN_ADDR".into(), admin.clone());
    env.insert("HOOKBRIDGE_LOG_FORMAT".into(), "text".into());
    let log_path = std::env::temp_dir().join(format!("{}log", prefix));
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookbridge"))
        .arg("serve")
        .env_clear()
        .envs(&env)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start hookbridge serve");
    let logs = || std::fs::read_to_string(&log_path).unwrap_or_default();

    let readyz = format!("http://{admin}/readyz");
    let mut ready = false;
    for _ in 0..120 {
        if get_status(&readyz).await == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(ready, "gateway never became ready:\n{}", logs());

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

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
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
        logs()
    );

    let mut status = None;
    for _ in 0..60 {
        if let Some(s) = child.try_wait().expect("wait") {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("did not exit within 15 s of SIGTERM:\n{}", logs())
    });
    assert_eq!(status.code(), Some(0), "exit code:\n{}", logs());
    assert!(logs().contains("producer flushed"), "{}", logs());

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
