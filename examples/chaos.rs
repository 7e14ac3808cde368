//! Chaos suite (issue 6): every webhook answered 200 survives broker and gateway failure.
//!
//! Starts the `hookbridge` binary against the three-node cluster of `scripts/cluster.sh`
//! (replication factor 3, `min.insync.replicas` 2), applies signed load from concurrent
//! clients (every body unique; a failed delivery is retried as Sendbird does, up to three
//! attempts in all) and meanwhile, one step at a time:
//! - kills (SIGKILL) the leader of the busiest partition of the `group_channel` topic (among
//!   the partitions led by the nodes killed least often so far, so that every node, the active
//!   KRaft controller included, gets its turn), restarts it a few seconds later and waits until
//!   it is registered again and every partition is fully replicated;
//! - kills the gateway (SIGKILL) and restarts it;
//! - stops the gateway with SIGTERM (it must drain and exit 0) and restarts it.
//!
//! Then it stops the load, reads every topic of the run's prefix (event topics and the DLQ)
//! from the beginning up to the high watermarks and reconciles by event id: every event
//! answered 200 must be there. Lost events fail the run (exit 1); duplicates are counted only.
//!
//!     make chaos          # full: 10 broker kills (also starts and stops the cluster)
//!     make chaos-short    # 3 broker kills
//!     cargo run --example chaos -- --broker-kills 3     # against a running scripts/cluster.sh
//!
//! Options (flag, else environment variable, else default):
//!   --broker-kills N        CHAOS_BROKER_KILLS        10
//!   --gateway-kills N       CHAOS_GATEWAY_KILLS       1    (SIGKILL + restart)
//!   --gateway-terms N       CHAOS_GATEWAY_TERMS       1    (SIGTERM, exit 0, restart)
//!   --clients N             CHAOS_CLIENTS             16   concurrent senders
//!   --channels N            CHAOS_CHANNELS            64   distinct channel URLs
//!   --attempts N            CHAOS_ATTEMPTS            3    tries per event (Sendbird: three)
//!   --restart-delay-secs S  CHAOS_RESTART_DELAY_SECS  3    a killed broker stays down this long
//!   --min-load-secs S       CHAOS_MIN_LOAD_SECS       0    keep the load up at least this long
//!   --deadline-secs S       CHAOS_DEADLINE_SECS       900  bound on the whole run
//! Environment: HOOKBRIDGE_BIN [target/debug/hookbridge], CHAOS_BOOTSTRAP [from
//! `scripts/cluster.sh bootstrap`], SCHEMA_REGISTRY_URL [http://127.0.0.1:8081/apis/ccompat/v7],
//! CLUSTER_DIR and CLUSTER_BROKER_PORT_BASE as for scripts/cluster.sh.
//! Files of a run: target/chaos/<prefix>/ (hookbridge.toml, gateway.log, attempts.csv with
//! every request, records.csv with every record read back).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use hmac::{Hmac, Mac};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sha2::{Digest, Sha256};
use tokio::process::{Child, Command};

const APP_ID: &str = "A1B2C3D4-0000-4000-8000-000000000001";
const EVENT_ID_HEADER: &str = "hookbridge-event-id";
const FAMILY: &str = "group_channel";

// ---------------------------------------------------------------------------------------------
// Settings

struct Settings {
    root: PathBuf,
    bin: PathBuf,
    bootstrap: String,
    registry_url: String,
    cluster_dir: PathBuf,
    broker_port_base: i32,
    broker_kills: u32,
    gateway_kills: u32,
    gateway_terms: u32,
    clients: usize,
    channels: u64,
    attempts: u32,
    restart_delay: Duration,
    min_load: Duration,
    deadline: Duration,
}

fn option(args: &[String], flag: &str, env: &str, default: u64) -> Result<u64> {
    let from_flag = args
        .iter()
        .position(|a| a == flag)
        .map(|i| {
            args.get(i + 1)
                .cloned()
                .ok_or_else(|| anyhow!("{flag} needs a value"))
        })
        .transpose()?;
    match from_flag.or_else(|| std::env::var(env).ok()) {
        Some(v) => v
            .trim()
            .parse()
            .with_context(|| format!("{flag} / {env}: {v:?} is not a whole number")),
        None => Ok(default),
    }
}

const FLAGS: [&str; 9] = [
    "--broker-kills",
    "--gateway-kills",
    "--gateway-terms",
    "--clients",
    "--channels",
    "--attempts",
    "--restart-delay-secs",
    "--min-load-secs",
    "--deadline-secs",
];

