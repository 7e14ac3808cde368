//! `hookbridge sendbird webhook show|categories|set`, the real binary, against a local stand-in
//! for Sendbird's Platform API: `GET`/`PUT /v3/applications/settings/webhook` with the documented
//! request and answer shapes, `Api-Token` checked, every request recorded. Needs no Kafka.

use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::net::TcpListener;

const TOKEN: &str = "sb-master-token-7f3a91";
const TOKEN_ENV: &str = "HB_TEST_SENDBIRD_API_TOKEN";
const PATH: &str = "/v3/applications/settings/webhook";
const ALL_CATEGORIES_QUERY: &str = "display_all_webhook_categories=true";
const CONTENT_TYPE: &str = "application/json; charset=utf8";
/// What the stand-in offers with `display_all_webhook_categories=true`.
const OFFERED: &[&str] = &[
    "group_channel:message_send",
    "group_channel:join",
    "group_channel:old_kick_out:join",
    "user:block",
    "notification:send_batch",
    "poll:vote",
];
/// The settings a `PUT` may carry, as documented.
const SETTINGS: &[&str] = &[
    "enabled",
    "url",
    "include_members",
    "include_unread_count",
    "enabled_events",
];

fn initial_settings() -> Value {
    json!({
        "enabled": true,
        "url": "https://old.example/webhooks/sendbird",
        "include_members": false,
        "include_unread_count": false,
        "enabled_events": ["group_channel:message_send", "user:block"],
    })
}

/// One request as the stand-in received it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    query: Option<String>,
    token: Option<String>,
    content_type: Option<String>,
    body: Bytes,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Answers as Sendbird documents.
    Documented,
    /// Records the request and never answers.
    Silent,
}

#[derive(Clone)]
struct Fake {
    behaviour: Behaviour,
    settings: Arc<Mutex<Value>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

struct Server {
    url: String,
    fake: Fake,
}

impl Server {
    async fn start(behaviour: Behaviour) -> Server {
        let fake = Fake {
            behaviour,
            settings: Arc::new(Mutex::new(initial_settings())),
            seen: Arc::new(Mutex::new(Vec::new())),
        };
        let app = Router::new()
            .route(PATH, get(settings_api).put(settings_api))
            .with_state(fake.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Server { url, fake }
    }

    fn seen(&self) -> Vec<Seen> {
        self.fake.seen.lock().expect("lock").clone()
    }

    fn puts(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.method == Method::PUT)
            .collect()
    }

    fn settings(&self) -> Value {
        self.fake.settings.lock().expect("lock").clone()
    }

