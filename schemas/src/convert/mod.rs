//! Domain <-> wire conversions: one `From`/`TryFrom` pair per record type
//! (and `WireValue` from each domain command, event and delivery). Ids are
//! the domain's newtypes on both sides; `wire::ids` carries them as Avro
//! longs and refuses a negative one when decoding.
//!
//! `common` holds what every conversion shares; the others go by subject.

mod common;
mod conversation;
mod delivery;
mod groups;
mod keys;
mod users;

pub use common::ConvertError;
pub use delivery::{deliveries_from_wire, message_fanout_to_wire};
