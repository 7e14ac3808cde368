//! The one load generator of the benchmark harness (bench/README.md): posts pre-signed Sendbird
//! bodies to any contender over HTTP/1.1 keep-alive connections and prints one JSON object with
//! throughput, latency percentiles (HdrHistogram), errors, and the contender's CPU and memory.
//!
//! Two modes:
//! - `closed`: `--concurrency` connections, each sending its next request when the previous
//!   answer arrived (peak throughput). Latency runs from send to answer.
//! - `open`: a constant `--rate` spread over `--connections` connections, wrk2 style: request k
//!   of connection c is due at `start + (c + k * connections) / rate`, whether or not the
//!   contender kept up. Latency runs from the time a request was due when the connection was
//!   still busy with an earlier one (so a stall counts for every request it delayed: no
//!   coordinated omission), and from the actual send when the generator's own timer woke late.
//!
//! Only answers 200 enter the histogram; everything else is counted under `errors` by status or
//! failure, and in the open loop, requests still due when the duration is over (the contender
//! fell behind) are counted as `unsent` errors rather than sent late. `--watch-pid` names the contender's process: it and its descendants are measured.
//!
//! `cargo run --release --example bench-load -- --help`; bench/run.py drives it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[path = "../common.rs"]
mod common;

use common::{Body, BodySet};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Closed,
    Open,
}

#[derive(Parser, Debug)]
#[command(about = "Open- and closed-loop HTTP load with HdrHistogram latency")]
struct Args {
    /// Where to post, e.g. http://127.0.0.1:8080/webhooks/sendbird (plain HTTP/1.1).
    #[arg(long)]
    url: String,
    #[arg(long, value_enum, default_value = "closed")]
    mode: Mode,
    /// Closed loop: connections, each with one request in flight.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Open loop: requests per second over all connections.
    #[arg(long)]
    rate: Option<f64>,
    /// Open loop: connections the rate is spread over.
    #[arg(long, default_value_t = 256)]
    connections: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    #[arg(long, value_enum, default_value = "small")]
    body: BodySet,
    /// The contender's process id: it and its children are measured (CPU, RSS).
    #[arg(long)]
    watch_pid: Option<u32>,
    /// Threads of the generator's runtime (1, like wrk -t1, leaves the rest to the contender).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// A request without an answer after this many seconds counts as an error and its
    /// connection is replaced.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Echoed in the output.
    #[arg(long, default_value = "")]
    label: String,
}

struct Target {
    addr: SocketAddr,
    host: HeaderValue,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let addr = authority
            .parse::<SocketAddr>()
            .map_err(|e| format!("{authority}: not an IP address and port: {e}"))?;
        Ok(Target {
            addr,
            host: HeaderValue::from_str(authority).map_err(|e| e.to_string())?,
            path: path.to_owned(),
        })
    }
}

/// A body with its signature as a ready header value.
struct Prepared {
    bytes: Bytes,
    signature: HeaderValue,
}

/// What one connection's requests came to.
struct Tally {
    latency: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    /// Open loop: requests sent after their due time because the connection was still busy.
    late: u64,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latency: common::histogram(),
            errors: BTreeMap::new(),
            late: 0,
        }
    }

    fn error(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
    }

    fn merge(&mut self, other: Tally) {
        self.latency
            .add(&other.latency)
            .expect("histograms share their bounds");
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.late += other.late;
    }
}

async fn connect(target: &Target) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect(target.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("nodelay: {e}"))?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes; errors show on the sender.
        let _ = connection.await;
    });
    Ok(sender)
}

/// The answer's status, or what went wrong. The body is read to the end so the connection can
/// carry the next request.
async fn post(
    sender: &mut SendRequest<Full<Bytes>>,
    target: &Target,
    body: &Prepared,
) -> Result<u16, String> {
    sender.ready().await.map_err(|_| "connection closed")?;
    let request = Request::builder()
        .method(Method::POST)
        .uri(target.path.as_str())
        .header(HOST, target.host.clone())
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header("x-sendbird-signature", body.signature.clone())
        .body(Full::new(body.bytes.clone()))
        .map_err(|e| format!("request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("send: {}", short(&e)))?;
    let status = response.status().as_u16();
    response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("read: {}", short(&e)))?;
    Ok(status)
}

/// A bounded error label: the error's kind, not its changing details.
fn short(e: &hyper::Error) -> &'static str {
    if e.is_closed() || e.is_incomplete_message() {
        "closed"
    } else if e.is_timeout() {
        "timeout"
    } else if e.is_canceled() {
        "canceled"
    } else {
        "io"
    }
}

/// Opens `n` connections, at most 64 handshakes at a time so listen backlogs (511 in Node)
/// never overflow.
async fn connect_all(
    target: &Arc<Target>,
    n: usize,
) -> Result<Vec<SendRequest<Full<Bytes>>>, String> {
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let target = target.clone();
        let gate = gate.clone();
        tasks.spawn(async move {
            let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
            connect(&target).await
        });
    }
    let mut senders = Vec::with_capacity(n);
    while let Some(joined) = tasks.join_next().await {
        senders.push(joined.map_err(|e| e.to_string())??);
    }
    Ok(senders)
}

