//! Configuration: a TOML file (`HOOKBRIDGE_CONFIG`) layered under `HOOKBRIDGE_*` environment
//! variables, checked at start-up. Every problem is reported at once, each with the setting's
//! name, so a bad deploy fails before the first webhook. Secrets never reach `Debug` output.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::Deserialize;

use crate::sendbird::routing::{CategoryPattern, TopicName};
use crate::verify::ApiToken;

/// librdkafka properties the gateway's delivery guarantee rests on; configuration may not set them.
/// Names are compared after [`canonical_kafka_property`], so aliases and `topic.` prefixes are
/// caught too.
pub const RESERVED_KAFKA_PROPERTIES: &[&str] = &[
    "bootstrap.servers",
    "enable.idempotence",
    "acks",
    "partitioner",
    "max.in.flight.requests.per.connection",
    "message.max.bytes",
    "enable.gapless.guarantee",
    "transactional.id",
    // Without successful delivery reports no request would ever be answered 200.
    "delivery.report.only.error",
];

/// librdkafka's queue is part of the memory arithmetic (docs/deploy.md, "Sizing"): it may be
/// lowered, not raised.
pub const MAX_QUEUE_KBYTES: u64 = 65536;

/// Global properties whose names begin with `topic.`; every other `topic.` name is a topic
/// property given at the global level.
const GLOBAL_TOPIC_PREFIXED: &[&str] = &[
    "topic.metadata.refresh.interval.ms",
    "topic.metadata.refresh.fast.interval.ms",
    "topic.metadata.refresh.fast.cnt",
    "topic.metadata.refresh.sparse",
    "topic.metadata.propagation.max.ms",
    "topic.blacklist",
];

/// librdkafka's name for a property: topic-level properties may be given with a `topic.` prefix
/// at the global level, and several properties have aliases. Two spellings of one property would
/// otherwise both be applied, in an order nobody chose, and slip past the reserved list.
pub fn canonical_kafka_property(key: &str) -> String {
    let key = key.trim().to_ascii_lowercase();
    let key = if GLOBAL_TOPIC_PREFIXED.contains(&key.as_str()) {
        key.as_str()
    } else {
        key.strip_prefix("topic.").unwrap_or(&key)
    };
    match key {
        "metadata.broker.list" => "bootstrap.servers",
        "request.required.acks" => "acks",
        "max.in.flight" => "max.in.flight.requests.per.connection",
        "compression.codec" => "compression.type",
        "queue.buffering.max.ms" => "linger.ms",
        "message.timeout.ms" | "delivery.timeout.ms" => "message.timeout.ms",
        "message.send.max.retries" => "retries",
        "sasl.mechanism" => "sasl.mechanisms",
        "sasl.oauthbearer.client.credentials.client.id" => "sasl.oauthbearer.client.id",
        "sasl.oauthbearer.client.credentials.client.secret" => "sasl.oauthbearer.client.secret",
        other => other,
    }
    .to_owned()
}

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
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A Sendbird application id: the route segment and the body's `app_id`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppId(String);

impl AppId {
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        if value.is_empty() {
            return Err("must not be empty".into());
        }
        if value.len() > 128 {
            return Err("must be at most 128 characters".into());
        }
        if !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err("may contain only letters, digits, '-' and '_'".into());
        }
        Ok(AppId(value.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Clone, Debug)]