    /// `hookbridge sendbird webhook <command> --api-url <this> --api-token-env … <flags>`, with
    /// the token variable holding `token` (unset when `None`).
    async fn run(&self, command: &str, flags: &[&str], token: Option<&str>) -> Run {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookbridge"));
        cmd.args([
            "sendbird",
            "webhook",
            command,
            "--api-url",
            self.url.as_str(),
        ])
        .args(["--api-token-env", TOKEN_ENV])
        .args(flags)
        .env_remove(TOKEN_ENV)
        .kill_on_drop(true);
        if let Some(token) = token {
            cmd.env(TOKEN_ENV, token);
        }
        let started = Instant::now();
        let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .expect("the command ends")
            .expect("the binary runs");
        Run::new(out, started.elapsed())
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    fn new(out: Output, took: Duration) -> Run {
        let run = Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            took,
        };
        assert!(
            !run.stdout.contains(TOKEN) && !run.stderr.contains(TOKEN),
            "the token was printed"
        );
        run
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

fn sendbird_error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({"error": true, "message": message, "code": code});
    (status, Json(body)).into_response()
}

async fn settings_api(
    State(fake): State<Fake>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    fake.seen.lock().expect("lock").push(Seen {
        method: method.clone(),
        query: query.clone(),
        token: header("api-token"),
        content_type: header("content-type"),
        body: body.clone(),
    });
    if fake.behaviour == Behaviour::Silent {
        std::future::pending::<()>().await;
    }
    if header("api-token").as_deref() != Some(TOKEN) {
        return sendbird_error(
            StatusCode::UNAUTHORIZED,
            400401,
            "Invalid value: \"Api-Token\".",
        );
    }
    let mut settings = fake.settings.lock().expect("lock");
    match method {
        Method::GET => {
            let mut webhook = settings.clone();
            if query.as_deref() == Some(ALL_CATEGORIES_QUERY) {
                webhook["all_webhook_categories"] = json!(OFFERED);
            }
            Json(json!({ "webhook": webhook })).into_response()
        }
        Method::PUT => {
            if header("content-type").as_deref() != Some(CONTENT_TYPE) {
                return sendbird_error(StatusCode::BAD_REQUEST, 400100, "Unexpected content type.");
            }
            let Ok(Value::Object(changes)) = serde_json::from_slice::<Value>(&body) else {
                return sendbird_error(
                    StatusCode::BAD_REQUEST,
                    400100,
                    "Body is not a JSON object.",
                );
            };
            if let Some(key) = changes.keys().find(|k| !SETTINGS.contains(&k.as_str())) {
                return sendbird_error(
                    StatusCode::BAD_REQUEST,
                    400110,
                    &format!("\"{key}\" is not a setting."),
                );
            }
            if changes
                .get("url")
                .and_then(Value::as_str)
                .is_some_and(|u| u.contains("refused.example"))
            {
                return sendbird_error(
                    StatusCode::BAD_REQUEST,
                    400111,
                    "\"url\" is not reachable.",
                );
            }
            for (key, value) in changes {
                settings[key] = value;
            }
            Json(json!({ "webhook": settings.clone() })).into_response()
        }
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

#[tokio::test]
async fn show_prints_the_settings_as_text_and_as_json() {
    let server = Server::start(Behaviour::Documented).await;
    let run = server.run("show", &[], Some(TOKEN)).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "enabled:              true\n\
         url:                  https://old.example/webhooks/sendbird\n\
         include_members:      false\n\
         include_unread_count: false\n\
         enabled_events:       group_channel:message_send\n\
         \x20                     user:block\n"
    );
    let run = server.run("show", &["--output", "json"], Some(TOKEN)).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.json(), initial_settings());
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    for request in seen {
        assert_eq!(request.method, Method::GET);
        assert_eq!(request.query, None);
        assert_eq!(request.token.as_deref(), Some(TOKEN));
    }
}

#[tokio::test]
async fn categories_marks_dedicated_families_and_the_catch_all() {
    let server = Server::start(Behaviour::Documented).await;
    let run = server
        .run("categories", &["--output", "json"], Some(TOKEN))
        .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.json(),
        json!([
            {"category": "group_channel:message_send", "family": "group_channel", "dedicated": true, "enabled": true},
            {"category": "group_channel:join", "family": "group_channel", "dedicated": true, "enabled": false},
            {"category": "group_channel:old_kick_out:join", "family": "group_channel", "dedicated": true, "enabled": false},
            {"category": "user:block", "family": "user", "dedicated": true, "enabled": true},
            {"category": "notification:send_batch", "family": "notification", "dedicated": true, "enabled": false},
            {"category": "poll:vote", "family": "other", "dedicated": false, "enabled": false},
        ])
    );
    let run = server.run("categories", &[], Some(TOKEN)).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let rows: Vec<Vec<&str>> = run
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let row = |category: &str| {
        rows.iter()
            .find(|r| r.contains(&category))
            .unwrap_or_else(|| panic!("no row for {category}: {}", run.stdout))
            .join(" ")
    };
    assert_eq!(
        row("group_channel:message_send"),
        "* group_channel:message_send group_channel"
    );
    assert_eq!(
        row("notification:send_batch"),
        "notification:send_batch notification"
    );
    assert_eq!(
        row("poll:vote"),
        "poll:vote other (no dedicated family: lands in <prefix>other)"
    );
    assert!(
        run.stdout
            .contains("1 of 6 categories have no dedicated family"),
        "{}",
        run.stdout
    );
    for request in server.seen() {
        assert_eq!(request.query.as_deref(), Some(ALL_CATEGORIES_QUERY));
        assert_eq!(request.token.as_deref(), Some(TOKEN));
    }
}

#[tokio::test]
async fn set_merges_into_the_current_settings_and_sends_one_put() {
    let server = Server::start(Behaviour::Documented).await;
    let flags = [
        "--url",
        "https://new.example/webhooks/sendbird",
        "--add-events",
        "group_channel:join",
        "--remove-events",
        "user:block",
        "--include-members",
    ];
    let run = server.run("set", &flags, Some(TOKEN)).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "url: https://old.example/webhooks/sendbird → https://new.example/webhooks/sendbird\n\
         include_members: false → true\n\
         enabled_events: + group_channel:join\n\
         enabled_events: - user:block\n\
         updated\n"
    );
    assert_eq!(run.stderr, "", "no warning applies");
    let expected = json!({
        "enabled": true,
        "url": "https://new.example/webhooks/sendbird",
        "include_members": true,
        "include_unread_count": false,
        "enabled_events": ["group_channel:message_send", "group_channel:join"],
    });
    let seen = server.seen();
    let methods: Vec<Method> = seen.iter().map(|s| s.method.clone()).collect();
    assert_eq!(
        methods,
        [Method::GET, Method::PUT],
        "one read, then one write"
    );
    assert_eq!(seen[0].query.as_deref(), Some(ALL_CATEGORIES_QUERY));
    let put = &seen[1];
    assert_eq!(put.token.as_deref(), Some(TOKEN));
    assert_eq!(put.content_type.as_deref(), Some(CONTENT_TYPE));
    assert_eq!(put.query, None);
    let body: Value = serde_json::from_slice(&put.body).expect("the PUT body is JSON");
    assert_eq!(body, expected);
    assert_eq!(server.settings(), expected);
}

