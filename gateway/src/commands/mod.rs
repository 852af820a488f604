//! The command bus: client intents become commands on the log, and the
//! deciders' outcomes come back on the `replies` topic to the gateway that
//! asked (matched by request id).

mod bus;
mod outcomes;
mod replies;
mod snowflake;

pub use bus::*;
pub use outcomes::{Subject, carried_out, refusal};
pub use replies::{PendingReply, ROOM, ReplyRouter};
pub use snowflake::Snowflakes;