pub struct AppConfig {
    pub app_id: AppId,
    /// Every token accepted for this app at start-up; more than one while rotating.
    pub api_tokens: Vec<ApiToken>,
    /// The tokens given inline (file or environment), kept when the tokens file is re-read.
    pub inline_tokens: Vec<ApiToken>,
    /// A mounted secret re-read every `tokens_reload_interval`, so rotation needs no restart.
    pub api_tokens_file: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct RouteOverride {
    pub pattern: CategoryPattern,
    pub topic: TopicName,
}

#[derive(Clone, Debug)]
pub struct RegistryConfig {
    pub url: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

/// The bounds of the public listener: what an unauthenticated client can hold, and for how long.
#[derive(Clone, Debug)]
pub struct EdgeLimits {
    /// From the first byte of a request to the end of its headers.
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request in progress is closed after this.
    pub idle_timeout: Duration,
    /// Open connections beyond this are answered 503 and closed at once.
    pub max_connections: NonZeroUsize,
    /// Request body bytes being read or held, over all requests (records built from verified
    /// bodies are counted too).
    pub max_buffered_bytes: NonZeroUsize,
    /// How long a request waits for room in `max_buffered_bytes` before it gets 503 (never past
    /// its deadline).
    pub buffer_wait: Duration,
    /// After `body_rate_grace`, a body must have arrived at this average rate (bytes/s) or 408.
    pub body_min_rate: u64,
    pub body_rate_grace: Duration,
    /// Concurrent requests per client address; `None` for no cap.
    pub max_requests_per_client: Option<NonZeroUsize>,
    /// Peers whose `X-Forwarded-For` names the client (load balancers, ingress controllers).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub http_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub kafka_brokers: String,
    pub registry: RegistryConfig,
    pub topic_prefix: String,
    pub log_format: LogFormat,
    pub log_level: String,
    pub max_body_bytes: NonZeroUsize,
    pub publish_timeout: Duration,
    pub max_in_flight: NonZeroUsize,
    pub edge: EdgeLimits,
    /// Longest typed array (members, affected users, mentions, metadata entries) kept in a record;
    /// longer ones are left out of the typed view and named in `truncated`.
    pub max_typed_items: NonZeroUsize,
    pub shutdown_timeout: Duration,
    pub create_topics: bool,
    pub topic_partitions: NonZeroU32,
    pub topic_replication_factor: Option<NonZeroU16>,
    pub auto_register_schemas: bool,
    pub tokens_reload_interval: Duration,
    pub apps: Vec<AppConfig>,
    pub routes: Vec<RouteOverride>,
    /// Extra librdkafka properties; values may be secrets (SASL passwords), hence `Secret`.
    pub kafka_properties: BTreeMap<String, Secret>,
}

/// The file's and the environment's shape, before checking. Loose types on purpose: checking
/// happens in one pass so that every problem is reported together.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    http_addr: Option<String>,
    admin_addr: Option<String>,
    kafka_brokers: Option<String>,
    schema_registry_url: Option<String>,
    schema_registry_username: Option<String>,
    schema_registry_password_file: Option<PathBuf>,
    topic_prefix: Option<String>,
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
    shutdown_timeout: Option<String>,
    create_topics: Option<bool>,
    topic_partitions: Option<u64>,
    topic_replication_factor: Option<u64>,
    auto_register_schemas: Option<bool>,
    tokens_reload_interval: Option<String>,
    sendbird_app_id: Option<String>,
    sendbird_api_tokens: Option<String>,
    apps: Vec<RawApp>,
    routes: Vec<RawRoute>,
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

#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    app_id: String,
    #[serde(default)]
    api_tokens: Vec<String>,
    api_tokens_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    category: String,
    topic: String,
}

#[derive(Clone, Copy)]
enum EnvKind {
    Text,
    Integer,
    Boolean,
}

/// The environment variables read, `HOOKBRIDGE_` + the key in upper case. Only these are read:
/// Kubernetes injects service-link variables such as `HOOKBRIDGE_PORT` for a Service named
/// `hookbridge`, and those must not break start-up.
const ENV_KEYS: &[(&str, EnvKind)] = &[
    ("http_addr", EnvKind::Text),
    ("admin_addr", EnvKind::Text),
    ("kafka_brokers", EnvKind::Text),
    ("schema_registry_url", EnvKind::Text),
    ("schema_registry_username", EnvKind::Text),
    ("schema_registry_password_file", EnvKind::Text),
    ("topic_prefix", EnvKind::Text),
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
    ("shutdown_timeout", EnvKind::Text),
    ("create_topics", EnvKind::Boolean),
    ("topic_partitions", EnvKind::Integer),
    ("topic_replication_factor", EnvKind::Integer),
    ("auto_register_schemas", EnvKind::Boolean),
    ("tokens_reload_interval", EnvKind::Text),
    ("sendbird_app_id", EnvKind::Text),
    ("sendbird_api_tokens", EnvKind::Text),
];

pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 256 * 1024 * 1024;
/// Sendbird waits 5 s for an answer; the publish deadline must leave room to answer before that.
pub const SENDBIRD_TIMEOUT: Duration = Duration::from_secs(5);

/// The most one request of `body` bytes holds of `max_buffered_bytes`: the body itself and the
/// record built from it (see [`Config::max_record_bytes`]).
pub fn record_budget(body: usize) -> usize {
    body + max_record_bytes_for(body)
}

/// See [`Config::max_record_bytes`].
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
    /// Loads from `HOOKBRIDGE_CONFIG` (if set) and the process environment.
    pub fn load() -> Result<Config, ConfigErrors> {
        let env: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("HOOKBRIDGE_"))
            .collect();
        let file = env.get("HOOKBRIDGE_CONFIG").map(PathBuf::from);
        Config::from_sources(file.as_deref(), &env)
    }

    /// Loads from an optional TOML file and a map of environment variables (tests pass their own).
    pub fn from_sources(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
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
        Config::from_toml_str(text.as_deref(), env)
    }

    /// Loads from the text of a TOML file (if any) and a map of environment variables.
    pub fn from_toml_str(
        toml: Option<&str>,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigErrors> {
        let mut figment = Figment::new();
        if let Some(text) = toml {
            figment = figment.merge(Toml::string(text));
        }
        let mut errors = Vec::new();
        for (key, kind) in ENV_KEYS {
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
        let raw: RawConfig = match figment.extract() {
            Ok(raw) => raw,
            // Deserialisation stops at the first bad value. To report every problem at once,
            // look at each top-level setting on its own, then check the ones that parsed.
            Err(first) => {
                // A file that does not parse as TOML: that is the one problem to report.
                let Ok(settings) = figment.extract::<figment::value::Dict>() else {
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
                    let _ = raw.check(&mut rest);
                    errors.extend(
                        rest.into_iter()
                            .filter(|e| !failed.iter().any(|k| e.contains(k.as_str()))),
                    );
                }
                return Err(ConfigErrors(errors));
            }
        };
        let result = raw.check(&mut errors);
        match result {
            Some(config) if errors.is_empty() => Ok(config),
            _ => Err(ConfigErrors(errors)),
        }
    }

    /// The single app served at `POST /webhooks/sendbird`, when exactly one is configured.
    pub fn single_app(&self) -> Option<&AppConfig> {
        match self.apps.as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }

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

/// A figment error naming the setting and what was wrong, but never the value: the value may be
/// a token or password (`api_tokens = "tok"`, `"sasl.password" = 12345`).
fn describe_without_values(e: &figment::Error) -> String {
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

fn parse_duration(setting: &str, value: &str, errors: &mut Vec<String>) -> Option<Duration> {
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

fn read_secret_file(setting: &str, path: &Path, errors: &mut Vec<String>) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) => {
            errors.push(format!("{setting}: cannot read {}: {e}", path.display()));
            None
        }
    }
}

/// Tokens from a list, checked; the setting name is used in messages, the value never is.
fn check_tokens<'a>(
    setting: &str,
    tokens: impl IntoIterator<Item = &'a str>,
    errors: &mut Vec<String>,
) -> Vec<ApiToken> {
    let mut out = Vec::new();
    for (i, token) in tokens.into_iter().enumerate() {
        match ApiToken::parse(token) {
            Ok(t) => out.push(t),
            Err(why) => errors.push(format!("{setting}: token #{}: {why}", i + 1)),
        }
    }
    out
}

