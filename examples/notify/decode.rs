//! Confluent-framed Avro records decoded with the writer schema fetched from the registry by id
//! (`GET {registry}/schemas/ids/{id}`), each id fetched once: an id never changes its schema.

use std::collections::HashMap;
use std::time::Duration;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use serde::de::DeserializeOwned;

/// Why a record could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The record itself is bad: retrying cannot help, so it is logged and passed over.
    #[error("{0}")]
    Poison(String),
    /// The registry did not answer as it should: retried, the record is not passed over.
    #[error("schema registry: {0}")]
    Registry(String),
}

pub struct Decoder {
    registry: String,
    http: reqwest::Client,
    schemas: HashMap<u32, Schema>,
}

/// `0x00`, a 4-byte big-endian schema id, then the Avro datum.
fn split_frame(value: &[u8]) -> Option<(u32, &[u8])> {
    match value {
        [0, a, b, c, d, datum @ ..] => Some((u32::from_be_bytes([*a, *b, *c, *d]), datum)),
        _ => None,
    }
}

impl Decoder {
    pub fn new(registry: &str) -> anyhow::Result<Decoder> {
        Ok(Decoder {
            registry: registry.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            schemas: HashMap::new(),
        })
    }

    /// The record's value decoded into `T` (extra fields in the writer schema are ignored).
    pub async fn decode<T: DeserializeOwned>(&mut self, value: &[u8]) -> Result<T, DecodeError> {
        let (id, mut datum) = split_frame(value).ok_or_else(|| {
            DecodeError::Poison("not in the Confluent wire format (magic byte 0 + id)".into())
        })?;
        if !self.schemas.contains_key(&id) {
            let schema = self.fetch(id).await?;
            self.schemas.insert(id, schema);
        }
        let schema = &self.schemas[&id];
        let reader = GenericDatumReader::builder(schema)
            .build()
            .map_err(|e| DecodeError::Poison(format!("schema {id}: {e}")))?;
        let value = reader
            .read_value(&mut datum)
            .map_err(|e| DecodeError::Poison(format!("datum does not match schema {id}: {e}")))?;
        apache_avro::from_value(&value)
            .map_err(|e| DecodeError::Poison(format!("schema {id} lacks what is read: {e}")))
    }

    async fn fetch(&self, id: u32) -> Result<Schema, DecodeError> {
        let url = format!("{}/schemas/ids/{id}", self.registry);
        let answer = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| DecodeError::Registry(format!("GET {url}: {e}")))?;
        let status = answer.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            // Ids are never deleted by hookbridge; an unknown id is a record from elsewhere.
            return Err(DecodeError::Poison(format!(
                "schema id {id} is unknown to {}",
                self.registry
            )));
        }
        if !status.is_success() {
            return Err(DecodeError::Registry(format!("GET {url}: HTTP {status}")));
        }
        let body: serde_json::Value = answer
            .json()
            .await
            .map_err(|e| DecodeError::Registry(format!("GET {url}: {e}")))?;
        let text = body["schema"]
            .as_str()
            .ok_or_else(|| DecodeError::Registry(format!("GET {url}: no \"schema\" string")))?;
        Schema::parse_str(text)
            .map_err(|e| DecodeError::Poison(format!("schema {id} does not parse: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_at_five_bytes() {
        assert_eq!(
            split_frame(&[0, 0, 0, 1, 2, 9, 9]),
            Some((258, &[9u8, 9][..]))
        );
        assert_eq!(split_frame(&[1, 0, 0, 1, 2, 9]), None);
        assert_eq!(split_frame(&[0, 0, 0]), None);
    }
}
