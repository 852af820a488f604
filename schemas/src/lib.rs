//! Missive's records on the wire: the Avro schemas in `schemas/avro/` (one
//! record per command or event type, named by Confluent subject), the wire
//! structs that mirror them, conversions to and from domain types, the
//! Confluent wire-format codec. The contract between processes: no I/O
//! here (the schema registry service is `missive-registry`).

pub mod codec;
pub mod convert;
pub mod outcome;
pub mod wire;

pub use codec::{Codec, CodecError};
pub use outcome::Outcome;
pub use wire::{RecordType, WireRecord, WireValue};