/// Lines of a mounted secret file: one token a line, blank lines and `#` comments ignored.
fn token_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Reads a tokens file (at start-up and on every reload). The error names the file and the
/// line's position, never a token.
pub fn read_tokens_file(path: &Path) -> Result<Vec<ApiToken>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut tokens = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in token_lines(&text).enumerate() {
        match ApiToken::parse(line) {
            Ok(t) => tokens.push(t),
            Err(why) => problems.push(format!("token #{}: {why}", i + 1)),
        }
    }
    if problems.is_empty() {
        Ok(tokens)
    } else {
        Err(problems.join("; "))
    }
}

impl RawConfig {
    fn check(mut self, errors: &mut Vec<String>) -> Option<Config> {
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

        let registry_url = match self.schema_registry_url.as_deref().map(str::trim) {
            Some(u)
                if (u.starts_with("http://") || u.starts_with("https://"))
                    && u.split("://").nth(1).is_some_and(|rest| {
                        rest.split('/')
                            .next()
                            .is_some_and(|host| host.contains('@'))
                    }) =>
            {
                errors.push("schema_registry_url (HOOKBRIDGE_SCHEMA_REGISTRY_URL): credentials in the URL would end up in logs; use schema_registry_username and schema_registry_password_file".into());
                None
            }
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                Some(u.trim_end_matches('/').to_owned())
            }
            Some(u) if !u.is_empty() => {
                // Not echoed: a malformed URL may still carry credentials.
                errors.push(
                    "schema_registry_url (HOOKBRIDGE_SCHEMA_REGISTRY_URL): must start with http:// or https://".into(),
                );
                None
            }
            _ => {
                errors.push("schema_registry_url (HOOKBRIDGE_SCHEMA_REGISTRY_URL): required, e.g. \"http://registry:8080/apis/ccompat/v7\"".into());
                None
            }
        };
        let registry_password = self.schema_registry_password_file.as_deref().and_then(|p| {
            read_secret_file("schema_registry_password_file", p, errors)
                .map(|s| Secret::new(s.trim_end_matches(['\r', '\n'])))
        });
        if registry_password.is_some() != self.schema_registry_username.is_some() {
            errors.push(
                "schema_registry_username and schema_registry_password_file: set both or neither"
                    .into(),
            );
        }

        let topic_prefix = self.topic_prefix.unwrap_or_else(|| "sendbird.".into());
        if let Err(why) = TopicName::parse(&format!("{topic_prefix}other")) {
            errors.push(format!("topic_prefix (HOOKBRIDGE_TOPIC_PREFIX): {why}"));
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
        let log_level = self.log_level.unwrap_or_else(|| "info".into());
        // tracing-subscriber's directive parser panics on some non-ASCII input (found by the
        // config fuzz target); filters are ASCII anyway.
        if !log_level.is_ascii() || tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            errors.push(format!(
                "log_level (HOOKBRIDGE_LOG_LEVEL): {log_level:?} is not a filter like \"info\" or \"hookbridge=debug,info\""
            ));
        }

        let max_body_bytes = match self.max_body_bytes {
            None => NonZeroUsize::new(DEFAULT_MAX_BODY_BYTES),
            Some(n) if (1024..=64 * 1024 * 1024).contains(&n) => {
                usize::try_from(n).ok().and_then(NonZeroUsize::new)
            }
            Some(n) => {
                errors.push(format!(
                    "max_body_bytes (HOOKBRIDGE_MAX_BODY_BYTES): {n} is outside 1024..=67108864"
                ));
                None
            }
        };

        let publish_timeout = parse_duration(
            "publish_timeout (HOOKBRIDGE_PUBLISH_TIMEOUT)",
            self.publish_timeout.as_deref().unwrap_or("4s"),
            errors,
        );
        if let Some(t) = publish_timeout
            && (t.is_zero() || t >= SENDBIRD_TIMEOUT)
        {
            errors.push(format!(
                "publish_timeout (HOOKBRIDGE_PUBLISH_TIMEOUT): {} must be above 0 and below Sendbird's 5s timeout",
                humantime::format_duration(t)
            ));
        }
        let shutdown_timeout = parse_duration(
            "shutdown_timeout (HOOKBRIDGE_SHUTDOWN_TIMEOUT)",
            self.shutdown_timeout.as_deref().unwrap_or("15s"),
            errors,
        );
        if let (Some(s), Some(p)) = (shutdown_timeout, publish_timeout)
            && drain_budget(s) < p
        {
            errors.push(format!(
                "shutdown_timeout (HOOKBRIDGE_SHUTDOWN_TIMEOUT): {} leaves {} to drain in-flight requests (the rest flushes the producer), less than publish_timeout; raise it",
                humantime::format_duration(s),
                humantime::format_duration(drain_budget(s))
            ));
        }

