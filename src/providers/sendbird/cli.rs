//! `hookbridge sendbird webhook show|categories|set`: a small client of Sendbird's Platform API
//! for an application's webhook settings (`/v3/applications/settings/webhook`).
//!
//! `set` reads the current settings, merges its flags into them and sends one `PUT` with the
//! whole result, so a flag never resets a setting it does not name, and a request that fails
//! leaves nothing half-applied. The pure parts (flags → [`Change`], [`merge`], [`diff`],
//! [`warnings`], [`mark`]) are plain functions tested below; [`Api`] does the I/O.
//!
//! Exit codes: 0 done; 1 Sendbird refused, the network failed or timed out, or the answer was
//! not the documented shape; 2 bad flags or environment (no token, a plain-http `--url`, a
//! category Sendbird does not offer), always found before anything is changed.

use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

use super::routing::Family;
use super::{ApiToken, DEFAULT_PREFIX};

/// The settings resource, under the API's base URL.
const SETTINGS_PATH: &str = "/v3/applications/settings/webhook";
/// The content type Sendbird's Platform API documents, spelled as it spells it.
const CONTENT_TYPE_JSON: &str = "application/json; charset=utf8";
/// `enabled_events: ["*"]`: every category, including ones Sendbird adds later.
const ALL: &str = "*";
/// The category a push-notification consumer starts from; it needs the channel's members.
const NOTIFICATION_CATEGORY: &str = "group_channel:message_send";

/// `hookbridge sendbird …`.
pub fn command() -> clap::Command {
    SendbirdArgs::command()
}

/// Runs `hookbridge sendbird …` with what clap parsed for [`command`].
pub fn run(matches: &clap::ArgMatches) -> ExitCode {
    let args = SendbirdArgs::from_arg_matches(matches).unwrap_or_else(|e| e.exit());
    let SendbirdCommand::Webhook { command } = args.command;
    let name = match &command {
        WebhookCommand::Show { .. } => "show",
        WebhookCommand::Categories { .. } => "categories",
        WebhookCommand::Set(_) => "set",
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hookbridge sendbird webhook {name}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(webhook(command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hookbridge sendbird webhook {name}: {e}");
            match e {
                Failure::Usage(_) => ExitCode::from(2),
                Failure::Api(_) | Failure::Local(_) => ExitCode::FAILURE,
            }
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "sendbird",
    about = "Sendbird's own commands: read or change an application's webhook settings"
)]
struct SendbirdArgs {
    #[command(subcommand)]
    command: SendbirdCommand,
}

#[derive(Subcommand, Debug)]
enum SendbirdCommand {
    /// Read or change the webhook settings through Sendbird's Platform API.
    Webhook {
        #[command(subcommand)]
        command: WebhookCommand,
    },
}

#[derive(Subcommand, Debug)]
enum WebhookCommand {
    /// Print enabled, url, include_members, include_unread_count and enabled_events.
    Show {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List every category Sendbird offers, marking where hookbridge routes each: its dedicated
    /// family, or the catch-all `<prefix>other`.
    Categories {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Change the settings: reads the current ones, prints the diff (before → after) and sends
    /// one PUT with the merged result. Settings no flag names stay as they are.
    Set(SetArgs),
}

#[derive(Args, Debug)]
struct ApiArgs {
    /// The Sendbird application id.
    #[arg(long, value_name = "APP", required_unless_present = "api_url")]
    app_id: Option<String>,
    /// Name of the environment variable that holds the master API token (never the token).
    #[arg(long, value_name = "VAR")]
    api_token_env: String,
    /// The Platform API's base URL [default: https://api-{app_id}.sendbird.com]. Plain http is
    /// accepted only for this machine (localhost, 127.0.0.1, [::1]): the token travels in a header.
    #[arg(long, value_name = "URL")]
    api_url: Option<String>,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Seconds to wait for each answer.
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    timeout: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Args, Debug)]
// At least one change; the usage line says which flags exclude each other.
#[command(
    override_usage = "hookbridge sendbird webhook set (--app-id APP | --api-url URL) \
    --api-token-env VAR\n       \
    [--url URL [--allow-http]] [--enable | --disable]\n       \
    [--events A,B | [--add-events A,B] [--remove-events C,D] | --all-events]\n       \
    [--include-members | --no-include-members] \
    [--include-unread-count | --no-include-unread-count]\n       \
    [--dry-run] [--output text|json] [--timeout SECS]"
)]
#[command(group(
    ArgGroup::new("change")
        .required(true)
        .multiple(true)
        .args([
            "url", "enable", "disable", "events", "add_events", "remove_events", "all_events",
            "include_members", "no_include_members", "include_unread_count",
            "no_include_unread_count",
        ])
))]
struct SetArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// The URL Sendbird posts webhooks to; https unless --allow-http.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Accept a plain-http --url (a test receiver: the signed bodies would travel in the clear).
    #[arg(long, requires = "url")]
    allow_http: bool,
    /// Turn webhooks on.
    #[arg(long, conflicts_with = "disable")]
    enable: bool,
    /// Turn webhooks off.
    #[arg(long)]
    disable: bool,
    /// Enable exactly these categories (comma-separated; an empty list enables none, which
    /// Sendbird treats as webhooks off).
    #[arg(long, value_name = "CATEGORY,…", value_delimiter = ',',
          conflicts_with_all = ["add_events", "remove_events", "all_events"])]
    events: Option<Vec<String>>,
    /// Enable these categories besides the ones already enabled.
    #[arg(
        long,
        value_name = "CATEGORY,…",
        value_delimiter = ',',
        conflicts_with = "all_events"
    )]
    add_events: Vec<String>,
    /// Disable these categories, keeping the others.
    #[arg(
        long,
        value_name = "CATEGORY,…",
        value_delimiter = ',',
        conflicts_with = "all_events"
    )]
    remove_events: Vec<String>,
    /// Enable every category, including those Sendbird adds later (`["*"]`).
    #[arg(long)]
    all_events: bool,
    /// Send the channel's members with each event (push notifications need them).
    #[arg(long, conflicts_with = "no_include_members")]
    include_members: bool,
    /// Send events without members.
    #[arg(long)]
    no_include_members: bool,
    /// Send each member's total unread message and mention counts.
    #[arg(long, conflicts_with = "no_include_unread_count")]
    include_unread_count: bool,
    /// Send events without unread counts.
    #[arg(long)]
    no_include_unread_count: bool,
    /// Print the diff and send nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// Bad flags or environment: exit 2.
    #[error("{0}")]
    Usage(String),
    /// Sendbird or the network: exit 1.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// This machine (no runtime, no HTTP client): exit 1.
    #[error("{0}")]
    Local(String),
}

