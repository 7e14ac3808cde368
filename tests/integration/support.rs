//! Test support: the real Kafka and registry (from the environment, else testcontainers, else a
//! clear failure), `spawn_app()` on port 0, a consumer, a registry-backed Avro decoder and
//! Java's murmur2 partitioner.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use hookbridge::config::Config;
use hookbridge::providers::PROVIDERS;
use hookbridge::providers::sendbird::ApiToken;
use hookbridge::sink::avro::split_frame;
use hookbridge::startup::Application;
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use testcontainers::core::{ContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};
use tokio::net::TcpListener;
use tokio::sync::{OnceCell, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub const APP_ID: &str = "A1B2C3D4-0000-4000-8000-000000000001";
pub const TOKEN: &str = "integration-master-token";

/// Tests that need the broker as it is hold it shared; the tests that stop the broker or change
/// the registry's global state hold it exclusively, so they never disturb the others.
static BROKER_LOCK: RwLock<()> = RwLock::const_new(());

/// A test's claim on the stack. `base_env` and `spawn_app` take one, so a test cannot start a
/// gateway without holding the broker, and the tests that stop it wait for every holder.
pub struct Broker {
    pub stack: &'static Stack,
    _hold: Hold,
}

enum Hold {
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    Exclusive(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

/// The stack as it is, shared with the other tests that leave it so.
pub async fn broker() -> Broker {
    let hold = Hold::Shared(BROKER_LOCK.read().await);
    Broker {
        stack: stack().await,
        _hold: hold,
    }
}

/// The stack for this test alone: no other test runs against it meanwhile.
pub async fn broker_exclusive() -> Broker {
    let hold = Hold::Exclusive(BROKER_LOCK.write().await);
    Broker {
        stack: stack().await,
        _hold: hold,
    }
}

/// How the outage test stops and starts the broker.
pub enum BrokerControl {
    /// This repository's `scripts/stack.sh` (the stack `make stack-up` started).
    LocalStack(PathBuf),
    /// A Docker container started by these tests (paused and resumed).
    Container,
    /// Brokers given by the environment that these tests do not manage.
    None,
}

pub struct Stack {
    pub bootstrap: String,
    pub registry_url: String,
    pub control: BrokerControl,
    kafka_container: Option<ContainerAsync<GenericImage>>,
    _registry_container: Option<ContainerAsync<GenericImage>>,
}

/// Containers live on a runtime of their own: test runtimes end with their test, and the Docker
/// client's connections must outlive them (the outage test pauses the container much later).
fn docker_runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("docker runtime")
    })
}

