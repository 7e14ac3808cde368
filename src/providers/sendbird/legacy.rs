//! The configuration forms from before `[[sources]]`, kept working unchanged: `[[apps]]`, the
//! `HOOKBRIDGE_SENDBIRD_APP_ID` + `HOOKBRIDGE_SENDBIRD_API_TOKENS` shortcut, `topic_prefix` and
//! `[[routes]]` (both for these apps).

use std::collections::BTreeSet;
use std::path::PathBuf;

use figment::Figment;
use figment::providers::Serialized;
use figment::value::Dict;
use serde::Deserialize;

use super::{ApiToken, DEFAULT_PREFIX, NAME};
use crate::config::{
    RawRoute, Secret, SourceConfig, SourceId, check_routes, check_secrets, describe_without_values,
    read_secrets_file,
};
use crate::topic::TopicName;

/// The top-level settings read here.
pub const KEYS: &[&str] = &[
    "apps",
    "routes",
    "topic_prefix",
    "sendbird_app_id",
    "sendbird_api_tokens",
];
/// Those also read from the environment (`HOOKBRIDGE_` + upper case), as before `[[sources]]`.
pub const ENV_KEYS: &[&str] = &["topic_prefix", "sendbird_app_id", "sendbird_api_tokens"];

#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(default)]
struct Legacy {
    apps: Vec<RawApp>,
    routes: Vec<RawRoute>,
    topic_prefix: Option<String>,
    sendbird_app_id: Option<String>,
    sendbird_api_tokens: Option<String>,
}

#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    app_id: String,
    #[serde(default)]
    api_tokens: Vec<String>,
    api_tokens_file: Option<PathBuf>,
}

/// Reads each setting on its own, so every badly typed one is reported (never its value).
fn read(settings: &Dict, errors: &mut Vec<String>) -> Legacy {
    let mut good = Figment::new();
    for (key, value) in settings {
        let single = Figment::from(Serialized::default(key, value));
        match single.extract::<Legacy>() {
            Ok(_) => good = good.merge(single),
            Err(e) => errors.extend(e.into_iter().map(|e| describe_without_values(&e))),
        }
    }
    good.extract().unwrap_or_default()
}

/// Tokens from a list, checked; the setting name is used in messages, the value never is.
fn check_tokens<'a>(
    setting: &str,
    tokens: impl IntoIterator<Item = &'a str>,
    errors: &mut Vec<String>,
) -> Vec<Secret> {
    check_secrets(setting, "token", tokens, ApiToken::parse, errors)
}

/// The top-level `topic_prefix` and `[[routes]]`, which Sendbird `[[sources]]` take as their
/// defaults as every app did (problems with them are reported by [`sources`]).
pub fn defaults(settings: &Dict) -> (Option<String>, Vec<crate::topic::RouteOverride>) {
    let mut ignored = Vec::new();
    let raw = read(settings, &mut ignored);
    (
        raw.topic_prefix,
        check_routes("routes", raw.routes, &mut ignored),
    )
}

/// The Sendbird sources the older settings describe.
pub fn sources(settings: &Dict, errors: &mut Vec<String>) -> Vec<SourceConfig> {
    let raw = read(settings, errors);
    let topic_prefix = raw.topic_prefix.unwrap_or_else(|| DEFAULT_PREFIX.into());
    if let Err(why) = TopicName::prefixed(&topic_prefix, "other") {
        errors.push(format!("topic_prefix (HOOKBRIDGE_TOPIC_PREFIX): {why}"));
    }
    let routes = check_routes("routes", raw.routes, errors);
    let source = |id: SourceId, secrets: Vec<Secret>, inline: Vec<Secret>, file| SourceConfig {
        provider: NAME,
        id,
        secrets,
        inline_secrets: inline,
        secrets_file: file,
        topic_prefix: topic_prefix.clone(),
        routes: routes.clone(),
        options: Dict::new(),
    };

    let mut apps = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, app) in raw.apps.into_iter().enumerate() {
        let setting = format!("apps[{i}]");
        let app_id = match SourceId::parse(&app.app_id) {
            Ok(id) => id,
            Err(why) => {
                errors.push(format!("{setting}.app_id: {why}"));
                continue;
            }
        };
        if !seen.insert(app_id.key()) {
            errors.push(format!("{setting}.app_id: {app_id} is configured twice"));
            continue;
        }
        let inline = check_tokens(
            &format!("{setting}.api_tokens"),
            app.api_tokens.iter().map(String::as_str),
            errors,
        );
        let mut tokens = inline.clone();
        if let Some(path) = &app.api_tokens_file {
            match read_secrets_file(path, |line| {
                ApiToken::parse(line).map(|_| Secret::new(line))
            }) {
                Ok(from_file) => tokens.extend(from_file),
                Err(why) => errors.push(format!("{setting}.api_tokens_file: {why}")),
            }
        }
        if tokens.is_empty() {
            errors.push(format!(
                "{setting}: app {app_id} has no api_tokens (give api_tokens or api_tokens_file)"
            ));
        }
        apps.push(source(app_id, tokens, inline, app.api_tokens_file));
    }

    match (raw.sendbird_app_id, raw.sendbird_api_tokens) {
        (None, None) => {}
        (Some(id), Some(tokens)) => match SourceId::parse(&id) {
            Ok(app_id) => {
                let tokens = check_tokens(
                    "HOOKBRIDGE_SENDBIRD_API_TOKENS",
                    tokens.split(',').map(str::trim).filter(|t| !t.is_empty()),
                    errors,
                );
                if tokens.is_empty() {
                    errors.push("HOOKBRIDGE_SENDBIRD_API_TOKENS: no token given".into());
                }
                if seen.contains(&app_id.key()) {
                    errors.push(format!(
                        "HOOKBRIDGE_SENDBIRD_APP_ID: app {app_id} is also configured in [[apps]]; configure each app in one place"
                    ));
                } else {
                    apps.push(source(app_id, tokens.clone(), tokens, None));
                }
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
    apps
}
