//! Configuration: a TOML file (`HOOKBRIDGE_CONFIG`) layered under `HOOKBRIDGE_*` environment
//! variables, checked at start-up. Every problem is reported at once, each with the setting's
//! name, so a bad deploy fails before the first webhook. Secrets never reach `Debug` output.
//!
//! The result is one typed section per component: [`ServerConfig`], [`Limits`], [`KafkaConfig`],
//! [`RegistryConfig`] and [`SourcesConfig`]. Loading names no provider: what is provider-specific
//! about a source is checked through a [`Catalog`], which the providers' registry implements.

mod edge;
mod effective;
mod kafka;
mod otel;
mod registry;
mod sources;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use figment::value::Dict;
use serde::Deserialize;

pub use edge::EdgeLimits;
pub use kafka::{MAX_QUEUE_KBYTES, RESERVED_KAFKA_PROPERTIES, canonical_kafka_property};
pub use otel::TracingConfig;
pub use registry::{RegistryConfig, RegistrySettings, RegistryTls, read_bearer_token};
pub use sources::{
    Catalog, RawRoute, RawSource, SourceConfig, SourceDraft, SourceId, SourcesConfig, check_routes,
    check_secrets, gather_secrets, read_secrets_file, secret_lines,
};

/// A value that must never be printed: tokens, passwords.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The raw value, for the few places that must hand it on (HMAC key, rdkafka, HTTP auth).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(effective::REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(effective::REDACTED)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// The listeners, logging and shutdown.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub http_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub log_format: LogFormat,
    pub log_level: String,
    pub shutdown_timeout: Duration,
}

/// What one request may cost: body size, time, concurrency, and the edge bounds.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_body_bytes: NonZeroUsize,
    pub publish_timeout: Duration,
    pub max_in_flight: NonZeroUsize,
    pub edge: EdgeLimits,
    /// Longest typed array kept in a record; longer ones are left out of the typed view and
    /// named in `truncated`.
    pub max_typed_items: NonZeroUsize,
    /// Longest free text (a message's text or data, a channel's data) kept typed, in bytes of
    /// its JSON text; a longer one is left out of the typed view and named in `truncated`, so a
    /// large message is not carried twice (`raw_body` always holds it).
    pub max_typed_text_bytes: NonZeroUsize,
}

/// `max_typed_text_bytes` unless configured: chat texts are far shorter; a body whose text is
/// longer is written to Kafka once rather than twice.
pub const DEFAULT_MAX_TYPED_TEXT_BYTES: usize = 64 * 1024;

impl Limits {
    /// The largest record value the gateway produces: an Avro record holds the raw body plus
    /// typed copies of parts of it (the acting user twice, as `sender` and `actor`), and Avro
    /// adds a byte per absent optional field, which for JSON of empty objects (`{}` is two bytes
    /// for nine null fields) can exceed the body again: four times the body bounds it.
    /// Producer and created topics are sized from this; a record that would still exceed it
    /// is dead-lettered as raw bytes instead.
    pub fn max_record_bytes(&self) -> usize {
        max_record_bytes_for(self.max_body_bytes.get())
    }
}

/// The producer and topic administration.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    pub brokers: String,
    /// Extra librdkafka properties; values may be secrets (SASL passwords), hence `Secret`.
    pub properties: BTreeMap<String, Secret>,
    /// The properties whose values were read from files (librdkafka's name -> the file), so the
    /// effective configuration names the file rather than print the value.
    pub property_files: BTreeMap<String, PathBuf>,
    pub create_topics: bool,
    pub topic_partitions: NonZeroU32,
    pub topic_replication_factor: Option<NonZeroU16>,
    /// From [`Limits::max_record_bytes`]: what producer and created topics must accept.
    pub max_record_bytes: usize,
}

