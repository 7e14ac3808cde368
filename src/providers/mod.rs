//! The provider seam. A [`Provider`] is one kind of webhook sender (a chat platform, a signing
//! spec); each lives in its own folder and is registered once, in [`PROVIDERS`]. A configured
//! [`Source`] is one sender of a provider's kind, with its id, secrets and topics.
//!
//! Through the seam a provider:
//! - checks its sources' settings while the configuration loads ([`Provider::check_source`]);
//! - names its topics and the Avro schema they hold ([`Provider::topics`], [`Provider::schema`]);
//! - for each request, reads what the signature check needs from the headers
//!   ([`Source::expect`]), and turns a verified body into a record ([`Source::build`]).
//!
//! Everything else — limits, deadline, shedding, dead letters, answers, Kafka, the registry —
//! is generic and lives outside this folder. See docs/providers.md for adding a provider.

pub mod sendbird;
pub mod standard;
pub mod stream;

#[cfg(test)]
mod config_tests;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use apache_avro::Schema;
use axum::http::HeaderMap;
use bytes::Bytes;
use figment::value::Dict;

use crate::config::{
    Catalog, Limits, Secret, SourceConfig, SourceDraft, SourceId, SourcesConfig, gather_secrets,
};
use crate::sink::avro::parse_schema;
use crate::sink::kafka::{OutRecord, wire_size};
use crate::topic::TopicName;
use crate::trace;
use crate::verify::{Expectation, HmacKey, KeySet, SignatureError, VerifiedWebhook};

/// Every provider, in one place: adding one is a folder and a line here.
pub static PROVIDERS: Registry =
    Registry(&[&sendbird::Sendbird, &stream::Stream, &standard::Standard]);

/// Kafka record headers every record carries.
pub const HEADER_EVENT_ID: &str = "hookbridge-event-id";
pub const HEADER_CATEGORY: &str = "hookbridge-category";
/// The source's configured id (for Sendbird, the application id).
pub const HEADER_APP_ID: &str = "hookbridge-app-id";
/// The provider's name.
pub const HEADER_SOURCE: &str = "hookbridge-source";
pub const HEADER_DLQ_REASON: &str = "hookbridge-dlq-reason";
/// Dead-letter reason for a record that would exceed the producer's limit.
pub const DLQ_TOO_LARGE: &str = "record_too_large";

/// Header names and values a sender puts on a request.
pub type SignedHeaders = Vec<(&'static str, String)>;

/// A schema file from `schemas/`, embedded at build time and parsed on first use.
#[derive(Debug)]
pub struct SchemaFile {
    pub path: &'static str,
    pub json: &'static str,
    parsed: OnceLock<Result<Schema, String>>,
}

impl SchemaFile {
    pub const fn new(path: &'static str, json: &'static str) -> Self {
        SchemaFile {
            path,
            json,
            parsed: OnceLock::new(),
        }
    }

    /// The parsed schema, kept for the life of the process.
    pub fn schema(&self) -> Result<&Schema, String> {
        self.parsed
            .get_or_init(|| parse_schema(self.path, self.json))
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// One known event category, as a provider's router treats it (`hookbridge events`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CatalogueEntry {
    /// The category or event type, as the sender writes it.
    pub category: String,
    /// The family it belongs to: its topic's suffix and the metrics label.
    pub family: &'static str,
    /// The topic under the provider's default prefix.
    pub topic: String,
    /// How the record key is chosen, in words.
    pub key: String,
    /// Where `occurred_at` comes from and in which unit, in words; empty when it is not set.
    pub occurred_at: String,
    /// The typed fields of the record the category fills (besides the ones every record has).
    pub typed_fields: Vec<String>,
}

/// The topics one source writes.
#[derive(Debug, Clone)]
pub struct SourceTopics {
    /// Topics of Avro records, each with the provider's schema under `<topic>-value`.
    pub events: Vec<TopicName>,
    /// Authentic bodies that could not become records, byte for byte.
    pub dlq: TopicName,
}

/// What a source needs besides its configuration to build records.
pub struct BuildContext<'a> {
    pub limits: &'a Limits,
    /// The registry's id for every event topic.
    pub schema_ids: &'a HashMap<TopicName, u32>,
}

impl BuildContext<'_> {
    /// The schema id of `topic`, or why the source cannot be built.
    pub fn schema_id(&self, topic: &TopicName) -> Result<u32, String> {
        self.schema_ids
            .get(topic)
            .copied()
            .ok_or_else(|| format!("no schema id resolved for topic {topic}"))
    }
}

