//! The Sendbird tutorial's use case as a Kafka consumer: when a message is sent in a group
//! channel, notify every other member: a push to those online, an SMS or an e-mail to the others
//! (whichever their Sendbird user metadata holds). Written to be copied: it uses rdkafka,
//! apache-avro, reqwest, serde, tokio, clap and tracing, nothing from hookbridge.
//!
//! ```sh
//! cargo run --example notify -- --from-beginning --jsonl -
//! cargo run --example notify -- --webhook-url http://notifier.internal/notify
//! ```
//!
//! - Reads `sendbird.group_channel` in a consumer group and decodes each record with the schema
//!   registry (the writer schema by id, cached).
//! - Skips silent messages and channels whose members are absent (Supergroups, or webhooks with
//!   `include_members` off), logging why and counting.
//! - Remembers the event ids it handled (bounded), so Sendbird's retries notify once.
//! - Processes records one after another, in partition order, and stores a record's offset only
//!   after its notifications were handed off; offsets are committed from those stored, on
//!   rebalances and at exit. A crash re-delivers; it never skips.
//! - Stops on SIGTERM or Ctrl-C after the record in hand, committing what it handled.
//!
//! A notifier failing for longer than `max.poll.interval.ms` (5 minutes) holds the record that
//! long without polling, so the group moves the partition to another member, which handles the
//! record again (at least once; `idempotency_key` lets a provider drop the repeat).

mod adapters;
mod decode;
mod plan;
mod seen;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::topic_partition_list::TopicPartitionList;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use adapters::{HttpPost, JsonLines, Notifier};
use decode::{DecodeError, Decoder};
use plan::{ContactKeys, Event, Skip, Via};
use seen::Seen;

#[derive(Parser, Debug)]
#[command(about = "Notify channel members of new Sendbird messages read from Kafka")]
struct Args {
    /// Kafka bootstrap servers.
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092"
    )]
    bootstrap_servers: String,
    /// The schema registry's Confluent-compatible API.
    #[arg(
        long,
        env = "SCHEMA_REGISTRY_URL",
        default_value = "http://127.0.0.1:8081/apis/ccompat/v7"
    )]
    registry_url: String,
    /// The topic of Sendbird's group channel events (`<topic_prefix>group_channel`).
    #[arg(long, default_value = "sendbird.group_channel")]
    topic: String,
    /// The consumer group: instances sharing it share the partitions.
    #[arg(long, default_value = "hookbridge-notify")]
    group_id: String,
    /// A new group starts at the oldest record rather than at the newest.
    #[arg(long)]
    from_beginning: bool,
    /// Hand notifications off by POSTing each as JSON to this URL.
    #[arg(long, conflicts_with = "jsonl", required_unless_present = "jsonl")]
    webhook_url: Option<String>,
    /// Hand notifications off as JSON lines appended to this file (`-`: standard output).
    #[arg(long)]
    jsonl: Option<String>,
    /// The user metadata key holding a phone number.
    #[arg(long, default_value = "phone_number")]
    phone_key: String,
    /// The user metadata key holding an e-mail address.
    #[arg(long, default_value = "email")]
    email_key: String,
    /// How many handled event ids to remember for deduplication.
    #[arg(long, default_value_t = 100_000)]
    remember: usize,
    /// Further consumer properties (`security.protocol=SSL`, ...), repeatable.
    #[arg(long = "consumer-property", value_name = "KEY=VALUE", value_parser = key_value)]
    consumer_properties: Vec<(String, String)>,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rdkafka=warn".into()),
        )
        .init();
    let args = Args::parse();
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("stopping after the record in hand");
        let _ = stop_tx.send(true);
    });
    let result = match (&args.webhook_url, &args.jsonl) {
        (Some(url), _) => match HttpPost::new(url) {
            Ok(n) => run(&args, n, stop).await,
            Err(e) => Err(e),
        },
        (None, Some(path)) => match JsonLines::open(path) {
            Ok(n) => run(&args, n, stop).await,
            Err(e) => Err(e),
        },
        (None, None) => Err(anyhow::anyhow!("give --webhook-url or --jsonl")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Logs rebalances and failed commits. Offsets are stored only for handled records, and the
/// client commits what is stored when partitions are revoked, so a partition that moves to
/// another instance resumes after the last handled record.
struct Context;

fn partitions(tpl: &TopicPartitionList) -> String {
    tpl.elements()
        .iter()
        .map(|e| format!("{}[{}]", e.topic(), e.partition()))
        .collect::<Vec<_>>()
        .join(",")
}

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => info!(partitions = %partitions(tpl), "partitions revoked"),
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => warn!(error = %e, "rebalance failed"),
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            info!(partitions = %partitions(tpl), "partitions assigned");
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => debug!(partitions = %partitions(offsets), "offsets committed"),
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => warn!(error = %e, "offset commit failed; those records will be re-read"),
        }
    }
}

/// What was done, for the log line at exit.
#[derive(Default)]
struct Counts {
    records: u64,
    notified: BTreeMap<Via, u64>,
    skipped: BTreeMap<Skip, u64>,
    duplicates: u64,
    undecodable: u64,
}

