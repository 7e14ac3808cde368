//! Integration suite against a real Kafka broker and a real schema registry. See `support.rs`
//! for where those come from; nothing here is mocked.

mod catalogue;
mod config_check;
mod delivery;
mod edge;
mod inprocess;
mod metrics;
mod notify;
mod outage;
mod registry_tls;
mod rejection;
mod sendbird_settings;
mod shutdown;
mod standard;
mod stream;
mod support;
mod topics;
mod trace_context;
