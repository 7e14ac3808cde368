//! The public edge: the listener with its connection bounds ([`listener`]), the byte budget
//! request bodies and records draw from ([`budget`]), and the client address as logged and
//! capped ([`client`]).

pub mod budget;
pub mod client;
pub mod listener;
