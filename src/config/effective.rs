//! The configuration as the gateway would run it, in the file's own TOML shape, with every
//! secret redacted: what `hookbridge config check` prints.

use std::time::Duration;

use toml::{Table, Value};

use super::{Config, LogFormat};

/// How every secret is shown: in `Debug` and `Display` of [`super::Secret`] and here.
pub(super) const REDACTED: &str = "[redacted]";

/// librdkafka properties whose values are credentials (or embed them, like a JAAS line or an
/// OAuth configuration string). Paths to key files (`*.location`) are not secret.
pub(super) fn is_secret_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    if key.ends_with(".location") {
        return false;
    }
    [
        "password",
        "secret",
        "jaas",
        "pem",
        "token",
        "oauthbearer.config",
        "key",
    ]
    .iter()
    .any(|word| key.contains(word))
}

/// A URL without its query, which may carry an API key (`?apikey=…`); loading already refuses
/// credentials before the host.
fn without_query(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?{REDACTED}"),
        None => url.to_owned(),
    }
}

fn duration(d: Duration) -> Value {
    Value::String(humantime::format_duration(d).to_string())
}

fn int(n: impl TryInto<i64>) -> Value {
    Value::Integer(n.try_into().unwrap_or(i64::MAX))
}

fn string(s: impl Into<String>) -> Value {
    Value::String(s.into())
}

