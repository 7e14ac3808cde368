//! The HTTP side: the public listener with its connection bounds ([`listener`]), the byte budget
//! request bodies and records draw from ([`budget`]), the client address as logged and capped
//! ([`client`]), the one webhook handler for every provider ([`webhook`]) and the admin endpoints
//! ([`admin`]).

pub mod admin;
pub mod budget;
pub mod client;
pub mod listener;
pub mod webhook;

pub use admin::{AdminState, admin_router};
pub use webhook::{WebhookState, webhook_router};