/// One kind of webhook sender.
pub trait Provider: Sync + 'static {
    /// Route segment, `provider` setting and metrics label.
    fn name(&self) -> &'static str;
    /// How long the sender waits for an answer; publishing must finish before.
    fn sender_timeout(&self) -> Option<Duration>;
    /// Parses one secret into the HMAC key it stands for.
    fn key(&self, secret: &str) -> Result<HmacKey, &'static str>;
    /// Checks a `[[sources]]` entry of this provider: its own settings, its secrets, its prefix.
    /// `legacy` holds this provider's older top-level settings, which may supply defaults.
    fn check_source(
        &self,
        setting: &str,
        draft: SourceDraft,
        legacy: &Dict,
        errors: &mut Vec<String>,
    ) -> Option<SourceConfig>;
    /// Older top-level settings this provider owns.
    fn legacy_keys(&self) -> &'static [&'static str] {
        &[]
    }
    /// Those of the legacy settings that are also read from `HOOKBRIDGE_<KEY>` variables.
    fn legacy_env_keys(&self) -> &'static [&'static str] {
        &[]
    }
    /// The sources the older settings describe.
    fn legacy_sources(&self, _legacy: &Dict, _errors: &mut Vec<String>) -> Vec<SourceConfig> {
        Vec::new()
    }
    /// The Avro schema of every event topic.
    fn schema(&self) -> &'static SchemaFile;
    /// The topics a source writes.
    fn topics(&self, source: &SourceConfig) -> Result<SourceTopics, String>;
    /// The headers a sender holding `secret` puts on `body` at `now_ms` (for `hookbridge sign`
    /// and `hookbridge send`).
    fn sign(
        &self,
        secret: &str,
        body: &[u8],
        now_ms: i64,
    ) -> Result<Vec<(&'static str, String)>, String>;
    /// The event topics and dead-letter topic of a source with topic prefix `prefix` and no
    /// route overrides (`hookbridge schemas check --topic-prefix`; `None`: the default prefix),
    /// for providers whose sources are named by prefix alone.
    fn prefix_topics(&self, _prefix: Option<&str>) -> Option<Result<SourceTopics, String>> {
        None
    }
    /// The provider's own command-line commands (`hookbridge <name> …`), such as a client of
    /// its settings API; `None` when it has none.
    fn command(&self) -> Option<clap::Command> {
        None
    }
    /// Runs the provider's command with the arguments clap parsed for [`Provider::command`].
    fn run_command(&self, _matches: &clap::ArgMatches) -> std::process::ExitCode {
        std::process::ExitCode::from(2)
    }
    /// The event categories the provider knows, as its router treats them
    /// (`hookbridge events`); read from the router's own tables, so it cannot drift.
    fn catalogue(&self) -> Vec<CatalogueEntry> {
        Vec::new()
    }
    /// What the catalogue says, in words, of a provider that has no list of types (its types
    /// are the sender's own); `None` when it has a list.
    fn catalogue_note(&self) -> Option<String> {
        None
    }
    /// The running source.
    fn source(
        &self,
        source: &SourceConfig,
        context: &BuildContext<'_>,
    ) -> Result<Arc<dyn Source>, String>;
}

/// What a verified body becomes.
pub enum Built {
    Event {
        record: OutRecord,
        category: String,
        /// Bounded metrics label.
        family: &'static str,
    },
    DeadLetter {
        reason: &'static str,
        category: Option<String>,
    },
    Internal,
}

/// One configured sender, serving requests.
pub trait Source: Send + Sync + 'static {
    fn provider(&self) -> &'static str;
    fn id(&self) -> &SourceId;
    /// The keys accepted now (swapped by the secrets-file watcher).
    fn keys(&self) -> &Arc<KeySet>;
    /// What the headers say the body must match, before any body byte is read; an error refuses
    /// the request at once.
    fn expect(&self, headers: &HeaderMap, now_ms: i64) -> Result<Expectation, SignatureError>;
    /// Parses, routes and encodes a verified body. Runs on the blocking pool for large bodies.
    fn build(&self, webhook: &VerifiedWebhook) -> Built;
    /// Where bodies that cannot become records go.
    fn dlq_topic(&self) -> &TopicName;
}

