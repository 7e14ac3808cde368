//! What the harness's Rust programs share: the request bodies every contender receives (built
//! from the Sendbird fixture, so they look and escape as Sendbird writes them), their signatures,
//! the latency summary, and the process figures read from `/proc` for each measurement.
//!
//! Included by `bench/load`, `bench/ceiling-http` and `bench/ceiling-produce` with `#[path]`;
//! each program uses a part of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The app id of the fixture, which hookbridge checks against the route's configured app.
pub const APP_ID: &str = "A1B2C3D4-0000-4000-8000-000000000001";

/// Environment variable holding the API token every contender verifies with (the orchestrator
/// makes a random one per run).
pub const TOKEN_ENV: &str = "BENCH_SENDBIRD_API_TOKEN";

/// Distinct channels the small bodies are spread over, as in the issue's measurements.
pub const CHANNELS: usize = 257;

/// Size of each small body: the fixture with a slightly longer message text.
pub const SMALL_BODY_BYTES: usize = 1900;

const FIXTURE: &str = include_str!("../tests/fixtures/sendbird/group_channel__message_send.json");
const FIXTURE_CHANNEL: &str =
    "sendbird_group_channel_48151623_6f1d0c7e2b9a4e3f8c5d1a2b3c4d5e6f7a8b9c0d";
const FIXTURE_MESSAGE_ID: &str = "\"message_id\":7340032109";
const FIXTURE_CREATED_AT: &str = "\"created_at\":1718000700123";
const FIXTURE_TEXT: &str = r#""message":"Caf\u00e9 at 5? \u2615 see https:\/\/example.com\/menu""#;

/// Words the message text is padded with. Drawn at random (seeded, so every run sends the same
/// bytes): repeating one phrase would let lz4 shrink a 2 MiB body to almost nothing and the
/// Kafka side of large bodies would cost nothing. Text like this compresses about as chat does.
const WORDS: &str = "lunch at noon see you there the menu is new coffee tea meeting moved to \
    room please bring slides for review thanks ok sure maybe tomorrow today later ticket deploy \
    release train caf\\u00e9 na\\u00efve \\u2615 \\ud83d\\ude00 https:\\/\\/example.com\\/a \
    budget draft v2 final agenda notes call link invite calendar friday monday weekend team \
    offsite hotel flight gate board lol brb ack nack retry queue topic";

/// `len` bytes of space-separated words and numbers, the same for the same `seed`.
fn filler(seed: u64, len: usize) -> String {
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = String::with_capacity(len + 32);
    while out.len() < len {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(' ');
        out.push_str(words[(x % words.len() as u64) as usize]);
        if x.is_multiple_of(5) {
            out.push_str(&format!(" {}", (x >> 16) % 100_000));
        }
    }
    // Only whole escapes: cut back to the last space before the limit, then pad with spaces.
    out.truncate(len);
    if let Some(cut) = out.rfind(' ') {
        out.truncate(cut);
    }
    while out.len() < len {
        out.push(' ');
    }
    out
}

/// Which bodies a measurement sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BodySet {
    /// ~1.9 KB `group_channel:message_send` bodies over 257 channels.
    Small,
    /// 256 KiB bodies (a long message text).
    #[value(name = "256k")]
    Large256k,
    /// 2 MiB bodies, hookbridge's default `max_body_bytes`.
    #[value(name = "2m")]
    Large2m,
}

impl BodySet {
    pub fn name(self) -> &'static str {
        match self {
            BodySet::Small => "small",
            BodySet::Large256k => "256k",
            BodySet::Large2m => "2m",
        }
    }

    /// Exact size of every body of the set.
    pub fn body_bytes(self) -> usize {
        match self {
            BodySet::Small => SMALL_BODY_BYTES,
            BodySet::Large256k => 256 * 1024,
            BodySet::Large2m => 2 * 1024 * 1024,
        }
    }

    /// How many distinct bodies: enough to cycle through every channel several times for small
    /// bodies; a few for large ones (they are held in memory).
    fn count(self) -> usize {
        match self {
            BodySet::Small => 4 * CHANNELS,
            BodySet::Large256k => 16,
            BodySet::Large2m => 4,
        }
    }
}