        let tokens_reload_interval = parse_duration(
            "tokens_reload_interval (HOOKBRIDGE_TOKENS_RELOAD_INTERVAL)",
            self.tokens_reload_interval.as_deref().unwrap_or("10s"),
            errors,
        );
        if tokens_reload_interval.is_some_and(|d| d < Duration::from_millis(100)) {
            errors.push("tokens_reload_interval (HOOKBRIDGE_TOKENS_RELOAD_INTERVAL): must be at least 100ms".into());
        }

        let max_in_flight = match self.max_in_flight.unwrap_or(1024) {
            n @ 1..=1_000_000 => usize::try_from(n).ok().and_then(NonZeroUsize::new),
            n => {
                errors.push(format!(
                    "max_in_flight (HOOKBRIDGE_MAX_IN_FLIGHT): {n} is outside 1..=1000000"
                ));
                None
            }
        };
        let raw_edge = RawEdge {
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
        let edge = check_edge(raw_edge, max_body_bytes, errors);
        let max_typed_items = match self.max_typed_items.unwrap_or(1000) {
            n @ 1..=100_000 => usize::try_from(n).ok().and_then(NonZeroUsize::new),
            n => {
                errors.push(format!(
                    "max_typed_items (HOOKBRIDGE_MAX_TYPED_ITEMS): {n} is outside 1..=100000"
                ));
                None
            }
        };
        let topic_partitions = match self.topic_partitions.unwrap_or(12) {
            n @ 1..=10_000 => u32::try_from(n).ok().and_then(NonZeroU32::new),
            n => {
                errors.push(format!(
                    "topic_partitions (HOOKBRIDGE_TOPIC_PARTITIONS): {n} is outside 1..=10000"
                ));
                None
            }
        };
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

        let apps = check_apps(
            self.apps,
            self.sendbird_app_id,
            self.sendbird_api_tokens,
            errors,
        );

        let mut routes = Vec::new();
        for (i, r) in self.routes.into_iter().enumerate() {
            let pattern = CategoryPattern::parse(&r.category)
                .map_err(|why| errors.push(format!("routes[{i}].category: {why}")))
                .ok();
            let topic = TopicName::parse(&r.topic)
                .map_err(|why| errors.push(format!("routes[{i}].topic: {why}")))
                .ok();
            if let (Some(pattern), Some(topic)) = (pattern, topic) {
                routes.push(RouteOverride { pattern, topic });
            }
        }

        let mut kafka_properties = BTreeMap::new();
        let file_props = self
            .kafka_property_files
            .into_iter()
            .filter_map(|(k, path)| {
                let setting = format!("kafka_property_files.\"{k}\"");
                read_secret_file(&setting, &path, errors)
                    .map(|v| (k, v.trim_end_matches(['\r', '\n']).to_owned()))
            });
        let all_props: Vec<(String, String)> = self
            .kafka_properties
            .into_iter()
            .chain(file_props.collect::<Vec<_>>())
            .collect();
        let mut spelled: BTreeMap<String, String> = BTreeMap::new();
        for (given, value) in all_props {
            let given = given.trim().to_owned();
            let key = canonical_kafka_property(&given);
            let named = if key == given {
                format!("kafka_properties.\"{given}\"")
            } else {
                format!("kafka_properties.\"{given}\" (librdkafka's \"{key}\")")
            };
            if RESERVED_KAFKA_PROPERTIES.contains(&key.as_str()) {
                errors.push(format!(
                    "{named}: set by hookbridge for its delivery guarantee and may not be overridden"
                ));
            } else if key == "queue.buffering.max.kbytes"
                && value
                    .trim()
                    .parse::<u64>()
                    .is_ok_and(|kb| kb > MAX_QUEUE_KBYTES)
            {
                errors.push(format!(
                    "{named}: at most {MAX_QUEUE_KBYTES} (64 MiB), the queue the memory bounds are sized for; lower values are fine"
                ));
            } else if key == "compression.type" && value.trim().eq_ignore_ascii_case("none") {
                errors.push(format!(
                    "{named}: compression may not be turned off (records of 2 MiB bodies rely on it)"
                ));
            } else if let Some(first) = spelled.get(&key) {
                errors.push(format!(
                    "{named}: given twice (also as \"{first}\", inline or in kafka_property_files); keep one"
                ));
            } else {
                spelled.insert(key.clone(), given);
                kafka_properties.insert(key, Secret::new(value));
            }
        }

        Some(Config {
            http_addr: http_addr?,
            admin_addr: admin_addr?,
            kafka_brokers: kafka_brokers?,
            registry: RegistryConfig {
                url: registry_url?,
                username: self.schema_registry_username,
                password: registry_password,
            },
            topic_prefix,
            log_format: log_format?,
            log_level,
            max_body_bytes: max_body_bytes?,
            publish_timeout: publish_timeout?,
            max_in_flight: max_in_flight?,
            edge: edge?,
            max_typed_items: max_typed_items?,
            shutdown_timeout: shutdown_timeout?,
            create_topics: self.create_topics.unwrap_or(true),
            topic_partitions: topic_partitions?,
            topic_replication_factor,
            auto_register_schemas: self.auto_register_schemas.unwrap_or(true),
            tokens_reload_interval: tokens_reload_interval?,
            apps,
            routes,
            kafka_properties,
        })
    }
}

