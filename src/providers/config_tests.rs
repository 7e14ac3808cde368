//! Configuration loading with the real providers: the generic sections, the older Sendbird
//! forms and `[[sources]]` together.

use std::collections::BTreeMap;
use std::io::Write;
use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

use super::PROVIDERS;
use crate::config::{Config, ConfigErrors, LogFormat};

fn load(file: Option<&Path>, env: &BTreeMap<String, String>) -> Result<Config, ConfigErrors> {
    Config::from_sources(file, env, &PROVIDERS)
}

fn load_str(toml: Option<&str>, env: &BTreeMap<String, String>) -> Result<Config, ConfigErrors> {
    Config::from_toml_str(toml, env, &PROVIDERS)
}

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
    let c = load(None, &minimal()).expect("valid");
    assert_eq!(c.server.http_addr.to_string(), "0.0.0.0:8080");
    assert_eq!(c.server.admin_addr.to_string(), "0.0.0.0:9090");
    assert_eq!(c.sources.list[0].topic_prefix, "sendbird.");
    assert_eq!(c.server.log_format, LogFormat::Json);
    assert_eq!(c.limits.max_body_bytes.get(), 2 * 1024 * 1024);
    assert_eq!(c.limits.publish_timeout, Duration::from_secs(4));
    assert_eq!(c.kafka.topic_partitions.get(), 12);
    assert!(c.kafka.create_topics);
    assert_eq!(c.registry.url, "http://127.0.0.1:8081/apis/ccompat/v7");
    let [app] = c.sources.list.as_slice() else {
        panic!("one app")
    };
    assert_eq!((app.provider, app.id.as_str()), ("sendbird", "APP-1"));
    assert_eq!(app.secrets.len(), 2);
}

