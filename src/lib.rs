//! hookbridge: verified chat-platform webhooks into Kafka as Avro, answered only once the broker
//! has them.
//!
//! Modules, each owning one concern:
//! - [`config`]: the TOML file layered under `HOOKBRIDGE_*` variables, validated at start-up with
//!   every problem reported at once; secrets held in redacting types.
//! - [`verify`]: HMAC-SHA256 over the raw body; the only place a [`verify::VerifiedWebhook`] is made.
//! - [`sendbird`]: the lenient typed view of a payload, categories, families, topics and keys.
//! - [`avro`]: the event schema (embedded from `schemas/`), Avro encoding and Confluent framing.
//! - [`registry`]: the Confluent-compatible schema registry client (start-up and `schemas check`).
//! - [`kafka`]: the idempotent producer, the [`kafka::Publisher`] seam, topic creation, broker health.
//! - [`http`]: the public listener (header and idle timeouts, connection cap), the byte budget
//!   bodies and records draw from, and the client address.
//! - [`json`]: lenient, bounded JSON reading for typed views (no whole tree, no depth limit).
//! - [`routes`]: the webhook handler and the admin endpoints (`/livez`, `/readyz`, `/metrics`).
//! - [`startup`]: builds the application from a config and bound listeners; runs until shutdown.
//! - [`telemetry`]: logging and the Prometheus recorder.
//! - [`error`]: the API error type and its stable HTTP mapping.

pub mod avro;
pub mod config;
pub mod error;
pub mod http;
pub mod json;
pub mod kafka;
pub mod registry;
pub mod routes;
pub mod sendbird;
pub mod startup;
pub mod telemetry;
pub mod verify;