/// The edge settings of [`RawConfig`], taken out for [`check_edge`].
struct RawEdge {
    header_read_timeout: Option<String>,
    idle_timeout: Option<String>,
    max_connections: Option<u64>,
    max_buffered_bytes: Option<u64>,
    buffer_wait: Option<String>,
    body_min_rate: Option<u64>,
    body_rate_grace: Option<String>,
    max_requests_per_client: Option<u64>,
    trusted_proxies: Option<StringOrList>,
}

fn check_edge(
    raw: RawEdge,
    max_body_bytes: Option<NonZeroUsize>,
    errors: &mut Vec<String>,
) -> Option<EdgeLimits> {
    let duration = |name: &str, value: &Option<String>, default: &str, errors: &mut Vec<String>| {
        let setting = format!("{name} (HOOKBRIDGE_{})", name.to_ascii_uppercase());
        let d = parse_duration(&setting, value.as_deref().unwrap_or(default), errors)?;
        if d.is_zero() {
            errors.push(format!("{setting}: must be above 0"));
            return None;
        }
        Some(d)
    };
    let header_read_timeout = duration(
        "header_read_timeout",
        &raw.header_read_timeout,
        "10s",
        errors,
    );
    let idle_timeout = duration("idle_timeout", &raw.idle_timeout, "60s", errors);
    let buffer_wait = duration("buffer_wait", &raw.buffer_wait, "500ms", errors);
    let body_rate_grace = duration("body_rate_grace", &raw.body_rate_grace, "1s", errors);
    let max_connections = match raw.max_connections.unwrap_or(4096) {
        n @ 1..=1_000_000 => usize::try_from(n).ok().and_then(NonZeroUsize::new),
        n => {
            errors.push(format!(
                "max_connections (HOOKBRIDGE_MAX_CONNECTIONS): {n} is outside 1..=1000000"
            ));
            None
        }
    };
    const MAX_BUFFERED: u64 = 64 * 1024 * 1024 * 1024;
    let max_buffered_bytes = match raw.max_buffered_bytes {
        None => NonZeroUsize::new(DEFAULT_MAX_BUFFERED_BYTES),
        Some(n @ 1..=MAX_BUFFERED) => usize::try_from(n).ok().and_then(NonZeroUsize::new),
        Some(n) => {
            errors.push(format!(
                "max_buffered_bytes (HOOKBRIDGE_MAX_BUFFERED_BYTES): {n} is outside 1..=68719476736 (64 GiB)"
            ));
            None
        }
    };
    // One largest body and the record made from it must fit, or such a webhook could never pass.
    if let (Some(budget), Some(body)) = (max_buffered_bytes, max_body_bytes)
        && budget.get() < record_budget(body.get())
    {
        errors.push(format!(
            "max_buffered_bytes (HOOKBRIDGE_MAX_BUFFERED_BYTES): {} cannot hold one max_body_bytes body and its record ({} bytes); raise it or lower max_body_bytes",
            budget.get(),
            record_budget(body.get())
        ));
    }
    let body_min_rate = match raw.body_min_rate.unwrap_or(32 * 1024) {
        n if n <= 1024 * 1024 * 1024 => Some(n),
        n => {
            errors.push(format!(
                "body_min_rate (HOOKBRIDGE_BODY_MIN_RATE): {n} bytes/s is above 1 GiB/s"
            ));
            None
        }
    };
    let max_requests_per_client = match raw.max_requests_per_client.unwrap_or(0) {
        0 => Some(None),
        n @ 1..=1_000_000 => Some(usize::try_from(n).ok().and_then(NonZeroUsize::new)),
        n => {
            errors.push(format!(
                "max_requests_per_client (HOOKBRIDGE_MAX_REQUESTS_PER_CLIENT): {n} is outside 0..=1000000 (0 turns the cap off)"
            ));
            None
        }
    };
    let mut trusted_proxies = Vec::new();
    if let Some(list) = &raw.trusted_proxies {
        for (i, item) in list.items().into_iter().enumerate() {
            let parsed = item
                .parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            match parsed {
                Ok(net) => trusted_proxies.push(net.trunc()),
                Err(_) => errors.push(format!(
                    "trusted_proxies (HOOKBRIDGE_TRUSTED_PROXIES): entry #{} {item:?} is not an address or CIDR range like 10.0.0.0/8",
                    i + 1
                )),
            }
        }
    }
    Some(EdgeLimits {
        header_read_timeout: header_read_timeout?,
        idle_timeout: idle_timeout?,
        max_connections: max_connections?,
        max_buffered_bytes: max_buffered_bytes?,
        buffer_wait: buffer_wait?,
        body_min_rate: body_min_rate?,
        body_rate_grace: body_rate_grace?,
        max_requests_per_client: max_requests_per_client?,
        trusted_proxies,
    })
}

