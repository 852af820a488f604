//! Conversations: the WebSocket commands that write to them (send, forward,
//! edit, delete, react) and the HTTP reads of them (the conversation list,
//! history, receipts).

mod history;
mod operations;
pub mod sealed;
mod shares;

pub use shares::start_share;

pub use history::routes;
pub use operations::*;
