//! The account over HTTP: registration and devices, profile and privacy,
//! blocks and the PIN, contacts. Every change is a user command on the log;
//! a call answers once this gateway's directory shows the change.

mod contacts;
mod devices;
mod profile;
mod security;
mod state;

use warp::filters::BoxedFilter;

use crate::media::Media;
use crate::rest::Context;

/// The account's HTTP routes.
pub fn routes(context: Context, media: Media) -> Vec<BoxedFilter<(warp::reply::Response,)>> {
    let mut routes = devices::routes(context.clone());
    routes.extend(profile::routes(context.clone(), media));
    routes.extend(security::routes(context.clone()));
    routes.extend(contacts::routes(context));
    routes
}

/// Parses `bytes` as each request body of this feature (the `http_body` fuzz target).
#[cfg(fuzzing)]
pub(crate) fn fuzz_bodies(bytes: &[u8]) {
    contacts::fuzz_bodies(bytes);
    devices::fuzz_bodies(bytes);
    profile::fuzz_bodies(bytes);
    security::fuzz_bodies(bytes);
}
