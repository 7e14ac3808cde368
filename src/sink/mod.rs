//! Where records go: the Kafka producer, topic administration and broker health ([`kafka`]),
//! librdkafka's statistics as metrics ([`stats`]), the Confluent-compatible schema registry
//! client ([`registry`]), and Avro binary encoding with the Confluent framing ([`avro`]). Knows
//! no provider.

pub mod avro;
pub mod kafka;
pub mod registry;
pub mod stats;