/// One pre-signed request body.
pub struct Body {
    pub bytes: Bytes,
    /// Lowercase hex HMAC-SHA256 of `bytes` with the run's token (`x-sendbird-signature`).
    pub signature: String,
    /// `channel.channel_url`, the record key.
    pub channel_url: String,
    /// Lowercase hex SHA-256 of `bytes`, hookbridge's event id for Sendbird.
    pub event_id: String,
}

/// The channel URL of channel `n`: the fixture's shape (8 digits, 40 hex digits).
fn channel_url(n: usize) -> String {
    let digest = Sha256::digest(n.to_le_bytes());
    format!(
        "sendbird_group_channel_{:08}_{}",
        48_151_623 + n,
        &hex::encode(digest)[..40]
    )
}

/// Body `i` of a set: the fixture with its channel, message id, timestamp and message text
/// replaced, the text padded so the body has exactly `set.body_bytes()` bytes.
fn build(set: BodySet, i: usize) -> (String, String) {
    let channel = channel_url(i % CHANNELS);
    let base = FIXTURE
        .trim_end()
        .replacen(FIXTURE_CHANNEL, &channel, 1)
        .replacen(
            FIXTURE_MESSAGE_ID,
            &format!("\"message_id\":{}", 7_340_032_109_u64 + i as u64),
            1,
        )
        .replacen(
            FIXTURE_CREATED_AT,
            &format!("\"created_at\":{}", 1_718_000_700_123_u64 + 37 * i as u64),
            1,
        );
    let head = r#""message":"Caf\u00e9 at 5? \u2615 see https:\/\/example.com\/menu"#;
    let numbered = format!("{head} (#{i})");
    // The text's closing quote stays; the filler goes before it.
    let without_filler = base.replacen(FIXTURE_TEXT, &format!("{numbered}\""), 1);
    let missing = set.body_bytes().saturating_sub(without_filler.len());
    let filler = filler(((set as u64) << 32) + i as u64, missing);
    let body = base.replacen(FIXTURE_TEXT, &format!("{numbered}{filler}\""), 1);
    (body, channel)
}

/// The bodies of a set, signed with `token`.
pub fn bodies(set: BodySet, token: &str) -> Vec<Body> {
    let mac = Hmac::<Sha256>::new_from_slice(token.as_bytes())
        .expect("HMAC-SHA256 takes a key of any length");
    (0..set.count())
        .map(|i| {
            let (text, channel_url) = build(set, i);
            assert_eq!(
                text.len(),
                set.body_bytes(),
                "body {i} of set {set:?} has the wrong size; the fixture changed?"
            );
            let mut m = mac.clone();
            m.update(text.as_bytes());
            Body {
                signature: hex::encode(m.finalize().into_bytes()),
                event_id: hex::encode(Sha256::digest(text.as_bytes())),
                channel_url,
                bytes: Bytes::from(text),
            }
        })
        .collect()
}

/// The run's API token, from [`TOKEN_ENV`].
pub fn token_from_env() -> Result<String, String> {
    std::env::var(TOKEN_ENV)
        .ok()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("{TOKEN_ENV} must hold the API token the contenders verify with"))
}

/// Latency histogram in microseconds, from 1 µs to 5 minutes at three significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 300_000_000, 3).expect("static bounds are valid")
}

pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
    h.saturating_record(us);
}

