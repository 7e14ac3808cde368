//! The `sources` section: who may send webhooks, with which secrets, to which topics. Loading
//! knows no provider: a [`Catalog`] (the providers' registry) checks what is provider-specific.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::value::{Dict, Value};
use serde::Deserialize;

use super::Secret;
use crate::topic::{CategoryPattern, RouteOverride, TopicName};

/// A source's id: a route segment, so URL-safe. Ids match in any case; the configured form is
/// the one records carry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(String);

impl SourceId {
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
        Ok(SourceId(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form ids are matched in.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One configured sender: a provider, an id, its secrets and where its records go.
#[derive(Clone, Debug)]
pub struct SourceConfig {
    /// The provider's name, as its registry entry gives it (a bounded metrics label).
    pub provider: &'static str,
    pub id: SourceId,
    /// Every secret accepted at start-up; more than one while rotating. Checked by the provider.
    pub secrets: Vec<Secret>,
    /// The secrets given inline, kept when the secrets file is re-read.
    pub inline_secrets: Vec<Secret>,
    /// A mounted secret re-read every `secrets_reload_interval`, so rotation needs no restart.
    pub secrets_file: Option<PathBuf>,
    pub topic_prefix: String,
    pub routes: Vec<RouteOverride>,
    /// Provider-specific settings, checked by the provider when the configuration loaded.
    pub options: Dict,
}

#[derive(Clone, Debug)]
pub struct SourcesConfig {
    pub list: Vec<SourceConfig>,
    /// How often secrets files are re-read.
    pub reload_interval: Duration,
}

/// One `[[sources]]` entry as written. Settings not named here are the provider's own.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
pub struct RawSource {
    #[serde(default)]
    pub provider: String,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub secrets: Vec<String>,
    pub secrets_file: Option<PathBuf>,
    pub topic_prefix: Option<String>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    #[serde(flatten)]
    pub options: BTreeMap<String, Value>,
}

#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub category: String,
    pub topic: String,
}

/// Checks `[[routes]]`-style entries; `setting` names them in messages.
pub fn check_routes(
    setting: &str,
    raw: Vec<RawRoute>,
    errors: &mut Vec<String>,
) -> Vec<RouteOverride> {
    let mut routes = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let pattern = CategoryPattern::parse(&r.category)
            .map_err(|why| errors.push(format!("{setting}[{i}].category: {why}")))
            .ok();
        let topic = TopicName::parse(&r.topic)
            .map_err(|why| errors.push(format!("{setting}[{i}].topic: {why}")))
            .ok();
        if let (Some(pattern), Some(topic)) = (pattern, topic) {
            routes.push(RouteOverride { pattern, topic });
        }
    }
    routes
}

/// What configuration loading asks of the providers, without naming any: the providers'
/// registry implements it.
pub trait Catalog {
    /// The providers' names, as `[[sources]] provider` takes them.
    fn names(&self) -> Vec<&'static str>;
    /// Settings (top-level keys, lower case) a provider owns: older single-provider forms.
    fn legacy_keys(&self) -> Vec<&'static str>;
    /// Those of the legacy keys also read from `HOOKBRIDGE_<KEY>` variables, as text.
    fn legacy_env_keys(&self) -> Vec<&'static str>;
    /// Turns the legacy settings into sources, reporting every problem.
    fn legacy_sources(&self, legacy: &Dict, errors: &mut Vec<String>) -> Vec<SourceConfig>;
    /// The checked source of one `[[sources]]` entry (`setting` names it in messages), or
    /// `None` after reporting why not. The legacy settings may supply defaults.
    fn check_source(
        &self,
        setting: &str,
        draft: SourceDraft,
        legacy: &Dict,
        errors: &mut Vec<String>,
    ) -> Option<SourceConfig>;
    /// How long a provider's sender waits for an answer: publishing must finish sooner.
    fn sender_timeout(&self, provider: &str) -> Option<Duration>;
    /// What to tell a user who configured no source.
    fn how_to_configure(&self) -> String;
}

/// A `[[sources]]` entry after the generic checks, before the provider's.
#[derive(Debug)]
pub struct SourceDraft {
    pub id: SourceId,
    pub provider: String,
    pub secrets: Vec<String>,
    pub secrets_file: Option<PathBuf>,
    pub topic_prefix: Option<String>,
    pub routes: Vec<RouteOverride>,
    pub options: Dict,
}

/// Generic checks of the `[[sources]]` entries, then the catalog's; then ids must be unique per
/// provider, counting the legacy forms.
pub(super) fn check(
    raw: Vec<RawSource>,
    legacy: &Dict,
    catalog: &dyn Catalog,
    errors: &mut Vec<String>,
) -> Vec<SourceConfig> {
    let mut list = catalog.legacy_sources(legacy, errors);
    for (i, raw) in raw.into_iter().enumerate() {
        let setting = format!("sources[{i}]");
        let names = catalog.names();
        if !names.contains(&raw.provider.as_str()) {
            errors.push(format!(
                "{setting}.provider: {:?} is not one of {}",
                raw.provider,
                names.join(", ")
            ));
            continue;
        }
        let id = match SourceId::parse(&raw.id) {
            Ok(id) => id,
            Err(why) => {
                errors.push(format!("{setting}.id: {why}"));
                continue;
            }
        };
        let routes = check_routes(&format!("{setting}.routes"), raw.routes, errors);
        let draft = SourceDraft {
            id,
            provider: raw.provider,
            secrets: raw.secrets,
            secrets_file: raw.secrets_file,
            topic_prefix: raw.topic_prefix,
            routes,
            options: raw.options.into_iter().collect(),
        };
        if let Some(source) = catalog.check_source(&setting, draft, legacy, errors) {
            list.push(source);
        }
    }
    let mut seen = BTreeSet::new();
    for source in &list {
        if !seen.insert((source.provider, source.id.key())) {
            errors.push(format!(
                "sources: {} source {} is configured twice (ids match in any case); configure each in one place",
                source.provider, source.id
            ));
        }
    }
    if list.is_empty() {
        errors.push(catalog.how_to_configure());
    }
    list
}

/// Checks secrets with `parse` (the provider's rule), naming them by position only, as
/// `{noun} #n` ("secret", or what the provider calls them, such as "token").
pub fn check_secrets<'a, T>(
    setting: &str,
    noun: &str,
    secrets: impl IntoIterator<Item = &'a str>,
    parse: impl Fn(&str) -> Result<T, &'static str>,
    errors: &mut Vec<String>,
) -> Vec<Secret> {
    let mut out = Vec::new();
    for (i, secret) in secrets.into_iter().enumerate() {
        match parse(secret) {
            Ok(_) => out.push(Secret::new(secret.trim())),
            Err(why) => errors.push(format!("{setting}: {noun} #{}: {why}", i + 1)),
        }
    }
    out
}