impl KafkaConfig {
    /// Whether the value of librdkafka property `key` must never be shown: a credential by its
    /// name, or any value read from a file (`kafka_property_files`).
    pub fn is_secret(&self, key: &str) -> bool {
        self.property_files.contains_key(key) || effective::is_secret_property(key)
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub server: ServerConfig,
    pub limits: Limits,
    pub kafka: KafkaConfig,
    pub registry: RegistryConfig,
    pub sources: SourcesConfig,
    pub tracing: TracingConfig,
}

/// The file's and the environment's shape, before checking. Loose types on purpose: checking
/// happens in one pass so that every problem is reported together. Settings a provider owns
/// (its older forms) are taken out before this is read.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    http_addr: Option<String>,
    admin_addr: Option<String>,
    kafka_brokers: Option<String>,
    schema_registry_url: Option<String>,
    schema_registry_username: Option<String>,
    schema_registry_password_file: Option<PathBuf>,
    schema_registry_bearer_token_file: Option<PathBuf>,
    schema_registry_ca_file: Option<PathBuf>,
    schema_registry_client_cert_file: Option<PathBuf>,
    schema_registry_client_key_file: Option<PathBuf>,
    log_format: Option<String>,
    log_level: Option<String>,
    max_body_bytes: Option<u64>,
    publish_timeout: Option<String>,
    max_in_flight: Option<u64>,
    header_read_timeout: Option<String>,
    idle_timeout: Option<String>,
    max_connections: Option<u64>,
    max_buffered_bytes: Option<u64>,
    buffer_wait: Option<String>,
    body_min_rate: Option<u64>,
    body_rate_grace: Option<String>,
    max_requests_per_client: Option<u64>,
    trusted_proxies: Option<StringOrList>,
    max_typed_items: Option<u64>,
    max_typed_text_bytes: Option<u64>,
    shutdown_timeout: Option<String>,
    create_topics: Option<bool>,
    topic_partitions: Option<u64>,
    topic_replication_factor: Option<u64>,
    auto_register_schemas: Option<bool>,
    tokens_reload_interval: Option<String>,
    otel_endpoint: Option<String>,
    otel_service_name: Option<String>,
    otel_sampling_ratio: Option<f64>,
    sources: Vec<RawSource>,
    kafka_properties: BTreeMap<String, String>,
    kafka_property_files: BTreeMap<String, PathBuf>,
}

/// A list given as a TOML array, or as one comma-separated string (the environment's form).
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(untagged)]
enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    fn items(&self) -> Vec<&str> {
        match self {
            StringOrList::One(s) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect(),
            StringOrList::Many(v) => v.iter().map(|s| s.trim()).collect(),
        }
    }
}

#[derive(Clone, Copy)]
enum EnvKind {
    Text,
    Integer,
    Number,
    Boolean,
}

/// The environment variables read, `HOOKBRIDGE_` + the key in upper case, besides the catalog's
/// legacy ones (read as text). Only these are read: Kubernetes injects service-link
/// variables such as `HOOKBRIDGE_PORT` for a Service named `hookbridge`, and those must not
/// break start-up.
const ENV_KEYS: &[(&str, EnvKind)] = &[
    ("http_addr", EnvKind::Text),
    ("admin_addr", EnvKind::Text),
    ("kafka_brokers", EnvKind::Text),
    ("schema_registry_url", EnvKind::Text),
    ("schema_registry_username", EnvKind::Text),
    ("schema_registry_password_file", EnvKind::Text),
    ("schema_registry_bearer_token_file", EnvKind::Text),
    ("schema_registry_ca_file", EnvKind::Text),
    ("schema_registry_client_cert_file", EnvKind::Text),
    ("schema_registry_client_key_file", EnvKind::Text),
    ("log_format", EnvKind::Text),
    ("log_level", EnvKind::Text),
    ("max_body_bytes", EnvKind::Integer),
    ("publish_timeout", EnvKind::Text),
    ("max_in_flight", EnvKind::Integer),
    ("header_read_timeout", EnvKind::Text),
    ("idle_timeout", EnvKind::Text),
    ("max_connections", EnvKind::Integer),
    ("max_buffered_bytes", EnvKind::Integer),
    ("buffer_wait", EnvKind::Text),
    ("body_min_rate", EnvKind::Integer),
    ("body_rate_grace", EnvKind::Text),
    ("max_requests_per_client", EnvKind::Integer),
    ("trusted_proxies", EnvKind::Text),
    ("max_typed_items", EnvKind::Integer),
    ("max_typed_text_bytes", EnvKind::Integer),
    ("shutdown_timeout", EnvKind::Text),
    ("create_topics", EnvKind::Boolean),
    ("topic_partitions", EnvKind::Integer),
    ("topic_replication_factor", EnvKind::Integer),
    ("auto_register_schemas", EnvKind::Boolean),
    ("tokens_reload_interval", EnvKind::Text),
    ("otel_endpoint", EnvKind::Text),
    ("otel_service_name", EnvKind::Text),
    ("otel_sampling_ratio", EnvKind::Number),
];