fn check_apps(
    raw_apps: Vec<RawApp>,
    env_app_id: Option<String>,
    env_tokens: Option<String>,
    errors: &mut Vec<String>,
) -> Vec<AppConfig> {
    let mut apps: Vec<AppConfig> = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, raw) in raw_apps.into_iter().enumerate() {
        let setting = format!("apps[{i}]");
        let app_id = match AppId::parse(&raw.app_id) {
            Ok(id) => id,
            Err(why) => {
                errors.push(format!("{setting}.app_id: {why}"));
                continue;
            }
        };
        if !seen.insert(app_id.as_str().to_ascii_lowercase()) {
            errors.push(format!("{setting}.app_id: {app_id} is configured twice"));
            continue;
        }
        let inline_tokens = check_tokens(
            &format!("{setting}.api_tokens"),
            raw.api_tokens.iter().map(String::as_str),
            errors,
        );
        let mut tokens = inline_tokens.clone();
        if let Some(path) = &raw.api_tokens_file {
            match read_tokens_file(path) {
                Ok(from_file) => tokens.extend(from_file),
                Err(why) => errors.push(format!("{setting}.api_tokens_file: {why}")),
            }
        }
        if tokens.is_empty() {
            errors.push(format!(
                "{setting}: app {app_id} has no api_tokens (give api_tokens or api_tokens_file)"
            ));
        }
        apps.push(AppConfig {
            app_id,
            api_tokens: tokens,
            inline_tokens,
            api_tokens_file: raw.api_tokens_file,
        });
    }

    match (env_app_id, env_tokens) {
        (None, None) => {}
        (Some(id), Some(tokens)) => match AppId::parse(&id) {
            Ok(app_id) => {
                let tokens = check_tokens(
                    "HOOKBRIDGE_SENDBIRD_API_TOKENS",
                    tokens.split(',').map(str::trim).filter(|t| !t.is_empty()),
                    errors,
                );
                if tokens.is_empty() {
                    errors.push("HOOKBRIDGE_SENDBIRD_API_TOKENS: no token given".into());
                }
                if apps
                    .iter()
                    .any(|a| a.app_id.as_str().eq_ignore_ascii_case(app_id.as_str()))
                {
                    errors.push(format!(
                        "HOOKBRIDGE_SENDBIRD_APP_ID: app {app_id} is also configured in [[apps]]; configure each app in one place"
                    ));
                }
                apps.push(AppConfig {
                    app_id,
                    inline_tokens: tokens.clone(),
                    api_tokens: tokens,
                    api_tokens_file: None,
                });
            }
            Err(why) => errors.push(format!("HOOKBRIDGE_SENDBIRD_APP_ID: {why}")),
        },
        (Some(_), None) => errors.push(
            "HOOKBRIDGE_SENDBIRD_API_TOKENS: required when HOOKBRIDGE_SENDBIRD_APP_ID is set"
                .into(),
        ),
        (None, Some(_)) => errors.push(
            "HOOKBRIDGE_SENDBIRD_APP_ID: required when HOOKBRIDGE_SENDBIRD_API_TOKENS is set"
                .into(),
        ),
    }
    if apps.is_empty() {
        errors.push("apps: no Sendbird application configured (add [[apps]] or set HOOKBRIDGE_SENDBIRD_APP_ID and HOOKBRIDGE_SENDBIRD_API_TOKENS)".into());
    }
    apps
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn minimal() -> BTreeMap<String, String> {
        env(&[
            ("HOOKBRIDGE_KAFKA_BROKERS", "127.0.0.1:9092"),
            (
                "HOOKBRIDGE_SCHEMA_REGISTRY_URL",
                "http://127.0.0.1:8081/apis/ccompat/v7/",
            ),
            ("HOOKBRIDGE_SENDBIRD_APP_ID", "APP-1"),
            ("HOOKBRIDGE_SENDBIRD_API_TOKENS", "tok-a, tok-b"),
        ])
    }

    fn toml_file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(text.as_bytes()).expect("write temp file");
        f
    }

    #[test]
    fn environment_alone_gives_documented_defaults() {
        let c = Config::from_sources(None, &minimal()).expect("valid");
        assert_eq!(c.http_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(c.admin_addr.to_string(), "0.0.0.0:9090");
        assert_eq!(c.topic_prefix, "sendbird.");
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.max_body_bytes.get(), 2 * 1024 * 1024);
        assert_eq!(c.publish_timeout, Duration::from_secs(4));
        assert_eq!(c.topic_partitions.get(), 12);
        assert!(c.create_topics);
        assert_eq!(c.registry.url, "http://127.0.0.1:8081/apis/ccompat/v7");
        let app = c.single_app().expect("one app");
        assert_eq!(app.app_id.as_str(), "APP-1");
        assert_eq!(app.api_tokens.len(), 2);
    }

    #[test]
    fn reports_every_problem_at_once_with_setting_names() {
        let e = env(&[
            ("HOOKBRIDGE_HTTP_ADDR", "not-an-addr"),
            ("HOOKBRIDGE_LOG_FORMAT", "yaml"),
            ("HOOKBRIDGE_TOPIC_PARTITIONS", "many"),
            ("HOOKBRIDGE_PUBLISH_TIMEOUT", "6s"),
        ]);
        let err = Config::from_sources(None, &e).expect_err("invalid");
        let text = err.to_string();
        for needle in [
            "HOOKBRIDGE_HTTP_ADDR",
            "HOOKBRIDGE_LOG_FORMAT",
            "HOOKBRIDGE_TOPIC_PARTITIONS",
            "HOOKBRIDGE_PUBLISH_TIMEOUT",
            "HOOKBRIDGE_KAFKA_BROKERS",
            "HOOKBRIDGE_SCHEMA_REGISTRY_URL",
            "apps:",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
    }

    #[test]
    fn type_errors_and_other_problems_are_reported_together() {
        let f = toml_file(
            r#"
            topic_partitions = "twelve"
            create_topics = "yes please"
            log_format = "xml"
            "#,
        );
        let mut e = minimal();
        e.remove("HOOKBRIDGE_KAFKA_BROKERS");
        let text = Config::from_sources(Some(f.path()), &e)
            .expect_err("invalid")
            .to_string();
        for needle in [
            "topic_partitions",
            "create_topics",
            "log_format",
            "kafka_brokers",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        // A badly typed setting is reported once, not also as "required" or against defaults.
        let f = toml_file("publish_timeout = 2\nshutdown_timeout = \"4s\"\n");
        let text = Config::from_sources(Some(f.path()), &minimal())
            .expect_err("invalid")
            .to_string();
        assert_eq!(text.matches("publish_timeout").count(), 1, "{text}");
        assert!(!text.contains("shutdown_timeout"), "{text}");
    }

    #[test]
    fn rejects_overriding_safety_properties_and_unknown_keys() {
        let f = toml_file(
            r#"
            [kafka_properties]
            "acks" = "1"
            "enable.idempotence" = "false"
            "compression.type" = " NONE"
            "client.id" = "ok"
            "#,
        );
        let err = Config::from_sources(Some(f.path()), &minimal()).expect_err("invalid");
        let text = err.to_string();
        assert!(text.contains("\"acks\""), "{text}");
        assert!(text.contains("\"enable.idempotence\""), "{text}");
        assert!(text.contains("\"compression.type\""), "{text}");
        assert!(!text.contains("client.id"), "{text}");

        let f = toml_file("kafka_brokerz = \"x\"\n");
        let err = Config::from_sources(Some(f.path()), &minimal()).expect_err("unknown key");
        assert!(err.to_string().contains("kafka_brokerz"), "{err}");
    }

    #[test]
    fn aliases_and_topic_prefixes_do_not_slip_past_the_reserved_list() {
        let text = r#"
            [kafka_properties]
            "topic.partitioner" = "random"
            "request.required.acks" = "1"
            "topic.compression.codec" = "none"
            "compression.codec" = "zstd"
            "compression.type" = "gzip"
            "topic.message.timeout.ms" = "10000"
            "retries" = "5"
            "message.send.max.retries" = "6"
            "queue.buffering.max.kbytes" = "1048576"
            "delivery.report.only.error" = "true"
            "#;
        let err = Config::from_toml_str(Some(text), &minimal()).expect_err("invalid");
        let text = err.to_string();
        assert!(
            text.contains("\"topic.partitioner\" (librdkafka's \"partitioner\")"),
            "{text}"
        );
        assert!(
            text.contains("\"request.required.acks\" (librdkafka's \"acks\")"),
            "{text}"
        );
        assert!(text.contains("compression may not be turned off"), "{text}");
        assert!(text.contains("given twice"), "{text}");
        assert!(!text.contains("message.timeout.ms"), "{text}");
        assert!(
            text.contains("also as \"message.send.max.retries\""),
            "{text}"
        );
        assert!(text.contains("at most 65536"), "{text}");
        assert!(text.contains("\"delivery.report.only.error\""), "{text}");
        // A lone alias is stored under librdkafka's own name, so it replaces the default.
        let ok = r#"
            [kafka_properties]
            "topic.compression.codec" = "zstd"
            "topic.metadata.refresh.interval.ms" = "60000"
            "queue.buffering.max.kbytes" = "16384"
            "#;
        let c = Config::from_toml_str(Some(ok), &minimal()).expect("valid");
        // Global properties that begin with "topic." keep their name.
        assert_eq!(
            c.kafka_properties.keys().collect::<Vec<_>>(),
            vec![
                "compression.type",
                "queue.buffering.max.kbytes",
                "topic.metadata.refresh.interval.ms"
            ]
        );
    }

    #[test]
    fn edge_limits_have_documented_defaults_and_are_checked() {
        let c = Config::from_toml_str(None, &minimal()).expect("valid");
        assert_eq!(c.edge.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.edge.idle_timeout, Duration::from_secs(60));
        assert_eq!(c.edge.max_connections.get(), 4096);
        assert_eq!(c.edge.max_buffered_bytes.get(), 256 * 1024 * 1024);
        assert_eq!(c.edge.buffer_wait, Duration::from_millis(500));
        assert_eq!(c.edge.body_min_rate, 32 * 1024);
        assert_eq!(c.edge.body_rate_grace, Duration::from_secs(1));
        assert!(c.edge.max_requests_per_client.is_none());
        assert!(c.edge.trusted_proxies.is_empty());
        assert_eq!(c.max_typed_items.get(), 1000);

        let mut e = minimal();
        e.insert(
            "HOOKBRIDGE_TRUSTED_PROXIES".into(),
            "10.0.0.0/8, 192.0.2.1".into(),
        );
        e.insert("HOOKBRIDGE_MAX_REQUESTS_PER_CLIENT".into(), "8".into());
        let c = Config::from_toml_str(None, &e).expect("valid");
        assert_eq!(c.edge.trusted_proxies.len(), 2);
        assert_eq!(
            c.edge.max_requests_per_client.map(NonZeroUsize::get),
            Some(8)
        );

        let bad = r#"
            header_read_timeout = "0s"
            max_buffered_bytes = 4096
            trusted_proxies = ["10.0.0.0/8", "proxy.internal"]
            max_connections = 0
            "#;
        // Found by the config fuzz target: a non-ASCII filter made tracing-subscriber panic.
        let err = Config::from_toml_str(Some("log_level = \"a=\u{e9}\"\n"), &minimal())
            .expect_err("invalid");
        assert!(err.to_string().contains("log_level"), "{err}");
        // Found by the config fuzz target: zero was refused without a message.
        let zero = "max_buffered_bytes = 0\n";
        let err = Config::from_toml_str(Some(zero), &minimal()).expect_err("invalid");
        assert!(err.to_string().contains("max_buffered_bytes"), "{err}");
        let err = Config::from_toml_str(Some(bad), &minimal()).expect_err("invalid");
        let text = err.to_string();
        for needle in [
            "header_read_timeout",
            "max_buffered_bytes",
            "entry #2",
            "max_connections",
        ] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
    }

    #[test]
    fn app_ids_differing_only_in_case_are_one_app() {
        let text = r#"
            [[apps]]
            app_id = "ABC-1"
            api_tokens = ["t1"]
            [[apps]]
            app_id = "abc-1"
            api_tokens = ["t2"]
            "#;
        let err = Config::from_toml_str(Some(text), &BTreeMap::new()).expect_err("duplicate");
        assert!(err.to_string().contains("configured twice"), "{err}");
    }

    #[test]
    fn reads_apps_tokens_files_and_routes_from_toml() {
        let tokens = toml_file("# rotated 2026-11\nold-token\n\nnew-token\n");
        let f = toml_file(&format!(
            r#"
            kafka_brokers = "k:9092"
            schema_registry_url = "http://r:8080"
            publish_timeout = "2500ms"
            [[apps]]
            app_id = "A"
            api_tokens = ["t1"]
            [[apps]]
            app_id = "B"
            api_tokens_file = "{}"
            [[routes]]
            category = "group_channel:message_*"
            topic = "chat.messages"
            "#,
            tokens.path().display()
        ));
        let c = Config::from_sources(Some(f.path()), &BTreeMap::new()).expect("valid");
        assert_eq!(c.apps.len(), 2);
        assert_eq!(c.apps[1].api_tokens.len(), 2);
        assert!(c.single_app().is_none());
        assert_eq!(c.routes[0].topic.as_str(), "chat.messages");
        assert_eq!(c.publish_timeout, Duration::from_millis(2500));
    }

    #[test]
    fn service_link_variables_do_not_break_start_up() {
        let mut e = minimal();
        e.insert("HOOKBRIDGE_PORT".into(), "tcp://10.0.0.1:8080".into());
        e.insert("HOOKBRIDGE_SERVICE_HOST".into(), "10.0.0.1".into());
        Config::from_sources(None, &e).expect("service links ignored");
    }

    #[test]
    fn type_errors_name_the_setting_but_never_print_its_value() {
        let f = toml_file(
            r#"
            [[apps]]
            app_id = "A"
            api_tokens = "s3cret-token-value"
            [kafka_properties]
            "sasl.password" = 987654321
            "#,
        );
        let err = Config::from_sources(Some(f.path()), &minimal()).expect_err("invalid");
        let text = err.to_string();
        assert!(text.contains("api_tokens"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(!text.contains("987654321"), "{text}");
        // Both bad values are reported, not only the first.
        assert!(text.contains("kafka_properties"), "{text}");

        let f = toml_file("api = [\"s3cret-token-value\"\n");
        let text = Config::from_sources(Some(f.path()), &minimal())
            .expect_err("syntax error")
            .to_string();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("line"), "{text}");
        // Only the syntax error: the environment did set the required settings.
        assert!(!text.contains("kafka_brokers"), "{text}");
        assert!(!text.contains("apps"), "{text}");
    }

    #[test]
    fn registry_credentials_in_the_url_are_refused() {
        let mut e = minimal();
        e.insert(
            "HOOKBRIDGE_SCHEMA_REGISTRY_URL".into(),
            "https://user:pa55@registry.example/apis/ccompat/v7".into(),
        );
        let text = Config::from_sources(None, &e)
            .expect_err("refused")
            .to_string();
        assert!(text.contains("schema_registry_password_file"), "{text}");
        assert!(!text.contains("pa55"), "{text}");
    }

    #[test]
    fn shutdown_must_leave_room_to_drain_and_flush() {
        let mut e = minimal();
        e.insert("HOOKBRIDGE_SHUTDOWN_TIMEOUT".into(), "4s".into());
        let text = Config::from_sources(None, &e)
            .expect_err("too short")
            .to_string();
        assert!(text.contains("HOOKBRIDGE_SHUTDOWN_TIMEOUT"), "{text}");
        e.insert("HOOKBRIDGE_SHUTDOWN_TIMEOUT".into(), "6s".into());
        Config::from_sources(None, &e).expect("4s drain + 2s flush");
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let c = Config::from_sources(None, &minimal()).expect("valid");
        let debug = format!("{c:?}");
        assert!(!debug.contains("tok-a"), "{debug}");
        assert!(debug.contains("[redacted]"));
    }

    #[test]
    fn missing_config_file_is_an_error_not_an_empty_config() {
        let err = Config::from_sources(Some(Path::new("/nonexistent/hb.toml")), &minimal())
            .expect_err("missing file");
        assert!(err.to_string().contains("HOOKBRIDGE_CONFIG"), "{err}");
    }
}
