//! HTTP routes: the webhook listener ([`webhook`]) and the admin listener ([`admin`]).

pub mod admin;
pub mod webhook;

pub use admin::{AdminState, admin_router};
pub use webhook::{WebhookState, webhook_router};
