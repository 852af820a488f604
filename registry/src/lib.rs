//! The schema registry: subjects, versions and ids stored in the compacted
//! `_schemas` topic in Confluent's own record format (key
//! `{"keytype":"SCHEMA","subject","version","magic":1}`, value
//! `{"subject","version","id","schema"}`; config records keyed
//! `{"keytype":"CONFIG","subject","magic":0}`), so every registry instance
//! folds the same topic to the same answer, and a Confluent registry could
//! read it too.
//!
//! Agreement without a leader: a registration is an append; every instance
//! folds `_schemas` in offset order and the *first* record to claim a
//! (subject, version) or an id wins. The writer reads back past its own
//! record and, if another instance got there first, tries again.
//!
//! `subjects` is what the registry knows, `service` the registry over a
//! log, `http` its Confluent REST API, `codecs` how processes get a codec
//! from it. Decoding needs none of this: `missive-schemas` is the contract.

mod codecs;
pub mod http;
mod service;
mod subjects;

pub use codecs::{codec_from_log, register_all, register_remote};
pub use service::Registry;
pub use subjects::*;

#[cfg(test)]
mod tests;