/// Where a parsed body goes, as a provider's router says.
pub struct Routed<'a> {
    pub topic: &'a TopicName,
    pub key: Option<String>,
    /// The category or event type: the `hookbridge-category` header when present.
    pub category: Option<String>,
    /// Bounded metrics label.
    pub family: &'static str,
}

/// The record of a routed body, if it fits `max_record_bytes`: the headers every record carries
/// plus the category, and the value `encode` writes once `value_len` (its exact length, from a
/// length pass) showed it fits. A record that cannot be sent is never built: its raw body is
/// dead-lettered (`record_too_large`) instead, since retrying cannot fix it.
pub fn sized_record(
    source: &dyn Source,
    webhook: &VerifiedWebhook,
    routed: Routed<'_>,
    max_record_bytes: usize,
    value_len: usize,
    encode: impl FnOnce() -> Vec<u8>,
) -> Built {
    let mut headers = record_headers(source, webhook);
    if let Some(category) = &routed.category {
        headers.push((HEADER_CATEGORY, category.as_bytes().to_vec()));
    }
    // The trace headers are added later, by the handler; their room is kept here.
    let size =
        wire_size(routed.key.as_deref(), value_len, &headers) + trace::MAX_RECORD_HEADER_BYTES;
    if size > max_record_bytes {
        tracing::error!(
            record_bytes = size,
            limit = max_record_bytes,
            "record larger than the producer limit; dead-lettering the raw body"
        );
        return Built::DeadLetter {
            reason: DLQ_TOO_LARGE,
            category: routed.category,
        };
    }
    Built::Event {
        record: OutRecord {
            topic: routed.topic.as_str().to_owned(),
            key: routed.key,
            value: Bytes::from(encode()),
            headers,
            timestamp_ms: webhook.received_at_ms(),
        },
        category: routed.category.unwrap_or_default(),
        family: routed.family,
    }
}

/// An authentic body that cannot become a record: dead-lettered with `reason`.
pub fn poison(reason: &'static str, category: Option<String>) -> Built {
    tracing::warn!(
        reason,
        "authentic body cannot become a record; dead-lettering it"
    );
    Built::DeadLetter { reason, category }
}

/// The headers every record of `source` carries.
pub fn record_headers(
    source: &dyn Source,
    webhook: &VerifiedWebhook,
) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (HEADER_EVENT_ID, webhook.event_id().as_bytes().to_vec()),
        (HEADER_APP_ID, webhook.source_id().as_bytes().to_vec()),
        (HEADER_SOURCE, source.provider().as_bytes().to_vec()),
    ]
}

/// The keys of a source's secrets (checked when the configuration loaded).
pub fn keys_of(provider: &dyn Provider, secrets: &[Secret]) -> Vec<HmacKey> {
    secrets
        .iter()
        .filter_map(|s| provider.key(s.expose()).ok())
        .collect()
}

/// The common part of [`Provider::check_source`]: secrets (inline and file, at least one) and
/// the topic prefix, defaulting to `default_prefix`.
pub fn check_common(
    provider: &dyn Provider,
    setting: &str,
    draft: SourceDraft,
    default_prefix: String,
    errors: &mut Vec<String>,
) -> Option<SourceConfig> {
    let parse = |s: &str| provider.key(s).map(|_| ());
    let (secrets, inline_secrets) = gather_secrets(
        setting,
        "secrets",
        &draft.secrets,
        draft.secrets_file.as_deref(),
        "secrets_file",
        &parse,
        errors,
    );
    if secrets.is_empty() {
        errors.push(format!(
            "{setting}: {} source {} has no secrets (give secrets or secrets_file)",
            provider.name(),
            draft.id
        ));
    }
    let topic_prefix = draft.topic_prefix.unwrap_or(default_prefix);
    if let Err(why) = TopicName::prefixed(&topic_prefix, "dlq") {
        errors.push(format!("{setting}.topic_prefix: {why}"));
        return None;
    }
    Some(SourceConfig {
        provider: provider.name(),
        id: draft.id,
        secrets,
        inline_secrets,
        secrets_file: draft.secrets_file,
        topic_prefix,
        routes: draft.routes,
        options: draft.options,
    })
}

