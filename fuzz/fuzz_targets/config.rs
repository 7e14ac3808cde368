//! `Config::from_toml_str` on arbitrary TOML text and environment maps: never panics, is
//! deterministic, reports at least one named problem when it refuses, and never shows a secret.
//!
//! Secrets (inline `api_tokens`, `sendbird_api_tokens`, `HOOKBRIDGE_SENDBIRD_API_TOKENS`,
//! `kafka_properties` values, and the contents of tokens, password and property files) carry
//! a marker: the key emoji and `LEAKMARK`. Everything else the fuzzer writes has both removed,
//! so a marker in the error text or in `{:?}` of a loaded config can only be a leaked secret.
//!
//! Two shapes of input: raw TOML text (an input starting with `#`; only the environment carries
//! secrets there), and otherwise a document built from settings, apps, routes and Kafka properties, optionally damaged by one
//! edit (truncation, deletion, a stray quote or bracket) so syntax errors happen next to secrets.
//! File settings only ever name files this target wrote, never a path from the input.
#![no_main]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::OnceLock;

use hookbridge::config::Config;
use hookbridge::providers::PROVIDERS;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const KEY_CHAR: char = '\u{1F511}';
const MARKER: &str = "\u{1F511}LEAKMARK";
const MAX_DEPTH: u32 = 4;

/// Removes anything that could spell the marker from non-secret text.
fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| *c != KEY_CHAR)
        .collect::<String>()
        .replace("LEAKMARK", "leakmark")
}

/// Non-secret names: also never a `*_file` setting, whose value would be a path to read.
fn clean_key(s: &str) -> String {
    clean(s).replace("file", "fi_le").replace("FILE", "FI_LE")
}

/// True once in `n` draws; false when the input has run out (unlike `ratio`), so short inputs
/// take the plain path.
fn one_in(u: &mut Unstructured, n: u8) -> Result<bool> {
    Ok(u.int_in_range(1..=n)? == n)
}

fn leaks(text: &str) -> bool {
    text.contains(KEY_CHAR) || text.contains("LEAKMARK")
}

/// Files the target writes once; file settings choose among them by index.
fn files() -> &'static [PathBuf] {
    static FILES: OnceLock<Vec<PathBuf>> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("hookbridge-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let write = |name: &str, content: &[u8]| {
            let path = dir.join(name);
            std::fs::write(&path, content).expect("write fixture file");
            path
        };
        vec![
            write(
                "tokens",
                format!("# rotated\n{MARKER}-new\n\n  {MARKER}-old  \n").as_bytes(),
            ),
            write(
                "tokens-bad",
                format!("{MARKER} has a space\n{MARKER},comma\n").as_bytes(),
            ),
            write("tokens-empty", b"\n# nothing here\n"),
            write("password", format!("{MARKER}-password\r\n").as_bytes()),
            write("property", format!("{MARKER}-sasl").as_bytes()),
            write("not-utf8", &[&b"\xff\xfe"[..], MARKER.as_bytes()].concat()),
            dir.join("missing"),
            dir.clone(),
        ]
    })
}