/// A request that did not bring back the settings.
#[derive(Debug, thiserror::Error)]
#[error("{request}: {kind}")]
struct ApiError {
    /// Method and URL (the token is in a header, never in the URL).
    request: String,
    kind: ApiErrorKind,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum ApiErrorKind {
    #[error("Sendbird refused the request: {message} (code {code}, HTTP {status})")]
    Sendbird {
        status: u16,
        code: String,
        message: String,
    },
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("no answer within {0} s")]
    Timeout(u64),
    #[error("{0}")]
    Network(String),
    #[error("the answer is not the documented {{\"webhook\": {{…}}}}: {0}")]
    Unexpected(String),
}

/// The webhook settings as Sendbird reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Settings {
    enabled: bool,
    /// `None` when no URL is set.
    #[serde(default, deserialize_with = "non_empty")]
    url: Option<String>,
    include_members: bool,
    /// `None` when the answer leaves it out (Sendbird's documented GET answer does not list it).
    #[serde(default)]
    include_unread_count: Option<bool>,
    /// Required: taking a missing list for `[]` would turn webhooks off on the next `set`.
    enabled_events: Vec<String>,
}

fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

/// The settings, and with `display_all_webhook_categories=true` every category Sendbird offers.
#[derive(Debug, Clone, Deserialize)]
struct Remote {
    #[serde(flatten)]
    settings: Settings,
    #[serde(default)]
    all_webhook_categories: Vec<String>,
}

#[derive(Deserialize)]
struct Answer {
    webhook: Remote,
}

/// What `set`'s flags ask for; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Change {
    enabled: Option<bool>,
    url: Option<String>,
    include_members: Option<bool>,
    include_unread_count: Option<bool>,
    events: Events,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Events {
    #[default]
    Keep,
    Exactly(Vec<String>),
    All,
    Edit {
        add: Vec<String>,
        remove: Vec<String>,
    },
}

impl Change {
    fn from_args(args: &SetArgs) -> Result<Change, String> {
        let events = if args.all_events {
            Events::All
        } else if let Some(list) = &args.events {
            Events::Exactly(categories("--events", list)?)
        } else if args.add_events.is_empty() && args.remove_events.is_empty() {
            Events::Keep
        } else {
            let add = categories("--add-events", &args.add_events)?;
            let remove = categories("--remove-events", &args.remove_events)?;
            if let Some(both) = add.iter().find(|c| remove.contains(*c)) {
                return Err(format!(
                    "{both} is both in --add-events and --remove-events"
                ));
            }
            Events::Edit { add, remove }
        };
        Ok(Change {
            enabled: either(args.enable, args.disable),
            url: args
                .url
                .as_deref()
                .map(|u| webhook_url(u, args.allow_http))
                .transpose()?,
            include_members: either(args.include_members, args.no_include_members),
            include_unread_count: either(args.include_unread_count, args.no_include_unread_count),
            events,
        })
    }
}

/// A `--x`/`--no-x` pair (clap refuses both at once).
fn either(on: bool, off: bool) -> Option<bool> {
    (on || off).then_some(on)
}

/// A comma-separated category list, trimmed, without blanks or repeats.
fn categories(flag: &str, list: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for category in list.iter().map(|c| c.trim()).filter(|c| !c.is_empty()) {
        if category == ALL {
            return Err(format!("{flag}: use --all-events for every category"));
        }
        if category
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!("{flag}: {category:?} is not a category"));
        }
        if !out.iter().any(|c| c == category) {
            out.push(category.to_owned());
        }
    }
    Ok(out)
}

