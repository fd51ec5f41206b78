//! Bandwidth estimation and allocation, sans-IO, with no knowledge of the
//! Router: what a subscriber can receive ([`send_side`], Google Congestion
//! Control), transport-wide feedback in both directions ([`twcc_receiver`]
//! for publishers, [`twcc_sender`] for subscribers, draft-holmer-rmcat-
//! transport-wide-cc-extensions-01), probe clusters ([`probe`]), and which
//! simulcast layer each consumer gets from its share ([`allocator`]).

pub mod allocator;
pub mod delay_based;
pub mod loss_ceiling;
pub mod probe;
pub mod send_side;
pub mod twcc_receiver;
pub mod twcc_sender;

pub use send_side::*;
