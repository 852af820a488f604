//! Missive's pure core: identifiers, commands, events and the deciders that
//! turn a command plus state into events. Nothing in this crate touches a
//! clock, a random source, a socket or a disk; the processor runtime feeds it
//! state and record timestamps and persists what it returns. Most of the
//! project's unit and property tests live here and in `missive-projections`.

pub mod conversation;
pub mod delivery;
pub mod groups;
pub mod ids;
pub mod keys;
pub mod media;
pub mod notifications;
pub mod operations;
pub mod presence;
pub mod users;

pub use ids::{ConvSeq, ConversationId, DeviceId, Epoch, FeedSeq, MessageId, Millis, UserId};