/// The standard OpenTelemetry variables read, and the setting each stands for. They are below
/// the file and the `HOOKBRIDGE_*` variables.
const OTEL_ENV_KEYS: &[(&str, &str)] = &[
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "otel_endpoint"),
    ("OTEL_SERVICE_NAME", "otel_service_name"),
];

pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 256 * 1024 * 1024;

/// The most one request of `body` bytes holds of `max_buffered_bytes`: the body itself and the
/// record built from it (see [`Limits::max_record_bytes`]).
pub fn record_budget(body: usize) -> usize {
    body + max_record_bytes_for(body)
}

/// See [`Limits::max_record_bytes`].
pub fn max_record_bytes_for(body: usize) -> usize {
    body * 4 + 64 * 1024
}

/// Of `shutdown_timeout`, the part kept for flushing the producer after requests drained.
pub fn flush_budget(shutdown_timeout: Duration) -> Duration {
    (shutdown_timeout / 3).min(Duration::from_secs(5))
}

/// Of `shutdown_timeout`, the part in-flight requests get to finish.
pub fn drain_budget(shutdown_timeout: Duration) -> Duration {
    shutdown_timeout.saturating_sub(flush_budget(shutdown_timeout))
}

/// All problems found in a configuration, each naming its setting.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigErrors(pub Vec<String>);

impl Config {
    /// Loads from `HOOKBRIDGE_CONFIG` (if set) and the process environment, as `serve` does
    /// without `--config`.
    pub fn load(catalog: &dyn Catalog) -> Result<Config, ConfigErrors> {
        let env = Config::process_env();
        let file = env.get("HOOKBRIDGE_CONFIG").map(PathBuf::from);
        Config::from_sources(file.as_deref(), &env, catalog)
    }

    /// The environment loading reads: `HOOKBRIDGE_*` and the few standard `OTEL_*` variables.
    /// `HOOKBRIDGE_CONFIG` (the file) is read by the commands, as their `--config` default.
    pub fn process_env() -> BTreeMap<String, String> {
        std::env::vars()
            .filter(|(k, _)| {
                k.starts_with("HOOKBRIDGE_") || OTEL_ENV_KEYS.iter().any(|(var, _)| var == k)
            })
            .collect()
    }