#[tokio::test]
async fn set_all_events_sends_the_documented_star() {
    let server = Server::start(Behaviour::Documented).await;
    let run = server
        .run("set", &["--all-events", "--include-members"], Some(TOKEN))
        .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let puts = server.puts();
    assert_eq!(puts.len(), 1);
    let body: Value = serde_json::from_slice(&puts[0].body).expect("JSON");
    assert_eq!(body["enabled_events"], json!(["*"]));
    assert!(
        run.stderr
            .contains("warning: no dedicated family for poll:vote"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn set_dry_run_prints_the_diff_and_sends_nothing() {
    let server = Server::start(Behaviour::Documented).await;
    let run = server
        .run("set", &["--disable", "--dry-run"], Some(TOKEN))
        .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, "enabled: true → false\ndry run: nothing sent\n");
    // The current settings lack members for message_send: the warning says so.
    assert!(
        run.stderr.contains("warning: include_members is off"),
        "{}",
        run.stderr
    );

    let run = server
        .run(
            "set",
            &["--add-events", "poll:vote", "--dry-run", "--output", "json"],
            Some(TOKEN),
        )
        .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let out = run.json();
    assert_eq!(out["sent"], json!(false));
    assert_eq!(out["before"], initial_settings());
    assert_eq!(
        out["changes"],
        json!({"enabled_events": {"added": ["poll:vote"], "removed": []}})
    );
    assert_eq!(
        out["after"]["enabled_events"],
        json!(["group_channel:message_send", "user:block", "poll:vote"])
    );
    let warnings = out["warnings"].as_array().expect("warnings");
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("poll:vote"))),
        "{warnings:?}"
    );
    assert!(server.puts().is_empty());
    assert_eq!(server.settings(), initial_settings());
}

