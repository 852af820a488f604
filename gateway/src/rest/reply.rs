//! HTTP answers: JSON bodies, and every error (a handler's or warp's
//! rejection) as `{"error":{"code","message"}}`.

use std::convert::Infallible;

use serde_json::Value;
use warp::http::StatusCode;
use warp::{Rejection, Reply};

use crate::protocol::ApiError;

/// Largest HTTP request body accepted.
pub const MAX_BODY_BYTES: u64 = 256 * 1024;

pub fn reply_json(status: StatusCode, body: serde_json::Value) -> warp::reply::Response {
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

pub(crate) fn respond(result: Result<warp::reply::Response, ApiError>) -> Result<warp::reply::Response, Infallible> {
    Ok(result.unwrap_or_else(|error| error.into_response()))
}

pub(crate) fn parse_id<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, ApiError> {
    text.parse().map_err(|_| ApiError::bad_request("bad_request", format!("{what} must be a decimal id string")))
}

pub(crate) fn ok(body: Value) -> Result<warp::reply::Response, ApiError> {
    Ok(reply_json(StatusCode::OK, body))
}

/// A request body over [`MAX_BODY_BYTES`].
pub fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
    )
}

/// Turns every rejection into the JSON error shape.
pub async fn handle_rejection(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
    let error = if let Some(error) = rejection.find::<ApiError>() {
        error.clone()
    } else if rejection.is_not_found() {
        ApiError::not_found("not_found", "no such endpoint")
    } else if let Some(error) = rejection.find::<warp::filters::body::BodyDeserializeError>() {
        ApiError::bad_request("bad_request", format!("bad JSON body: {error}"))
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        too_large()
    } else if rejection.find::<warp::reject::UnsupportedMediaType>().is_some() {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send JSON with Content-Type: application/json",
        )
    } else if rejection.find::<warp::reject::InvalidQuery>().is_some() {
        ApiError::bad_request("bad_request", "invalid query string")
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        ApiError::new(StatusCode::LENGTH_REQUIRED, "bad_request", "Content-Length required")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        // Last: a request every route refused holds each route's reason,
        // and another path's method is the least specific of them.
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this path")
    } else {
        ApiError::bad_request("bad_request", format!("{rejection:?}"))
    };
    Ok(error.into_response())
}
