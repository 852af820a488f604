//! The JSON client protocol (see docs/PROTOCOL.md): the frames a client
//! sends, the JSON the server sends, and the errors both carry (a stable
//! code, a message, an HTTP status).

mod errors;
mod frames;
mod views;

pub use errors::{ApiError, send_error};
pub use frames::*;
pub use views::*;

#[cfg(test)]
mod tests;