#[tokio::test]
async fn set_refuses_a_plain_http_url_unless_allowed() {
    let server = Server::start(Behaviour::Documented).await;
    let run = server
        .run(
            "set",
            &["--url", "http://receiver.example/hook"],
            Some(TOKEN),
        )
        .await;
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("--allow-http"), "{}", run.stderr);
    assert!(server.seen().is_empty(), "refused before any request");

    let run = server
        .run(
            "set",
            &["--url", "http://receiver.example/hook", "--allow-http"],
            Some(TOKEN),
        )
        .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        server.settings()["url"],
        json!("http://receiver.example/hook")
    );
}

#[tokio::test]
async fn sendbird_error_bodies_become_their_message_and_exit_1() {
    let server = Server::start(Behaviour::Documented).await;
    let run = server.run("show", &[], Some("not-the-master-token")).await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .contains("Sendbird refused the request: Invalid value: \"Api-Token\".")
            && run.stderr.contains("code 400401")
            && !run.stderr.contains("not-the-master-token"),
        "{}",
        run.stderr
    );

    let run = server
        .run(
            "set",
            &["--url", "https://refused.example/hook"],
            Some(TOKEN),
        )
        .await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("PUT ")
            && run
                .stderr
                .contains("\"url\" is not reachable. (code 400111"),
        "{}",
        run.stderr
    );
    assert_eq!(server.settings(), initial_settings());
}

#[tokio::test]
async fn a_missing_or_empty_token_variable_exits_2_before_any_request() {
    let server = Server::start(Behaviour::Documented).await;
    for (command, flags) in [("show", &[][..]), ("set", &["--enable"][..])] {
        let run = server.run(command, flags, None).await;
        assert_eq!(run.code, Some(2), "{command}");
        assert!(
            run.stderr.contains(&format!("{TOKEN_ENV} is not set")),
            "{}",
            run.stderr
        );
        for empty in ["", "   "] {
            let run = server.run(command, flags, Some(empty)).await;
            assert_eq!(run.code, Some(2), "{command} {empty:?}");
            assert!(run.stderr.contains("is empty"), "{}", run.stderr);
        }
    }
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn conflicting_flags_and_unknown_categories_exit_2_and_send_nothing() {
    let server = Server::start(Behaviour::Documented).await;
    for flags in [
        &["--enable", "--disable"][..],
        &["--events", "user:block", "--add-events", "poll:vote"],
        &["--all-events", "--remove-events", "poll:vote"],
        &["--include-members", "--no-include-members"],
    ] {
        let run = server.run("set", flags, Some(TOKEN)).await;
        assert_eq!(run.code, Some(2), "{flags:?}: {}", run.stderr);
    }
    assert!(server.seen().is_empty());

    let run = server
        .run("set", &["--add-events", "nope:never"], Some(TOKEN))
        .await;
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("does not offer nope:never"),
        "{}",
        run.stderr
    );
    assert!(server.puts().is_empty());
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_and_nothing_is_sent() {
    let server = Server::start(Behaviour::Silent).await;
    let run = server
        .run("set", &["--enable", "--timeout", "1"], Some(TOKEN))
        .await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("GET ") && run.stderr.contains("no answer within 1 s"),
        "{}",
        run.stderr
    );
    assert!(run.took < Duration::from_secs(10), "took {:?}", run.took);
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, Method::GET);
}

#[tokio::test]
async fn a_closed_port_is_a_clear_network_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    let server = Server {
        url: format!("http://{address}"),
        fake: Fake {
            behaviour: Behaviour::Documented,
            settings: Arc::new(Mutex::new(initial_settings())),
            seen: Arc::new(Mutex::new(Vec::new())),
        },
    };
    let run = server.run("show", &[], Some(TOKEN)).await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .contains(&format!("GET http://{address}{PATH}: "))
            && run.stderr.to_lowercase().contains("connect"),
        "{}",
        run.stderr
    );
}