/// Percentiles in milliseconds, as the report shows them.
pub fn latency_json(h: &Histogram<u64>) -> serde_json::Value {
    let ms = |us: u64| us as f64 / 1000.0;
    serde_json::json!({
        "count": h.len(),
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p90_ms": ms(h.value_at_quantile(0.90)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "p999_ms": ms(h.value_at_quantile(0.999)),
        "max_ms": ms(h.max()),
        "mean_ms": h.mean() / 1000.0,
    })
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`; 100 on Linux).
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// Fields of `/proc/<pid>/stat` after the command name (which may hold spaces and parentheses):
/// index 0 is the state, 1 the parent pid, 11 utime, 12 stime.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    Some(after.split_whitespace().map(str::to_owned).collect())
}

/// `root` and every process below it (uvicorn and Node cluster workers are child processes).
pub fn process_tree(root: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(ppid) = stat_fields(pid).and_then(|f| f.get(1)?.parse::<u32>().ok()) {
                parents.push((pid, ppid));
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, ppid)| *ppid == parent)
                .map(|(pid, _)| *pid),
        );
        i += 1;
    }
    tree
}

/// User plus system CPU time of the processes, in clock ticks.
pub fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| {
            let f = stat_fields(*pid)?;
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

/// Summed `VmRSS` and `VmHWM` of the processes, in KiB.
pub fn memory_kib(pids: &[u32]) -> (u64, u64) {
    let mut rss = 0;
    let mut hwm = 0;
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        rss += field("VmRSS:");
        hwm += field("VmHWM:");
    }
    (rss, hwm)
}

/// Busy CPU time of the whole machine, in clock ticks: user, nice, system, irq and softirq of
/// `/proc/stat`'s first line (idle and iowait are waiting, steal is the hypervisor's, guest is
/// already inside user).
pub fn machine_busy_ticks() -> u64 {
    busy_ticks(&std::fs::read_to_string("/proc/stat").unwrap_or_default())
}

/// The busy ticks of [`machine_busy_ticks`] from the text of `/proc/stat`.
fn busy_ticks(stat: &str) -> u64 {
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    [0, 1, 2, 5, 6]
        .iter()
        .map(|&i| fields.get(i).copied().unwrap_or(0))
        .sum()
}

/// The Kafka brokers running on this machine (the JVMs whose main class is `kafka.Kafka`),
/// which share its cores with the contenders; none when Kafka runs elsewhere.
pub fn broker_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|argv| argv.split(|&b| b == 0).any(|arg| arg == b"kafka.Kafka"))
        })
        .collect()
}

/// CPU and memory of a process tree (the contender) and of this process (the load) over one
/// measurement: CPU from the start of the window to [`Watch::finish`], RSS sampled every 100 ms.
/// Over the same window, the whole machine's busy CPU and the local Kafka brokers' CPU.
pub struct Watch {
    pids: Vec<u32>,
    own: u32,
    cpu_start: u64,
    own_cpu_start: u64,
    brokers: Vec<u32>,
    broker_cpu_start: u64,
    machine_start: u64,
    started: Instant,
    rss_peak: Arc<AtomicU64>,
    sampler: tokio::task::JoinHandle<()>,
}

impl Watch {
    pub fn start(root: u32) -> Watch {
        let pids = process_tree(root);
        let own = std::process::id();
        let rss_peak = Arc::new(AtomicU64::new(memory_kib(&pids).0));
        let sampler = {
            let pids = pids.clone();
            let rss_peak = rss_peak.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                loop {
                    tick.tick().await;
                    rss_peak.fetch_max(memory_kib(&pids).0, Ordering::Relaxed);
                }
            })
        };
        let brokers = broker_pids();
        Watch {
            cpu_start: cpu_ticks(&pids),
            own_cpu_start: cpu_ticks(&[own]),
            broker_cpu_start: cpu_ticks(&brokers),
            brokers,
            machine_start: machine_busy_ticks(),
            pids,
            own,
            started: Instant::now(),
            rss_peak,
            sampler,
        }
    }

    /// The figures as JSON: `server` (the watched tree) and `load` (this process).
    pub fn finish(self) -> serde_json::Value {
        let elapsed = self.started.elapsed().as_secs_f64();
        self.sampler.abort();
        let ticks = clock_ticks();
        let (rss, hwm) = memory_kib(&self.pids);
        let peak = self.rss_peak.load(Ordering::Relaxed).max(rss);
        let cpu = cpu_ticks(&self.pids).saturating_sub(self.cpu_start) as f64 / ticks;
        let own = cpu_ticks(&[self.own]).saturating_sub(self.own_cpu_start) as f64 / ticks;
        let machine = machine_busy_ticks().saturating_sub(self.machine_start) as f64 / ticks;
        let brokers = (!self.brokers.is_empty())
            .then(|| cpu_ticks(&self.brokers).saturating_sub(self.broker_cpu_start) as f64 / ticks);
        serde_json::json!({
            "machine_cpu_s": machine,
            "broker_cpu_s": brokers,
            "processes": self.pids.len(),
            "cpu_s": cpu,
            "rss_end_kib": rss,
            "rss_peak_kib": peak,
            "hwm_kib": hwm,
            "load_cpu_s": own,
            "window_s": elapsed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brokers_are_found_by_their_main_class_argument_only() {
        let spawn = |main_class: &str| {
            std::process::Command::new("sh")
                .args(["-c", "sleep 30", main_class])
                .spawn()
                .expect("sh starts")
        };
        let (mut broker, mut lookalike) = (spawn("kafka.Kafka"), spawn("kafka.Kafkaesque"));
        // Until a child has exec'd, its command line is this test binary's.
        for child in [&broker, &lookalike] {
            let started = Instant::now();
            while !std::fs::read(format!("/proc/{}/cmdline", child.id()))
                .is_ok_and(|argv| argv.windows(8).any(|w| w == b"sleep 30"))
            {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "sh never started"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let found = broker_pids();
        let (broker_pid, lookalike_pid) = (broker.id(), lookalike.id());
        for child in [&mut broker, &mut lookalike] {
            child.kill().expect("the child is ours to kill");
            child.wait().expect("the killed child is reaped");
        }
        assert!(found.contains(&broker_pid), "{found:?} lacks {broker_pid}");
        assert!(
            !found.contains(&lookalike_pid),
            "{found:?} holds {lookalike_pid}"
        );
    }

    #[test]
    fn busy_time_is_user_nice_system_irq_and_softirq() {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let stat = "cpu  1 2 4 1000 2000 8 16 4000 32 64\ncpu0 9 9 9 9 9 9 9 9 9 9\n";
        assert_eq!(busy_ticks(stat), 1 + 2 + 4 + 8 + 16);
    }

    #[test]
    fn the_machine_busy_time_grows_while_this_process_works() {
        let before = machine_busy_ticks();
        let started = Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(100) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        // 100 ms of one core is 10 ticks at 100 Hz; scheduling may give it less, never none.
        assert!(machine_busy_ticks() > before);
    }

    #[test]
    fn bodies_have_their_set_size_and_verify() {
        for set in [BodySet::Small, BodySet::Large256k, BodySet::Large2m] {
            let bodies = bodies(set, "t0ken");
            assert!(bodies.iter().all(|b| b.bytes.len() == set.body_bytes()));
            let first = &bodies[0];
            let mut mac = Hmac::<Sha256>::new_from_slice(b"t0ken").expect("any key length");
            mac.update(&first.bytes);
            mac.verify_slice(&hex::decode(&first.signature).expect("hex"))
                .expect("signature verifies");
            let json: serde_json::Value = serde_json::from_slice(&first.bytes).expect("JSON");
            assert_eq!(json["category"], "group_channel:message_send");
            assert_eq!(json["channel"]["channel_url"], first.channel_url.as_str());
            assert_eq!(json["app_id"], APP_ID);
        }
    }

    #[test]
    fn large_bodies_do_not_compress_to_nothing() {
        use std::io::Write;
        let body = &bodies(BodySet::Large2m, "t")[0].bytes;
        let mut deflate =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        deflate.write_all(body).expect("in memory");
        let compressed = deflate.finish().expect("in memory").len();
        // lz4 keeps about half of these bodies; one repeated phrase would keep under 1 %.
        assert!(
            compressed * 8 > body.len(),
            "2 MiB body deflates to {compressed} bytes"
        );
    }

    #[test]
    fn small_bodies_spread_over_every_channel_and_differ() {
        let bodies = bodies(BodySet::Small, "t");
        let channels: std::collections::BTreeSet<&str> =
            bodies.iter().map(|b| b.channel_url.as_str()).collect();
        assert_eq!(channels.len(), CHANNELS);
        let ids: std::collections::BTreeSet<&str> =
            bodies.iter().map(|b| b.event_id.as_str()).collect();
        assert_eq!(ids.len(), bodies.len());
    }
}