/// One connection's share of the load until `deadline`.
async fn worker(
    index: usize,
    mut sender: SendRequest<Full<Bytes>>,
    target: Arc<Target>,
    bodies: Arc<Vec<Prepared>>,
    schedule: Option<(Instant, Duration)>,
    deadline: Instant,
    timeout: Duration,
) -> Tally {
    let mut tally = Tally::new();
    // Workers start at different bodies so that concurrent requests hit different channels.
    let mut next = index.wrapping_mul(7919);
    let mut k: u32 = 0;
    loop {
        let from = match schedule {
            None => {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                now
            }
            Some((first, interval)) => {
                let due = first + interval * k;
                k += 1;
                if due >= deadline {
                    break;
                }
                let now = Instant::now();
                if now >= deadline {
                    // The run is over with requests still due: the contender fell behind the
                    // rate. They are counted, not sent (so a run never outlasts its duration
                    // by more than the requests in flight).
                    let left = (deadline - due).as_secs_f64() / interval.as_secs_f64();
                    *tally.errors.entry("unsent".into()).or_default() += left.ceil() as u64;
                    break;
                }
                if due > now {
                    tokio::time::sleep_until(due.into()).await;
                    // The timer may wake late by up to its resolution; that is the generator's
                    // delay, not the contender's.
                    Instant::now()
                } else {
                    tally.late += 1;
                    due
                }
            }
        };
        let body = &bodies[next % bodies.len()];
        next = next.wrapping_add(1);
        match tokio::time::timeout(timeout, post(&mut sender, &target, body)).await {
            Ok(Ok(200)) => common::record(&mut tally.latency, from.elapsed()),
            Ok(Ok(status)) => tally.error(format!("status_{status}")),
            Ok(Err(e)) => {
                tally.error(e);
                sender = match reconnect(&target, deadline).await {
                    Some(s) => s,
                    None => break,
                };
            }
            Err(_elapsed) => {
                tally.error("timeout");
                sender = match reconnect(&target, deadline).await {
                    Some(s) => s,
                    None => break,
                };
            }
        }
    }
    tally
}

/// A fresh connection after a failure, retried every 50 ms until the deadline.
async fn reconnect(target: &Target, deadline: Instant) -> Option<SendRequest<Full<Bytes>>> {
    while Instant::now() < deadline {
        if let Ok(sender) = connect(target).await {
            return Some(sender);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

async fn run(args: Args) -> Result<serde_json::Value, String> {
    let target = Arc::new(Target::parse(&args.url)?);
    let token = common::token_from_env()?;
    let bodies: Arc<Vec<Prepared>> = Arc::new(
        common::bodies(args.body, &token)
            .into_iter()
            .map(|b: Body| Prepared {
                signature: HeaderValue::from_str(&b.signature)
                    .expect("a hex signature is a valid header value"),
                bytes: b.bytes,
            })
            .collect(),
    );
    let duration = Duration::try_from_secs_f64(args.duration)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or("--duration must be a number of seconds above 0")?;
    let timeout =
        Duration::try_from_secs_f64(args.timeout).map_err(|e| format!("--timeout: {e}"))?;
    let (connections, interval) = match args.mode {
        Mode::Closed => (args.concurrency.max(1), None),
        Mode::Open => {
            let rate = args
                .rate
                .filter(|r| *r > 0.0)
                .ok_or("--mode open needs --rate above 0")?;
            let connections = args.connections.max(1);
            (
                connections,
                Some((rate, Duration::from_secs_f64(connections as f64 / rate))),
            )
        }
    };
    let senders = connect_all(&target, connections).await?;

    let watch = args.watch_pid.map(common::Watch::start);
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = tokio::task::JoinSet::new();
    for (index, sender) in senders.into_iter().enumerate() {
        let schedule = interval
            .map(|(rate, every)| (start + Duration::from_secs_f64(index as f64 / rate), every));
        workers.spawn(worker(
            index,
            sender,
            target.clone(),
            bodies.clone(),
            schedule,
            deadline,
            timeout,
        ));
    }
    let mut total = Tally::new();
    while let Some(joined) = workers.join_next().await {
        total.merge(joined.map_err(|e| format!("worker: {e}"))?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let processes = watch.map(common::Watch::finish);
    let ok = total.latency.len();
    let errors: u64 = total.errors.values().sum();
    Ok(serde_json::json!({
        "label": args.label,
        "mode": match args.mode { Mode::Closed => "closed", Mode::Open => "open" },
        "concurrency": connections,
        "target_rate": interval.map(|(rate, _)| rate),
        "body": args.body.name(),
        "body_bytes": args.body.body_bytes(),
        "duration_s": elapsed,
        "ok": ok,
        "errors": errors,
        "error_kinds": total.errors,
        "late_sends": total.late,
        "throughput": ok as f64 / elapsed,
        "latency": common::latency_json(&total.latency),
        "process": processes,
        "load_threads": args.threads,
    }))
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .expect("the tokio runtime starts on any supported platform");
    match runtime.block_on(run(args)) {
        Ok(result) => {
            println!("{result}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-load: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