    /// Loads from an optional TOML file and a map of environment variables (tests pass their own).
    pub fn from_sources(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
        catalog: &dyn Catalog,
    ) -> Result<Config, ConfigErrors> {
        let text = match file {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                ConfigErrors(vec![format!(
                    "HOOKBRIDGE_CONFIG: cannot read {}: {e}",
                    path.display()
                )])
            })?),
            None => None,
        };
        Config::from_toml_str(text.as_deref(), env, catalog)
    }

    /// Loads from the text of a TOML file (if any) and a map of environment variables.
    pub fn from_toml_str(
        toml: Option<&str>,
        env: &BTreeMap<String, String>,
        catalog: &dyn Catalog,
    ) -> Result<Config, ConfigErrors> {
        let mut figment = Figment::new();
        for (var, key) in OTEL_ENV_KEYS {
            if let Some(value) = env.get(*var).map(|v| v.trim()).filter(|v| !v.is_empty()) {
                figment = figment.merge(Serialized::default(key, value));
            }
        }
        if let Some(text) = toml {
            figment = figment.merge(Toml::string(text));
        }
        let mut errors = Vec::new();
        let legacy_keys = catalog.legacy_keys();
        let env_keys = ENV_KEYS.iter().copied().chain(
            catalog
                .legacy_env_keys()
                .into_iter()
                .map(|k| (k, EnvKind::Text)),
        );
        for (key, kind) in env_keys {
            let var = format!("HOOKBRIDGE_{}", key.to_ascii_uppercase());
            let Some(value) = env.get(&var) else { continue };
            let value = value.trim();
            figment = match kind {
                EnvKind::Text => figment.merge(Serialized::default(key, value)),
                EnvKind::Integer => match value.parse::<u64>() {
                    Ok(n) => figment.merge(Serialized::default(key, n)),
                    Err(_) => {
                        errors.push(format!("{var}: expected a whole number, got {value:?}"));
                        figment
                    }
                },
                EnvKind::Number => match value.parse::<f64>() {
                    Ok(n) if n.is_finite() => figment.merge(Serialized::default(key, n)),
                    _ => {
                        errors.push(format!("{var}: expected a number, got {value:?}"));
                        figment
                    }
                },
                EnvKind::Boolean => match value.to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" => figment.merge(Serialized::default(key, true)),
                    "false" | "0" | "no" => figment.merge(Serialized::default(key, false)),
                    _ => {
                        errors.push(format!("{var}: expected true or false, got {value:?}"));
                        figment
                    }
                },
            };
        }
        // A file that does not parse as TOML: that is the one problem to report.
        let mut settings = match figment.extract::<Dict>() {
            Ok(settings) => settings,
            Err(e) => {
                errors.extend(e.into_iter().map(|e| describe_without_values(&e)));
                return Err(ConfigErrors(errors));
            }
        };
        let legacy: Dict = legacy_keys
            .iter()
            .filter_map(|k| settings.remove(*k).map(|v| ((*k).to_owned(), v)))
            .collect();
        let figment = Figment::from(Serialized::defaults(settings));
        let raw: RawConfig = match figment.extract() {
            Ok(raw) => raw,
            // Deserialisation stops at the first bad value. To report every problem at once,
            // look at each top-level setting on its own, then check the ones that parsed.
            Err(first) => {
                let Ok(settings) = figment.extract::<Dict>() else {
                    errors.extend(first.into_iter().map(|e| describe_without_values(&e)));
                    return Err(ConfigErrors(errors));
                };
                let mut good = Figment::new();
                let mut failed = Vec::new();
                for (key, value) in settings {
                    let single = Figment::from(Serialized::default(&key, value));
                    match single.extract::<RawConfig>() {
                        Ok(_) => good = good.merge(single),
                        Err(e) => {
                            errors.extend(e.into_iter().map(|e| describe_without_values(&e)));
                            failed.push(key);
                        }
                    }
                }
                if failed.is_empty() {
                    errors.extend(first.into_iter().map(|e| describe_without_values(&e)));
                }
                // Check the rest too, leaving out what only follows from a setting already
                // reported ("required", or compared with a default the user did not choose).
                if let Ok(raw) = good.extract::<RawConfig>() {
                    let mut rest = Vec::new();
                    let _ = raw.check(&legacy, catalog, &mut rest);
                    errors.extend(
                        rest.into_iter()
                            .filter(|e| !failed.iter().any(|k| e.contains(k.as_str()))),
                    );
                }
                return Err(ConfigErrors(errors));
            }
        };
        let result = raw.check(&legacy, catalog, &mut errors);
        match result {
            Some(config) if errors.is_empty() => Ok(config),
            _ => Err(ConfigErrors(errors)),
        }
    }
}

