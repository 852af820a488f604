//! The web client: `GET /` and its assets from a directory built by
//! `infra/scripts/build-web.sh` (Vite output, `web/dist` by default), with
//! CORS so a page loaded from one gateway can call the gateway that serves
//! its user (Kafka mode), and redirects a browser can read.
//!
//! Browsers drop the `Authorization` header when they follow a redirect to
//! another origin, and a WebSocket never follows one, so a client that
//! sends `Missive-Redirect: manual` gets `421 Misdirected Request` (same
//! body and `Location`) instead of `307` and repeats the call itself.

use std::path::{Path, PathBuf};

use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode, header};
use warp::{Filter, Reply};

use crate::protocol::ApiError;

/// Routes that answer with a response (as `routes::Service`).
type Service = BoxedFilter<(warp::reply::Response,)>;

/// Content-Security-Policy of the client's pages: its own scripts (and
/// WebAssembly, for Olm), media as blobs, calls to any gateway.
const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; \
img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self' http: https: ws: wss:; \
object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// `GET /` (the app) and `GET /<asset>` from `dir`. Without a built client
/// `/` says how to build one.
pub(super) fn routes(dir: Option<PathBuf>) -> Service {
    let Some(dir) = dir.filter(|dir| dir.join("index.html").is_file()) else {
        return warp::path::end()
            .and(warp::get())
            .map(|| {
                ApiError::not_found(
                    "web_client_missing",
                    "the web client is not built: run infra/scripts/build-web.sh (run.sh does), or start with --web-dir",
                )
                .into_response()
            })
            .boxed();
    };
    let index = warp::path::end().and(warp::get()).and(warp::fs::file(dir.join("index.html")));
    let assets = warp::get().and(warp::fs::dir(dir.clone()));
    index
        .or(assets)
        .unify()
        .map(|file: warp::fs::File| {
            let immutable = file.path().components().any(|part| part.as_os_str() == "assets");
            let mut response = file.into_response();
            let headers = response.headers_mut();
            let cache = if immutable { "public, max-age=31536000, immutable" } else { "no-cache" };
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
            headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
            headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
            headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            response
        })
        .boxed()
}

/// Where the built client is: `--web-dir`, else `web/dist` under the
/// working directory or beside the binary (`<exe dir>/web`).
pub fn locate(configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(dir) = configured {
        return Some(dir.to_path_buf());
    }
    let beside_binary = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|dir| dir.join("web")));
    [Some(PathBuf::from("web/dist")), beside_binary].into_iter().flatten().find(|dir| dir.join("index.html").is_file())
}

/// CORS for every route: bearer tokens, no cookies, so any origin may call.
pub(super) fn cors() -> warp::cors::Builder {
    warp::cors()
        .allow_any_origin()
        .allow_methods(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
        .allow_headers(["authorization", "content-type", "missive-redirect"])
        .expose_headers(["location", "retry-after"])
        .max_age(600)
}

/// `307` becomes `421` for a client that asked with `Missive-Redirect: manual`.
pub(super) fn readable_redirects(routes: Service) -> Service {
    warp::header::optional::<String>("missive-redirect")
        .and(routes)
        .map(|mode: Option<String>, mut response: warp::reply::Response| {
            if mode.as_deref() == Some("manual") && response.status() == StatusCode::TEMPORARY_REDIRECT {
                *response.status_mut() = StatusCode::MISDIRECTED_REQUEST;
            }
            response
        })
        .boxed()
}
