//! Media uploads and downloads. A client asks for an upload slot
//! (`POST /v1/media/uploads`: kind, type, size and hash checked against
//! the limits and its daily quota), PUTs the bytes to the URL it gets —
//! presigned S3, or this gateway's own HMAC-signed URL for the local store —
//! then completes it (`POST /v1/media/uploads/{id}/complete`: the stored
//! object's size and SHA-256 must be the declared ones). Keys are made here
//! (`media/{user}/{yyyy-mm}/{uuid}`); nothing a client sends becomes a path.
//!
//! Upload slots are the owner's gateway's local state (like OTP
//! challenges): every media request of a user is served by that user's
//! gateway. `thumbnails` is the media processor; `sweeper` removes what
//! retention allows.

mod downloads;
mod routes;
mod store;
mod sweeper;
pub mod thumbnails;
mod uploads;

pub use routes::routes;
pub use store::{MAX_URL_TTL, Media, MediaSettings, OPEN_UPLOADS_PER_USER, UPLOAD_BODY_IDLE};
pub use sweeper::{Swept, run_sweeper};

/// Parses `bytes` as each request body of this feature (the `http_body` fuzz target).
#[cfg(fuzzing)]
pub(crate) fn fuzz_bodies(bytes: &[u8]) {
    uploads::fuzz_bodies(bytes);
}
