//! The Standard Webhooks envelope record: `schemas/standard_envelope.avsc`, written field by
//! field in the schema's order (checked against the schema by the tests).

use apache_avro::Schema;

use crate::providers::SchemaFile;
use crate::sink::avro::{Sink, framed, framed_len, long, opt_long, opt_str, string};

/// The schema file every Standard Webhooks event topic's `<topic>-value` subject holds.
pub static SCHEMA: SchemaFile = SchemaFile::new(
    "schemas/standard_envelope.avsc",
    include_str!("../../../schemas/standard_envelope.avsc"),
);

/// The envelope schema, parsed on first use and kept for the life of the process.
pub fn envelope_schema() -> Result<&'static Schema, String> {
    SCHEMA.schema()
}

/// One record's fields.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    pub event_id: &'a str,
    pub event_type: Option<&'a str>,
    pub source_id: &'a str,
    pub received_at_ms: i64,
    pub occurred_at_ms: Option<i64>,
    pub key: Option<&'a str>,
    /// The body as received; the caller checked it is UTF-8.
    pub raw_body: &'a str,
    /// The JSON text of the body's `data` member.
    pub data: Option<&'a str>,
}

/// Encodes envelopes into Confluent-framed values, with their exact length known first so a
/// record is never built only to be found too large.
pub struct EnvelopeEncoder(());

impl EnvelopeEncoder {
    pub fn new() -> Result<Self, String> {
        // The schema must parse; the writer below follows its field order.
        envelope_schema()?;
        Ok(EnvelopeEncoder(()))
    }

    /// The length of the value [`EnvelopeEncoder::encode`] would produce.
    pub fn encoded_len(&self, envelope: &Envelope<'_>) -> usize {
        framed_len(|out| write_envelope(out, envelope))
    }

    /// The record value: Confluent header for `schema_id`, then the Avro datum.
    pub fn encode(&self, schema_id: u32, envelope: &Envelope<'_>) -> Vec<u8> {
        framed(schema_id, self.encoded_len(envelope), |out| {
            write_envelope(out, envelope)
        })
    }
}

/// The datum, field by field in the order of `schemas/standard_envelope.avsc`.
fn write_envelope(out: &mut impl Sink, e: &Envelope<'_>) {
    string(out, e.event_id);
    opt_str(out, e.event_type);
    string(out, e.source_id);
    long(out, e.received_at_ms);
    opt_long(out, e.occurred_at_ms);
    opt_str(out, e.key);
    string(out, e.raw_body);
    opt_str(out, e.data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::avro::read_record;
    use apache_avro::types::Value;

    fn decode(bytes: &[u8]) -> (u32, Vec<(String, Value)>) {
        read_record(envelope_schema().expect("schema"), bytes)
    }

    #[test]
    fn encodes_a_small_envelope_byte_for_byte() {
        let e = Envelope {
            event_id: "i",
            event_type: Some("t"),
            source_id: "s",
            received_at_ms: 1,
            occurred_at_ms: None,
            key: None,
            raw_body: "{}",
            data: None,
        };
        let encoder = EnvelopeEncoder::new().expect("schema");
        let bytes = encoder.encode(7, &e);
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            0x00, 0x00, 0x00, 0x00, 0x07, // magic byte, schema id 7 big-endian
            0x02, b'i',                   // event_id
            0x02, 0x02, b't',             // event_type: string branch, "t"
            0x02, b's',                   // source_id
            0x02,                         // received_at = 1 (zigzag 2)
            0x00,                         // occurred_at: null branch
            0x00,                         // key: null branch
            0x04, b'{', b'}',             // raw_body
            0x00,                         // data: null branch
        ];
        assert_eq!(bytes, expected);
        assert_eq!(encoder.encoded_len(&e), expected.len());
    }

    /// Every string field holds its own name, so a field written in the wrong place decodes
    /// under another name and fails; the schema's reader is the oracle.
    #[test]
    fn every_field_lands_under_its_own_name() {
        let e = Envelope {
            event_id: "event_id",
            event_type: Some("event_type"),
            source_id: "source_id",
            received_at_ms: 1_700_000_000_123,
            occurred_at_ms: Some(1_700_000_000_000),
            key: Some("key"),
            raw_body: "raw_body",
            data: Some("data"),
        };
        let encoder = EnvelopeEncoder::new().expect("schema");
        let bytes = encoder.encode(42, &e);
        assert_eq!(bytes.len(), encoder.encoded_len(&e));
        let (id, fields) = decode(&bytes);
        assert_eq!(id, 42);
        let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "event_id",
                "event_type",
                "source_id",
                "received_at",
                "occurred_at",
                "key",
                "raw_body",
                "data"
            ]
        );
        let mut strings = 0;
        for (name, value) in &fields {
            let inner = match value {
                Value::Union(1, inner) => inner.as_ref(),
                Value::Union(..) => panic!("{name} is null"),
                other => other,
            };
            match inner {
                Value::String(text) => {
                    assert_eq!(text, name);
                    strings += 1;
                }
                Value::TimestampMillis(ms) if name == "received_at" => {
                    assert_eq!(*ms, 1_700_000_000_123)
                }
                Value::TimestampMillis(ms) if name == "occurred_at" => {
                    assert_eq!(*ms, 1_700_000_000_000)
                }
                other => panic!("{name}: unexpected {other:?}"),
            }
        }
        assert_eq!(strings, 6, "every string field was checked");
    }

    #[test]
    fn absent_optional_fields_decode_as_null() {
        let e = Envelope {
            event_id: "e",
            event_type: None,
            source_id: "s",
            received_at_ms: -1,
            occurred_at_ms: None,
            key: None,
            raw_body: "",
            data: None,
        };
        let encoder = EnvelopeEncoder::new().expect("schema");
        let (_, fields) = decode(&encoder.encode(1, &e));
        for name in ["event_type", "occurred_at", "key", "data"] {
            let value = fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
            assert_eq!(
                value,
                Some(&Value::Union(0, Box::new(Value::Null))),
                "{name}"
            );
        }
    }
}