/// Reports options the provider does not know. `known` lists the ones it reads.
pub fn unknown_options(setting: &str, options: &Dict, known: &[&str], errors: &mut Vec<String>) {
    for key in options.keys() {
        if !known.contains(&key.as_str()) {
            errors.push(format!("{setting}: unknown setting `{key}`"));
        }
    }
}

/// The registry of providers.
pub struct Registry(&'static [&'static dyn Provider]);

impl Registry {
    pub fn get(&self, name: &str) -> Option<&'static dyn Provider> {
        self.0.iter().copied().find(|p| p.name() == name)
    }

    pub fn all(&self) -> &'static [&'static dyn Provider] {
        self.0
    }

    /// The provider the command line uses when none is named: the first registered.
    pub fn default_provider(&self) -> &'static dyn Provider {
        self.0[0]
    }

    /// The default provider's event topics under `prefix` (its default prefix when `None`), with
    /// their schema (`hookbridge schemas check` without a configuration file).
    pub fn prefix_topics(
        &self,
        prefix: Option<&str>,
    ) -> Result<Vec<(TopicName, &'static SchemaFile)>, String> {
        let provider = self.default_provider();
        match provider.prefix_topics(prefix) {
            Some(found) => Ok(found?
                .events
                .into_iter()
                .map(|t| (t, provider.schema()))
                .collect()),
            None => Ok(Vec::new()),
        }
    }

    fn provider_of(&self, source: &SourceConfig) -> Result<&'static dyn Provider, String> {
        self.get(source.provider)
            .ok_or_else(|| format!("unknown provider {}", source.provider))
    }

    /// Every event topic of the configured sources with the schema it holds. A topic two
    /// providers would both write (with different schemas) is refused.
    pub fn event_topics(
        &self,
        sources: &SourcesConfig,
    ) -> Result<Vec<(TopicName, &'static SchemaFile)>, String> {
        let mut topics: Vec<(TopicName, &'static SchemaFile)> = Vec::new();
        for source in &sources.list {
            let provider = self.provider_of(source)?;
            for topic in provider.topics(source)?.events {
                match topics.iter().find(|(t, _)| *t == topic) {
                    Some((_, schema)) if schema.path != provider.schema().path => {
                        return Err(format!(
                            "topic {topic} would hold both {} and {} records; give the sources different topic prefixes",
                            schema.path,
                            provider.schema().path
                        ));
                    }
                    Some(_) => {}
                    None => topics.push((topic, provider.schema())),
                }
            }
        }
        topics.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(topics)
    }

    /// Every topic the configured sources write: event topics and dead-letter topics.
    pub fn all_topics(&self, sources: &SourcesConfig) -> Result<Vec<TopicName>, String> {
        let mut topics: Vec<TopicName> = self
            .event_topics(sources)?
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        for source in &sources.list {
            topics.push(self.provider_of(source)?.topics(source)?.dlq);
        }
        topics.sort();
        topics.dedup();
        Ok(topics)
    }

    /// The running sources.
    pub fn sources(
        &self,
        sources: &SourcesConfig,
        context: &BuildContext<'_>,
    ) -> Result<Vec<Arc<dyn Source>>, String> {
        sources
            .list
            .iter()
            .map(|s| self.provider_of(s)?.source(s, context))
            .collect()
    }

    /// Re-reads each source's secrets file every `interval`, as [`watch_secret_files`] says.
    pub fn watch_secrets(
        &self,
        sources: &SourcesConfig,
        running: &[Arc<dyn Source>],
    ) -> Option<impl std::future::Future<Output = ()> + use<>> {
        let watched: Vec<Watched> = sources
            .list
            .iter()
            .filter_map(|config| {
                let path = config.secrets_file.clone()?;
                let provider = self.get(config.provider)?;
                let source = running
                    .iter()
                    .find(|s| s.provider() == config.provider && s.id() == &config.id)?;
                Some(Watched {
                    provider,
                    id: config.id.clone(),
                    inline: keys_of(provider, &config.inline_secrets),
                    path,
                    set: source.keys().clone(),
                })
            })
            .collect();
        (!watched.is_empty()).then(|| watch_secret_files(watched, sources.reload_interval))
    }
}