/// A figment error naming the setting and what was wrong, but never the value: the value may be
/// a token or password (`api_tokens = "tok"`, `"sasl.password" = 12345`).
pub fn describe_without_values(e: &figment::Error) -> String {
    use figment::error::{Actual, Kind};
    let kind_of = |a: &Actual| match a {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
        Actual::Float(_) => "a float",
        Actual::Char(_) | Actual::Str(_) => "a string",
        Actual::Bytes(_) => "bytes",
        Actual::Seq => "a list",
        Actual::Map => "a table",
        _ => "another kind of value",
    };
    let what = match &e.kind {
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
            format!("expected {expected}, found {}", kind_of(actual))
        }
        Kind::InvalidLength(n, expected) => format!("expected {expected}, found {n} items"),
        Kind::UnknownField(field, _) => format!("unknown setting `{field}`"),
        Kind::MissingField(field) => format!("missing setting `{field}`"),
        Kind::DuplicateField(field) => format!("setting `{field}` given twice"),
        Kind::UnknownVariant(v, _) => format!("unknown variant `{v}`"),
        // Parser messages (TOML syntax errors) quote the offending line; keep only the lines
        // that do not show file content.
        Kind::Message(text) => text
            .lines()
            .filter(|l| !l.contains('|') && !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join(": "),
        _ => "unsupported value".to_owned(),
    };
    if e.path.is_empty() {
        format!("configuration file: {what}")
    } else {
        format!("{}: {what}", e.path.join("."))
    }
}

pub fn parse_duration(setting: &str, value: &str, errors: &mut Vec<String>) -> Option<Duration> {
    match humantime::parse_duration(value) {
        Ok(d) if d <= Duration::from_secs(3600) => Some(d),
        Ok(_) => {
            errors.push(format!("{setting}: must be at most 1h (got {value:?})"));
            None
        }
        Err(e) => {
            errors.push(format!(
                "{setting}: {e} (got {value:?}; write e.g. \"4s\" or \"1500ms\")"
            ));
            None
        }
    }
}

fn parse_addr(setting: &str, value: &str, errors: &mut Vec<String>) -> Option<SocketAddr> {
    match value.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            errors.push(format!(
                "{setting}: {value:?} is not an address like 0.0.0.0:8080"
            ));
            None
        }
    }
}

/// A secret value mounted as a file, without the line ending an editor or `kubectl create
/// secret --from-file` leaves at its end.
pub(crate) fn read_secret_file(
    setting: &str,
    path: &Path,
    errors: &mut Vec<String>,
) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Some(text.trim_end_matches(['\r', '\n']).to_owned()),
        Err(e) => {
            errors.push(format!("{setting}: cannot read {}: {e}", path.display()));
            None
        }
    }
}

/// A whole number setting within `range`, or `default`; reports the setting otherwise.
fn bounded(
    setting: &str,
    value: Option<u64>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
    errors: &mut Vec<String>,
) -> Option<u64> {
    let n = value.unwrap_or(default);
    if range.contains(&n) {
        Some(n)
    } else {
        errors.push(format!(
            "{setting}: {n} is outside {}..={}",
            range.start(),
            range.end()
        ));
        None
    }
}

fn nonzero_usize(n: Option<u64>) -> Option<NonZeroUsize> {
    n.and_then(|n| usize::try_from(n).ok())
        .and_then(NonZeroUsize::new)
}