/// The webhook URL, refused unless https (or http with `allow_http`).
fn webhook_url(url: &str, allow_http: bool) -> Result<String, String> {
    let url = url.trim();
    let parsed = Url::parse(url).map_err(|e| format!("--url {url:?} is not a URL: {e}"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err(format!(
                "--url {url} is not https: Sendbird would send every signed body in the clear \
                 (give --allow-http for a test receiver)"
            ));
        }
        other => return Err(format!("--url {url}: {other} is neither https nor http")),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("--url {url} names no host"));
    }
    Ok(url.to_owned())
}

/// The settings after `change`. `offered` is every category Sendbird offers (empty when it did
/// not say): categories to enable must be among them, and removing one from `["*"]` lists them.
fn merge(current: &Settings, offered: &[String], change: &Change) -> Result<Settings, String> {
    let named: &[String] = match &change.events {
        Events::Exactly(list) => list,
        Events::Edit { add, .. } => add,
        Events::Keep | Events::All => &[],
    };
    // Removing a category Sendbird no longer offers is harmless, so only added ones are checked.
    let unknown: Vec<&str> = named
        .iter()
        .filter(|c| !offered.is_empty() && !offered.contains(*c))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "Sendbird does not offer {} (see `hookbridge sendbird webhook categories`)",
            unknown.join(", ")
        ));
    }
    let everything = current.enabled_events.iter().any(|e| e == ALL);
    let enabled_events = match &change.events {
        Events::Keep => current.enabled_events.clone(),
        Events::All => vec![ALL.to_owned()],
        Events::Exactly(list) => list.clone(),
        // `*` already covers whatever is added.
        Events::Edit { remove, .. } if everything && remove.is_empty() => {
            current.enabled_events.clone()
        }
        Events::Edit { add, remove } => {
            let base: &[String] = if everything {
                if offered.is_empty() {
                    return Err(
                        "every category is enabled (`*`) and Sendbird did not list its \
                                categories, so none can be removed: give --events"
                            .to_owned(),
                    );
                }
                offered
            } else {
                &current.enabled_events
            };
            let mut events: Vec<String> = base
                .iter()
                .filter(|e| !remove.contains(*e))
                .cloned()
                .collect();
            for category in add {
                if !events.contains(category) {
                    events.push(category.clone());
                }
            }
            events
        }
    };
    Ok(Settings {
        enabled: change.enabled.unwrap_or(current.enabled),
        url: change.url.clone().or_else(|| current.url.clone()),
        include_members: change.include_members.unwrap_or(current.include_members),
        include_unread_count: change.include_unread_count.or(current.include_unread_count),
        enabled_events,
    })
}

/// The body of the one `PUT`: the whole merged settings, leaving out only what is unknown (no
/// URL set, an unread-count setting Sendbird did not report).
fn put_body(settings: &Settings) -> Value {
    let mut body = json!({
        "enabled": settings.enabled,
        "include_members": settings.include_members,
        "enabled_events": settings.enabled_events,
    });
    if let Some(url) = &settings.url {
        body["url"] = json!(url);
    }
    if let Some(count) = settings.include_unread_count {
        body["include_unread_count"] = json!(count);
    }
    body
}

/// What differs between two settings.
#[derive(Debug, Default, PartialEq, Eq)]
struct Diff {
    /// Setting, before, after.
    fields: Vec<(&'static str, Value, Value)>,
    added: Vec<String>,
    removed: Vec<String>,
}

fn diff(before: &Settings, after: &Settings) -> Diff {
    let mut fields = Vec::new();
    let pairs = [
        ("enabled", json!(before.enabled), json!(after.enabled)),
        ("url", json!(before.url), json!(after.url)),
        (
            "include_members",
            json!(before.include_members),
            json!(after.include_members),
        ),
        (
            "include_unread_count",
            json!(before.include_unread_count),
            json!(after.include_unread_count),
        ),
    ];
    for (name, b, a) in pairs {
        if b != a {
            fields.push((name, b, a));
        }
    }
    let missing_from = |from: &[String], of: &[String]| -> Vec<String> {
        of.iter().filter(|e| !from.contains(*e)).cloned().collect()
    };
    Diff {
        fields,
        added: missing_from(&before.enabled_events, &after.enabled_events),
        removed: missing_from(&after.enabled_events, &before.enabled_events),
    }
}

impl Diff {
    fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.added.is_empty() && self.removed.is_empty()
    }