impl Catalog for Registry {
    fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|p| p.name()).collect()
    }

    fn legacy_keys(&self) -> Vec<&'static str> {
        self.0
            .iter()
            .flat_map(|p| p.legacy_keys().iter().copied())
            .collect()
    }

    fn legacy_env_keys(&self) -> Vec<&'static str> {
        self.0
            .iter()
            .flat_map(|p| p.legacy_env_keys().iter().copied())
            .collect()
    }

    fn legacy_sources(&self, legacy: &Dict, errors: &mut Vec<String>) -> Vec<SourceConfig> {
        self.0
            .iter()
            .flat_map(|p| p.legacy_sources(&legacy_of(*p, legacy), errors))
            .collect()
    }

    fn check_source(
        &self,
        setting: &str,
        draft: SourceDraft,
        legacy: &Dict,
        errors: &mut Vec<String>,
    ) -> Option<SourceConfig> {
        let provider = self.get(&draft.provider)?;
        provider.check_source(setting, draft, &legacy_of(provider, legacy), errors)
    }

    fn sender_timeout(&self, provider: &str) -> Option<Duration> {
        self.get(provider)?.sender_timeout()
    }

    fn how_to_configure(&self) -> String {
        let mut hint = format!(
            "sources: no source configured; add [[sources]] (provider = {})",
            self.names().join(", ")
        );
        for p in self.0 {
            if !p.legacy_keys().is_empty() {
                hint.push_str(&format!(
                    ", or {} settings ({})",
                    p.name(),
                    p.legacy_keys().join(", ")
                ));
            }
        }
        hint
    }
}

/// The legacy settings `provider` owns.
fn legacy_of(provider: &dyn Provider, legacy: &Dict) -> Dict {
    legacy
        .iter()
        .filter(|(k, _)| provider.legacy_keys().contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A source whose secrets file is watched.
pub struct Watched {
    provider: &'static dyn Provider,
    id: SourceId,
    /// Keys given inline, kept beside the file's.
    inline: Vec<HmacKey>,
    path: std::path::PathBuf,
    set: Arc<KeySet>,
}

/// Re-reads each source's secrets file every `interval`. A file that cannot be read or holds no
/// valid secret leaves the current set in place (a half-written Secret must not lock senders
/// out). A changed file is installed only once two reads one interval apart agree, so a file
/// caught mid-write never becomes a key. Kubernetes swaps mounted Secrets atomically; others
/// should write a new file and rename it into place.
pub async fn watch_secret_files(watched: Vec<Watched>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut previous: Vec<Option<Vec<HmacKey>>> = vec![None; watched.len()];
    loop {
        tick.tick().await;
        for (w, previous) in watched.iter().zip(previous.iter_mut()) {
            let (provider, id) = (w.provider.name(), w.id.as_str());
            // File reads block; keep them off the runtime's worker threads.
            let (file, parser) = (w.path.clone(), w.provider);
            let read = tokio::task::spawn_blocking(move || {
                crate::config::read_secrets_file(&file, |s| parser.key(s))
            })
            .await
            .unwrap_or_else(|e| Err(format!("reading task failed: {e}")));
            let from_file = match read {
                Ok(keys) if !keys.is_empty() => keys,
                Ok(_) => {
                    tracing::warn!(
                        provider,
                        app_id = id,
                        "secrets file holds no secret; keeping the current API tokens"
                    );
                    *previous = None;
                    continue;
                }
                Err(why) => {
                    tracing::warn!(
                        provider,
                        app_id = id,
                        error = why,
                        "cannot reload API tokens; keeping the current ones"
                    );
                    metrics::counter!(crate::telemetry::TOKEN_RELOAD_FAILURES, "provider" => provider, "app_id" => id.to_owned()).increment(1);
                    *previous = None;
                    continue;
                }
            };
            let stable = previous.as_ref() == Some(&from_file);
            *previous = Some(from_file.clone());
            if !stable {
                continue;
            }
            let keys: Vec<HmacKey> = w.inline.iter().cloned().chain(from_file).collect();
            let count = keys.len();
            if w.set.replace(keys) {
                metrics::gauge!(crate::telemetry::API_TOKENS, "provider" => provider, "app_id" => id.to_owned())
                    .set(count as f64);
                tracing::info!(provider, app_id = id, tokens = count, "API tokens reloaded");
            }
        }
    }
}
