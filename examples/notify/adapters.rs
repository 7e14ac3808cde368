//! Where notifications are handed off. Replace these with your push, SMS and e-mail providers:
//! a notification is handed off once `send` returned `Ok`, and only then is the record's offset
//! committed. Each carries an `idempotency_key` for providers that deduplicate.

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::plan::Notification;

pub trait Notifier {
    /// Hands one notification off. An error is retried (with backoff) until it succeeds or the
    /// consumer stops; the record is not committed before every notification succeeded.
    fn send(&self, n: &Notification) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// POSTs each notification as JSON to one URL (a notification service, a provider's API, a
/// queue's HTTP front). Any 2xx is handed off; anything else is retried.
pub struct HttpPost {
    http: reqwest::Client,
    url: String,
}

impl HttpPost {
    pub fn new(url: &str) -> anyhow::Result<HttpPost> {
        Ok(HttpPost {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            url: url.to_owned(),
        })
    }
}

impl Notifier for HttpPost {
    async fn send(&self, n: &Notification) -> anyhow::Result<()> {
        let answer = self
            .http
            .post(&self.url)
            .header("idempotency-key", &n.idempotency_key)
            .json(n)
            .send()
            .await
            .with_context(|| format!("POST {}", self.url))?;
        let status = answer.status();
        anyhow::ensure!(status.is_success(), "POST {}: HTTP {status}", self.url);
        Ok(())
    }
}

/// Appends each notification as a JSON line to a file (`-`: standard output), flushed and, for
/// a file, synced to disk before it counts as handed off.
pub struct JsonLines {
    out: std::sync::Mutex<Output>,
}

enum Output {
    Stdout,
    /// The file, its path, and whether it is a regular file (synced; pipes and devices are not).
    File(std::fs::File, PathBuf, bool),
}

impl JsonLines {
    pub fn open(path: &str) -> anyhow::Result<JsonLines> {
        let out = if path == "-" {
            Output::Stdout
        } else {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {path}"))?;
            let regular = file.metadata().is_ok_and(|m| m.is_file());
            Output::File(file, PathBuf::from(path), regular)
        };
        Ok(JsonLines {
            out: std::sync::Mutex::new(out),
        })
    }
}

impl Notifier for JsonLines {
    async fn send(&self, n: &Notification) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(n)?;
        line.push(b'\n');
        let mut out = self
            .out
            .lock()
            .map_err(|_| anyhow::anyhow!("output lock poisoned"))?;
        match &mut *out {
            Output::Stdout => {
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(&line)?;
                stdout.flush()?;
            }
            Output::File(file, path, regular) => {
                file.write_all(&line)
                    .and_then(|()| if *regular { file.sync_data() } else { Ok(()) })
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        Ok(())
    }
}
