//! A WebSocket session: hello/welcome, feed push with resume, and the
//! client's sends, acks and reads.
//!
//! One task per connection drives everything with `select!`: frames from
//! the client, feed wake-ups from the inbox, finished sends, and a timer for
//! idle detection. Sends are pipelined (up to `MAX_IN_FLIGHT` per
//! connection; beyond that the session stops reading until some finish).
//! A client that does not take its frames within `SEND_TIMEOUT` is
//! disconnected rather than allowed to grow server memory.
//!
//! `registry` tracks who is connected here (presence and device removal
//! reach sessions through it); `live` routes ephemeral signals (typing,
//! presence) to them.

mod connection;
mod frames;
pub mod limits;
pub mod live;
pub mod registry;
pub mod room;
mod room_size;
mod run;
mod serve;

pub use connection::SEND_TIMEOUT;
pub use connection::{SessionDeps, WebSocket};
pub use limits::FrameLimits;
pub use live::{TYPING_TTL_MS, run as run_live_router, start_positions as live_start_positions};
pub use registry::{MAX_WATCHED, Sessions};
pub use room::Place;
pub use run::{HELLO_TIMEOUT, IDLE_TIMEOUT, accept, run, websocket_config};
pub use serve::MAX_IN_FLIGHT;
