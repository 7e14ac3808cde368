//! A small client for the Confluent Schema Registry API (also served by Apicurio's
//! `/apis/ccompat/v7`, Karapace and Redpanda). Used at start-up and by `schemas check`, never
//! on the request path.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::config::{RegistryConfig, read_bearer_token};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// `detail` is the whole chain of causes: reqwest's own message alone ("error sending
    /// request") hides whether DNS, TCP or the certificate failed.
    #[error("schema registry at {url} unreachable: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("schema registry answered {status} for {what}: {body}")]
    Status {
        what: String,
        status: StatusCode,
        body: String,
    },
    #[error("schema registry at {url}: {why}")]
    Setup { url: String, why: String },
    #[error("schema registry sent an unexpected answer for {what}: {source}")]
    Decode {
        what: String,
        #[source]
        source: reqwest::Error,
    },
}

/// An error and its sources, `outer: inner: innermost`, without repeats.
fn causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

#[derive(Clone)]
pub struct RegistryClient {
    base: String,
    http: reqwest::Client,
    auth: Option<(String, String)>,
    bearer_token_file: Option<std::path::PathBuf>,
    presents_certificate: bool,
}

#[derive(Deserialize)]
struct IdAnswer {
    id: u32,
}

#[derive(Deserialize)]
struct CompatibilityAnswer {
    is_compatible: bool,
    #[serde(default)]
    messages: Vec<String>,
}

/// Whether a schema may be registered under a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compatibility {
    /// The subject does not exist yet: anything is compatible.
    NewSubject,
    Compatible,
    Incompatible(Vec<String>),
}

impl RegistryClient {
    /// A client trusting the system's roots, the bundled Mozilla roots and `tls.ca_pem`, and
    /// presenting `tls.client_identity_pem` when the registry asks for a certificate.
    pub fn new(config: &RegistryConfig) -> Result<Self, RegistryError> {
        let setup = |why: String| RegistryError::Setup {
            url: config.url.clone(),
            why,
        };
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5));
        if let Some(pem) = &config.tls.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| setup(format!("schema_registry_ca_file: {e}")))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some(pem) = &config.tls.client_identity_pem {
            let identity = reqwest::Identity::from_pem(pem.expose().as_bytes())
                .map_err(|e| setup(format!("client certificate: {e}")))?;
            builder = builder.identity(identity);
        }
        let http = builder
            .build()
            .map_err(|e| setup(format!("HTTP client: {e}")))?;
        Ok(RegistryClient {
            base: config.url.trim_end_matches('/').to_owned(),
            http,
            auth: config
                .username
                .clone()
                .zip(config.password.as_ref().map(|p| p.expose().to_owned())),
            bearer_token_file: config.bearer_token_file.clone(),
            presents_certificate: config.tls.client_identity_pem.is_some(),
        })
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, RegistryError> {
        let mut rb = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .header(reqwest::header::ACCEPT, CONTENT_TYPE)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE);
        if let Some((user, password)) = &self.auth {
            rb = rb.basic_auth(user, Some(password));
        }
        // Read for every request: a sidecar or a projected token may have refreshed it.
        if let Some(path) = &self.bearer_token_file {
            let token = read_bearer_token(path).map_err(|why| RegistryError::Setup {
                url: self.base.clone(),
                why: format!("schema_registry_bearer_token_file: {why}"),
            })?;
            rb = rb.bearer_auth(token.expose());
        }
        Ok(rb)
    }

    async fn send(
        &self,
        what: &str,
        rb: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        rb.send()
            .await
            .map_err(|e| RegistryError::Unreachable {
                url: self.base.clone(),
                detail: self.explain(causes(&e)),
            })
            .inspect(|r| tracing::debug!(what, status = %r.status(), "schema registry answered"))
    }

    /// Under TLS 1.3 a registry refuses a client certificate only after the client has finished
    /// its handshake: the client may then see the refusal as a plain close, before or while
    /// sending, rather than as the server's alert. Say what such a close may mean.
    fn explain(&self, detail: String) -> String {
        const CLOSED: [&str; 4] = [
            "connection was not ready",
            "connection closed",
            "connection reset",
            "broken pipe",
        ];
        if !self.base.starts_with("https:") || !CLOSED.iter().any(|c| detail.contains(c)) {
            return detail;
        }
        let why = if self.presents_certificate {
            "a registry refuses this way a client certificate it does not accept \
             (schema_registry_client_cert_file)"
        } else {
            "a registry that requires a client certificate refuses this way when none is set \
             (schema_registry_client_cert_file)"
        };
        format!("{detail} (the registry closed the TLS connection before answering: {why})")
    }

    async fn fail(what: &str, response: reqwest::Response) -> RegistryError {
        let status = response.status();
        let mut body = response.text().await.unwrap_or_default();
        // At a character boundary: truncating inside a multi-byte character panics.
        let mut end = body.len().min(500);
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        body.truncate(end);
        RegistryError::Status {
            what: what.to_owned(),
            status,
            body,
        }
    }

    /// POSTs `schema` to `path`; `Ok(None)` when the registry answers 404.
    async fn post_schema<T: serde::de::DeserializeOwned>(
        &self,
        what: String,
        path: &str,
        schema: &str,
    ) -> Result<Option<T>, RegistryError> {
        let rb = self
            .request(reqwest::Method::POST, path)?
            .json(&json!({"schema": schema, "schemaType": "AVRO"}));
        let response = self.send(&what, rb).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(Self::fail(&what, response).await);
        }
        response
            .json()
            .await
            .map(Some)
            .map_err(|source| RegistryError::Decode { what, source })
    }

    /// Registers `schema` under `subject` (idempotent: an identical schema keeps its id).
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let path = format!("/subjects/{}/versions", encode(subject));
        let what = format!("registering {subject}");
        match self
            .post_schema::<IdAnswer>(what.clone(), &path, schema)
            .await?
        {
            Some(answer) => Ok(answer.id),
            None => Err(RegistryError::Status {
                what,
                status: StatusCode::NOT_FOUND,
                body: "not found".into(),
            }),
        }
    }

    /// The id `schema` has under `subject`, or `None` if it is not registered there.
    pub async fn lookup(&self, subject: &str, schema: &str) -> Result<Option<u32>, RegistryError> {
        let path = format!("/subjects/{}", encode(subject));
        let answer = self
            .post_schema::<IdAnswer>(format!("looking up {subject}"), &path, schema)
            .await?;
        Ok(answer.map(|a| a.id))
    }

    /// Asks whether `schema` is compatible with the latest version under `subject`.
    pub async fn check_compatibility(
        &self,
        subject: &str,
        schema: &str,
    ) -> Result<Compatibility, RegistryError> {
        // Registries differ on unknown subjects (Confluent: 404, Apicurio: compatible), so ask
        // whether the subject exists first.
        let what = format!("listing versions of {subject}");
        let rb = self.request(
            reqwest::Method::GET,
            &format!("/subjects/{}/versions", encode(subject)),
        )?;
        let response = self.send(&what, rb).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(Compatibility::NewSubject);
        }
        if !response.status().is_success() {
            return Err(Self::fail(&what, response).await);
        }
        let path = format!(
            "/compatibility/subjects/{}/versions/latest?verbose=true",
            encode(subject)
        );
        let what = format!("checking compatibility of {subject}");
        let Some(answer) = self
            .post_schema::<CompatibilityAnswer>(what, &path, schema)
            .await?
        else {
            return Ok(Compatibility::NewSubject);
        };
        Ok(if answer.is_compatible {
            Compatibility::Compatible
        } else {
            Compatibility::Incompatible(answer.messages)
        })
    }
}

