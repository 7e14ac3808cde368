//! `hookbridge config check`, the real binary: what `serve` would load, with secrets redacted and
//! exit 0, or every problem at once and exit 2, touching no network (the brokers and registry
//! named here do not exist).

use std::process::Output;

fn check(config: &str, env: &[(&str, &str)]) -> Output {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), config).expect("write config");
    // Only what the test gives: a developer's own HOOKBRIDGE_* must not leak in.
    let mut cmd = crate::support::hookbridge();
    cmd.args(["config", "check", "--config"]).arg(file.path());
    cmd.envs(env.iter().copied());
    cmd.output().expect("hookbridge runs")
}

const VALID: &str = r#"
kafka_brokers = "kafka.invalid:9092"
schema_registry_url = "http://registry.invalid/apis/ccompat/v7"
[kafka_properties]
"sasl.password" = "kafka-secret-value"
"linger.ms" = "5"
[[sources]]
provider = "standard"
id = "billing"
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
"#;

#[test]
fn a_valid_configuration_is_printed_with_secrets_redacted() {
    let out = check(
        VALID,
        &[
            ("HOOKBRIDGE_SENDBIRD_APP_ID", "APP-1"),
            ("HOOKBRIDGE_SENDBIRD_API_TOKENS", "sendbird-token-value"),
            ("HOOKBRIDGE_PUBLISH_TIMEOUT", "2s"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    for secret in [
        "kafka-secret-value",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "sendbird-token-value",
    ] {
        assert!(!stdout.contains(secret), "{secret} printed:\n{stdout}");
    }
    let printed: toml::Table = stdout.parse().expect("the output is TOML");
    assert_eq!(
        printed["publish_timeout"].as_str(),
        Some("2s"),
        "the environment wins"
    );
    assert_eq!(
        printed["kafka_properties"]["sasl.password"].as_str(),
        Some("[redacted]")
    );
    assert_eq!(printed["kafka_properties"]["linger.ms"].as_str(), Some("5"));
    let providers: Vec<&str> = printed["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .filter_map(|s| s["provider"].as_str())
        .collect();
    assert_eq!(providers, ["sendbird", "standard"]);
    assert!(
        stdout.contains(
            "# POST /webhooks/standard/billing -> billing.events (dead letters: billing.dlq)"
        ),
        "{stdout}"
    );
}

#[test]
fn every_problem_is_listed_and_the_exit_code_is_2() {
    let out = check(
        &VALID.replace(
            "\"5\"",
            "\"5\"\n[[sources]]\nprovider = \"nosuch\"\nid = \"x\"",
        ),
        &[
            ("HOOKBRIDGE_MAX_BODY_BYTES", "lots"),
            ("HOOKBRIDGE_PUBLISH_TIMEOUT", "9 parsecs"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for problem in [
        "HOOKBRIDGE_MAX_BODY_BYTES: expected a whole number",
        "publish_timeout (HOOKBRIDGE_PUBLISH_TIMEOUT)",
        "nosuch",
    ] {
        assert!(stderr.contains(problem), "{problem:?} not in:\n{stderr}");
    }
    assert!(out.stdout.is_empty(), "nothing printed as if valid");
    assert!(!stderr.contains("kafka-secret-value"));
}

/// `serve --config FILE` reads the file (here one `serve` refuses, so nothing starts).
#[test]
fn serve_takes_its_configuration_file_as_a_flag() {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), "max_in_flight = \"many\"\n").expect("write");
    let mut cmd = crate::support::hookbridge();
    let out = cmd
        .args(["serve", "--config"])
        .arg(file.path())
        .output()
        .expect("hookbridge runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("max_in_flight"), "{stderr}");
    assert!(
        stderr.contains("kafka_brokers"),
        "every problem at once: {stderr}"
    );
}
