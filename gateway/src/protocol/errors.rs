//! Client-facing errors: a stable snake_case code, a human message and an
//! HTTP status. The same codes appear in WebSocket `error` frames.

use warp::http::StatusCode;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Where to repeat the request (a `307` to the gateway owning the user).
    pub location: Option<String>,
    /// Seconds until a rate-limited call may be tried again (`429`).
    pub retry_after: Option<u64>,
    /// Answered before the request body was read: the connection is closed after it.
    pub body_unread: bool,
    /// Further fields of the error object (`device_mismatch`: `missing`, `stale`).
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            location: None,
            retry_after: None,
            body_unread: false,
            details: None,
        }
    }
    /// `429 Too Many Requests` with the seconds to wait.
    pub fn rate_limited(what: &str, retry_after: u64) -> ApiError {
        let retry_after = retry_after.max(1);
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many {what}; retry in {retry_after} s"),
            )
        }
    }
    /// `307 Temporary Redirect`: another gateway serves this user.
    pub fn redirect(location: String) -> ApiError {
        ApiError {
            status: StatusCode::TEMPORARY_REDIRECT,
            code: "wrong_gateway",
            message: format!("this user is served by another gateway: {location}"),
            location: Some(location),
            retry_after: None,
            body_unread: true,
            details: None,
        }
    }
    /// Marks an answer given before the request body was read.
    pub fn before_body(self) -> ApiError {
        ApiError { body_unread: true, ..self }
    }
    /// `400 bad_frame`: a frame or field of the wrong shape.
    pub fn bad_frame(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_frame", message)
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn body(&self) -> serde_json::Value {
        let mut body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        if let Some(location) = &self.location {
            body["error"]["location"] = serde_json::json!(location);
        }
        if let Some(retry_after) = self.retry_after {
            body["error"]["retry_after"] = serde_json::json!(retry_after);
        }
        for (field, value) in self.details.iter().flatten() {
            body["error"][field] = value.clone();
        }
        body
    }
}

impl warp::reject::Reject for ApiError {}

impl warp::Reply for ApiError {
    fn into_response(self) -> warp::reply::Response {
        let mut response = warp::reply::with_status(warp::reply::json(&self.body()), self.status).into_response();
        if let Some(location) = self.location.as_deref().and_then(|location| location.parse().ok()) {
            response.headers_mut().insert(warp::http::header::LOCATION, location);
        }
        if let Some(retry_after) = self.retry_after {
            response.headers_mut().insert(warp::http::header::RETRY_AFTER, retry_after.into());
        }
        // These are answered before the request body is read; the rest of a
        // large body would still be in the socket, so the connection cannot
        // carry another request. Say so, or a client reusing it fails.
        if self.body_unread || matches!(self.status.as_u16(), 401 | 413) {
            response
                .headers_mut()
                .insert(warp::http::header::CONNECTION, warp::http::HeaderValue::from_static("close"));
        }
        response
    }
}

impl ApiError {
    /// The same error under another stable code.
    pub fn with_code(mut self, code: &'static str) -> ApiError {
        self.code = code;
        self
    }
}

/// An error as a WebSocket `error` frame, echoing the request's `req`.
pub fn send_error(req: Option<&str>, error: &ApiError) -> serde_json::Value {
    let mut frame = super::frames::error_frame(req, error.code, &error.message);
    if let Some(seconds) = error.retry_after {
        frame["retry_after"] = serde_json::json!(seconds);
    }
    for (field, value) in error.details.iter().flatten() {
        frame[field] = value.clone();
    }
    frame
}
