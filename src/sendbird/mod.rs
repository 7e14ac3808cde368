//! Sendbird: the lenient typed view of a payload ([`event`]) and how categories map to
//! families, topics and keys ([`routing`]).

pub mod event;
pub mod routing;

pub use event::{Channel, Member, Message, PoisonReason, SendbirdEvent, User};
pub use routing::{CategoryPattern, Family, Route, Router, TopicName};