#[test]
fn reports_every_problem_at_once_with_setting_names() {
    let e = env(&[
        ("HOOKBRIDGE_HTTP_ADDR", "not-an-addr"),
        ("HOOKBRIDGE_LOG_FORMAT", "yaml"),
        ("HOOKBRIDGE_TOPIC_PARTITIONS", "many"),
        ("HOOKBRIDGE_PUBLISH_TIMEOUT", "6s"),
    ]);
    let err = load(None, &e).expect_err("invalid");
    let text = err.to_string();
    for needle in [
        "HOOKBRIDGE_HTTP_ADDR",
        "HOOKBRIDGE_LOG_FORMAT",
        "HOOKBRIDGE_TOPIC_PARTITIONS",
        "HOOKBRIDGE_PUBLISH_TIMEOUT",
        "HOOKBRIDGE_KAFKA_BROKERS",
        "HOOKBRIDGE_SCHEMA_REGISTRY_URL",
        "sources: no source configured",
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
    let text = load(Some(f.path()), &e).expect_err("invalid").to_string();
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
    let text = load(Some(f.path()), &minimal())
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
    let err = load(Some(f.path()), &minimal()).expect_err("invalid");
    let text = err.to_string();
    assert!(text.contains("\"acks\""), "{text}");
    assert!(text.contains("\"enable.idempotence\""), "{text}");
    assert!(text.contains("\"compression.type\""), "{text}");
    assert!(!text.contains("client.id"), "{text}");

    let f = toml_file("kafka_brokerz = \"x\"\n");
    let err = load(Some(f.path()), &minimal()).expect_err("unknown key");
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
    let err = load_str(Some(text), &minimal()).expect_err("invalid");
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
    let c = load_str(Some(ok), &minimal()).expect("valid");
    // Global properties that begin with "topic." keep their name.
    assert_eq!(
        c.kafka.properties.keys().collect::<Vec<_>>(),
        vec![
            "compression.type",
            "queue.buffering.max.kbytes",
            "topic.metadata.refresh.interval.ms"
        ]
    );
}

#[test]
fn edge_limits_have_documented_defaults_and_are_checked() {
    let c = load_str(None, &minimal()).expect("valid");
    assert_eq!(c.limits.edge.header_read_timeout, Duration::from_secs(10));
    assert_eq!(c.limits.edge.idle_timeout, Duration::from_secs(60));
    assert_eq!(c.limits.edge.max_connections.get(), 4096);
    assert_eq!(c.limits.edge.max_buffered_bytes.get(), 256 * 1024 * 1024);
    assert_eq!(c.limits.edge.buffer_wait, Duration::from_millis(500));
    assert_eq!(c.limits.edge.body_min_rate, 32 * 1024);
    assert_eq!(c.limits.edge.body_rate_grace, Duration::from_secs(1));
    assert!(c.limits.edge.max_requests_per_client.is_none());
    assert!(c.limits.edge.trusted_proxies.is_empty());
    assert_eq!(c.limits.max_typed_items.get(), 1000);
    assert_eq!(c.limits.max_typed_text_bytes.get(), 64 * 1024);

    let mut e = minimal();
    e.insert(
        "HOOKBRIDGE_TRUSTED_PROXIES".into(),
        "10.0.0.0/8, 192.0.2.1".into(),
    );
    e.insert("HOOKBRIDGE_MAX_REQUESTS_PER_CLIENT".into(), "8".into());
    let c = load_str(None, &e).expect("valid");
    assert_eq!(c.limits.edge.trusted_proxies.len(), 2);
    assert_eq!(
        c.limits.edge.max_requests_per_client.map(NonZeroUsize::get),
        Some(8)
    );

    let bad = r#"
        header_read_timeout = "0s"
        max_buffered_bytes = 4096
        trusted_proxies = ["10.0.0.0/8", "proxy.internal"]
        max_connections = 0
        "#;
    // Found by the config fuzz target: a non-ASCII filter made tracing-subscriber panic.
    let err = load_str(Some("log_level = \"a=\u{e9}\"\n"), &minimal()).expect_err("invalid");
    assert!(err.to_string().contains("log_level"), "{err}");
    // Found by the config fuzz target: zero was refused without a message.
    let zero = "max_buffered_bytes = 0\n";
    let err = load_str(Some(zero), &minimal()).expect_err("invalid");
    assert!(err.to_string().contains("max_buffered_bytes"), "{err}");
    let err = load_str(Some(bad), &minimal()).expect_err("invalid");
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
    let err = load_str(Some(text), &BTreeMap::new()).expect_err("duplicate");
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
    let c = load(Some(f.path()), &BTreeMap::new()).expect("valid");
    assert_eq!(c.sources.list.len(), 2);
    assert_eq!(c.sources.list[1].secrets.len(), 2);
    assert_eq!(c.sources.list[0].routes[0].topic.as_str(), "chat.messages");
    assert_eq!(c.limits.publish_timeout, Duration::from_millis(2500));
}

#[test]
fn service_link_variables_do_not_break_start_up() {
    let mut e = minimal();
    e.insert("HOOKBRIDGE_PORT".into(), "tcp://10.0.0.1:8080".into());
    e.insert("HOOKBRIDGE_SERVICE_HOST".into(), "10.0.0.1".into());
    load(None, &e).expect("service links ignored");
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
    let err = load(Some(f.path()), &minimal()).expect_err("invalid");
    let text = err.to_string();
    assert!(text.contains("api_tokens"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    assert!(!text.contains("987654321"), "{text}");
    // Both bad values are reported, not only the first.
    assert!(text.contains("kafka_properties"), "{text}");

    let f = toml_file("api = [\"s3cret-token-value\"\n");
    let text = load(Some(f.path()), &minimal())
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
    let text = load(None, &e).expect_err("refused").to_string();
    assert!(text.contains("schema_registry_password_file"), "{text}");
    assert!(!text.contains("pa55"), "{text}");
}

#[test]
fn shutdown_must_leave_room_to_drain_and_flush() {
    let mut e = minimal();
    e.insert("HOOKBRIDGE_SHUTDOWN_TIMEOUT".into(), "4s".into());
    let text = load(None, &e).expect_err("too short").to_string();
    assert!(text.contains("HOOKBRIDGE_SHUTDOWN_TIMEOUT"), "{text}");
    e.insert("HOOKBRIDGE_SHUTDOWN_TIMEOUT".into(), "6s".into());
    load(None, &e).expect("4s drain + 2s flush");
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let c = load(None, &minimal()).expect("valid");
    let debug = format!("{c:?}");
    assert!(!debug.contains("tok-a"), "{debug}");
    assert!(debug.contains("[redacted]"));
}

#[test]
fn missing_config_file_is_an_error_not_an_empty_config() {
    let err = load(Some(Path::new("/nonexistent/hb.toml")), &minimal()).expect_err("missing file");
    assert!(err.to_string().contains("HOOKBRIDGE_CONFIG"), "{err}");
}

#[test]
fn sources_of_any_provider_sit_beside_the_older_sendbird_forms() {
    let text = r#"
        [[sources]]
        provider = "sendbird"
        id = "App-2"
        secrets = ["tok-c"]
        routes = [{ category = "group_channel:*", topic = "chat.groups" }]
        "#;
    let c = load_str(Some(text), &minimal()).expect("valid");
    let ids: Vec<(&str, &str, &str)> = c
        .sources
        .list
        .iter()
        .map(|s| (s.provider, s.id.as_str(), s.topic_prefix.as_str()))
        .collect();
    assert_eq!(
        ids,
        vec![
            ("sendbird", "APP-1", "sendbird."),
            ("sendbird", "App-2", "sendbird.")
        ]
    );
    assert_eq!(c.sources.list[1].routes[0].topic.as_str(), "chat.groups");
    let topics = PROVIDERS.all_topics(&c.sources).expect("topics");
    assert!(topics.iter().any(|t| t.as_str() == "chat.groups"));
    assert!(topics.iter().any(|t| t.as_str() == "sendbird.dlq"));
}

#[test]
fn every_problem_with_sources_is_reported_with_its_place() {
    let text = r#"
        [[sources]]
        provider = "carrier-pigeon"
        id = "x"
        [[sources]]
        provider = "sendbird"
        id = "has space"
        secrets = ["t"]
        [[sources]]
        provider = "sendbird"
        id = "app-1"
        secrets = ["t"]
        [[sources]]
        provider = "sendbird"
        id = "no-secrets"
        [[sources]]
        provider = "sendbird"
        id = "odd"
        secrets = ["t"]
        colour = "blue"
        topic_prefix = "bad prefix "
        routes = [{ category = "a*b", topic = "t" }]
        "#;
    let text = load_str(Some(text), &minimal())
        .expect_err("invalid")
        .to_string();
    for needle in [
        "sources[0].provider: \"carrier-pigeon\" is not one of sendbird, stream, standard",
        "sources[1].id: may contain only",
        "sendbird source app-1 is configured twice",
        "sources[3]: sendbird source no-secrets has no secrets",
        "sources[4]: unknown setting `colour`",
        "sources[4].topic_prefix",
        "sources[4].routes[0].category",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

#[test]
fn secrets_in_sources_are_checked_by_their_provider_and_never_printed() {
    let text = r#"
        [[sources]]
        provider = "sendbird"
        id = "B"
        secrets = ["ok-token", "has s3cret space"]
        "#;
    let text = load_str(Some(text), &minimal())
        .expect_err("invalid")
        .to_string();
    assert!(text.contains("sources[0].secrets: secret #2"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}

#[test]
fn publish_timeout_stays_below_the_waiting_senders_timeout() {
    let mut e = minimal();
    e.insert("HOOKBRIDGE_PUBLISH_TIMEOUT".into(), "5s".into());
    let text = load(None, &e).expect_err("too long").to_string();
    assert!(
        text.contains("below the 5s a sendbird sender waits"),
        "{text}"
    );
}

#[test]
fn the_top_level_prefix_and_routes_apply_to_sendbird_sources_as_to_every_app() {
    let text = r#"
        topic_prefix = "chat."
        [[routes]]
        category = "group_channel:message_*"
        topic = "chat.messages"
        [[sources]]
        provider = "sendbird"
        id = "S"
        secrets = ["t"]
        routes = [{ category = "group_channel:message_read", topic = "chat.reads" }]
        [[sources]]
        provider = "sendbird"
        id = "T"
        secrets = ["t"]
        topic_prefix = "own."
        "#;
    let c = load_str(
        Some(text),
        &env(&[
            ("HOOKBRIDGE_KAFKA_BROKERS", "k:9092"),
            ("HOOKBRIDGE_SCHEMA_REGISTRY_URL", "http://r"),
        ]),
    )
    .expect("valid");
    let [s, t] = c.sources.list.as_slice() else {
        panic!("two sources")
    };
    assert_eq!(s.topic_prefix, "chat.");
    assert_eq!(t.topic_prefix, "own.");
    let topics: Vec<&str> = s.routes.iter().map(|r| r.topic.as_str()).collect();
    assert_eq!(
        topics,
        ["chat.reads", "chat.messages"],
        "the entry's own routes first"
    );
}

#[test]
fn only_the_variables_read_before_are_read() {
    let mut e = minimal();
    // Not variables before [[sources]] either: a value here must not break start-up.
    e.insert("HOOKBRIDGE_APPS".into(), "whatever".into());
    e.insert("HOOKBRIDGE_ROUTES".into(), "whatever".into());
    e.insert("HOOKBRIDGE_SOURCES".into(), "whatever".into());
    e.insert("HOOKBRIDGE_TOPIC_PREFIX".into(), "env.".into());
    let c = load(None, &e).expect("valid");
    assert_eq!(c.sources.list[0].topic_prefix, "env.");
}

/// `config check` prints what `serve` runs: loaded back (secrets filled in again), the printed
/// configuration is the same configuration, and no secret is in the text.
#[test]
fn the_effective_configuration_loads_back_to_itself() {
    let password = toml_file("registry-pw\n");
    let sasl = toml_file("sasl-user-in-a-file\n");
    let ca = {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["registry.example".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        toml_file(&cert.pem())
    };
    let text = format!(
        r#"
        kafka_brokers = "k1:9092,k2:9092"
        schema_registry_url = "https://registry.example/apis/ccompat/v7"
        schema_registry_username = "svc"
        schema_registry_password_file = "{}"
        schema_registry_ca_file = "{ca}"
        publish_timeout = "3s"
        trusted_proxies = ["10.0.0.0/8"]
        max_requests_per_client = 64
        topic_replication_factor = 3
        otel_endpoint = "http://collector:4318"
        otel_sampling_ratio = 0.25
        [kafka_properties]
        "linger.ms" = "7"
        "sasl.password" = "kafka-pw-123"
        [kafka_property_files]
        "sasl.username" = "{sasl}"
        [[routes]]
        category = "group_channel:message_*"
        topic = "chat.messages"
        [[sources]]
        provider = "stream"
        id = "eu"
        secrets = ["stream-secret-1", "stream-secret-2"]
        api_key = "public-key"
        topic_prefix = "st."
        routes = [{{ category = "message.*", topic = "st.msgs" }}]
        "#,
        password.path().display(),
        ca = ca.path().display(),
        sasl = sasl.path().display(),
    );
    let mut env = minimal();
    // The file's https:// URL, which its CA goes with.
    env.remove("HOOKBRIDGE_SCHEMA_REGISTRY_URL");
    let first = load_str(Some(&text), &env).expect("valid");
    let printed = toml::to_string(&first.effective()).expect("TOML");
    for secret in [
        "registry-pw",
        "kafka-pw-123",
        "sasl-user-in-a-file",
        "stream-secret-1",
        "stream-secret-2",
        "tok-a",
        "tok-b",
    ] {
        assert!(!printed.contains(secret), "{secret} printed:\n{printed}");
    }

    let mut again: toml::Table = printed.parse().expect("the output is TOML");
    let sources = again["sources"].as_array_mut().expect("sources");
    for (printed_source, loaded) in sources.iter_mut().zip(&first.sources.list) {
        let secrets = loaded
            .secrets
            .iter()
            .map(|s| toml::Value::String(s.expose().to_owned()))
            .collect();
        printed_source
            .as_table_mut()
            .expect("table")
            .insert("secrets".into(), toml::Value::Array(secrets));
    }
    again["kafka_properties"]
        .as_table_mut()
        .expect("table")
        .insert("sasl.password".into(), "kafka-pw-123".into());
    let reloaded = load_str(
        Some(&toml::to_string(&again).expect("TOML")),
        &BTreeMap::new(),
    )
    .expect("the printed configuration loads");
    assert_eq!(reloaded.effective(), first.effective());
    assert_eq!(
        reloaded.sources.list.len(),
        2,
        "the env's app and the stream source"
    );
}

#[test]
fn registry_tls_and_token_settings_are_checked_together() {
    let dir = tempfile::tempdir().expect("dir");
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };
    let not_pem = file("not.pem", "hello\n");
    let empty_token = file("empty-token", "\n");
    let password = file("pw", "secret\n");
    let mut e = minimal();
    e.insert(
        "HOOKBRIDGE_SCHEMA_REGISTRY_URL".into(),
        "http://registry:8080".into(),
    );
    e.insert("HOOKBRIDGE_SCHEMA_REGISTRY_CA_FILE".into(), not_pem.clone());
    e.insert(
        "HOOKBRIDGE_SCHEMA_REGISTRY_CLIENT_CERT_FILE".into(),
        not_pem,
    );
    e.insert(
        "HOOKBRIDGE_SCHEMA_REGISTRY_BEARER_TOKEN_FILE".into(),
        empty_token,
    );
    e.insert("HOOKBRIDGE_SCHEMA_REGISTRY_USERNAME".into(), "svc".into());
    e.insert("HOOKBRIDGE_SCHEMA_REGISTRY_PASSWORD_FILE".into(), password);
    let err = load(None, &e).expect_err("invalid").0.join("\n");
    for problem in [
        "schema_registry_ca_file (HOOKBRIDGE_SCHEMA_REGISTRY_CA_FILE): ",
        "holds no PEM certificate",
        "schema_registry_client_cert_file and schema_registry_client_key_file: set both or neither",
        "schema_registry_bearer_token_file (HOOKBRIDGE_SCHEMA_REGISTRY_BEARER_TOKEN_FILE): ",
        "holds no token",
        "use either a bearer token or schema_registry_username",
        "TLS settings are given but the URL is http://",
    ] {
        assert!(err.contains(problem), "{problem:?} not in:\n{err}");
    }
}

#[test]
fn span_export_settings_come_from_the_file_the_variables_or_otel_s_own() {
    let mut e = minimal();
    let c = load(None, &e).expect("valid");
    assert_eq!(c.tracing.traces_url, None, "off by default");
    assert_eq!(c.tracing.service_name, "hookbridge");

    e.insert(
        "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
        "http://otel:4318/".into(),
    );
    e.insert("OTEL_SERVICE_NAME".into(), "webhooks-eu".into());
    let c = load(None, &e).expect("valid");
    assert_eq!(
        c.tracing.traces_url.as_deref(),
        Some("http://otel:4318/v1/traces")
    );
    assert_eq!(c.tracing.service_name, "webhooks-eu");

    // The file and HOOKBRIDGE_* win over OTEL_*.
    e.insert(
        "HOOKBRIDGE_OTEL_ENDPOINT".into(),
        "https://collector.example/v1/traces".into(),
    );
    let c = load_str(Some("otel_service_name = \"from-file\""), &e).expect("valid");
    assert_eq!(
        c.tracing.traces_url.as_deref(),
        Some("https://collector.example/v1/traces")
    );
    assert_eq!(c.tracing.service_name, "from-file");

    e.insert("HOOKBRIDGE_OTEL_SAMPLING_RATIO".into(), "1.5".into());
    e.insert("HOOKBRIDGE_OTEL_ENDPOINT".into(), "collector:4318".into());
    let err = load(None, &e).expect_err("invalid").0.join("\n");
    assert!(err.contains("otel_sampling_ratio"), "{err}");
    assert!(err.contains("must be an http:// or https:// URL"), "{err}");
}