    fn lines(&self) -> Vec<String> {
        let text = |v: &Value| match v {
            Value::Null => "(none)".to_owned(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let fields = self
            .fields
            .iter()
            .map(|(name, b, a)| format!("{name}: {} → {}", text(b), text(a)));
        let added = self
            .added
            .iter()
            .map(|e| format!("enabled_events: + {}", event_text(e)));
        let removed = self
            .removed
            .iter()
            .map(|e| format!("enabled_events: - {}", event_text(e)));
        fields.chain(added).chain(removed).collect()
    }

    fn to_json(&self) -> Value {
        let mut out = serde_json::Map::new();
        for (name, b, a) in &self.fields {
            out.insert((*name).to_owned(), json!({"before": b, "after": a}));
        }
        if !self.added.is_empty() || !self.removed.is_empty() {
            out.insert(
                "enabled_events".to_owned(),
                json!({"added": self.added, "removed": self.removed}),
            );
        }
        Value::Object(out)
    }
}

fn event_text(category: &str) -> String {
    if category == ALL {
        "* (every category)".to_owned()
    } else {
        category.to_owned()
    }
}

/// Where hookbridge routes `category` by default: its family's label, and whether that family
/// is a dedicated one rather than the catch-all `<prefix>other`.
fn mark(category: &str) -> (&'static str, bool) {
    let family = Family::of(category);
    (family.label(), family != Family::Other)
}

/// What an operator should know about `settings` before relying on them.
fn warnings(settings: &Settings, offered: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let everything = settings.enabled_events.iter().any(|e| e == ALL);
    let enabled: &[String] = if everything {
        offered
    } else {
        &settings.enabled_events
    };
    if !settings.include_members
        && (everything || enabled.iter().any(|e| e == NOTIFICATION_CATEGORY))
    {
        out.push(format!(
            "include_members is off: {NOTIFICATION_CATEGORY} arrives without `members`, so a \
             push-notification consumer cannot tell whom to notify (--include-members)"
        ));
    }
    let other: Vec<&str> = enabled
        .iter()
        .filter(|c| !mark(c).1)
        .map(String::as_str)
        .collect();
    if !other.is_empty() {
        out.push(format!(
            "no dedicated family for {}: these land in <prefix>other ({DEFAULT_PREFIX}other by \
             default)",
            other.join(", ")
        ));
    }
    if settings.enabled && settings.enabled_events.is_empty() {
        out.push("no category is enabled: Sendbird sends nothing".to_owned());
    }
    out
}

/// The settings endpoint under the API's base URL, refused unless https or local.
fn endpoint(app_id: Option<&str>, api_url: Option<&str>) -> Result<Url, String> {
    let base = match (api_url, app_id) {
        (Some(url), _) => url.trim().trim_end_matches('/').to_owned(),
        (None, Some(app)) => {
            if app.is_empty() || !app.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(format!("--app-id {app:?} is not an application id"));
            }
            format!("https://api-{app}.sendbird.com")
        }
        (None, None) => return Err("give --app-id or --api-url".to_owned()),
    };
    let base = base.strip_suffix("/v3").unwrap_or(&base);
    let url = Url::parse(&format!("{base}{SETTINGS_PATH}"))
        .map_err(|e| format!("--api-url {base:?} is not a URL: {e}"))?;
    let host = url.host_str().unwrap_or_default();
    let local = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(url),
        "http" if local => Ok(url),
        _ => Err(format!(
            "--api-url {base} must be https (plain http only to this machine), since the master \
             token travels in a header"
        )),
    }
}

/// The `Api-Token` header from the variable `var`, or why there is none.
fn token_header(var: &str) -> Result<HeaderValue, String> {
    let value = std::env::var(var).map_err(|e| match e {
        std::env::VarError::NotPresent => format!("environment variable {var} is not set"),
        std::env::VarError::NotUnicode(_) => format!("environment variable {var} is not UTF-8"),
    })?;
    let token = ApiToken::parse(&value).map_err(|why| format!("the token in {var} {why}"))?;
    // The one place the token leaves its wrapper: a header marked sensitive, so no Debug output
    // of the request shows it.
    let mut header = HeaderValue::from_str(token.0.expose())
        .map_err(|_| format!("the token in {var} holds characters a header cannot carry"))?;
    header.set_sensitive(true);
    Ok(header)
}

/// The settings API of one application.
struct Api {
    http: reqwest::Client,
    endpoint: Url,
    token: HeaderValue,
    timeout_secs: u64,
}