impl Counts {
    fn log(&self) {
        fn by<K>(m: &BTreeMap<K, u64>, name: impl Fn(&K) -> String) -> String {
            m.iter()
                .map(|(k, n)| format!("{}={n}", name(k)))
                .collect::<Vec<_>>()
                .join(" ")
        }
        info!(
            records = self.records,
            notified = %by(&self.notified, |v| format!("{v:?}").to_lowercase()),
            skipped = %by(&self.skipped, |s| s.label().to_owned()),
            duplicates = self.duplicates,
            undecodable = self.undecodable,
            "totals"
        );
    }
}

/// The handling of one record stopped because the consumer is stopping; its offset is not
/// stored, so it is read again.
struct Stopped;

async fn run<N: Notifier>(
    args: &Args,
    notifier: N,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.bootstrap_servers)
        .set("group.id", &args.group_id)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set(
            "auto.offset.reset",
            if args.from_beginning {
                "earliest"
            } else {
                "latest"
            },
        )
        // Offsets are stored by hand once a record is handled, and committed from the store.
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false");
    for (key, value) in &args.consumer_properties {
        config.set(key, value);
    }
    let consumer: StreamConsumer<Context> = config
        .create_with_context(Context)
        .context("creating the Kafka consumer")?;
    consumer
        .subscribe(&[&args.topic])
        .with_context(|| format!("subscribing to {}", args.topic))?;
    info!(topic = %args.topic, group = %args.group_id, "consuming");

    let mut worker = Worker {
        decoder: Decoder::new(&args.registry_url)?,
        notifier,
        seen: Seen::new(args.remember),
        keys: ContactKeys {
            phone: args.phone_key.clone(),
            email: args.email_key.clone(),
        },
        counts: Counts::default(),
        stop: stop.clone(),
    };
    let mut stop = stop;
    loop {
        let received = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            m = consumer.recv() => m,
        };
        let msg = match received {
            Ok(msg) => msg,
            Err(e) => {
                warn!(error = %e, "consumer error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        if worker.handle(&msg).await.is_err() {
            break;
        }
        // Handed off: the next commit may include this record. A failure (the partition was
        // just revoked) only means the record is read again by whoever has it now.
        if let Err(e) = consumer.store_offset_from_message(&msg) {
            warn!(error = %e, "offset not stored; the record may be handled again");
        }
    }
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => warn!(error = %e, "final commit failed; the last records will be re-read"),
    }
    // Leaving the group now hands the partitions over at once rather than after a timeout.
    consumer.unsubscribe();
    drop(consumer);
    worker.counts.log();
    info!("stopped");
    Ok(())
}

struct Worker<N> {
    decoder: Decoder,
    notifier: N,
    seen: Seen,
    keys: ContactKeys,
    counts: Counts,
    stop: watch::Receiver<bool>,
}

/// Waits before the next try, doubling up to 30 s; `Err` when the consumer is stopping.
async fn back_off(stop: &mut watch::Receiver<bool>, attempt: &mut u32) -> Result<(), Stopped> {
    let delay = Duration::from_millis(200u64 << (*attempt).min(7)).min(Duration::from_secs(30));
    *attempt += 1;
    tokio::select! {
        _ = stop.wait_for(|s| *s) => Err(Stopped),
        _ = tokio::time::sleep(delay) => Ok(()),
    }
}

impl<N: Notifier> Worker<N> {
    async fn handle(&mut self, msg: &BorrowedMessage<'_>) -> Result<(), Stopped> {
        self.counts.records += 1;
        let at = format!("{}[{}]@{}", msg.topic(), msg.partition(), msg.offset());
        let Some(value) = msg.payload() else {
            warn!(record = %at, "record without a value passed over");
            self.counts.undecodable += 1;
            return Ok(());
        };
        let mut attempt = 0;
        let event: Event = loop {
            match self.decoder.decode(value).await {
                Ok(event) => break event,
                Err(DecodeError::Poison(why)) => {
                    error!(record = %at, error = %why, "record cannot be decoded; passed over");
                    self.counts.undecodable += 1;
                    return Ok(());
                }
                Err(e @ DecodeError::Registry(_)) => {
                    warn!(record = %at, error = %e, "retrying");
                    back_off(&mut self.stop, &mut attempt).await?;
                }
            }
        };
        if self.seen.contains(&event.event_id) {
            info!(record = %at, event_id = %event.event_id, "already handled (a retried webhook); not notifying again");
            self.counts.duplicates += 1;
            return Ok(());
        }
        let plan = match plan::plan(&event, &self.keys) {
            Ok(plan) => plan,
            Err(skip) => {
                if skip == Skip::NotMessageSend {
                    debug!(record = %at, category = %event.category, "not a message; nothing to notify");
                } else {
                    info!(record = %at, event_id = %event.event_id, reason = skip.reason(), "skipped");
                }
                *self.counts.skipped.entry(skip).or_default() += 1;
                return Ok(());
            }
        };
        for (member, skip) in &plan.skipped_members {
            info!(record = %at, event_id = %event.event_id, member = %member, reason = skip.reason(), "member not notified");
            *self.counts.skipped.entry(*skip).or_default() += 1;
        }
        for n in &plan.notifications {
            let mut attempt = 0;
            while let Err(e) = self.notifier.send(n).await {
                warn!(record = %at, recipient = %n.recipient, via = ?n.via, error = format!("{e:#}"), "hand-off failed; retrying");
                back_off(&mut self.stop, &mut attempt).await?;
            }
            *self.counts.notified.entry(n.via).or_default() += 1;
        }
        info!(record = %at, event_id = %event.event_id, notified = plan.notifications.len(), "handled");
        self.seen.insert(&event.event_id);
        Ok(())
    }
}