impl Settings {
    fn load() -> Result<Settings> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        for (i, a) in args.iter().enumerate() {
            let is_value = i > 0 && FLAGS.contains(&args[i - 1].as_str());
            if !is_value && !FLAGS.contains(&a.as_str()) {
                bail!(
                    "unknown argument {a:?}; options: {} (see the top of examples/chaos.rs)",
                    FLAGS.join(" ")
                );
            }
        }
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let bin = std::env::var("HOOKBRIDGE_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join("target/debug/hookbridge"));
        let bin = if bin.is_relative() {
            root.join(bin)
        } else {
            bin
        };
        let cluster_dir = std::env::var("CLUSTER_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join(".stack/cluster"));
        let broker_port_base = match std::env::var("CLUSTER_BROKER_PORT_BASE") {
            Ok(v) => v
                .trim()
                .parse()
                .context("CLUSTER_BROKER_PORT_BASE is not a port number")?,
            Err(_) => 19091,
        };
        let bootstrap = match std::env::var("CHAOS_BOOTSTRAP") {
            Ok(b) => b,
            Err(_) => {
                let out = std::process::Command::new("bash")
                    .arg(root.join("scripts/cluster.sh"))
                    .arg("bootstrap")
                    .output()
                    .context("running scripts/cluster.sh bootstrap")?;
                if !out.status.success() {
                    bail!("scripts/cluster.sh bootstrap failed");
                }
                String::from_utf8_lossy(&out.stdout).trim().to_owned()
            }
        };
        Ok(Settings {
            bin,
            bootstrap,
            registry_url: std::env::var("SCHEMA_REGISTRY_URL")
                .unwrap_or_else(|_| "http://127.0.0.1:8081/apis/ccompat/v7".to_owned()),
            cluster_dir,
            broker_port_base,
            broker_kills: option(&args, "--broker-kills", "CHAOS_BROKER_KILLS", 10)? as u32,
            gateway_kills: option(&args, "--gateway-kills", "CHAOS_GATEWAY_KILLS", 1)? as u32,
            gateway_terms: option(&args, "--gateway-terms", "CHAOS_GATEWAY_TERMS", 1)? as u32,
            clients: option(&args, "--clients", "CHAOS_CLIENTS", 16)?.max(1) as usize,
            channels: option(&args, "--channels", "CHAOS_CHANNELS", 64)?.max(1),
            attempts: option(&args, "--attempts", "CHAOS_ATTEMPTS", 3)?.max(1) as u32,
            restart_delay: Duration::from_secs(option(
                &args,
                "--restart-delay-secs",
                "CHAOS_RESTART_DELAY_SECS",
                3,
            )?),
            min_load: Duration::from_secs(option(
                &args,
                "--min-load-secs",
                "CHAOS_MIN_LOAD_SECS",
                0,
            )?),
            deadline: Duration::from_secs(option(
                &args,
                "--deadline-secs",
                "CHAOS_DEADLINE_SECS",
                900,
            )?),
            root,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn sign(token: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(token).expect("HMAC takes any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn free_addr() -> Result<String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
    Ok(l.local_addr()?.to_string())
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let mut out = format!(
        "----- last {} lines of {} -----\n",
        lines.min(all.len()),
        path.display()
    );
    for l in &all[all.len().saturating_sub(lines)..] {
        out.push_str(l);
        out.push('\n');
    }
    out.push_str("-----");
    out
}

/// What happened when, printed as it happens and again in the summary.
struct Timeline {
    t0: Instant,
    entries: Vec<(Duration, String)>,
}

impl Timeline {
    fn note(&mut self, what: impl Into<String>) {
        let at = self.t0.elapsed();
        let what = what.into();
        println!("[chaos {:>7.1}s] {what}", at.as_secs_f64());
        self.entries.push((at, what));
    }
}

// ---------------------------------------------------------------------------------------------
// The gateway process

struct Gateway {
    bin: PathBuf,
    config: PathBuf,
    log: PathBuf,
    readyz: String,
    child: Option<Child>,
}

impl Gateway {
    fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// Starts the binary and waits for `/readyz` 200; returns the time that took.
    async fn start(&mut self, http: &reqwest::Client) -> Result<Duration> {
        let t = Instant::now();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        {
            use std::io::Write;
            writeln!(
                &log,
                "===== chaos: starting gateway at unix ms {} =====",
                unix_ms()
            )?;
        }
        let mut cmd = Command::new(&self.bin);
        cmd.arg("serve");
        // only the file configures this gateway
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("HOOKBRIDGE_") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        cmd.env("HOOKBRIDGE_CONFIG", &self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let child = cmd.spawn().with_context(|| {
            format!(
                "cannot start {} (build it with cargo build --bins)",
                self.bin.display()
            )
        })?;
        self.child = Some(child);
        let deadline = t + Duration::from_secs(90);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                bail!(
                    "the gateway exited during start-up ({status})\n{}",
                    log_tail(&self.log, 40)
                );
            }
            if let Ok(r) = http
                .get(&self.readyz)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                && r.status() == 200
            {
                return Ok(t.elapsed());
            }
            if Instant::now() > deadline {
                self.kill().await?;
                bail!(
                    "the gateway was not ready within 90 s\n{}",
                    log_tail(&self.log, 40)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Fails when the process ended on its own (a crash) since it was started.
    fn check_alive(&mut self) -> Result<()> {
        if let Some(child) = self.child.as_mut()
            && let Some(status) = child.try_wait()?
        {
            self.child = None;
            bail!(
                "the gateway exited on its own ({status})\n{}",
                log_tail(&self.log, 40)
            );
        }
        Ok(())
    }

    async fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }

    /// SIGTERM, then waits (up to `limit`) for the exit; returns the exit code and the time.
    async fn terminate(&mut self, limit: Duration) -> Result<(Option<i32>, Duration)> {
        let t = Instant::now();
        let Some(pid) = self.pid() else {
            bail!("the gateway is not running")
        };
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await?;
        if !status.success() {
            bail!("kill -TERM {pid} failed");
        }
        let mut child = self.child.take().expect("running, checked above");
        match tokio::time::timeout(limit, child.wait()).await {
            Ok(status) => Ok((status?.code(), t.elapsed())),
            Err(_) => {
                child.start_kill()?;
                child.wait().await?;
                bail!(
                    "the gateway did not exit within {limit:?} of SIGTERM\n{}",
                    log_tail(&self.log, 40)
                )
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Load

struct Load {
    client: reqwest::Client,
    url: String,
    token: Vec<u8>,
    prefix: String,
    channels: u64,
    attempts: u32,
    t0: Instant,
    stop: AtomicBool,
    seq: AtomicU64,
    requests: AtomicU64,
    ok: AtomicU64,
    unavailable: AtomicU64,
    errors: AtomicU64,
}

#[derive(Default)]
struct WorkerResult {
    events: u64,
    requests: u64,
    ok: u64,
    dead_lettered: u64,
    unavailable: u64,
    connect_errors: u64,
    timeouts: u64,
    other_errors: u64,
    other_status: BTreeMap<u16, u64>,
    id_mismatch: u64,
    acked: Vec<String>,
    gave_up: Vec<String>,
    ok_times: Vec<Duration>,
    /// every attempt, for attempts.csv
    log: Vec<Attempt>,
}

struct Attempt {
    seq: u64,
    attempt: u32,
    start: Duration,
    latency: Duration,
    outcome: String,
}

fn body(prefix: &str, seq: u64, channel: u64) -> Vec<u8> {
    format!(
        r#"{{"category":"group_channel:message_send","app_id":"{APP_ID}","sender":{{"user_id":"user{u}","nickname":"chaos {u}"}},"type":"MESG","payload":{{"message_id":{seq},"message":"chaos run {prefix} message {seq}","created_at":{now}}},"channel":{{"channel_url":"sendbird_group_channel_chaos_{channel}","name":"chaos {channel}","custom_type":""}}}}"#,
        u = seq % 97,
        now = unix_ms(),
    )
    .into_bytes()
}

async fn worker(load: Arc<Load>) -> WorkerResult {
    let mut r = WorkerResult::default();
    while !load.stop.load(Ordering::Relaxed) {
        let seq = load.seq.fetch_add(1, Ordering::Relaxed);
        let body = body(&load.prefix, seq, seq % load.channels);
        let id = sha256_hex(&body);
        let signature = sign(&load.token, &body);
        r.events += 1;
        let short_id = id[..16].to_owned();
        let mut acked = false;
        for attempt in 0..load.attempts {
            if attempt > 0 {
                if load.stop.load(Ordering::Relaxed) {
                    break;
                }
                // Sendbird waits before retrying; the gateway asks for 5 s, a shorter pause
                // keeps retries inside the outage windows this suite creates.
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
            }
            r.requests += 1;
            load.requests.fetch_add(1, Ordering::Relaxed);
            let start = load.t0.elapsed();
            let sent = load
                .client
                .post(&load.url)
                .header("content-type", "application/json")
                .header("x-sendbird-signature", &signature)
                .body(body.clone())
                .send()
                .await;
            let latency = load.t0.elapsed().saturating_sub(start);
            let outcome = match &sent {
                Ok(resp) => resp.status().as_u16().to_string(),
                Err(e) if e.is_timeout() => "timeout".to_owned(),
                Err(e) if e.is_connect() => "connect".to_owned(),
                Err(_) => "reset".to_owned(),
            };
            r.log.push(Attempt {
                seq,
                attempt: attempt + 1,
                start,
                latency,
                outcome: format!("{outcome},{short_id}"),
            });
            match sent {
                Ok(resp) if resp.status() == 200 => {
                    // The status line is the answer: 200 means the broker had the record.
                    let at = load.t0.elapsed();
                    r.ok += 1;
                    load.ok.fetch_add(1, Ordering::Relaxed);
                    r.ok_times.push(at);
                    acked = true;
                    if let Ok(bytes) = resp.bytes().await
                        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes)
                    {
                        if v.get("event_id").and_then(|e| e.as_str()) != Some(id.as_str()) {
                            r.id_mismatch += 1;
                        }
                        if v.get("status").and_then(|s| s.as_str()) == Some("dead_lettered") {
                            r.dead_lettered += 1;
                        }
                    }
                    break;
                }
                Ok(resp) if resp.status() == 503 => {
                    r.unavailable += 1;
                    load.unavailable.fetch_add(1, Ordering::Relaxed);
                }
                Ok(resp) => {
                    *r.other_status.entry(resp.status().as_u16()).or_default() += 1;
                    load.errors.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    if e.is_timeout() {
                        r.timeouts += 1;
                    } else if e.is_connect() {
                        r.connect_errors += 1;
                    } else {
                        r.other_errors += 1;
                    }
                    load.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if acked {
            r.acked.push(id);
        } else {
            r.gave_up.push(id);
        }
    }
    r
}

// ---------------------------------------------------------------------------------------------
// Cluster control and metadata

async fn cluster(root: &Path, args: &[&str]) -> Result<()> {
    let status = Command::new("bash")
        .arg(root.join("scripts/cluster.sh"))
        .args(args)
        .stdin(Stdio::null())
        .status()
        .await
        .context("running scripts/cluster.sh")?;
    if !status.success() {
        bail!("scripts/cluster.sh {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn admin_client(bootstrap: &str, group: &str) -> Result<Arc<BaseConsumer>> {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .set("topic.metadata.refresh.interval.ms", "1000");
    cc.set_log_level(RDKafkaLogLevel::Emerg);
    Ok(Arc::new(cc.create().context("creating a Kafka client")?))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .context("blocking task")?
}

struct Busiest {
    partition: i32,
    leader: i32,
    node: i32,
    records: i64,
    /// also the busiest partition of the topic overall
    overall: bool,
}

/// The partition of `topic` holding most records among those led by the nodes killed least
/// often so far, its leader and the leader's cluster.sh node. (Plain "the busiest partition"
/// keeps hitting the same two nodes: its leadership just moves between them.)
async fn busiest_partition(
    kafka: &Arc<BaseConsumer>,
    topic: &str,
    port_base: i32,
    kills: &HashMap<i32, u32>,
) -> Result<Busiest> {
    let kafka = kafka.clone();
    let topic = topic.to_owned();
    let kills = kills.clone();
    blocking(move || {
        let md = kafka.fetch_metadata(Some(&topic), Duration::from_secs(5))?;
        let t = md
            .topics()
            .first()
            .ok_or_else(|| anyhow!("no metadata for {topic}"))?;
        let node_of = |broker: i32| {
            md.brokers()
                .iter()
                .find(|b| b.id() == broker)
                .map_or(broker, |b| b.port() - port_base)
        };
        let mut parts = Vec::new();
        for p in t.partitions() {
            let (lo, hi) = kafka.fetch_watermarks(&topic, p.id(), Duration::from_secs(5))?;
            if p.leader() >= 0 {
                parts.push((p.id(), p.leader(), node_of(p.leader()), hi - lo));
            }
        }
        let most = parts.iter().map(|p| p.3).max();
        let fewest = parts
            .iter()
            .map(|p| kills.get(&p.2).copied().unwrap_or(0))
            .min()
            .ok_or_else(|| anyhow!("no partition of {topic} has a leader"))?;
        let (partition, leader, node, records) = parts
            .into_iter()
            .filter(|p| kills.get(&p.2).copied().unwrap_or(0) == fewest)
            .max_by_key(|p| (p.3, -p.0))
            .expect("the node with the fewest kills leads a partition");
        Ok(Busiest {
            partition,
            leader,
            node,
            records,
            overall: Some(records) == most,
        })
    })
    .await
}

/// The active KRaft controller, from the nodes' logs: the leader of the highest quorum epoch
/// any node reported becoming leader or follower in.
fn active_controller(cluster_dir: &Path) -> Option<i32> {
    fn number_after(text: &str, key: &str) -> Option<i64> {
        let rest = &text[text.find(key)? + key.len()..];
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        rest[..end].parse().ok()
    }
    let mut best: Option<(i64, i32)> = None;
    for node in 1..=3 {
        let log = std::fs::read_to_string(cluster_dir.join(format!("logs/node{node}.log")))
            .unwrap_or_default();
        for line in log.lines() {
            let seen = if let Some(i) = line.find("Completed transition to Leader(") {
                number_after(&line[i..], "epoch=").map(|e| (e, node))
            } else if let Some(i) = line.find("Completed transition to FollowerState(") {
                let state = &line[i..];
                number_after(state, "epoch=")
                    .zip(number_after(state, "leader="))
                    .map(|(e, l)| (e, l as i32))
            } else {
                None
            };
            if let Some(seen) = seen
                && best.is_none_or(|b| seen.0 > b.0)
            {
                best = Some(seen);
            }
        }
    }
    best.map(|b| b.1)
}

/// `None` when every partition of every topic with the prefix has a leader and its full replica
/// set in sync, and `node_id` is a registered broker; otherwise what is missing.
async fn replication_gap(
    kafka: &Arc<BaseConsumer>,
    prefix: &str,
    node_id: i32,
) -> Result<Option<String>> {
    let kafka = kafka.clone();
    let prefix = prefix.to_owned();
    blocking(move || {
        let md = kafka.fetch_metadata(None, Duration::from_secs(5))?;
        if !md.brokers().iter().any(|b| b.id() == node_id) {
            return Ok(Some(format!("broker {node_id} not registered")));
        }
        let mut short = 0;
        let mut total = 0;
        for t in md.topics().iter().filter(|t| t.name().starts_with(&prefix)) {
            for p in t.partitions() {
                total += 1;
                if p.error().is_some() || p.leader() < 0 || p.isr().len() < p.replicas().len() {
                    short += 1;
                }
            }
        }
        Ok((short > 0).then(|| format!("{short} of {total} partitions under-replicated")))
    })
    .await
}

fn count_started(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("Kafka Server started")
        .count()
}

/// Waits until node `node` logged another "Kafka Server started" (it registered and was
/// unfenced) and every partition is fully replicated, seen twice in a row.
async fn wait_recovered(
    s: &Settings,
    kafka: &Arc<BaseConsumer>,
    prefix: &str,
    node: i32,
    leader_id: i32,
    started_before: usize,
) -> Result<Duration> {
    let t = Instant::now();
    let log = s.cluster_dir.join(format!("logs/node{node}.log"));
    let deadline = t + Duration::from_secs(120);
    let mut good = 0;
    let mut last = String::from("node not started yet");
    loop {
        if count_started(&log) > started_before {
            match replication_gap(kafka, prefix, leader_id).await {
                Ok(None) => good += 1,
                Ok(Some(gap)) => {
                    good = 0;
                    last = gap;
                }
                Err(e) => {
                    good = 0;
                    last = format!("metadata: {e}");
                }
            }
            if good >= 2 {
                return Ok(t.elapsed());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "the cluster did not recover within 120 s after node {node} restarted ({last})\n{}",
                log_tail(&log, 40)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Reconciliation

struct Consumed {
    records: u64,
    without_id: u64,
    topics: usize,
    partitions: usize,
    counts: HashMap<String, u32>,
    /// id, topic, partition, offset, timestamp: for records.csv
    rows: Vec<(String, String, i32, i64, i64)>,
}

/// Reads every partition of every topic with the prefix from the beginning up to the high
/// watermark taken now; counts records per event id.
async fn consume_all(bootstrap: &str, prefix: &str) -> Result<Consumed> {
    let kafka = admin_client(bootstrap, &format!("{prefix}chaos-reconcile"))?;
    let prefix = prefix.to_owned();
    blocking(move || {
        let md = kafka.fetch_metadata(None, Duration::from_secs(10))?;
        let mut tpl = TopicPartitionList::new();
        let mut want: HashMap<(String, i32), i64> = HashMap::new();
        let mut topics = 0;
        for t in md.topics().iter().filter(|t| t.name().starts_with(&prefix)) {
            topics += 1;
            for p in t.partitions() {
                let (lo, hi) = kafka.fetch_watermarks(t.name(), p.id(), Duration::from_secs(10))?;
                if hi > lo {
                    want.insert((t.name().to_owned(), p.id()), hi);
                }
                tpl.add_partition_offset(t.name(), p.id(), Offset::Beginning)?;
            }
        }
        let partitions = tpl.count();
        kafka.assign(&tpl)?;
        let mut c = Consumed {
            records: 0,
            without_id: 0,
            topics,
            partitions,
            counts: HashMap::new(),
            rows: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(180);
        while !want.is_empty() {
            if Instant::now() > deadline {
                bail!(
                    "could not read up to the high watermarks within 180 s; behind: {:?}",
                    want
                );
            }
            let Some(m) = kafka.poll(Duration::from_secs(1)) else {
                continue;
            };
            let m = m?;
            let key = (m.topic().to_owned(), m.partition());
            if let Some(hi) = want.get(&key) {
                c.records += 1;
                let id = m
                    .headers()
                    .and_then(|h| h.iter().find(|h| h.key == EVENT_ID_HEADER))
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned());
                match id {
                    Some(id) => {
                        *c.counts.entry(id.clone()).or_default() += 1;
                        c.rows.push((
                            id,
                            m.topic().to_owned(),
                            m.partition(),
                            m.offset(),
                            m.timestamp().to_millis().unwrap_or(-1),
                        ));
                    }
                    None => c.without_id += 1,
                }
                if m.offset() + 1 >= *hi {
                    want.remove(&key);
                }
            }
        }
        Ok(c)
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// The run

enum Step {
    BrokerKill(u32),
    GatewayKill,
    GatewayTerm,
}

/// Broker kills with the gateway's kill and SIGTERM steps spread evenly between them.
fn schedule(broker_kills: u32, gateway_kills: u32, gateway_terms: u32) -> Vec<Step> {
    let mut gw = Vec::new();
    for i in 0..gateway_kills.max(gateway_terms) {
        if i < gateway_kills {
            gw.push(Step::GatewayKill);
        }
        if i < gateway_terms {
            gw.push(Step::GatewayTerm);
        }
    }
    let slots = gw.len() as u32 + 1;
    // gateway step i goes after broker kill round((i + 1) * K / slots)
    let after: Vec<u32> = (0..gw.len() as u32)
        .map(|i| (2 * (i + 1) * broker_kills + slots) / (2 * slots))
        .collect();
    let mut gw: Vec<(u32, Step)> = after.into_iter().zip(gw).collect();
    let mut steps = Vec::new();
    for k in 1..=broker_kills {
        steps.push(Step::BrokerKill(k));
        while gw.first().is_some_and(|(a, _)| *a <= k) {
            steps.push(gw.remove(0).1);
        }
    }
    steps.extend(gw.into_iter().map(|(_, s)| s));
    steps
}

/// attempts.csv (every request) and records.csv (every record read back) for post-mortems.
fn write_csvs(work: &Path, results: &[WorkerResult], consumed: &Consumed) -> Result<()> {
    let mut a = String::from("seq,attempt,start_ms,latency_ms,outcome,event_id_prefix\n");
    let mut all: Vec<&Attempt> = results.iter().flat_map(|r| r.log.iter()).collect();
    all.sort_by_key(|x| x.start);
    for x in all {
        let _ = writeln!(
            a,
            "{},{},{},{},{}",
            x.seq,
            x.attempt,
            x.start.as_millis(),
            x.latency.as_millis(),
            x.outcome
        );
    }
    std::fs::write(work.join("attempts.csv"), a)?;
    let mut r = String::from("event_id,topic,partition,offset,timestamp_ms\n");
    for (id, topic, p, o, ts) in &consumed.rows {
        let _ = writeln!(r, "{id},{topic},{p},{o},{ts}");
    }
    std::fs::write(work.join("records.csv"), r)?;
    Ok(())
}

struct Outcome {
    passed: bool,
}

async fn run(s: &Settings, wall: Instant) -> Result<Outcome> {
    let run_id = format!("chaos{}", unix_ms() / 1000);
    let prefix = format!("{run_id}.");
    let work = s.root.join("target/chaos").join(&run_id);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let http_addr = free_addr()?;
    let admin_addr = free_addr()?;
    let token =
        sha256_hex(format!("{run_id}-{}-{:?}", std::process::id(), Instant::now()).as_bytes());
    let config = work.join("hookbridge.toml");
    std::fs::write(
        &config,
        format!(
            r#"# written by examples/chaos.rs
http_addr = "{http_addr}"
admin_addr = "{admin_addr}"
kafka_brokers = "{bootstrap}"
schema_registry_url = "{registry}"
topic_prefix = "{prefix}"
topic_replication_factor = 3
log_format = "text"
log_level = "info"

[[apps]]
app_id = "{APP_ID}"
api_tokens = ["{token}"]
"#,
            bootstrap = s.bootstrap,
            registry = s.registry_url,
        ),
    )?;
    println!(
        "chaos run {run_id}: cluster {}, registry {}, gateway {} (http {http_addr}, admin {admin_addr})",
        s.bootstrap,
        s.registry_url,
        s.bin.display()
    );
    println!("files: {}", work.display());

    let answering = s
        .bootstrap
        .split(',')
        .filter_map(|a| a.trim().parse::<std::net::SocketAddr>().ok())
        .filter(|a| std::net::TcpStream::connect_timeout(a, Duration::from_secs(1)).is_ok())
        .count();
    if answering == 0 {
        bail!(
            "no broker of {} answers; start the cluster first (bash scripts/cluster.sh up), or use make chaos / make chaos-short",
            s.bootstrap
        );
    }

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(15))
        .build()?;
    let mut gateway = Gateway {
        bin: s.bin.clone(),
        config,
        log: work.join("gateway.log"),
        readyz: format!("http://{admin_addr}/readyz"),
        child: None,
    };
    let mut tl = Timeline {
        t0: Instant::now(),
        entries: Vec::new(),
    };
    let took = gateway.start(&http).await?;
    tl.note(format!(
        "gateway ready in {:.1} s (pid {})",
        took.as_secs_f64(),
        gateway.pid().unwrap_or(0)
    ));
    let kafka = admin_client(&s.bootstrap, &format!("{prefix}chaos-admin"))?;
    let topic = format!("{prefix}{FAMILY}");

    let load = Arc::new(Load {
        client: http.clone(),
        url: format!("http://{http_addr}/webhooks/sendbird"),
        token: token.into_bytes(),
        prefix: prefix.clone(),
        channels: s.channels,
        attempts: s.attempts,
        t0: tl.t0,
        stop: AtomicBool::new(false),
        seq: AtomicU64::new(0),
        requests: AtomicU64::new(0),
        ok: AtomicU64::new(0),
        unavailable: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    let load_start = tl.t0.elapsed();
    let workers: Vec<_> = (0..s.clients)
        .map(|_| tokio::spawn(worker(load.clone())))
        .collect();
    let progress = {
        let load = load.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                if load.stop.load(Ordering::Relaxed) {
                    break;
                }
                println!(
                    "[chaos {:>7.1}s]   load: {} requests, {} × 200, {} × 503, {} errors",
                    load.t0.elapsed().as_secs_f64(),
                    load.requests.load(Ordering::Relaxed),
                    load.ok.load(Ordering::Relaxed),
                    load.unavailable.load(Ordering::Relaxed),
                    load.errors.load(Ordering::Relaxed),
                );
            }
        })
    };
    tl.note(format!(
        "load started: {} clients, {} channels, {} attempts per event",
        s.clients, s.channels, s.attempts
    ));

    // The chaos steps run inside a closure-like block so that the load is stopped on any error.
    let steps = schedule(s.broker_kills, s.gateway_kills, s.gateway_terms);
    let mut broker_kills = 0u32;
    let mut controller_kills = 0u32;
    let mut kills_by_node: HashMap<i32, u32> = HashMap::new();
    let mut gateway_kills = 0u32;
    let mut gateway_terms = 0u32;
    let mut term_exit_codes: Vec<Option<i32>> = Vec::new();
    let chaos: Result<()> = async {
        // warm-up: at least 3 s, and until webhooks are being accepted
        let warm = Instant::now();
        while warm.elapsed() < Duration::from_secs(3) || load.ok.load(Ordering::Relaxed) < 100 {
            if warm.elapsed() > Duration::from_secs(30) {
                bail!(
                    "only {} webhooks accepted in 30 s of warm-up ({} requests, {} × 503, {} errors)\n{}",
                    load.ok.load(Ordering::Relaxed),
                    load.requests.load(Ordering::Relaxed),
                    load.unavailable.load(Ordering::Relaxed),
                    load.errors.load(Ordering::Relaxed),
                    log_tail(&gateway.log, 40)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tl.note(format!(
            "warm-up done: {} accepted",
            load.ok.load(Ordering::Relaxed)
        ));
        for step in &steps {
            match step {
                Step::BrokerKill(k) => {
                    let b =
                        busiest_partition(&kafka, &topic, s.broker_port_base, &kills_by_node)
                            .await?;
                    let node = b.node;
                    let log = s.cluster_dir.join(format!("logs/node{node}.log"));
                    let started_before = count_started(&log);
                    let controller = active_controller(&s.cluster_dir) == Some(node);
                    cluster(&s.root, &["kill", &node.to_string()]).await?;
                    broker_kills += 1;
                    *kills_by_node.entry(node).or_default() += 1;
                    if controller {
                        controller_kills += 1;
                    }
                    tl.note(format!(
                        "broker kill {k}/{}: kill -9 node {node}, leader of {topic}[{}] ({} records, {}){}",
                        s.broker_kills,
                        b.partition,
                        b.records,
                        if b.overall {
                            "the busiest"
                        } else {
                            "the busiest led by a node killed least often"
                        },
                        if controller {
                            ", also the active controller"
                        } else {
                            ""
                        }
                    ));
                    tokio::time::sleep(s.restart_delay).await;
                    let t = Instant::now();
                    if let Err(e) = cluster(&s.root, &["start", &node.to_string()]).await {
                        // Seen once in CI: the restarted broker died on its own metadata folder
                        // vanishing (FileNotFoundException on quorum-state.tmp), a Kafka-side
                        // fault. Kafka recreates that folder and catches up from the quorum on
                        // the next start; the reconciliation below is unchanged either way.
                        tl.note(format!(
                            "node {node} did not come back ({e:#}); starting it once more (its log: .stack/cluster/logs/node{node}.log)"
                        ));
                        cluster(&s.root, &["start", &node.to_string()]).await?;
                    }
                    tl.note(format!(
                        "node {node} restarted, port answers after {:.1} s",
                        t.elapsed().as_secs_f64()
                    ));
                    let took =
                        wait_recovered(s, &kafka, &prefix, node, b.leader, started_before).await?;
                    tl.note(format!(
                        "node {node} registered and every partition fully in sync after {:.1} s more",
                        took.as_secs_f64()
                    ));
                }
                Step::GatewayKill => {
                    let pid = gateway.pid().unwrap_or(0);
                    gateway.kill().await?;
                    gateway_kills += 1;
                    tl.note(format!("gateway kill -9 (pid {pid})"));
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    let took = gateway.start(&http).await?;
                    tl.note(format!(
                        "gateway restarted (pid {}), ready after {:.1} s",
                        gateway.pid().unwrap_or(0),
                        took.as_secs_f64()
                    ));
                }
                Step::GatewayTerm => {
                    let pid = gateway.pid().unwrap_or(0);
                    tl.note(format!("gateway SIGTERM (pid {pid})"));
                    let (code, took) = gateway.terminate(Duration::from_secs(40)).await?;
                    gateway_terms += 1;
                    term_exit_codes.push(code);
                    tl.note(format!(
                        "gateway exited with {} after {:.1} s",
                        code.map_or("a signal".to_owned(), |c| format!("code {c}")),
                        took.as_secs_f64()
                    ));
                    let took = gateway.start(&http).await?;
                    tl.note(format!(
                        "gateway restarted (pid {}), ready after {:.1} s",
                        gateway.pid().unwrap_or(0),
                        took.as_secs_f64()
                    ));
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            gateway.check_alive()?;
        }
        let loaded = tl.t0.elapsed().saturating_sub(load_start);
        if loaded < s.min_load {
            tokio::time::sleep(s.min_load - loaded).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await; // a calm tail
        gateway.check_alive()
    }
    .await;
    load.stop.store(true, Ordering::Relaxed);
    progress.abort();
    if let Err(e) = chaos {
        gateway.kill().await.ok();
        return Err(e);
    }
    tl.note("load stopping; waiting for the clients' last requests");
    let mut results = Vec::new();
    for w in workers {
        results.push(w.await.context("load worker")?);
    }
    let load_time = tl.t0.elapsed().saturating_sub(load_start);
    tl.note("load stopped; stopping the gateway with SIGTERM");
    let (final_code, _) = gateway.terminate(Duration::from_secs(40)).await?;
    tl.note(format!(
        "gateway exited with {}",
        final_code.map_or("a signal".to_owned(), |c| format!("code {c}"))
    ));

    let t = Instant::now();
    let consumed = consume_all(&s.bootstrap, &prefix).await?;
    tl.note(format!(
        "read {} records from {} topics ({} partitions) in {:.1} s",
        consumed.records,
        consumed.topics,
        consumed.partitions,
        t.elapsed().as_secs_f64()
    ));

    write_csvs(&work, &results, &consumed)?;

    // Reconcile.
    let sum = |f: fn(&WorkerResult) -> u64| results.iter().map(f).sum::<u64>();
    let events = sum(|r| r.events);
    let requests = sum(|r| r.requests);
    let ok = sum(|r| r.ok);
    let dead_lettered = sum(|r| r.dead_lettered);
    let unavailable = sum(|r| r.unavailable);
    let connect_errors = sum(|r| r.connect_errors);
    let timeouts = sum(|r| r.timeouts);
    let other_errors = sum(|r| r.other_errors);
    let id_mismatch = sum(|r| r.id_mismatch);
    let mut other_status: BTreeMap<u16, u64> = BTreeMap::new();
    for r in &results {
        for (k, v) in &r.other_status {
            *other_status.entry(*k).or_default() += v;
        }
    }
    let other_status_total: u64 = other_status.values().sum();
    let acked: HashSet<&str> = results
        .iter()
        .flat_map(|r| r.acked.iter().map(String::as_str))
        .collect();
    let gave_up: Vec<&str> = results
        .iter()
        .flat_map(|r| r.gave_up.iter().map(String::as_str))
        .collect();
    let lost: Vec<&str> = acked
        .iter()
        .copied()
        .filter(|id| !consumed.counts.contains_key(*id))
        .collect();
    let duplicates: u64 = consumed
        .counts
        .values()
        .map(|c| u64::from(c.saturating_sub(1)))
        .sum();
    let duplicated_events = consumed.counts.values().filter(|c| **c > 1).count();
    let gave_up_stored = gave_up
        .iter()
        .filter(|id| consumed.counts.contains_key(**id))
        .count();
    let sent: HashSet<&str> = acked
        .iter()
        .copied()
        .chain(gave_up.iter().copied())
        .collect();
    let unknown = consumed
        .counts
        .keys()
        .filter(|id| !sent.contains(id.as_str()))
        .count();
    let mut times: Vec<Duration> = results.iter().flat_map(|r| r.ok_times.clone()).collect();
    times.sort();
    let (gap, gap_at) = times
        .windows(2)
        .map(|w| (w[1] - w[0], w[0]))
        .max()
        .unwrap_or_default();
    let wall_time = wall.elapsed();

    let passed = lost.is_empty()
        && id_mismatch == 0
        && consumed.without_id == 0
        && !acked.is_empty()
        && term_exit_codes
            .iter()
            .chain(std::iter::once(&final_code))
            .all(|c| *c == Some(0));

    println!();
    println!("timeline");
    for (at, what) in &tl.entries {
        println!("  {:>7.1}s  {what}", at.as_secs_f64());
    }
    println!();
    let mut table = String::new();
    let row = |t: &mut String, k: &str, v: String| {
        let _ = writeln!(t, "| {k:<44} | {v:>36} |");
    };
    let _ = writeln!(table, "| {:<44} | {:>36} |", "measure", "value");
    let _ = writeln!(table, "|{}|{}:|", "-".repeat(46), "-".repeat(37));
    row(
        &mut table,
        "events sent (unique bodies)",
        events.to_string(),
    );
    row(
        &mut table,
        "requests (attempts, with retries)",
        requests.to_string(),
    );
    row(&mut table, "200 (accepted)", ok.to_string());
    row(&mut table, "503 (unavailable)", unavailable.to_string());
    row(
        &mut table,
        "other errors",
        (connect_errors + timeouts + other_errors + other_status_total).to_string(),
    );
    row(
        &mut table,
        "  connection refused/failed",
        connect_errors.to_string(),
    );
    row(&mut table, "  timeouts (15 s)", timeouts.to_string());
    row(
        &mut table,
        "  connection reset/other",
        other_errors.to_string(),
    );
    if other_status_total > 0 {
        row(&mut table, "  other statuses", format!("{other_status:?}"));
    }
    row(
        &mut table,
        "events acknowledged (a 200)",
        acked.len().to_string(),
    );
    row(
        &mut table,
        "events given up after all attempts",
        format!("{} ({} stored anyway)", gave_up.len(), gave_up_stored),
    );
    row(
        &mut table,
        "records read back",
        consumed.records.to_string(),
    );
    row(
        &mut table,
        "LOST (acknowledged, not in Kafka)",
        lost.len().to_string(),
    );
    row(
        &mut table,
        "duplicates (extra copies)",
        format!("{duplicates} ({duplicated_events} events)"),
    );
    row(
        &mut table,
        "longest unavailability (gap between 200s)",
        format!(
            "{:.1} s (from {:.1} s)",
            gap.as_secs_f64(),
            gap_at.as_secs_f64()
        ),
    );
    row(&mut table, "broker kills (leader, kill -9)", {
        let mut per: Vec<_> = kills_by_node.iter().collect();
        per.sort();
        let per: Vec<String> = per.iter().map(|(n, k)| format!("n{n}:{k}")).collect();
        format!(
            "{broker_kills} ({}; {controller_kills} controller)",
            per.join(" ")
        )
    });
    row(
        &mut table,
        "gateway kills",
        format!("{gateway_kills} kill -9, {gateway_terms} SIGTERM"),
    );
    row(&mut table, "gateway exit codes after SIGTERM", {
        let code = |c: &Option<i32>| c.map_or("signal".to_owned(), |c| c.to_string());
        let mut v: Vec<String> = term_exit_codes.iter().map(code).collect();
        v.push(format!("{} (final stop)", code(&final_code)));
        v.join(", ")
    });
    row(
        &mut table,
        "load time",
        format!("{:.0} s", load_time.as_secs_f64()),
    );
    row(
        &mut table,
        "wall time (driver)",
        format!("{:.0} s", wall_time.as_secs_f64()),
    );
    if id_mismatch > 0 {
        row(
            &mut table,
            "200s with another event_id (!)",
            id_mismatch.to_string(),
        );
    }
    if dead_lettered > 0 {
        row(
            &mut table,
            "200s dead-lettered (!)",
            dead_lettered.to_string(),
        );
    }
    if consumed.without_id > 0 || unknown > 0 {
        row(
            &mut table,
            "records without id / unknown id (!)",
            format!("{} / {unknown}", consumed.without_id),
        );
    }
    print!("{table}");
    println!();
    let log = std::fs::read_to_string(&gateway.log).unwrap_or_default();
    if !lost.is_empty() {
        println!("lost event ids (first 20), with the gateway's log lines about them:");
        for id in lost.iter().take(20) {
            println!("  {id}");
            for line in log.lines().filter(|l| l.contains(id)) {
                println!("    {line}");
            }
        }
    }
    let warns = log.lines().filter(|l| l.contains(" WARN ")).count();
    let errors = log.lines().filter(|l| l.contains(" ERROR ")).count();
    println!(
        "gateway log: {} ({warns} WARN lines, {errors} ERROR lines)",
        gateway.log.display()
    );
    println!(
        "{}",
        if passed {
            "PASS: every webhook answered 200 is in Kafka"
        } else {
            "FAIL: see above"
        }
    );
    Ok(Outcome { passed })
}

fn main() -> ExitCode {
    let wall = Instant::now();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chaos: {e:#}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chaos: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = rt.block_on(async {
        match tokio::time::timeout(settings.deadline, run(&settings, wall)).await {
            Ok(r) => r,
            Err(_) => Err(anyhow!(
                "the run exceeded its deadline of {:?} (CHAOS_DEADLINE_SECS)",
                settings.deadline
            )),
        }
    });
    match outcome {
        Ok(Outcome { passed: true }) => ExitCode::SUCCESS,
        Ok(Outcome { passed: false }) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("chaos: FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}