fn file_choice(u: &mut Unstructured) -> Result<String> {
    let files = files();
    Ok(files[u.choose_index(files.len())?].display().to_string())
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn float(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f.is_infinite() {
        if f > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        let s = format!("{f:?}");
        if s.contains(['.', 'e', 'E']) {
            s
        } else {
            format!("{s}.0")
        }
    }
}

/// A TOML value from fuzzer text; `secret` puts the marker into every string.
fn value(u: &mut Unstructured, depth: u32, secret: bool) -> Result<String> {
    let kind = if depth >= MAX_DEPTH {
        u.int_in_range(0..=3)?
    } else {
        u.int_in_range(0..=5)?
    };
    Ok(match kind {
        0 => string(u, secret)?,
        1 => u.arbitrary::<i64>()?.to_string(),
        2 => u.arbitrary::<bool>()?.to_string(),
        3 => float(u.arbitrary()?),
        4 => {
            let mut items = Vec::new();
            u.arbitrary_loop(None, Some(4), |u| {
                items.push(value(u, depth + 1, secret)?);
                Ok(std::ops::ControlFlow::Continue(()))
            })?;
            format!("[{}]", items.join(", "))
        }
        _ => {
            let mut items = Vec::new();
            u.arbitrary_loop(None, Some(4), |u| {
                let key = quote(&clean_key(u.arbitrary()?));
                items.push(format!("{key} = {}", value(u, depth + 1, secret)?));
                Ok(std::ops::ControlFlow::Continue(()))
            })?;
            format!("{{ {} }}", items.join(", "))
        }
    })
}

fn secret_text(u: &mut Unstructured) -> Result<String> {
    Ok(match u.int_in_range(0..=9)? {
        // Special values without the marker, for the branches that look at the value.
        9 => u.choose(&["none", " NONE ", "", " "])?.to_string(),
        _ => format!("{}{MARKER}{}", clean(u.arbitrary()?), clean(u.arbitrary()?)),
    })
}

fn string(u: &mut Unstructured, secret: bool) -> Result<String> {
    Ok(quote(&if secret {
        secret_text(u)?
    } else {
        clean(u.arbitrary()?)
    }))
}

/// A plausible value for a known setting, or anything at all.
fn setting_value(u: &mut Unstructured, key: &str) -> Result<String> {
    if u.int_in_range(0..=3)? == 3 {
        return value(u, 0, false);
    }
    let choices: &[&str] = match key {
        "http_addr" | "admin_addr" => &["0.0.0.0:8080", "127.0.0.1:0", "[::1]:9090", "x:1"],
        "kafka_brokers" => &["127.0.0.1:9092", " ", "a:1,b:2"],
        "schema_registry_url" => &[
            "http://127.0.0.1:8081/apis/ccompat/v7/",
            "https://u:p@r/x",
            "ftp://r",
            "http://",
        ],
        "schema_registry_username" => &["user", ""],
        "topic_prefix" => &["sendbird.", "", "bad prefix/", "a..b"],
        "log_format" => &["json", "text", "xml"],
        "log_level" => &["info", "hookbridge=debug,info", "[{a=1}]", "=x"],
        "trusted_proxies" => &["10.0.0.0/8", "127.0.0.1", "::1/128", "10.0.0.0/33", "x"],
        "publish_timeout"
        | "shutdown_timeout"
        | "tokens_reload_interval"
        | "header_read_timeout"
        | "idle_timeout"
        | "buffer_wait"
        | "body_rate_grace" => &["4s", "1500ms", "0s", "2h", "99ms", "15s", "5s", "x"],
        "create_topics" | "auto_register_schemas" => &["true", "false"],
        "sendbird_app_id" => &["APP-1", "bad id", ""],
        _ => &[],
    };
    let numeric = matches!(
        key,
        "max_body_bytes"
            | "max_in_flight"
            | "topic_partitions"
            | "topic_replication_factor"
            | "max_connections"
            | "max_buffered_bytes"
            | "body_min_rate"
            | "max_requests_per_client"
            | "max_typed_items"
            | "max_typed_text_bytes"
    );
    if numeric {
        return Ok(u
            .choose(&[0u64, 1, 3, 1024, 2_097_152, 10_000, 1_000_001, u64::MAX])?
            .to_string());
    }
    if matches!(key, "create_topics" | "auto_register_schemas") {
        return Ok(u.choose(choices)?.to_string());
    }
    if choices.is_empty() {
        return value(u, 0, false);
    }
    if key == "trusted_proxies" && u.ratio(1, 2)? {
        let mut items = Vec::new();
        u.arbitrary_loop(None, Some(3), |u| {
            items.push(quote(u.choose(choices)?));
            Ok(std::ops::ControlFlow::Continue(()))
        })?;
        return Ok(format!("[{}]", items.join(", ")));
    }
    Ok(quote(u.choose(choices)?))
}

const SETTINGS: &[&str] = &[
    "http_addr",
    "admin_addr",
    "kafka_brokers",
    "schema_registry_url",
    "schema_registry_username",
    "topic_prefix",
    "log_format",
    "log_level",
    "max_body_bytes",
    "publish_timeout",
    "max_in_flight",
    "header_read_timeout",
    "idle_timeout",
    "max_connections",
    "max_buffered_bytes",
    "buffer_wait",
    "body_min_rate",
    "body_rate_grace",
    "max_requests_per_client",
    "trusted_proxies",
    "max_typed_items",
    "max_typed_text_bytes",
    "shutdown_timeout",
    "create_topics",
    "topic_partitions",
    "topic_replication_factor",
    "auto_register_schemas",
    "tokens_reload_interval",
    "sendbird_app_id",
    "apps",
    "routes",
    "kafka_properties",
];

/// Environment variables: the ones the gateway reads, plus others.
fn env_var(u: &mut Unstructured, env: &mut BTreeMap<String, String>) -> Result<()> {
    let i = u.choose_index(SETTINGS.len() - 3 + 2)?;
    let (name, value) = if i < SETTINGS.len() - 3 {
        let key = SETTINGS[i];
        let value = if u.int_in_range(0..=3)? == 3 {
            clean(u.arbitrary()?)
        } else {
            setting_value(u, key)?.trim_matches('"').to_owned()
        };
        (format!("HOOKBRIDGE_{}", key.to_ascii_uppercase()), value)
    } else if i == SETTINGS.len() - 3 {
        (
            "HOOKBRIDGE_SCHEMA_REGISTRY_PASSWORD_FILE".to_owned(),
            file_choice(u)?,
        )
    } else {
        (clean_key(u.arbitrary()?), clean(u.arbitrary()?))
    };
    env.insert(name, value);
    Ok(())
}

/// `HOOKBRIDGE_SENDBIRD_API_TOKENS`: secrets joined by commas.
fn env_tokens(u: &mut Unstructured) -> Result<String> {
    let mut tokens = Vec::new();
    u.arbitrary_loop(Some(1), Some(4), |u| {
        tokens.push(secret_text(u)?);
        Ok(std::ops::ControlFlow::Continue(()))
    })?;
    Ok(tokens.join(u.choose(&[",", ", ", " ,"])?))
}

fn built_document(u: &mut Unstructured) -> Result<String> {
    let mut doc = String::new();
    let mut settings: BTreeMap<String, String> = BTreeMap::new();
    if u.ratio(3, 4)? {
        settings.insert("kafka_brokers".into(), quote("127.0.0.1:9092"));
        settings.insert(
            "schema_registry_url".into(),
            quote("http://127.0.0.1:8081/apis/ccompat/v7"),
        );
    }
    let mut duplicates = Vec::new();
    u.arbitrary_loop(None, Some(6), |u| {
        let key = if one_in(u, 8)? {
            clean_key(u.arbitrary()?)
        } else {
            u.choose(SETTINGS)?.to_string()
        };
        let value = setting_value(u, &key)?;
        // A key given twice is a TOML error; now and then, not most of the time.
        if settings.contains_key(&key) && one_in(u, 8)? {
            duplicates.push((key, value));
        } else {
            settings.insert(key, value);
        }
        Ok(std::ops::ControlFlow::Continue(()))
    })?;
    for (key, value) in settings
        .iter()
        .chain(duplicates.iter().map(|(k, v)| (k, v)))
    {
        let _ = writeln!(doc, "{} = {value}", quote(key));
    }
    if one_in(u, 4)? {
        let _ = writeln!(
            doc,
            "schema_registry_password_file = {}",
            quote(&file_choice(u)?)
        );
    }
    if one_in(u, 4)? {
        let tokens = if u.ratio(3, 4)? {
            quote(&env_tokens(u)?)
        } else {
            value(u, 0, true)?
        };
        let _ = writeln!(doc, "sendbird_api_tokens = {tokens}");
    }
    u.arbitrary_loop(None, Some(3), |u| {
        doc.push_str("[[apps]]\n");
        let app_id = if u.ratio(3, 4)? {
            u.choose(&["A", "APP-1", "A1B2C3D4-0000-4000-8000-000000000001"])?
                .to_string()
        } else {
            clean(u.arbitrary()?)
        };
        let _ = writeln!(doc, "app_id = {}", quote(&app_id));
        match u.int_in_range(0..=3)? {
            0 => {}
            1 => {
                let _ = writeln!(doc, "api_tokens = {}", value(u, 0, true)?);
            }
            _ => {
                let mut tokens = Vec::new();
                u.arbitrary_loop(None, Some(3), |u| {
                    tokens.push(string(u, true)?);
                    Ok(std::ops::ControlFlow::Continue(()))
                })?;
                let _ = writeln!(doc, "api_tokens = [{}]", tokens.join(", "));
            }
        }
        if one_in(u, 3)? {
            let _ = writeln!(doc, "api_tokens_file = {}", quote(&file_choice(u)?));
        }
        Ok(std::ops::ControlFlow::Continue(()))
    })?;
    u.arbitrary_loop(None, Some(2), |u| {
        let category = if u.ratio(1, 2)? {
            u.choose(&["group_channel:*", "user:block", "*", "bad category"])?
                .to_string()
        } else {
            clean(u.arbitrary()?)
        };
        let topic = if u.ratio(1, 2)? {
            match u.int_in_range(0..=3)? {
                0 => "chat.messages".to_owned(),
                1 => String::new(),
                2 => "bad topic".to_owned(),
                _ => "a".repeat(300),
            }
        } else {
            clean(u.arbitrary()?)
        };
        let _ = writeln!(
            doc,
            "[[routes]]\ncategory = {}\ntopic = {}",
            quote(&category),
            quote(&topic)
        );
        Ok(std::ops::ControlFlow::Continue(()))
    })?;
    if u.ratio(1, 2)? {
        doc.push_str("[kafka_properties]\n");
        u.arbitrary_loop(None, Some(4), |u| {
            let key = if u.ratio(1, 2)? {
                u.choose(&[
                    "sasl.password",
                    "sasl.username",
                    "acks",
                    "compression.type",
                    "compression.codec",
                    " client.id ",
                ])?
                .to_string()
            } else {
                clean_key(u.arbitrary()?)
            };
            let value = if u.ratio(3, 4)? {
                string(u, true)?
            } else {
                value(u, 0, true)?
            };
            let _ = writeln!(doc, "{} = {value}", quote(&key));
            Ok(std::ops::ControlFlow::Continue(()))
        })?;
    }
    if one_in(u, 4)? {
        doc.push_str("[kafka_property_files]\n");
        u.arbitrary_loop(None, Some(2), |u| {
            let key = u.choose(&["sasl.password", "ssl.key.password", "acks"])?;
            let _ = writeln!(doc, "{} = {}", quote(key), quote(&file_choice(u)?));
            Ok(std::ops::ControlFlow::Continue(()))
        })?;
    }
    // One edit that may break the syntax next to a secret.
    if one_in(u, 3)? && !doc.is_empty() {
        let mut at = u.choose_index(doc.len())?;
        while !doc.is_char_boundary(at) {
            at -= 1;
        }
        match u.int_in_range(0..=2)? {
            0 => doc.truncate(at),
            1 => {
                if at < doc.len() {
                    doc.remove(at);
                }
            }
            _ => doc.insert(
                at,
                *u.choose(&[
                    '"', '\'', '=', '[', ']', '{', '}', ',', '\n', '\\', '#', '.',
                ])?,
            ),
        }
    }
    Ok(doc)
}

/// Raw TOML (input starting with `#`, so TOML files with a comment line seed it): the input is
/// the file, the environment fixed, with secret tokens when its length is even.
fn raw_input(data: &[u8]) -> Option<(Option<String>, BTreeMap<String, String>)> {
    // Without the marker and without `*_file` keys (paths to read, possibly /dev/zero).
    let text = clean(&String::from_utf8_lossy(data));
    let lower = text.to_ascii_lowercase();
    if lower.contains("_file") || lower.contains("\\u") {
        return None;
    }
    let mut env = BTreeMap::new();
    if data.len() % 2 == 0 {
        env.insert("HOOKBRIDGE_SENDBIRD_APP_ID".into(), "APP-ENV".into());
        env.insert(
            "HOOKBRIDGE_SENDBIRD_API_TOKENS".into(),
            format!("{MARKER}-a, {MARKER}-b"),
        );
    }
    Some((Some(text), env))
}

fn built_input(u: &mut Unstructured) -> Result<(Option<String>, BTreeMap<String, String>)> {
    // The document first: when the input runs out, the rest falls back to valid choices.
    let toml = if u.int_in_range(0..=7)? == 7 {
        None
    } else {
        Some(built_document(u)?)
    };
    let mut env = BTreeMap::new();
    if u.ratio(1, 2)? {
        env.insert("HOOKBRIDGE_SENDBIRD_APP_ID".into(), "APP-ENV".into());
        env.insert("HOOKBRIDGE_SENDBIRD_API_TOKENS".into(), env_tokens(u)?);
    }
    u.arbitrary_loop(None, Some(6), |u| {
        env_var(u, &mut env)?;
        Ok(std::ops::ControlFlow::Continue(()))
    })?;
    Ok((toml, env))
}

fuzz_target!(|data: &[u8]| {
    let sources = if data.first() == Some(&b'#') {
        raw_input(data)
    } else {
        built_input(&mut Unstructured::new(data)).ok()
    };
    let Some((toml, env)) = sources else {
        return;
    };
    let result = Config::from_toml_str(toml.as_deref(), &env, &PROVIDERS);
    let show = || {
        format!(
            "TOML:\n{}\nENV: {env:?}",
            toml.as_deref().unwrap_or("(none)")
        )
    };
    match &result {
        Ok(config) => {
            let debug = format!("{config:?}");
            assert!(
                !leaks(&debug),
                "secret in Debug output:\n{debug}\n{}",
                show()
            );
            assert!(
                !config.sources.list.is_empty(),
                "loaded without a source:\n{}",
                show()
            );
            for source in &config.sources.list {
                assert!(
                    !source.secrets.is_empty(),
                    "source without secrets:\n{}",
                    show()
                );
            }
        }
        Err(errors) => {
            let text = errors.to_string();
            assert!(!leaks(&text), "secret in the error:\n{text}\n{}", show());
            let debug = format!("{errors:?}");
            assert!(
                !leaks(&debug),
                "secret in the error's Debug:\n{debug}\n{}",
                show()
            );
            assert!(
                !errors.0.is_empty(),
                "refused without a reason:\n{}",
                show()
            );
            for e in &errors.0 {
                assert!(
                    !e.trim().is_empty(),
                    "an empty problem in:\n{text}\n{}",
                    show()
                );
            }
        }
    }
    // Deterministic: the same sources give the same outcome and the same messages.
    let again = Config::from_toml_str(toml.as_deref(), &env, &PROVIDERS);
    match (&result, &again) {
        (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}")),
        (Err(a), Err(b)) => assert_eq!(a.0, b.0),
        _ => panic!("outcome changed between two loads:\n{}", show()),
    }
});