impl Config {
    /// Every setting with the value the gateway uses (defaults filled in), secrets replaced by
    /// `[redacted]`: tokens, passwords and secret Kafka properties.
    pub fn effective(&self) -> Table {
        let mut t = Table::new();
        let s = &self.server;
        t.insert("http_addr".into(), string(s.http_addr.to_string()));
        t.insert("admin_addr".into(), string(s.admin_addr.to_string()));
        let format = match s.log_format {
            LogFormat::Json => "json",
            LogFormat::Text => "text",
        };
        t.insert("log_format".into(), string(format));
        t.insert("log_level".into(), string(s.log_level.clone()));
        t.insert("shutdown_timeout".into(), duration(s.shutdown_timeout));

        let l = &self.limits;
        t.insert("max_body_bytes".into(), int(l.max_body_bytes.get()));
        t.insert("publish_timeout".into(), duration(l.publish_timeout));
        t.insert("max_in_flight".into(), int(l.max_in_flight.get()));
        t.insert("max_typed_items".into(), int(l.max_typed_items.get()));
        t.insert(
            "max_typed_text_bytes".into(),
            int(l.max_typed_text_bytes.get()),
        );
        let e = &l.edge;
        t.insert(
            "header_read_timeout".into(),
            duration(e.header_read_timeout),
        );
        t.insert("idle_timeout".into(), duration(e.idle_timeout));
        t.insert("max_connections".into(), int(e.max_connections.get()));
        t.insert("max_buffered_bytes".into(), int(e.max_buffered_bytes.get()));
        t.insert("buffer_wait".into(), duration(e.buffer_wait));
        t.insert("body_min_rate".into(), int(e.body_min_rate));
        t.insert("body_rate_grace".into(), duration(e.body_rate_grace));
        // 0 is how "no cap" is written.
        t.insert(
            "max_requests_per_client".into(),
            int(e.max_requests_per_client.map_or(0, |n| n.get())),
        );
        t.insert(
            "trusted_proxies".into(),
            Value::Array(
                e.trusted_proxies
                    .iter()
                    .map(|p| string(p.to_string()))
                    .collect(),
            ),
        );

        let k = &self.kafka;
        t.insert("kafka_brokers".into(), string(k.brokers.clone()));
        t.insert("create_topics".into(), Value::Boolean(k.create_topics));
        t.insert("topic_partitions".into(), int(k.topic_partitions.get()));
        if let Some(rf) = k.topic_replication_factor {
            t.insert("topic_replication_factor".into(), int(rf.get()));
        }

        let r = &self.registry;
        t.insert("schema_registry_url".into(), string(without_query(&r.url)));
        if let Some(user) = &r.username {
            t.insert("schema_registry_username".into(), string(user.clone()));
        }
        if let Some(path) = &r.password_file {
            t.insert(
                "schema_registry_password_file".into(),
                string(path.display().to_string()),
            );
        }
        let paths = [
            ("schema_registry_bearer_token_file", &r.bearer_token_file),
            ("schema_registry_ca_file", &r.tls.ca_file),
            ("schema_registry_client_cert_file", &r.tls.client_cert_file),
            ("schema_registry_client_key_file", &r.tls.client_key_file),
        ];
        for (key, path) in paths {
            if let Some(path) = path {
                t.insert(key.into(), string(path.display().to_string()));
            }
        }
        t.insert(
            "auto_register_schemas".into(),
            Value::Boolean(r.auto_register),
        );
        t.insert(
            "tokens_reload_interval".into(),
            duration(self.sources.reload_interval),
        );

        let o = &self.tracing;
        if let Some(url) = &o.traces_url {
            t.insert("otel_endpoint".into(), string(without_query(url)));
        }
        t.insert("otel_service_name".into(), string(o.service_name.clone()));
        t.insert("otel_sampling_ratio".into(), Value::Float(o.sampling_ratio));

        // Tables last, as TOML needs them after the plain keys. A value read from a file is
        // never printed, whatever its name: the file is.
        let files: Table = k
            .property_files
            .iter()
            .map(|(key, path)| (key.clone(), string(path.display().to_string())))
            .collect();
        if !files.is_empty() {
            t.insert("kafka_property_files".into(), Value::Table(files));
        }
        let properties: Table = k
            .properties
            .iter()
            .filter(|(key, _)| !k.property_files.contains_key(*key))
            .map(|(key, value)| {
                let shown = if k.is_secret(key) {
                    REDACTED
                } else {
                    value.expose()
                };
                (key.clone(), string(shown))
            })
            .collect();
        t.insert("kafka_properties".into(), Value::Table(properties));

        let sources = self
            .sources
            .list
            .iter()
            .map(|src| {
                let mut st = Table::new();
                st.insert("provider".into(), string(src.provider));
                st.insert("id".into(), string(src.id.as_str()));
                st.insert(
                    "secrets".into(),
                    Value::Array(src.secrets.iter().map(|_| string(REDACTED)).collect()),
                );
                if let Some(path) = &src.secrets_file {
                    st.insert("secrets_file".into(), string(path.display().to_string()));
                }
                st.insert("topic_prefix".into(), string(src.topic_prefix.clone()));
                for (key, value) in &src.options {
                    // Provider options are checked settings such as JSON pointers or an API
                    // key's public half; none is a credential.
                    if let Ok(v) = Value::try_from(value) {
                        st.insert(key.clone(), v);
                    }
                }
                let routes = src
                    .routes
                    .iter()
                    .map(|route| {
                        let mut rt = Table::new();
                        rt.insert("category".into(), string(route.pattern.to_string()));
                        rt.insert("topic".into(), string(route.topic.as_str()));
                        Value::Table(rt)
                    })
                    .collect();
                st.insert("routes".into(), Value::Array(routes));
                Value::Table(st)
            })
            .collect();
        t.insert("sources".into(), Value::Array(sources));
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_properties_are_named_by_their_keys() {
        for secret in [
            "sasl.password",
            "ssl.key.password",
            "ssl.key.pem",
            "sasl.jaas.config",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.config",
            "ssl.keystore.password",
            "SASL.PASSWORD",
        ] {
            assert!(is_secret_property(secret), "{secret}");
        }
        for plain in [
            "linger.ms",
            "sasl.username",
            "sasl.mechanism",
            "ssl.key.location",
            "ssl.ca.location",
            "security.protocol",
        ] {
            assert!(!is_secret_property(plain), "{plain}");
        }
    }
}
