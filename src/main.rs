//! `hookbridge`: the command line. Parses arguments, initialises telemetry and calls into the
//! library.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use hookbridge::config::{Config, RegistryConfig, Secret};
use hookbridge::registry::{Compatibility, RegistryClient};
use hookbridge::sendbird::Router;
use hookbridge::startup::Application;
use hookbridge::telemetry;
use hookbridge::verify::ApiToken;

#[derive(Parser)]
#[command(
    name = "hookbridge",
    version,
    about = "Verified Sendbird webhooks into Kafka as Avro"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (configuration from HOOKBRIDGE_CONFIG and HOOKBRIDGE_* variables).
    Serve,
    /// Print the x-sendbird-signature a sender holding the token would send for FILE's bytes.
    Sign {
        /// Name of the environment variable that holds the API token (never pass it as an argument).
        #[arg(long, value_name = "VAR")]
        token_env: String,
        /// The body to sign; `-` reads standard input.
        file: PathBuf,
    },
    /// POST FILE to URL signed as Sendbird signs it, print the answer, exit 0 on a 2xx (a test
    /// webhook from a shell, a pod or a CI job).
    Send {
        /// The gateway's webhook URL, e.g. http://hookbridge/webhooks/sendbird.
        #[arg(long)]
        url: String,
        /// Name of the environment variable that holds the API token.
        #[arg(long, value_name = "VAR")]
        token_env: String,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
        /// The body to send; `-` reads standard input.
        file: PathBuf,
    },
    /// Work with the Avro schemas in schemas/.
    Schemas {
        #[command(subcommand)]
        command: SchemasCommand,
    },
    /// Probe the readiness endpoint; exit 0 when it answers 200 (for container health checks).
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:9090/readyz")]
        url: String,
    },
}

#[derive(Subcommand)]
enum SchemasCommand {
    /// Ask the registry whether schemas/ is compatible with what is registered; exit 1 if not.
    Check {
        #[arg(long, env = "HOOKBRIDGE_SCHEMA_REGISTRY_URL")]
        registry_url: String,
        #[arg(long, env = "HOOKBRIDGE_TOPIC_PREFIX", default_value = "sendbird.")]
        topic_prefix: String,
        /// Basic-auth user for the registry.
        #[arg(
            long,
            env = "HOOKBRIDGE_SCHEMA_REGISTRY_USERNAME",
            requires = "password_file"
        )]
        username: Option<String>,
        /// File holding the registry password.
        #[arg(
            long,
            env = "HOOKBRIDGE_SCHEMA_REGISTRY_PASSWORD_FILE",
            requires = "username"
        )]
        password_file: Option<PathBuf>,
        /// Further topics whose `<topic>-value` subject to check (routing overrides).
        #[arg(long = "topic")]
        topics: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve => serve(),
        Command::Sign { token_env, file } => match token_and_body("sign", &token_env, &file) {
            Ok((token, body)) => {
                println!("{}", token.sign(&body));
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Send {
            url,
            token_env,
            timeout,
            file,
        } => match token_and_body("send", &token_env, &file) {
            Ok((token, body)) => runtime().block_on(send(&url, &token, body, timeout)),
            Err(code) => code,
        },
        Command::Schemas {
            command:
                SchemasCommand::Check {
                    registry_url,
                    topic_prefix,
                    topics,
                    username,
                    password_file,
                },
        } => {
            let password = match password_file.map(std::fs::read_to_string).transpose() {
                Ok(p) => p.map(|p| Secret::new(p.trim_end_matches(['\r', '\n']))),
                Err(e) => {
                    eprintln!("hookbridge schemas check: cannot read the password file: {e}");
                    return ExitCode::from(2);
                }
            };
            let registry = RegistryConfig {
                url: registry_url.trim_end_matches('/').to_owned(),
                username,
                password,
            };
            runtime().block_on(schemas_check(registry, topic_prefix, topics))
        }
        Command::Healthcheck { url } => runtime().block_on(healthcheck(url)),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts on any supported platform")
}

fn serve() -> ExitCode {
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hookbridge: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_logging(config.log_format, &config.log_level);
    let result = runtime().block_on(async {
        // Listen for SIGTERM from the start: a pod stopped while still starting exits cleanly.
        let mut stop = Box::pin(shutdown_signal());
        let app = tokio::select! {
            app = Application::build(config) => app?,
            () = &mut stop => {
                tracing::info!("shutdown requested during start-up");
                return Ok(());
            }
        };
        app.run_until_stopped(stop).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "hookbridge failed");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed when this is called, not when the
/// future is first polled, so no signal is missed while the application starts.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let ctrl_c = async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        let term = async {
            match term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            () = ctrl_c => {},
            () = term => {},
        }
    }
}

