//! hookbridge: verified webhooks into Kafka as Avro, answered only once the broker has them.
//!
//! One generic request path and one folder per sender. Dependencies point down: the handler
//! ([`routes`]) and start-up ([`startup`]) use the [`providers`]; the providers use the generic
//! parts below them; nothing outside [`providers`] names a vendor.
//!
//! - [`providers`]: the provider seam and its registry; one folder per provider (verify, parse,
//!   route, schema, encode).
//! - [`config`]: the TOML file layered under `HOOKBRIDGE_*` variables, checked at start-up with
//!   every problem reported at once, in typed sections; secrets held in redacting types.
//! - [`verify`]: HMAC-SHA256 over the raw bytes as they arrive; the only place a
//!   [`verify::VerifiedWebhook`] is made.
//! - [`topic`]: topic names and routing overrides.
//! - [`avro`]: Avro binary primitives and the Confluent framing.
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
pub mod providers;
pub mod registry;
pub mod routes;
pub mod startup;
pub mod telemetry;
pub mod topic;
pub mod verify;
