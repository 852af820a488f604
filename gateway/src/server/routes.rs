//! Every route the gateway serves: the WebSocket upgrade, health and
//! metrics, and the routes each feature exposes, with one rejection
//! handler that gives every error the JSON shape.

use prometheus::{Encoder, Registry, TextEncoder};
use warp::filters::BoxedFilter;
use warp::{Filter, Reply};

use crate::media::Media;
use crate::rest::{Context, handle_rejection, path_and_query};
use crate::session::{self, SessionDeps};
use crate::{account, groups, keys, media, messaging, protocol};

/// A set of routes answering every request.
pub(super) type Service = BoxedFilter<(warp::reply::Response,)>;

/// The public listener's routes; `/metrics` among them unless it has a listener of its own.
pub(super) fn public(
    context: Context,
    session: SessionDeps,
    media: Media,
    metrics: Option<Registry>,
    web_dir: Option<std::path::PathBuf>,
) -> Service {
    let mut routes = vec![websocket(context.clone(), session), health()];
    routes.extend(metrics.map(metrics_route));
    routes.extend(media::routes(context.clone(), media.clone()));
    routes.extend(account::routes(context.clone(), media.clone()));
    routes.extend(messaging::routes(context.clone()));
    routes.extend(keys::routes(context.clone()));
    routes.extend(groups::routes(context, media));
    routes.push(super::web::routes(web_dir));
    let routes = routes.into_iter().reduce(|routes, route| routes.or(route).unify().boxed()).expect("routes");
    let routes = super::web::readable_redirects(routes.recover(handle_rejection).unify().boxed());
    routes.with(super::web::cors()).with(warp::trace::request()).map(Reply::into_response).boxed()
}

/// `/metrics` alone, for `--metrics-listen`.
pub(super) fn metrics_only(registry: Registry) -> Service {
    metrics_route(registry).recover(handle_rejection).unify().boxed()
}

fn health() -> Service {
    warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::json(&serde_json::json!({"status": "ok"})).into_response())
        .boxed()
}

fn metrics_route(registry: Registry) -> Service {
    warp::path!("metrics")
        .and(warp::get())
        .map(move || {
            let mut buffer = Vec::new();
            let _ = TextEncoder::new().encode(&registry.gather(), &mut buffer);
            warp::http::Response::builder()
                .header("content-type", "text/plain; version=0.0.4")
                .body(buffer.into())
                .unwrap_or_default()
        })
        .boxed()
}

/// `/v1/ws`. The upgrade is done here rather than with warp's `ws()`
/// filter so the WebSocket buffers can be sized (see
/// `session::websocket_config`).
fn websocket(context: Context, deps: SessionDeps) -> Service {
    warp::path!("v1" / "ws")
        .and(warp::get())
        .and(warp::header::exact_ignore_case("upgrade", "websocket"))
        .and(warp::header::<String>("sec-websocket-key"))
        .and(warp::ext::optional::<hyper::upgrade::OnUpgrade>())
        .and(path_and_query())
        .map(move |key: String, on_upgrade: Option<hyper::upgrade::OnUpgrade>, path: String| {
            // A client that names itself in the URL (`?access_token=`) is
            // redirected to its gateway before the upgrade.
            if let Some(principal) = access_token_in(&path).and_then(|token| context.auth.verify_access(&token).ok())
                && let Err(redirect) = context.routing.check(principal.user, &path)
            {
                return redirect.into_response();
            }
            let Some(on_upgrade) = on_upgrade else {
                return protocol::ApiError::bad_request("bad_request", "this connection cannot be upgraded")
                    .into_response();
            };
            tokio::spawn(session::accept(on_upgrade, deps.clone()));
            let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
            warp::http::Response::builder()
                .status(warp::http::StatusCode::SWITCHING_PROTOCOLS)
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-accept", accept)
                .body(warp::hyper::body::Bytes::new().into())
                .unwrap_or_default()
        })
        .boxed()
}

/// The `access_token` query parameter of a request path, if any.
fn access_token_in(path_and_query: &str) -> Option<String> {
    let (_, query) = path_and_query.split_once('?')?;
    query.split('&').find_map(|pair| pair.strip_prefix("access_token=")).map(str::to_string)
}