impl Api {
    fn new(args: &ApiArgs) -> Result<Api, Failure> {
        let token = token_header(&args.api_token_env).map_err(Failure::Usage)?;
        let endpoint =
            endpoint(args.app_id.as_deref(), args.api_url.as_deref()).map_err(Failure::Usage)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(args.timeout))
            // A redirect would carry the token elsewhere, and turn a PUT into something else.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("hookbridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::Local(format!("cannot build the HTTP client: {e}")))?;
        Ok(Api {
            http,
            endpoint,
            token,
            timeout_secs: args.timeout,
        })
    }

    async fn read(&self, all_categories: bool) -> Result<Remote, ApiError> {
        let mut url = self.endpoint.clone();
        if all_categories {
            url.query_pairs_mut()
                .append_pair("display_all_webhook_categories", "true");
        }
        self.call(reqwest::Method::GET, url, None).await
    }

    async fn write(&self, body: &Value) -> Result<Remote, ApiError> {
        let bytes = body.to_string().into_bytes();
        self.call(reqwest::Method::PUT, self.endpoint.clone(), Some(bytes))
            .await
    }

    async fn call(
        &self,
        method: reqwest::Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<Remote, ApiError> {
        let request = format!("{method} {url}");
        let fail = |kind| ApiError {
            request: request.clone(),
            kind,
        };
        let transport = |e: reqwest::Error| {
            fail(if e.is_timeout() {
                ApiErrorKind::Timeout(self.timeout_secs)
            } else {
                ApiErrorKind::Network(error_chain(&e.without_url()))
            })
        };
        let mut builder = self
            .http
            .request(method, url)
            .header("Api-Token", self.token.clone())
            .header(CONTENT_TYPE, CONTENT_TYPE_JSON);
        if let Some(body) = body {
            builder = builder.body(body);
        }
        let response = builder.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(transport)?;
        answer(status, &bytes).map_err(fail)
    }
}

/// An error and its causes on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

