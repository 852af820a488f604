//! Domain <-> wire conversions. Domain ids are unsigned and below 2^63; on
//! the wire they are Avro longs. A negative id on the wire is refused.
//!
//! `common` holds what every conversion shares; the others go by subject.

mod common;
mod conversation;
mod delivery;
mod groups;
mod users;

pub use common::ConvertError;
pub use conversation::*;
pub use delivery::*;
pub use groups::*;
pub use users::*;
