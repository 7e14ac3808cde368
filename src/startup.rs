//! The one start-up seam, used by `main` and the tests alike: build the application from a
//! config and bound listeners (port 0 in tests), expose its addresses, run until a shutdown
//! future resolves, then drain.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{Config, RegistryConfig};
use crate::http::listener::ListenerLimits;
use crate::http::{AdminState, WebhookState, admin_router, webhook_router};
use crate::providers::{BuildContext, PROVIDERS, SchemaFile};
use crate::sink::kafka::{self, BrokerHealth, KafkaPublisher, Publisher};
use crate::sink::registry::RegistryClient;
use crate::telemetry;
use crate::topic::TopicName;

/// How long start-up waits for Kafka to answer before giving up.
const KAFKA_STARTUP_WAIT: Duration = Duration::from_secs(30);

/// The admin listener, served from the start of start-up so `/livez` answers (and `/readyz`
/// says 503) while the registry and Kafka are being reached. Dropping it stops it.
struct AdminServer {
    addr: SocketAddr,
    state: Arc<AdminState>,
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl AdminServer {
    fn start(listener: TcpListener, health: Arc<BrokerHealth>) -> anyhow::Result<AdminServer> {
        let addr = listener.local_addr()?;
        let state = Arc::new(AdminState::new(health));
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(
            axum::serve(listener, admin_router(state.clone()))
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .into_future(),
        );
        Ok(AdminServer {
            addr,
            state,
            stop,
            task: Some(task),
        })
    }

    async fn shut_down(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
        }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

pub struct Application {
    http: TcpListener,
    admin: AdminServer,
    webhook: Arc<WebhookState>,
    publisher: Arc<dyn Publisher>,
    background: Vec<JoinHandle<()>>,
    shutdown_timeout: Duration,
    listener_limits: ListenerLimits,
}

/// Resolves the schema id of every event topic's `<topic>-value` subject: registers the topic's
/// schema, or with auto-registration off looks it up and fails if it is absent.
pub async fn resolve_schema_ids(
    registry: &RegistryConfig,
    topics: &[(TopicName, &'static SchemaFile)],
) -> anyhow::Result<HashMap<TopicName, u32>> {
    let client = RegistryClient::new(registry)?;
    let mut ids = HashMap::new();
    for (topic, schema) in topics {
        let subject = topic.value_subject();
        let id = if registry.auto_register {
            client
                .register(&subject, schema.json)
                .await
                .with_context(|| format!("registering {} under {subject}", schema.path))?
        } else {
            match client.lookup(&subject, schema.json).await? {
                Some(id) => id,
                None => bail!(
                    "schema {} is not registered under {subject} and auto_register_schemas is false",
                    schema.path
                ),
            }
        };
        tracing::info!(
            subject,
            schema = schema.path,
            schema_id = id,
            "schema id resolved"
        );
        ids.insert(topic.clone(), id);
    }
    Ok(ids)
}

async fn wait_for_kafka(
    publisher: &KafkaPublisher,
    brokers: &str,
) -> anyhow::Result<kafka::ClusterView> {
    let give_up = Instant::now() + KAFKA_STARTUP_WAIT;
    loop {
        match publisher.metadata(Duration::from_secs(5)).await {
            Ok(view) => return Ok(view),
            Err(e) if Instant::now() < give_up => {
                tracing::warn!(error = %e, "kafka not answering yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => {
                return Err(e).context(format!(
                    "kafka at {brokers} did not answer a metadata request within {}s",
                    KAFKA_STARTUP_WAIT.as_secs()
                ));
            }
        }
    }
}

/// How long start-up waits for every partition of the gateway's topics to have a leader.
const LEADER_WAIT: Duration = Duration::from_secs(30);

/// Waits until every partition of `topics` has a leader, so readiness is not claimed while the
/// first records would meet partitions still being created (the chaos suite saw first writes
/// fail there). Gives up with a warning after [`LEADER_WAIT`]: readiness then still reports
/// missing topics.
async fn wait_for_leaders(
    publisher: &KafkaPublisher,
    topics: &[String],
) -> anyhow::Result<kafka::ClusterView> {
    let give_up = Instant::now() + LEADER_WAIT;
    loop {
        let view = publisher.metadata(Duration::from_secs(5)).await?;
        let waiting: Vec<&String> = topics
            .iter()
            .filter(|t| view.topics.contains(t) && view.leaderless.contains(t))
            .collect();
        if waiting.is_empty() {
            return Ok(view);
        }
        if Instant::now() >= give_up {
            tracing::warn!(topics = ?waiting, "partitions still without a leader; starting anyway");
            return Ok(view);
        }
        tracing::info!(topics = ?waiting, "waiting for partition leaders");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Application {
    /// Binds the configured addresses and builds against the real registry and Kafka.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let (http_addr, admin_addr) = (config.server.http_addr, config.server.admin_addr);
        let http = TcpListener::bind(http_addr)
            .await
            .with_context(|| format!("binding http_addr {http_addr}"))?;
        let admin = TcpListener::bind(admin_addr)
            .await
            .with_context(|| format!("binding admin_addr {admin_addr}"))?;
        Application::build_with_listeners(config, http, admin).await
    }

    /// Builds against the real registry and Kafka on listeners the caller bound.
    pub async fn build_with_listeners(
        config: Config,
        http: TcpListener,
        admin: TcpListener,
    ) -> anyhow::Result<Application> {
        let started = Instant::now();
        let health = Arc::new(BrokerHealth::default());
        let admin = AdminServer::start(admin, health.clone())?;
        let event_topics = PROVIDERS
            .event_topics(&config.sources)
            .map_err(anyhow::Error::msg)?;
        let schema_ids = resolve_schema_ids(&config.registry, &event_topics).await?;

        let publisher = KafkaPublisher::new(&config.kafka)
            .map_err(|e| anyhow::anyhow!("creating the Kafka producer: {e}"))?;
        let cluster = wait_for_kafka(&publisher, &config.kafka.brokers).await?;
        let all_topics = PROVIDERS
            .all_topics(&config.sources)
            .map_err(anyhow::Error::msg)?;
        if config.kafka.create_topics {
            let created = kafka::ensure_topics(&config.kafka, &cluster, &all_topics)
                .await
                .map_err(anyhow::Error::msg)?;
            if !created.is_empty() {
                tracing::info!(topics = ?created, "created topics");
            }
        }
        let cluster = publisher.metadata(Duration::from_secs(5)).await?;
        match kafka::undersized_topics(&config.kafka, &all_topics, &cluster.replicas).await {
            Ok(sizes) => {
                if !sizes.weak_insync.is_empty() {
                    let list: Vec<String> = sizes
                        .weak_insync
                        .iter()
                        .map(|(t, m, r)| format!("{t} (min.insync.replicas={m}, {r} copies)"))
                        .collect();
                    bail!(
                        "topics would let acks=all succeed with a single copy: {}; set min.insync.replicas to at least 2 (kafka-configs --alter --add-config min.insync.replicas=2)",
                        list.join(", ")
                    );
                }
                for why in sizes.unchecked {
                    tracing::warn!(topic = why, "could not check the topic's max.message.bytes");
                }
                for (topic, limit) in sizes.too_small {
                    tracing::warn!(
                        topic,
                        max_message_bytes = limit,
                        required = kafka::required_topic_message_bytes(&config.kafka),
                        "topic accepts smaller records than large bodies make; such webhooks will get 503 until max.message.bytes is raised"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not check the topics' max.message.bytes"),
        }
        let topic_names: Vec<String> = all_topics.iter().map(|t| t.to_string()).collect();
        let view = wait_for_leaders(&publisher, &topic_names).await?;
        let missing: Vec<String> = topic_names
            .iter()
            .filter(|t| !view.topics.contains(t))
            .cloned()
            .collect();
        if !missing.is_empty() {
            tracing::error!(topics = ?missing, "topics do not exist; create them or set create_topics = true");
        }
        health.record_ok(telemetry::now_ms(), missing);
        let watcher = tokio::spawn(kafka::watch_brokers(
            publisher.clone(),
            topic_names,
            health.clone(),
        ));

        let mut app =
            Application::assemble_with(&config, http, admin, Arc::new(publisher), &schema_ids)?;
        app.background.push(watcher);
        tracing::info!(
            http_addr = %app.http_addr(),
            admin_addr = %app.admin_addr(),
            brokers = cluster.brokers,
            startup_ms = started.elapsed().as_millis() as u64,
            "hookbridge ready"
        );
        Ok(app)
    }

    /// Puts the parts together; tests use it directly with their own [`Publisher`] and schema
    /// ids (one for every topic of `PROVIDERS.event_topics`).
    pub fn assemble(
        config: &Config,
        http: TcpListener,
        admin: TcpListener,
        publisher: Arc<dyn Publisher>,
        schema_ids: &HashMap<TopicName, u32>,
        health: Arc<BrokerHealth>,
    ) -> anyhow::Result<Application> {
        let admin = AdminServer::start(admin, health)?;
        Application::assemble_with(config, http, admin, publisher, schema_ids)
    }

    fn assemble_with(
        config: &Config,
        http: TcpListener,
        admin: AdminServer,
        publisher: Arc<dyn Publisher>,
        schema_ids: &HashMap<TopicName, u32>,
    ) -> anyhow::Result<Application> {
        telemetry::prometheus();
        telemetry::spawn_metrics_upkeep();
        let providers: Vec<&'static str> = config.sources.list.iter().map(|s| s.provider).collect();
        telemetry::preregister(&providers);
        crate::otel::set_sampling_ratio(config.tracing.sampling_ratio);
        let context = BuildContext {
            limits: &config.limits,
            schema_ids,
        };
        let sources = PROVIDERS
            .sources(&config.sources, &context)
            .map_err(anyhow::Error::msg)?;
        let mut background = Vec::new();
        if let Some(watch) = PROVIDERS.watch_secrets(&config.sources, &sources) {
            background.push(tokio::spawn(watch));
        }
        let webhook = WebhookState::new(&config.limits, sources, publisher.clone())
            .map_err(anyhow::Error::msg)?;
        let edge = &config.limits.edge;
        Ok(Application {
            http,
            admin,
            webhook: Arc::new(webhook),
            publisher,
            background,
            shutdown_timeout: config.server.shutdown_timeout,
            listener_limits: ListenerLimits {
                header_read_timeout: edge.header_read_timeout,
                idle_timeout: edge.idle_timeout,
                max_connections: edge.max_connections.get(),
            },
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
            .local_addr()
            .expect("a bound TCP listener has a local address")
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.addr
    }

    /// Serves until `shutdown` resolves, then: readiness 503, stop accepting, let in-flight
    /// requests finish (for up to `shutdown_timeout` less the flush budget), flush the producer
    /// with what is left of `shutdown_timeout`. Requests still running after that are not
    /// answered; they end when the process exits.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_http, http_stopped) = tokio::sync::watch::channel(false);
        let mut http_task = tokio::spawn(crate::http::listener::serve(
            self.http,
            webhook_router(self.webhook.clone()),
            self.listener_limits,
            http_stopped,
        ));

        let mut http_done = None;
        tokio::select! {
            () = shutdown => tracing::info!("shutdown requested; draining"),
            result = &mut http_task => {
                tracing::error!(?result, "webhook listener stopped unexpectedly");
                http_done = Some(result);
            }
        }
        let deadline = Instant::now() + self.shutdown_timeout;
        // Keep part of the budget for flushing what the drained requests produced.
        let flush_budget = crate::config::flush_budget(self.shutdown_timeout);
        self.admin.state.start_draining();
        let _ = stop_http.send(true);
        if http_done.is_none() {
            match tokio::time::timeout_at(deadline - flush_budget, &mut http_task).await {
                Ok(_) => tracing::info!("in-flight requests finished"),
                Err(_) => {
                    // Their senders get no answer and retry; what they produced is flushed below.
                    tracing::warn!(
                        "in-flight requests did not finish in time; they end with the process"
                    );
                    http_task.abort();
                }
            }
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        match self.publisher.flush(remaining).await {
            Ok(()) => tracing::info!("producer flushed"),
            Err(e) => tracing::warn!(error = %e, "producer flush incomplete"),
        }
        self.admin.shut_down().await;
        for task in self.background {
            task.abort();
        }
        if let Some(result) = http_done {
            result
                .context("webhook listener task")?
                .context("webhook listener")?;
            bail!("webhook listener stopped unexpectedly");
        }
        tracing::info!("hookbridge stopped");
        Ok(())
    }
}