/// Subjects are `<topic>-value`; topic names allow only `[A-Za-z0-9._-]`, which need no
/// escaping in a path, but guard anyway.
fn encode(subject: &str) -> String {
    subject
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str) -> RegistryClient {
        RegistryClient::new(&RegistryConfig {
            url: url.into(),
            username: None,
            password: None,
            password_file: None,
            bearer_token_file: None,
            tls: Default::default(),
            auto_register: true,
        })
        .expect("client")
    }

    #[test]
    fn a_close_after_a_tls_handshake_is_explained_and_nothing_else_is() {
        let https = client("https://registry.example:8081");
        let closed = https.explain("client error (Canceled): connection was not ready".into());
        assert!(
            closed.contains("that requires a client certificate refuses this way"),
            "{closed}"
        );
        let refused = "client error (Connect): connection refused".to_owned();
        assert_eq!(https.explain(refused.clone()), refused);
        let plain = client("http://registry.example:8081");
        let closed = "connection closed before message completed".to_owned();
        assert_eq!(plain.explain(closed.clone()), closed);
    }

    #[test]
    fn with_a_client_certificate_the_close_names_the_certificate_as_refused() {
        let mut https = client("https://registry.example:8081");
        https.presents_certificate = true;
        for detail in [
            "client error (SendRequest): connection closed before message completed",
            "client error (SendRequest): connection reset by peer",
            "client error (SendRequest): broken pipe",
        ] {
            let explained = https.explain(detail.to_owned());
            assert!(explained.starts_with(detail), "{explained}");
            assert!(
                explained.contains("refuses this way a client certificate it does not accept"),
                "{explained}"
            );
            assert!(!explained.contains("when none is set"), "{explained}");
        }
    }

    #[test]
    fn subjects_are_escaped_only_where_a_path_needs_it() {
        assert_eq!(encode("chat.group_events-value"), "chat.group_events-value");
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
    }
}