impl RawConfig {
    fn check(
        mut self,
        legacy: &Dict,
        catalog: &dyn Catalog,
        errors: &mut Vec<String>,
    ) -> Option<Config> {
        let server = self.check_server(errors);
        let registry = self.check_registry(errors);
        let tracing = otel::check(
            self.otel_endpoint.as_deref(),
            self.otel_service_name.as_deref(),
            self.otel_sampling_ratio,
            errors,
        );
        let kafka_brokers = match self.kafka_brokers.as_deref().map(str::trim) {
            Some(b) if !b.is_empty() => Some(b.to_owned()),
            _ => {
                errors.push(
                    "kafka_brokers (HOOKBRIDGE_KAFKA_BROKERS): required, e.g. \"kafka:9092\""
                        .into(),
                );
                None
            }
        };

        let max_body_bytes = match self.max_body_bytes {
            None => NonZeroUsize::new(DEFAULT_MAX_BODY_BYTES),
            Some(n) if (1024..=64 * 1024 * 1024).contains(&n) => nonzero_usize(Some(n)),
            Some(n) => {
                errors.push(format!(
                    "max_body_bytes (HOOKBRIDGE_MAX_BODY_BYTES): {n} is outside 1024..=67108864"
                ));
                None
            }
        };

        let tokens_reload_interval = parse_duration(
            "tokens_reload_interval (HOOKBRIDGE_TOKENS_RELOAD_INTERVAL)",
            self.tokens_reload_interval.as_deref().unwrap_or("10s"),
            errors,
        );
        if tokens_reload_interval.is_some_and(|d| d < Duration::from_millis(100)) {
            errors.push("tokens_reload_interval (HOOKBRIDGE_TOKENS_RELOAD_INTERVAL): must be at least 100ms".into());
        }
        let list = sources::check(std::mem::take(&mut self.sources), legacy, catalog, errors);

        let publish_timeout = parse_duration(
            "publish_timeout (HOOKBRIDGE_PUBLISH_TIMEOUT)",
            self.publish_timeout.as_deref().unwrap_or("4s"),
            errors,
        );
        // The sender that waits least bounds the deadline; with no source configured yet, the
        // strictest provider's does.
        let mut providers: Vec<&str> = list.iter().map(|s| s.provider).collect();
        if providers.is_empty() {
            providers = catalog.names();
        }
        let sender_timeout = providers
            .into_iter()
            .filter_map(|p| catalog.sender_timeout(p).map(|t| (t, p)))
            .min();
        if let Some(t) = publish_timeout
            && (t.is_zero() || sender_timeout.is_some_and(|(limit, _)| t >= limit))
        {
            let below = sender_timeout.map_or(String::new(), |(limit, provider)| {
                format!(
                    " and below the {} a {provider} sender waits for an answer",
                    humantime::format_duration(limit)
                )
            });
            errors.push(format!(
                "publish_timeout (HOOKBRIDGE_PUBLISH_TIMEOUT): {} must be above 0{below}",
                humantime::format_duration(t)
            ));
        }
        if let (Some(s), Some(p)) = (server.as_ref().map(|s| s.shutdown_timeout), publish_timeout)
            && drain_budget(s) < p
        {
            errors.push(format!(
                "shutdown_timeout (HOOKBRIDGE_SHUTDOWN_TIMEOUT): {} leaves {} to drain in-flight requests (the rest flushes the producer), less than publish_timeout; raise it",
                humantime::format_duration(s),
                humantime::format_duration(drain_budget(s))
            ));
        }

        let max_in_flight = nonzero_usize(bounded(
            "max_in_flight (HOOKBRIDGE_MAX_IN_FLIGHT)",
            self.max_in_flight,
            1024,
            1..=1_000_000,
            errors,
        ));
        let raw_edge = edge::RawEdge {
            header_read_timeout: self.header_read_timeout.take(),
            idle_timeout: self.idle_timeout.take(),
            max_connections: self.max_connections,
            max_buffered_bytes: self.max_buffered_bytes,
            buffer_wait: self.buffer_wait.take(),
            body_min_rate: self.body_min_rate,
            body_rate_grace: self.body_rate_grace.take(),
            max_requests_per_client: self.max_requests_per_client,
            trusted_proxies: self.trusted_proxies.take(),
        };
        let edge = edge::check_edge(raw_edge, max_body_bytes, errors);
        let max_typed_items = nonzero_usize(bounded(
            "max_typed_items (HOOKBRIDGE_MAX_TYPED_ITEMS)",
            self.max_typed_items,
            1000,
            1..=100_000,
            errors,
        ));
        let max_typed_text_bytes = nonzero_usize(bounded(
            "max_typed_text_bytes (HOOKBRIDGE_MAX_TYPED_TEXT_BYTES)",
            self.max_typed_text_bytes,
            DEFAULT_MAX_TYPED_TEXT_BYTES as u64,
            1..=64 * 1024 * 1024,
            errors,
        ));
        let topic_partitions = bounded(
            "topic_partitions (HOOKBRIDGE_TOPIC_PARTITIONS)",
            self.topic_partitions,
            12,
            1..=10_000,
            errors,
        )
        .and_then(|n| u32::try_from(n).ok())
        .and_then(NonZeroU32::new);
        let topic_replication_factor = match self.topic_replication_factor {
            None => None,
            Some(n @ 1..=32) => u16::try_from(n).ok().and_then(NonZeroU16::new),
            Some(n) => {
                errors.push(format!(
                    "topic_replication_factor (HOOKBRIDGE_TOPIC_REPLICATION_FACTOR): {n} is outside 1..=32"
                ));
                None
            }
        };
        let (properties, property_files) =
            kafka::check_properties(self.kafka_properties, self.kafka_property_files, errors);

        let limits = Limits {
            max_body_bytes: max_body_bytes?,
            publish_timeout: publish_timeout?,
            max_in_flight: max_in_flight?,
            edge: edge?,
            max_typed_items: max_typed_items?,
            max_typed_text_bytes: max_typed_text_bytes?,
        };
        Some(Config {
            server: server?,
            kafka: KafkaConfig {
                brokers: kafka_brokers?,
                properties,
                property_files,
                create_topics: self.create_topics.unwrap_or(true),
                topic_partitions: topic_partitions?,
                topic_replication_factor,
                max_record_bytes: limits.max_record_bytes(),
            },
            registry: registry?,
            limits,
            sources: SourcesConfig {
                list,
                reload_interval: tokens_reload_interval?,
            },
            tracing: tracing?,
        })
    }