impl Stack {
    fn kafka_container(&'static self) -> &'static ContainerAsync<GenericImage> {
        self.kafka_container
            .as_ref()
            .expect("container mode has a Kafka container")
    }

    pub async fn stop_broker(&'static self) {
        match &self.control {
            BrokerControl::LocalStack(script) => run_script(script, "kafka-stop").await,
            BrokerControl::Container => {
                let kafka = self.kafka_container();
                docker_runtime()
                    .spawn(async move {
                        // The cgroup v1 freezer can fail to freeze a busy JVM at once (runc:
                        // "unable to freeze"); a later attempt succeeds.
                        let mut attempts = 1;
                        loop {
                            match kafka.pause().await {
                                Err(e) if attempts < 10 => {
                                    eprintln!("pausing the Kafka container failed ({e}); retrying");
                                    attempts += 1;
                                    tokio::time::sleep(Duration::from_millis(500)).await;
                                }
                                result => break result,
                            }
                        }
                    })
                    .await
                    .expect("docker task")
                    .expect("pause the Kafka container")
            }
            BrokerControl::None => panic!(
                "this test stops the broker, which it can only do for the local stack \
                 (`make stack-up`, then run with KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092) or for \
                 testcontainers; brokers given by KAFKA_BOOTSTRAP_SERVERS elsewhere are not managed here"
            ),
        }
    }

    /// Freezes the broker process (SIGSTOP, or a paused container): connections stay open and
    /// requests simply wait, as with a broker stuck in a long GC pause.
    pub async fn freeze_broker(&'static self, frozen: bool) {
        match &self.control {
            BrokerControl::LocalStack(_) => {
                let pid_file = repo_root().join(".stack/kafka.pid");
                let pid = std::fs::read_to_string(&pid_file).expect("kafka.pid");
                let signal = if frozen { "-STOP" } else { "-CONT" };
                let status = tokio::process::Command::new("kill")
                    .args([signal, pid.trim()])
                    .status()
                    .await
                    .expect("kill");
                assert!(status.success(), "kill {signal} {}", pid.trim());
            }
            BrokerControl::Container => {
                if frozen {
                    self.stop_broker().await;
                } else {
                    self.start_broker().await;
                }
            }
            BrokerControl::None => panic!(
                "this test freezes the broker, which it can only do for the local stack or testcontainers"
            ),
        }
    }

    pub async fn start_broker(&'static self) {
        match &self.control {
            BrokerControl::LocalStack(script) => run_script(script, "kafka-start").await,
            BrokerControl::Container => {
                let kafka = self.kafka_container();
                docker_runtime()
                    .spawn(async move { kafka.unpause().await })
                    .await
                    .expect("docker task")
                    .expect("unpause the Kafka container")
            }
            BrokerControl::None => unreachable!("stop_broker refused first"),
        }
    }
}

async fn run_script(script: &PathBuf, verb: &str) {
    let status = tokio::process::Command::new("bash")
        .arg(script)
        .arg(verb)
        .status()
        .await
        .unwrap_or_else(|e| panic!("running {} {verb}: {e}", script.display()));
    assert!(status.success(), "{} {verb} failed", script.display());
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn docker_available() -> bool {
    Command::new("docker")
        .arg("info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The stack, started once per test process.
async fn stack() -> &'static Stack {
    static STACK: OnceCell<Stack> = OnceCell::const_new();
    STACK.get_or_init(init_stack).await
}

async fn init_stack() -> Stack {
    let from_env = (
        std::env::var("KAFKA_BOOTSTRAP_SERVERS").ok(),
        std::env::var("SCHEMA_REGISTRY_URL").ok(),
    );
    match &from_env {
        (Some(_), None) | (None, Some(_)) => panic!(
            "set both KAFKA_BOOTSTRAP_SERVERS and SCHEMA_REGISTRY_URL, or neither (then a Docker \
             daemon is used); only one is set"
        ),
        _ => {}
    }
    if let (Some(bootstrap), Some(registry_url)) = from_env {
        let script = repo_root().join("scripts/stack.sh");
        let local = bootstrap == "127.0.0.1:9092" && repo_root().join(".stack/kafka.pid").exists();
        return Stack {
            bootstrap,
            registry_url,
            control: if local {
                BrokerControl::LocalStack(script)
            } else {
                BrokerControl::None
            },
            kafka_container: None,
            _registry_container: None,
        };
    }
    if docker_available() {
        return docker_runtime()
            .spawn(start_containers())
            .await
            .expect("starting containers");
    }
    panic!(
        "integration tests need a real Kafka broker and schema registry, and found neither \
         KAFKA_BOOTSTRAP_SERVERS + SCHEMA_REGISTRY_URL nor a Docker daemon.\n\
         Start the local stack and point the tests at it:\n\
         \n    make stack-up\n    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 \
         SCHEMA_REGISTRY_URL=http://127.0.0.1:8081/apis/ccompat/v7 cargo test\n\
         \n(or simply `make test`, which does both)"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// The image `var` names (`name:tag`, as `docker run` takes it), else `default` (upstream's).
/// Where no registry can be reached, `scripts/images.sh` builds drop-ins from Maven Central jars
/// (`make test-containers` sets both variables to them).
fn image_from_env(var: &str, default: &str) -> (String, String) {
    let spec = std::env::var(var)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| default.to_owned());
    // The tag follows the last ':' after the last '/' (a registry host may carry a port).
    let name_start = spec.rfind('/').map_or(0, |i| i + 1);
    match spec[name_start..].rfind(':') {
        Some(i) => (
            spec[..name_start + i].to_owned(),
            spec[name_start + i + 1..].to_owned(),
        ),
        None => (spec, "latest".to_owned()),
    }
}

/// Labels every container of this test process, so that whoever started it can remove them
/// (the containers live in a static and are never dropped): `HOOKBRIDGE_TEST_RUN_ID`, else the pid.
fn test_run_label() -> String {
    std::env::var("HOOKBRIDGE_TEST_RUN_ID")
        .unwrap_or_else(|_| format!("pid-{}", std::process::id()))
}

async fn start_containers() -> Stack {
    let (kafka_image, kafka_tag) =
        image_from_env("HOOKBRIDGE_TEST_KAFKA_IMAGE", "apache/kafka:4.1.1");
    let (registry_image, registry_tag) = image_from_env(
        "HOOKBRIDGE_TEST_REGISTRY_IMAGE",
        "apicurio/apicurio-registry:3.3.3",
    );
    // Kafka advertises the address clients must use, so the host port is chosen up front. The
    // registry's is too: podman's Docker API reports bindings without a host IP, which
    // testcontainers' port lookup skips.
    let kafka_port = free_port();
    let registry_port = free_port();
    let kafka = GenericImage::new(kafka_image.as_str(), kafka_tag.as_str())
        .with_wait_for(WaitFor::message_on_stdout("Kafka Server started"))
        .with_exposed_port(ContainerPort::Tcp(9092))
        .with_mapped_port(kafka_port, ContainerPort::Tcp(9092))
        .with_env_var("KAFKA_NODE_ID", "1")
        .with_env_var("KAFKA_PROCESS_ROLES", "broker,controller")
        .with_env_var(
            "KAFKA_LISTENERS",
            "PLAINTEXT://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093",
        )
        .with_env_var(
            "KAFKA_ADVERTISED_LISTENERS",
            format!("PLAINTEXT://127.0.0.1:{kafka_port}"),
        )
        .with_env_var("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
        .with_env_var(
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
            "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        )
        .with_env_var("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9093")
        .with_env_var("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
        .with_env_var("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env_var("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env_var("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
        // The outage tests pause this container for up to ~20 s. With the default 9 s session
        // timeout the controller fences its own broker the moment it is resumed, moving every
        // partition's leadership away and back while the tests already talk to it again; the
        // local stack's broker is restarted instead and registers anew.
        .with_env_var("KAFKA_BROKER_SESSION_TIMEOUT_MS", "60000")
        .with_label("org.hookbridge.test-run", test_run_label())
        .with_startup_timeout(Duration::from_secs(180))
        .start()
        .await
        .unwrap_or_else(|e| panic!("start the {kafka_image}:{kafka_tag} container: {e}"));
    let registry = GenericImage::new(registry_image.as_str(), registry_tag.as_str())
        .with_wait_for(WaitFor::message_on_stdout("Installed features"))
        .with_exposed_port(ContainerPort::Tcp(8080))
        .with_mapped_port(registry_port, ContainerPort::Tcp(8080))
        .with_env_var("APICURIO_STORAGE_KIND", "sql")
        .with_env_var("APICURIO_STORAGE_SQL_KIND", "h2")
        // Confluent's default; Apicurio's is NONE.
        .with_env_var("APICURIO_RULES_GLOBAL_COMPATIBILITY", "BACKWARD")
        .with_label("org.hookbridge.test-run", test_run_label())
        .with_startup_timeout(Duration::from_secs(180))
        .start()
        .await
        .unwrap_or_else(|e| panic!("start the {registry_image}:{registry_tag} container: {e}"));
    Stack {
        bootstrap: format!("127.0.0.1:{kafka_port}"),
        registry_url: format!("http://127.0.0.1:{registry_port}/apis/ccompat/v7"),
        control: BrokerControl::Container,
        kafka_container: Some(kafka),
        _registry_container: Some(registry),
    }
}

/// A unique topic prefix per test, so tests never see each other's records.
pub fn unique_prefix(test: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("it-{test}-{:x}{n}.", nanos % 0xffff_ffff)
}

/// Base settings for a test gateway, as environment variables would give them.
pub async fn base_env(broker: &Broker, prefix: &str) -> BTreeMap<String, String> {
    let s = broker.stack;
    [
        ("HOOKBRIDGE_KAFKA_BROKERS", s.bootstrap.as_str()),
        ("HOOKBRIDGE_SCHEMA_REGISTRY_URL", s.registry_url.as_str()),
        ("HOOKBRIDGE_SENDBIRD_APP_ID", APP_ID),
        ("HOOKBRIDGE_SENDBIRD_API_TOKENS", TOKEN),
        ("HOOKBRIDGE_TOPIC_PREFIX", prefix),
        ("HOOKBRIDGE_TOPIC_PARTITIONS", "6"),
        ("HOOKBRIDGE_HTTP_ADDR", "127.0.0.1:0"),
        ("HOOKBRIDGE_ADMIN_ADDR", "127.0.0.1:0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

pub struct TestApp {
    pub http: SocketAddr,
    pub admin: SocketAddr,
    pub prefix: String,
    pub client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub fn topic(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// POSTs `body` signed with the test token to the single-app route.
    pub async fn post_signed(&self, body: &[u8]) -> reqwest::Response {
        self.post_with_signature(body, Some(&sign(body))).await
    }

    pub async fn post_with_signature(
        &self,
        body: &[u8],
        signature: Option<&str>,
    ) -> reqwest::Response {
        self.post_to(
            "/webhooks/sendbird",
            body,
            &[("x-sendbird-signature", signature)],
        )
        .await
    }

    /// POSTs `body` to `path` with the given headers (`None` values are left out).
    pub async fn post_to(
        &self,
        path: &str,
        body: &[u8],
        headers: &[(&str, Option<&str>)],
    ) -> reqwest::Response {
        let mut rb = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .header("user-agent", "SendBird")
            .body(body.to_vec());
        for (name, value) in headers {
            if let Some(value) = value {
                rb = rb.header(*name, *value);
            }
        }
        rb.send().await.expect("request reaches the gateway")
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("http://{}/metrics", self.admin))
            .send()
            .await
            .expect("admin answers")
            .text()
            .await
            .expect("metrics text")
    }

    /// Stops the gateway the way SIGTERM does and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("gateway task")
                .expect("gateway stops cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn sign(body: &[u8]) -> String {
    ApiToken::parse(TOKEN).expect("valid token").sign(body)
}

/// Starts a gateway on port 0 against the real stack with the default settings.
pub async fn spawn_app(broker: &Broker, test: &str) -> TestApp {
    let prefix = unique_prefix(test);
    let env = base_env(broker, &prefix).await;
    spawn_app_with(&prefix, env, None).await
}

/// Starts a gateway with these settings and, optionally, a TOML config file's text.
pub async fn spawn_app_with(
    prefix: &str,
    env: BTreeMap<String, String>,
    toml: Option<&str>,
) -> TestApp {
    let file = toml.map(|text| {
        let f = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(f.path(), text).expect("write config");
        f
    });
    let config = Config::from_sources(file.as_ref().map(|f| f.path()), &env, &PROVIDERS)
        .expect("valid config");
    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
    let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
    let app = Application::build_with_listeners(config, http, admin)
        .await
        .expect("gateway starts against the real stack");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let http_addr = app.http_addr();
    let admin_addr = app.admin_addr();
    let task = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    TestApp {
        http: http_addr,
        admin: admin_addr,
        prefix: prefix.to_owned(),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client"),
        shutdown: Some(tx),
        task: Some(task),
    }
}

/// A consumer in a group of its own, reading `topics` from the beginning.
async fn subscribe_from_start(topics: &[String]) -> StreamConsumer {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack().await.bootstrap)
        .set("group.id", unique_prefix("group"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&refs).expect("subscribe");
    consumer
}

/// Reads every record of `topics` from the beginning until `expected` arrived or `timeout`
/// passed (then returns what it has, so the caller's assertion explains the difference).
pub async fn consume(topics: &[String], expected: usize, timeout: Duration) -> Vec<OwnedMessage> {
    let consumer = subscribe_from_start(topics).await;
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while out.len() < expected {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(m)) => out.push(m.detach()),
            Ok(Err(e)) => panic!("consumer error: {e}"),
            Err(_) => break,
        }
    }
    out
}

/// Reads `topics` from the beginning until a record with header `hookbridge-event-id` equal to
/// `marker` arrived, then `quiet` longer, and returns everything seen. The marker is sent last,
/// so anything that should not be there would have arrived before it.
pub async fn consume_through_marker(
    topics: &[String],
    marker: &str,
    quiet: Duration,
) -> Vec<OwnedMessage> {
    let consumer = subscribe_from_start(topics).await;
    let mut out: Vec<OwnedMessage> = Vec::new();
    let mut deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut seen_marker = false;
    loop {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(m)) => {
                let m = m.detach();
                if !seen_marker && header(&m, "hookbridge-event-id") == Some(marker.as_bytes()) {
                    seen_marker = true;
                    deadline = tokio::time::Instant::now() + quiet;
                }
                out.push(m);
            }
            Ok(Err(e)) => panic!("consumer error: {e}"),
            Err(_) => break,
        }
    }
    assert!(seen_marker, "the marker record never arrived");
    out
}

/// The sum of a Prometheus counter over the series carrying these labels (0 when absent).
pub fn counter_value(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            series.starts_with(&format!("{name}{{"))
                && labels
                    .iter()
                    .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|(_, v)| v.parse::<f64>().ok())
        .sum()
}

/// Every topic a gateway with this prefix writes to.
pub fn all_topics(app: &TestApp) -> Vec<String> {
    [
        "group_channel",
        "open_channel",
        "user",
        "moderation",
        "announcement",
        "notification",
        "other",
        "dlq",
    ]
    .iter()
    .map(|f| app.topic(f))
    .collect()
}

pub fn header<'a>(m: &'a OwnedMessage, name: &str) -> Option<&'a [u8]> {
    m.headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
}

/// Decodes a Confluent-framed value with the writer schema fetched from the registry by id,
/// as a consumer with the stock deserializers would.
pub async fn decode(value: &[u8]) -> BTreeMap<String, Value> {
    static SCHEMAS: OnceLock<std::sync::Mutex<BTreeMap<u32, &'static Schema>>> = OnceLock::new();
    let (id, mut datum) = split_frame(value).expect("Confluent wire format");
    let cached = SCHEMAS
        .get_or_init(Default::default)
        .lock()
        .expect("lock")
        .get(&id)
        .copied();
    let schema = match cached {
        Some(s) => s,
        None => {
            let url = format!("{}/schemas/ids/{id}", stack().await.registry_url);
            let answer: serde_json::Value = reqwest::get(&url)
                .await
                .expect("registry answers")
                .json()
                .await
                .expect("registry JSON");
            let text = answer["schema"].as_str().expect("schema text");
            let schema: &'static Schema = Box::leak(Box::new(
                Schema::parse_str(text).expect("registered schema parses"),
            ));
            SCHEMAS
                .get_or_init(Default::default)
                .lock()
                .expect("lock")
                .insert(id, schema);
            schema
        }
    };
    let value = GenericDatumReader::builder(schema)
        .build()
        .expect("reader")
        .read_value(&mut datum)
        .expect("datum decodes with the registered schema");
    assert!(datum.is_empty(), "trailing bytes after the datum");
    let Value::Record(fields) = value else {
        panic!("top level is not a record")
    };
    fields.into_iter().collect()
}

/// A union's value, or the value itself.
pub fn unwrap_union(v: &Value) -> &Value {
    match v {
        Value::Union(_, inner) => inner,
        other => other,
    }
}

pub fn string_field(record: &BTreeMap<String, Value>, name: &str) -> Option<String> {
    match unwrap_union(record.get(name)?) {
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// Java's `Utils.murmur2`, as the Java producer's default partitioner uses it.
pub fn murmur2(data: &[u8]) -> i32 {
    let seed: u32 = 0x9747_b28c;
    let m: u32 = 0x5bd1_e995;
    let r = 24;
    let length = data.len();
    let mut h: u32 = seed ^ (length as u32);
    let chunks = length / 4;
    for i in 0..chunks {
        let i4 = i * 4;
        let mut k = u32::from(data[i4])
            | (u32::from(data[i4 + 1]) << 8)
            | (u32::from(data[i4 + 2]) << 16)
            | (u32::from(data[i4 + 3]) << 24);
        k = k.wrapping_mul(m);
        k ^= k >> r;
        k = k.wrapping_mul(m);
        h = h.wrapping_mul(m);
        h ^= k;
    }
    let tail = &data[chunks * 4..];
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(m);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(m);
    h ^= h >> 15;
    h as i32
}

/// The partition Java's default partitioner picks for `key`.
pub fn java_partition(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = repo_root()
        .join("tests/fixtures/sendbird")
        .join(format!("{name}.json"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every fixture, as (category, body).
pub fn all_fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = repo_root().join("tests/fixtures/sendbird");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .filter_map(|e| {
            let path = e.ok()?.path();
            (path.extension()? == "json").then(|| {
                let category = path.file_stem()?.to_str()?.replace("__", ":");
                Some((category, std::fs::read(&path).ok()?))
            })?
        })
        .collect();
    out.sort();
    out
}

/// The `hookbridge` binary, without the `HOOKBRIDGE_*` and `OTEL_*` variables of whoever runs
/// the tests: a command's result must not depend on the developer's or CI's environment.
pub fn hookbridge() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookbridge"));
    for (key, _) in
        std::env::vars().filter(|(k, _)| k.starts_with("HOOKBRIDGE_") || k.starts_with("OTEL_"))
    {
        cmd.env_remove(key);
    }
    cmd
}

/// `hookbridge serve`, the real binary, with exactly `env` (plus free listener addresses),
/// stderr kept in a file, ready when `start` returns, and killed if the test ends first.
pub struct Serve {
    pub child: std::process::Child,
    pub http: String,
    pub admin: String,
    log: tempfile::NamedTempFile,
}

impl Serve {
    /// Starts `hookbridge serve` on port 0 and waits for its ready line, which names the
    /// addresses it bound: a port picked free beforehand can be taken by another process (a
    /// container's port mapping, another test's gateway) before the gateway binds it.
    pub async fn start(mut env: BTreeMap<String, String>) -> Serve {
        env.insert("HOOKBRIDGE_HTTP_ADDR".into(), "127.0.0.1:0".into());
        env.insert("HOOKBRIDGE_ADMIN_ADDR".into(), "127.0.0.1:0".into());
        let log = tempfile::NamedTempFile::new().expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_hookbridge"))
            .arg("serve")
            .env_clear()
            .envs(&env)
            .stdout(std::process::Stdio::null())
            .stderr(log.reopen().expect("log handle"))
            .spawn()
            .expect("start hookbridge serve");
        let mut serve = Serve {
            child,
            http: String::new(),
            admin: String::new(),
            log,
        };
        for _ in 0..240 {
            if let Some((http, admin)) = ready_addresses(&serve.logs()) {
                (serve.http, serve.admin) = (http, admin);
                if reqwest::get(&serve.readyz())
                    .await
                    .is_ok_and(|r| r.status() == 200)
                {
                    return serve;
                }
            }
            if let Ok(Some(status)) = serve.child.try_wait() {
                panic!("gateway exited with {status}:\n{}", serve.logs());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("gateway never became ready:\n{}", serve.logs())
    }

    pub fn readyz(&self) -> String {
        format!("http://{}/readyz", self.admin)
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Sends SIGTERM, as Kubernetes stops a pod.
    pub fn terminate(&self) {
        let kill = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(kill.success());
    }

    /// The exit status, waiting up to `timeout` after a stop (`None` if still running).
    pub async fn exit_within(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The addresses in the gateway's "hookbridge ready" line, as JSON or text logs write them.
fn ready_addresses(logs: &str) -> Option<(String, String)> {
    let line = logs.lines().find(|l| l.contains("hookbridge ready"))?;
    let field = |name: &str| {
        let at = line.find(name)? + name.len();
        let value: String = line[at..]
            .trim_start_matches(['"', ':', '='])
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
            .collect();
        (!value.is_empty()).then_some(value)
    };
    Some((field("http_addr")?, field("admin_addr")?))
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