/// Lines of a mounted secret file: one secret a line, blank lines and `#` comments ignored.
pub fn secret_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Reads a secrets file (at start-up and on every reload), checking each line with `parse`.
/// The error names the file and the line's position, never a secret.
pub fn read_secrets_file<T>(
    path: &Path,
    parse: impl Fn(&str) -> Result<T, &'static str>,
) -> Result<Vec<T>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut secrets = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in secret_lines(&text).enumerate() {
        match parse(line) {
            Ok(t) => secrets.push(t),
            Err(why) => problems.push(format!("secret #{}: {why}", i + 1)),
        }
    }
    if problems.is_empty() {
        Ok(secrets)
    } else {
        Err(problems.join("; "))
    }
}

/// Inline secrets plus those of the file, checked with `parse`, and the inline ones alone.
/// `what` and `file_setting` name the two settings in messages.
pub fn gather_secrets(
    setting: &str,
    what: &str,
    inline: &[String],
    file: Option<&Path>,
    file_setting: &str,
    parse: &dyn Fn(&str) -> Result<(), &'static str>,
    errors: &mut Vec<String>,
) -> (Vec<Secret>, Vec<Secret>) {
    let inline = check_secrets(
        &format!("{setting}.{what}"),
        "secret",
        inline.iter().map(String::as_str),
        parse,
        errors,
    );
    let mut all = inline.clone();
    if let Some(path) = file {
        match read_secrets_file(path, |line| parse(line).map(|()| Secret::new(line))) {
            Ok(from_file) => all.extend(from_file),
            Err(why) => errors.push(format!("{setting}.{file_setting}: {why}")),
        }
    }
    (all, inline)
}