/// Reads Sendbird's answer: its error body (with any status) becomes its message; any other
/// non-2xx becomes the status and the start of the body.
fn answer(status: u16, body: &[u8]) -> Result<Remote, ApiErrorKind> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if let Some(error) = json.as_ref().filter(|j| j["error"] == json!(true)) {
        let code = match &error["code"] {
            Value::Null => "none".to_owned(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        return Err(ApiErrorKind::Sendbird {
            status,
            code,
            message: error["message"]
                .as_str()
                .unwrap_or("(no message)")
                .to_owned(),
        });
    }
    if !(200..300).contains(&status) {
        let text = String::from_utf8_lossy(body);
        let mut start: String = text.trim().chars().take(200).collect();
        if start.is_empty() {
            start = "(empty body)".to_owned();
        }
        return Err(ApiErrorKind::Status {
            status,
            body: start,
        });
    }
    serde_json::from_slice::<Answer>(body)
        .map(|a| a.webhook)
        .map_err(|e| ApiErrorKind::Unexpected(e.to_string()))
}

async fn webhook(command: WebhookCommand) -> Result<(), Failure> {
    match command {
        WebhookCommand::Show { api: args } => {
            let api = Api::new(&args)?;
            let remote = api.read(false).await?;
            print_out(args.output, &json!(remote.settings), || {
                settings_lines(&remote.settings)
            });
            Ok(())
        }
        WebhookCommand::Categories { api: args } => {
            let api = Api::new(&args)?;
            let remote = api.read(true).await?;
            categories_out(args.output, &remote);
            Ok(())
        }
        WebhookCommand::Set(args) => {
            // Every flag is checked before the first request.
            let change = Change::from_args(&args).map_err(Failure::Usage)?;
            let api = Api::new(&args.api)?;
            set(&api, &change, args.dry_run, args.api.output).await
        }
    }
}

async fn set(api: &Api, change: &Change, dry_run: bool, output: Output) -> Result<(), Failure> {
    let current = api.read(true).await?;
    let offered = &current.all_webhook_categories;
    let before = &current.settings;
    let after = merge(before, offered, change).map_err(Failure::Usage)?;
    let changes = diff(before, &after);
    let mut notes = warnings(&after, offered);
    let answered = if dry_run || changes.is_empty() {
        None
    } else {
        Some(api.write(&put_body(&after)).await?.settings)
    };
    if let Some(answered) = &answered {
        // An answer silent on a setting says nothing about it.
        let reported = Settings {
            include_unread_count: answered.include_unread_count.or(after.include_unread_count),
            ..answered.clone()
        };
        let differs = diff(&after, &reported);
        if !differs.is_empty() {
            notes.push(format!(
                "Sendbird's answer differs from what was sent: {}",
                differs.lines().join("; ")
            ));
        }
    }
    for note in &notes {
        eprintln!("warning: {note}");
    }
    let outcome = match (&answered, dry_run) {
        (Some(_), _) => "updated",
        (None, true) => "dry run: nothing sent",
        (None, false) => "no change: nothing sent",
    };
    let json = json!({
        "before": before,
        "after": answered.as_ref().unwrap_or(&after),
        "changes": changes.to_json(),
        "warnings": notes,
        "sent": answered.is_some(),
    });
    print_out(output, &json, || {
        let mut lines = changes.lines();
        lines.push(outcome.to_owned());
        lines
    });
    Ok(())
}

fn print_out(output: Output, json: &Value, text: impl FnOnce() -> Vec<String>) {
    match output {
        Output::Json => println!("{json:#}"),
        Output::Text => text().iter().for_each(|line| println!("{line}")),
    }
}

fn settings_lines(settings: &Settings) -> Vec<String> {
    let or = |v: Option<String>, none: &str| v.unwrap_or_else(|| none.to_owned());
    let mut lines = vec![
        format!("enabled:              {}", settings.enabled),
        format!(
            "url:                  {}",
            or(settings.url.clone(), "(none)")
        ),
        format!("include_members:      {}", settings.include_members),
        format!(
            "include_unread_count: {}",
            or(
                settings.include_unread_count.map(|b| b.to_string()),
                "(not reported)"
            )
        ),
    ];
    let mut events = settings.enabled_events.iter().map(|e| event_text(e));
    lines.push(format!(
        "enabled_events:       {}",
        events.next().unwrap_or_else(|| "(none)".to_owned())
    ));
    lines.extend(events.map(|e| format!("                      {e}")));
    lines
}

fn categories_out(output: Output, remote: &Remote) {
    let everything = remote.settings.enabled_events.iter().any(|e| e == ALL);
    let enabled = |c: &String| everything || remote.settings.enabled_events.contains(c);
    let rows: Vec<(&String, &'static str, bool, bool)> = remote
        .all_webhook_categories
        .iter()
        .map(|c| {
            let (family, dedicated) = mark(c);
            (c, family, dedicated, enabled(c))
        })
        .collect();
    let json: Vec<Value> = rows
        .iter()
        .map(|(category, family, dedicated, enabled)| {
            json!({"category": category, "family": family, "dedicated": dedicated, "enabled": enabled})
        })
        .collect();
    print_out(output, &Value::Array(json), || {
        let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(8);
        let mut lines = vec![format!("  {:<width$}  family", "category")];
        for (category, family, dedicated, enabled) in &rows {
            let flag = if *enabled { '*' } else { ' ' };
            let family = if *dedicated {
                (*family).to_owned()
            } else {
                format!("{family} (no dedicated family: lands in <prefix>other)")
            };
            lines.push(format!("{flag} {category:<width$}  {family}"));
        }
        let other = rows.iter().filter(|r| !r.2).count();
        lines.push(format!(
            "* enabled. {other} of {} categories have no dedicated family and land in \
             <prefix>other ({DEFAULT_PREFIX}other by default).",
            rows.len()
        ));
        lines
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn set_args(flags: &[&str]) -> Result<SetArgs, clap::Error> {
        let argv = [
            "sendbird",
            "webhook",
            "set",
            "--app-id",
            "APP",
            "--api-token-env",
            "T",
        ];
        let args = SendbirdArgs::try_parse_from(argv.iter().chain(flags))?;
        match args.command {
            SendbirdCommand::Webhook {
                command: WebhookCommand::Set(set),
            } => Ok(set),
            SendbirdCommand::Webhook { command } => panic!("parsed as {command:?}"),
        }
    }

    fn change(flags: &[&str]) -> Result<Change, String> {
        Change::from_args(&set_args(flags).expect("flags parse"))
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn settings(events: &[&str]) -> Settings {
        Settings {
            enabled: true,
            url: Some("https://old.example/hook".to_owned()),
            include_members: true,
            include_unread_count: None,
            enabled_events: strings(events),
        }
    }

    const OFFERED: &[&str] = &[
        "group_channel:message_send",
        "group_channel:join",
        "user:block",
        "poll:vote",
    ];

    #[test]
    fn the_command_definition_is_valid() {
        command().debug_assert();
    }

    #[test]
    fn conflicting_flags_are_refused_by_clap() {
        for flags in [
            &["--enable", "--disable"][..],
            &["--events", "a:b", "--add-events", "c:d"],
            &["--events", "a:b", "--remove-events", "c:d"],
            &["--events", "a:b", "--all-events"],
            &["--all-events", "--add-events", "c:d"],
            &["--include-members", "--no-include-members"],
            &["--include-unread-count", "--no-include-unread-count"],
        ] {
            let err = set_args(flags).expect_err("conflict");
            assert_eq!(err.kind(), ErrorKind::ArgumentConflict, "{flags:?}");
        }
    }

    #[test]
    fn set_needs_a_change_and_allow_http_needs_a_url() {
        let err = set_args(&["--dry-run"]).expect_err("nothing to change");
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        let err = set_args(&["--allow-http", "--enable"]).expect_err("no --url");
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        let err =
            SendbirdArgs::try_parse_from(["sendbird", "webhook", "show", "--api-token-env", "T"])
                .expect_err("no app id nor api url");
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn flags_become_a_change() {
        assert_eq!(
            change(&[
                "--disable",
                "--no-include-members",
                "--include-unread-count"
            ]),
            Ok(Change {
                enabled: Some(false),
                include_members: Some(false),
                include_unread_count: Some(true),
                ..Change::default()
            })
        );
        assert_eq!(change(&["--all-events"]).map(|c| c.events), Ok(Events::All));
        assert_eq!(
            change(&["--events", "a:b, c:d,a:b", "--events", "e:f"]).map(|c| c.events),
            Ok(Events::Exactly(strings(&["a:b", "c:d", "e:f"])))
        );
        assert_eq!(
            change(&["--events", ""]).map(|c| c.events),
            Ok(Events::Exactly(Vec::new()))
        );
        assert_eq!(
            change(&["--add-events", "a:b", "--remove-events", "c:d,e:f"]).map(|c| c.events),
            Ok(Events::Edit {
                add: strings(&["a:b"]),
                remove: strings(&["c:d", "e:f"]),
            })
        );
    }

    #[test]
    fn refuses_star_in_a_list_and_a_category_both_added_and_removed() {
        assert!(change(&["--events", "*"]).is_err_and(|e| e.contains("--all-events")));
        assert!(change(&["--add-events", "a:b,*"]).is_err());
        assert!(change(&["--add-events", "a:b", "--remove-events", "a:b"]).is_err());
    }

    #[test]
    fn refuses_a_plain_http_url_unless_allowed() {
        let err = change(&["--url", "http://hooks.example/x"]).expect_err("http");
        assert!(err.contains("--allow-http"), "{err}");
        assert_eq!(
            change(&["--url", "http://hooks.example/x", "--allow-http"]).map(|c| c.url),
            Ok(Some("http://hooks.example/x".to_owned()))
        );
        assert_eq!(
            change(&["--url", " https://hooks.example/x "]).map(|c| c.url),
            Ok(Some("https://hooks.example/x".to_owned()))
        );
        assert!(change(&["--url", "ftp://hooks.example/x", "--allow-http"]).is_err());
        assert!(change(&["--url", "hooks.example/x"]).is_err());
    }

    #[test]
    fn merge_keeps_what_no_flag_names() {
        let before = settings(&["group_channel:message_send"]);
        let after = merge(
            &before,
            &strings(OFFERED),
            &Change {
                include_unread_count: Some(true),
                ..Change::default()
            },
        )
        .expect("merges");
        assert_eq!(
            after,
            Settings {
                include_unread_count: Some(true),
                ..before
            }
        );
    }

    #[test]
    fn merge_edits_the_event_list() {
        let offered = strings(OFFERED);
        let cases: &[(&[&str], Events, &[&str])] = &[
            (
                &["group_channel:message_send", "user:block"],
                Events::Edit {
                    add: strings(&["group_channel:join"]),
                    remove: strings(&["user:block"]),
                },
                &["group_channel:message_send", "group_channel:join"],
            ),
            (
                &["user:block"],
                Events::Exactly(strings(&["poll:vote"])),
                &["poll:vote"],
            ),
            (&["user:block"], Events::All, &["*"]),
            (&["user:block"], Events::Exactly(Vec::new()), &[]),
            (
                &["*"],
                Events::Edit {
                    add: strings(&["user:block"]),
                    remove: Vec::new(),
                },
                &["*"],
            ),
            (
                &["*"],
                Events::Edit {
                    add: Vec::new(),
                    remove: strings(&["poll:vote"]),
                },
                &[
                    "group_channel:message_send",
                    "group_channel:join",
                    "user:block",
                ],
            ),
        ];
        for (before, events, expected) in cases {
            let change = Change {
                events: events.clone(),
                ..Change::default()
            };
            let after = merge(&settings(before), &offered, &change).expect("merges");
            assert_eq!(
                after.enabled_events,
                strings(expected),
                "{before:?} {events:?}"
            );
        }
    }

    #[test]
    fn merge_refuses_categories_sendbird_does_not_offer() {
        let change = Change {
            events: Events::Edit {
                add: strings(&["user:block", "nope:never"]),
                remove: strings(&["gone:away"]),
            },
            ..Change::default()
        };
        let err = merge(&settings(&[]), &strings(OFFERED), &change).expect_err("unknown");
        assert!(
            err.contains("nope:never") && !err.contains("gone:away"),
            "{err}"
        );
        // Without Sendbird's list there is nothing to check against.
        assert!(merge(&settings(&[]), &[], &change).is_ok());
        let remove_from_all = Change {
            events: Events::Edit {
                add: Vec::new(),
                remove: strings(&["user:block"]),
            },
            ..Change::default()
        };
        assert!(merge(&settings(&["*"]), &[], &remove_from_all).is_err());
    }

    #[test]
    fn the_put_body_is_the_whole_merged_settings_less_what_is_unknown() {
        let mut s = settings(&["user:block"]);
        assert_eq!(
            put_body(&s),
            json!({"enabled": true, "url": "https://old.example/hook", "include_members": true,
                   "enabled_events": ["user:block"]})
        );
        s.url = None;
        s.include_unread_count = Some(false);
        assert_eq!(
            put_body(&s),
            json!({"enabled": true, "include_members": true, "include_unread_count": false,
                   "enabled_events": ["user:block"]})
        );
    }

    #[test]
    fn the_diff_shows_before_and_after() {
        let before = settings(&["group_channel:message_send", "user:block"]);
        let after = Settings {
            enabled: false,
            url: Some("https://new.example/hook".to_owned()),
            include_unread_count: Some(true),
            enabled_events: strings(&["group_channel:message_send", "*"]),
            ..before.clone()
        };
        let d = diff(&before, &after);
        assert_eq!(
            d.lines(),
            [
                "enabled: true → false",
                "url: https://old.example/hook → https://new.example/hook",
                "include_unread_count: (none) → true",
                "enabled_events: + * (every category)",
                "enabled_events: - user:block",
            ]
        );
        assert_eq!(
            d.to_json(),
            json!({
                "enabled": {"before": true, "after": false},
                "url": {"before": "https://old.example/hook", "after": "https://new.example/hook"},
                "include_unread_count": {"before": null, "after": true},
                "enabled_events": {"added": ["*"], "removed": ["user:block"]},
            })
        );
        assert!(diff(&before, &before).is_empty());
    }

    #[test]
    fn marks_the_family_each_category_routes_to() {
        for (category, family, dedicated) in [
            ("group_channel:message_send", "group_channel", true),
            ("group_channel:old_kick_out:join", "group_channel", true),
            ("open_channel:enter", "open_channel", true),
            ("operators:register_by_operator", "user", true),
            ("profanity_filter:detect", "moderation", true),
            ("announcement:send_messages", "announcement", true),
            ("notification:send_batch", "notification", true),
            ("poll:vote", "other", false),
            ("brand_new_thing", "other", false),
        ] {
            assert_eq!(mark(category), (family, dedicated), "{category}");
        }
    }

    #[test]
    fn warns_about_missing_members_and_catch_all_categories() {
        let offered = strings(OFFERED);
        let mut s = settings(&["group_channel:message_send", "poll:vote"]);
        s.include_members = false;
        let w = warnings(&s, &offered);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("include_members is off"), "{w:?}");
        assert!(
            w[1].contains("poll:vote") && w[1].contains("sendbird.other"),
            "{w:?}"
        );
        // `*` covers both, through Sendbird's list.
        let all = Settings {
            enabled_events: strings(&["*"]),
            ..s.clone()
        };
        assert_eq!(warnings(&all, &offered).len(), 2);
        s.include_members = true;
        s.enabled_events = strings(&["user:block"]);
        assert!(warnings(&s, &offered).is_empty());
        s.enabled_events.clear();
        assert_eq!(warnings(&s, &offered).len(), 1);
    }

    #[test]
    fn reads_sendbird_answers_and_error_bodies() {
        let ok = br#"{"webhook":{"enabled":true,"url":"","include_members":false,
            "enabled_events":["user:block"],"all_webhook_categories":["user:block","x:y"],
            "something_new":1}}"#;
        let remote = answer(200, ok).expect("documented shape");
        assert_eq!(remote.settings.url, None);
        assert_eq!(remote.settings.include_unread_count, None);
        assert_eq!(
            remote.all_webhook_categories,
            strings(&["user:block", "x:y"])
        );
        assert_eq!(
            answer(
                400,
                br#"{"error":true,"message":"\"url\" is invalid.","code":400111}"#
            )
            .err(),
            Some(ApiErrorKind::Sendbird {
                status: 400,
                code: "400111".to_owned(),
                message: "\"url\" is invalid.".to_owned(),
            })
        );
        assert_eq!(
            answer(502, b"<html>bad gateway</html>").err(),
            Some(ApiErrorKind::Status {
                status: 502,
                body: "<html>bad gateway</html>".to_owned(),
            })
        );
        let missing = br#"{"webhook":{"enabled":true,"include_members":false}}"#;
        assert!(matches!(
            answer(200, missing),
            Err(ApiErrorKind::Unexpected(why)) if why.contains("enabled_events")
        ));
    }

    #[test]
    fn the_api_url_is_https_unless_local() {
        assert_eq!(
            endpoint(Some("ABC-123"), None).map(String::from),
            Ok("https://api-abc-123.sendbird.com/v3/applications/settings/webhook".to_owned())
        );
        for (base, expected) in [
            (
                "https://proxy.example/",
                "https://proxy.example/v3/applications/settings/webhook",
            ),
            (
                "https://proxy.example/v3",
                "https://proxy.example/v3/applications/settings/webhook",
            ),
            (
                "http://127.0.0.1:8080",
                "http://127.0.0.1:8080/v3/applications/settings/webhook",
            ),
            (
                "http://localhost:1",
                "http://localhost:1/v3/applications/settings/webhook",
            ),
            (
                "http://[::1]:1",
                "http://[::1]:1/v3/applications/settings/webhook",
            ),
        ] {
            assert_eq!(
                endpoint(Some("ignored"), Some(base)).map(String::from),
                Ok(expected.to_owned())
            );
        }
        assert!(endpoint(None, Some("http://proxy.example")).is_err());
        assert!(endpoint(Some("a.evil.com/x"), None).is_err());
        assert!(endpoint(None, None).is_err());
    }

    #[test]
    fn show_prints_one_setting_a_line() {
        let mut s = settings(&["group_channel:message_send", "user:block"]);
        assert_eq!(
            settings_lines(&s),
            [
                "enabled:              true",
                "url:                  https://old.example/hook",
                "include_members:      true",
                "include_unread_count: (not reported)",
                "enabled_events:       group_channel:message_send",
                "                      user:block",
            ]
        );
        s.enabled_events.clear();
        assert_eq!(
            settings_lines(&s).last().map(String::as_str),
            Some("enabled_events:       (none)")
        );
    }
}