/// The token named by `token_env` and FILE's bytes (`-`: standard input), or the exit code after
/// saying what is wrong.
fn token_and_body(
    command: &str,
    token_env: &str,
    file: &PathBuf,
) -> Result<(ApiToken, Vec<u8>), ExitCode> {
    let Ok(raw) = std::env::var(token_env) else {
        eprintln!("hookbridge {command}: environment variable {token_env} is not set");
        return Err(ExitCode::from(2));
    };
    let token = ApiToken::parse(&raw).map_err(|why| {
        eprintln!("hookbridge {command}: the token in {token_env} {why}");
        ExitCode::from(2)
    })?;
    let body = if file.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map(|_| buf)
    } else {
        std::fs::read(file)
    };
    let body = body.map_err(|e| {
        eprintln!("hookbridge {command}: cannot read {}: {e}", file.display());
        ExitCode::from(2)
    })?;
    Ok((token, body))
}

async fn send(url: &str, token: &ApiToken, body: Vec<u8>, timeout: u64) -> ExitCode {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(timeout))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hookbridge send: {e}");
            return ExitCode::FAILURE;
        }
    };
    let signature = token.sign(&body);
    let answer = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(hookbridge::verify::SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await;
    match answer {
        Ok(r) => {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            println!("{} {}", status.as_u16(), text.trim_end());
            if status.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("hookbridge send: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn schemas_check(registry: RegistryConfig, prefix: String, extra: Vec<String>) -> ExitCode {
    let router = match Router::new(&prefix, Vec::new()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hookbridge schemas check: {e}");
            return ExitCode::from(2);
        }
    };
    let mut subjects: Vec<String> = router
        .event_topics()
        .iter()
        .map(|t| t.value_subject())
        .collect();
    subjects.extend(extra.iter().map(|t| format!("{t}-value")));
    let client = match RegistryClient::new(&registry) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hookbridge schemas check: {e}");
            return ExitCode::from(2);
        }
    };
    let mut incompatible = 0;
    for subject in &subjects {
        match client
            .check_compatibility(subject, hookbridge::avro::EVENT_SCHEMA_JSON)
            .await
        {
            Ok(Compatibility::Compatible) => println!("compatible      {subject}"),
            Ok(Compatibility::NewSubject) => println!("new subject     {subject}"),
            Ok(Compatibility::Incompatible(why)) => {
                incompatible += 1;
                println!("INCOMPATIBLE    {subject}");
                for line in why {
                    println!("    {line}");
                }
            }
            Err(e) => {
                eprintln!("hookbridge schemas check: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if incompatible > 0 {
        eprintln!(
            "{incompatible} subject(s) would reject {}",
            hookbridge::avro::EVENT_SCHEMA_PATH
        );
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn healthcheck(url: String) -> ExitCode {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
    {
        Ok(c) => c,
        Err(_) => return ExitCode::FAILURE,
    };
    match client.get(&url).send().await {
        Ok(r) if r.status().is_success() => ExitCode::SUCCESS,
        Ok(r) => {
            eprintln!("{url}: {}", r.status());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{url}: {e}");
            ExitCode::FAILURE
        }
    }
}
