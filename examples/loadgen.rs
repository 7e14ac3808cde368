//! Benchmark: starts the `hookbridge` binary against the local stack (`make stack-up`), then
//! prints start-up time, single-webhook latency, throughput under concurrency, the latency of a
//! 2 MiB body and the gateway's memory. Figures only; nothing here asserts a target.
//!
//!     make bench            # or: cargo run --release --example loadgen
//!
//! Environment: HOOKBRIDGE_BIN (default target/release/hookbridge), KAFKA_BOOTSTRAP_SERVERS,
//! SCHEMA_REGISTRY_URL, BENCH_SEQUENTIAL (default 300), BENCH_CONCURRENCY (default 32),
//! BENCH_SECONDS (default 10).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hookbridge::providers::sendbird::ApiToken;

const APP_ID: &str = "A1B2C3D4-0000-4000-8000-000000000001";
const TOKEN: &str = "bench-token";

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn free_addr() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.to_string())
        .expect("free port")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn summary(name: &str, mut lat: Vec<Duration>, wall: Duration) {
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<28} n={:<6} {:>8.1} req/s  p50={:>7.2}ms  p90={:>7.2}ms  p99={:>7.2}ms  max={:>7.2}ms",
        lat.len(),
        lat.len() as f64 / wall.as_secs_f64(),
        ms(percentile(&lat, 0.50)),
        ms(percentile(&lat, 0.90)),
        ms(percentile(&lat, 0.99)),
        ms(*lat.last().unwrap_or(&Duration::ZERO)),
    );
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn body(i: u64, channel: u64) -> Vec<u8> {
    format!(
        r#"{{"category":"group_channel:message_send","app_id":"{APP_ID}","sender":{{"user_id":"u{i}","nickname":"Zo\u00eb"}},"type":"MESG","payload":{{"message_id":{i},"message":"bench message {i} https:\/\/example.com","created_at":1718000700123}},"channel":{{"channel_url":"sendbird_group_channel_{channel}","name":"bench"}}}}"#
    )
    .into_bytes()
}

#[tokio::main]
async fn main() {
    let bin = env_or("HOOKBRIDGE_BIN", "target/release/hookbridge");
    let http = free_addr();
    let admin = free_addr();
    let prefix = format!("bench{}.", std::process::id());
    let started = Instant::now();
    let mut child = Command::new(&bin)
        .arg("serve")
        .env(
            "HOOKBRIDGE_KAFKA_BROKERS",
            env_or("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        )
        .env(
            "HOOKBRIDGE_SCHEMA_REGISTRY_URL",
            env_or(
                "SCHEMA_REGISTRY_URL",
                "http://127.0.0.1:8081/apis/ccompat/v7",
            ),
        )
        .env("HOOKBRIDGE_SENDBIRD_APP_ID", APP_ID)
        .env("HOOKBRIDGE_SENDBIRD_API_TOKENS", TOKEN)
        .env("HOOKBRIDGE_HTTP_ADDR", &http)
        .env("HOOKBRIDGE_ADMIN_ADDR", &admin)
        .env("HOOKBRIDGE_TOPIC_PREFIX", &prefix)
        .env("HOOKBRIDGE_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e} (build with cargo build --release)"));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("client");
    let readyz = format!("http://{admin}/readyz");
    loop {
        if client
            .get(&readyz)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("gateway not ready after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("hookbridge bench against {bin}");
    println!(
        "{:<28} {:.0} ms (process start to /readyz 200, includes topic creation and schema registration)",
        "start-up",
        started.elapsed().as_secs_f64() * 1000.0
    );
    let (rss, _) = rss_kib(child.id());
    println!("{:<28} {} KiB RSS", "memory idle", rss);

    let token = Arc::new(ApiToken::parse(TOKEN).expect("token"));
    let url = Arc::new(format!("http://{http}/webhooks/sendbird"));
    let post = move |client: reqwest::Client, body: Vec<u8>| {
        let sig = token.sign(&body);
        let url = url.clone();
        async move {
            let t = Instant::now();
            let r = client
                .post(url.as_str())
                .header("x-sendbird-signature", sig)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("request");
            assert_eq!(r.status(), 200, "gateway refused a benchmark request");
            t.elapsed()
        }
    };

    // Warm-up: connections, producer id, leaders.
    for i in 0..20 {
        post(client.clone(), body(i, i % 8)).await;
    }

    let n: u64 = env_or("BENCH_SEQUENTIAL", "300").parse().expect("number");
    let t = Instant::now();
    let mut lat = Vec::new();
    for i in 0..n {
        lat.push(post(client.clone(), body(1000 + i, i % 64)).await);
    }
    summary("sequential (1 in flight)", lat, t.elapsed());

    let concurrency: u64 = env_or("BENCH_CONCURRENCY", "32").parse().expect("number");
    let seconds: u64 = env_or("BENCH_SECONDS", "10").parse().expect("number");
    let stop = Arc::new(AtomicBool::new(false));
    let t = Instant::now();
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let stop = stop.clone();
        let client = client.clone();
        let post = post.clone();
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                lat.push(
                    post(
                        client.clone(),
                        body(1_000_000 * (w + 1) + i, (w * 7 + i) % 1000),
                    )
                    .await,
                );
                i += 1;
            }
            lat
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    for w in workers {
        lat.extend(w.await.expect("worker"));
    }
    summary(
        &format!("concurrent ({concurrency} in flight)"),
        lat,
        t.elapsed(),
    );
    let (rss, hwm) = rss_kib(child.id());
    println!(
        "{:<28} {} KiB RSS, peak {} KiB",
        "memory after load", rss, hwm
    );

    let mut big = format!(
        r#"{{"category":"group_channel:message_send","app_id":"{APP_ID}","channel":{{"channel_url":"big"}},"payload":{{"message":""#
    );
    while big.len() < 2 * 1024 * 1024 - 4 {
        big.push_str("lorem ipsum dolor sit amet ");
    }
    big.truncate(2 * 1024 * 1024 - 4);
    big.push_str(r#""}}"#);
    let mut lat = Vec::new();
    let t = Instant::now();
    for _ in 0..10 {
        lat.push(post(client.clone(), big.clone().into_bytes()).await);
    }
    summary("2 MiB body (sequential)", lat, t.elapsed());
    let (rss, hwm) = rss_kib(child.id());
    println!(
        "{:<28} {} KiB RSS, peak {} KiB",
        "memory after 2 MiB bodies", rss, hwm
    );

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let t = Instant::now();
    let status = child.wait().expect("wait");
    println!(
        "{:<28} {:.0} ms, exit {:?}",
        "shutdown (SIGTERM to exit)",
        t.elapsed().as_secs_f64() * 1000.0,
        status.code()
    );
}