    fn check_server(&self, errors: &mut Vec<String>) -> Option<ServerConfig> {
        let http_addr = parse_addr(
            "http_addr (HOOKBRIDGE_HTTP_ADDR)",
            self.http_addr.as_deref().unwrap_or("0.0.0.0:8080"),
            errors,
        );
        let admin_addr = parse_addr(
            "admin_addr (HOOKBRIDGE_ADMIN_ADDR)",
            self.admin_addr.as_deref().unwrap_or("0.0.0.0:9090"),
            errors,
        );
        if let (Some(h), Some(a)) = (http_addr, admin_addr)
            && h == a
            && h.port() != 0
        {
            errors.push("admin_addr (HOOKBRIDGE_ADMIN_ADDR): must differ from http_addr".into());
        }
        let log_format = match self.log_format.as_deref().unwrap_or("json") {
            "json" => Some(LogFormat::Json),
            "text" => Some(LogFormat::Text),
            other => {
                errors.push(format!(
                    "log_format (HOOKBRIDGE_LOG_FORMAT): {other:?} is neither \"json\" nor \"text\""
                ));
                None
            }
        };
        let log_level = self.log_level.clone().unwrap_or_else(|| "info".into());
        // tracing-subscriber's directive parser panics on some non-ASCII input (found by the
        // config fuzz target); filters are ASCII anyway.
        if !log_level.is_ascii() || tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            errors.push(format!(
                "log_level (HOOKBRIDGE_LOG_LEVEL): {log_level:?} is not a filter like \"info\" or \"hookbridge=debug,info\""
            ));
        }
        let shutdown_timeout = parse_duration(
            "shutdown_timeout (HOOKBRIDGE_SHUTDOWN_TIMEOUT)",
            self.shutdown_timeout.as_deref().unwrap_or("15s"),
            errors,
        );
        Some(ServerConfig {
            http_addr: http_addr?,
            admin_addr: admin_addr?,
            log_format: log_format?,
            log_level,
            shutdown_timeout: shutdown_timeout?,
        })
    }

    fn check_registry(&self, errors: &mut Vec<String>) -> Option<RegistryConfig> {
        RegistrySettings {
            url: self.schema_registry_url.as_deref(),
            username: self.schema_registry_username.as_deref(),
            password_file: self.schema_registry_password_file.as_deref(),
            bearer_token_file: self.schema_registry_bearer_token_file.as_deref(),
            ca_file: self.schema_registry_ca_file.as_deref(),
            client_cert_file: self.schema_registry_client_cert_file.as_deref(),
            client_key_file: self.schema_registry_client_key_file.as_deref(),
            auto_register: self.auto_register_schemas.unwrap_or(true),
        }
        .check(errors)
    }
}
