//! Filters every HTTP feature shares: the handles handlers get, bodies as
//! JSON, the caller's token, its gateway and its address.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use warp::{Filter, Rejection};

use super::reply::{MAX_BODY_BYTES, too_large};
use crate::auth::{Auth, Principal};
use crate::commands::CommandBus;
use crate::protocol::ApiError;
use crate::reads::{ReadModels, require_device};
use crate::routing::Routing;
use crate::session::Sessions;

/// The client's address, put in each request's extensions by the accept loop.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub SocketAddr);

/// Everything the handlers use.
#[derive(Clone)]
pub struct Context {
    pub auth: Arc<Auth>,
    pub bus: Arc<CommandBus>,
    pub reads: ReadModels,
    pub routing: Routing,
    pub sessions: Sessions,
}

pub(crate) fn with<T: Clone + Send + Sync + 'static>(
    value: T,
) -> impl Filter<Extract = (T,), Error = Infallible> + Clone {
    warp::any().map(move || value.clone())
}

pub(crate) fn json_body<T: serde::de::DeserializeOwned + Send>()
-> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    // Read as JSON whatever the declared type: `curl -d` (the README's own
    // tour) declares a form. Only the content decides; a bad body is a
    // `bad_request` naming what is wrong.
    bounded_body().and_then(|body: bytes::Bytes| async move { parse_json(&body).map_err(warp::reject::custom) })
}

/// The most of a body over [`MAX_BODY_BYTES`] that is read (and dropped)
/// before the `too_large` answer, and for how long.
const DRAIN_BYTES: u64 = 4 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// A request body of at most [`MAX_BODY_BYTES`] (`Content-Length`
/// required). A longer one is refused `too_large`, but first read to its end
/// and dropped when it is at most [`DRAIN_BYTES`] and arrives within
/// [`DRAIN_TIME`]: a server that answers and closes while the client is
/// still writing resets the connection, and the client may never read the
/// answer. Longer still is refused at once.
pub(crate) fn bounded_body() -> impl Filter<Extract = (bytes::Bytes,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .and_then(|declared: Option<u64>, body| async move { read_bounded(declared, body).await })
}

async fn read_bounded<B: bytes::Buf>(
    declared: Option<u64>,
    body: impl futures::Stream<Item = Result<B, warp::Error>>,
) -> Result<bytes::Bytes, Rejection> {
    use bytes::BufMut;
    use futures::StreamExt;
    let declared = declared.ok_or_else(|| {
        warp::reject::custom(ApiError::new(
            warp::http::StatusCode::LENGTH_REQUIRED,
            "bad_request",
            "Content-Length required",
        ))
    })?;
    // The server's HTTP layer holds the body to its declared length.
    if declared > MAX_BODY_BYTES {
        if declared <= DRAIN_BYTES {
            let _ = tokio::time::timeout(DRAIN_TIME, body.for_each(|_| async {})).await;
        }
        return Err(warp::reject::custom(too_large()));
    }
    let mut body = std::pin::pin!(body);
    let mut kept = bytes::BytesMut::with_capacity(declared as usize);
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|error| {
            warp::reject::custom(ApiError::bad_request("bad_request", format!("cannot read the body: {error}")))
        })?;
        kept.put(&mut chunk);
    }
    Ok(kept.freeze())
}

/// A request body as JSON of the endpoint's shape.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_request("bad_request", format!("bad JSON body: {error}")))
}

/// Requires `Authorization: Bearer <access token>`.
pub fn bearer(auth: Arc<Auth>) -> impl Filter<Extract = (Principal,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization").and(with(auth)).and_then(
        |header: Option<String>, auth: Arc<Auth>| async move {
            let token = header
                .as_deref()
                .and_then(|value| value.strip_prefix("Bearer "))
                .ok_or_else(|| warp::reject::custom(ApiError::unauthorized("missing Authorization: Bearer <token>")))?;
            auth.verify_access(token).map_err(warp::reject::custom)
        },
    )
}

/// The request's path and query, to repeat it at another gateway.
pub fn path_and_query() -> impl Filter<Extract = (String,), Error = Infallible> + Clone {
    warp::path::full().and(warp::query::raw().or(warp::any().map(String::new)).unify()).map(
        |path: warp::path::FullPath, query: String| {
            if query.is_empty() { path.as_str().to_string() } else { format!("{}?{query}", path.as_str()) }
        },
    )
}

/// `bearer`, then a 307 to the owning gateway when this one does not
/// serve the caller, then the check that the device was not removed.
pub fn served(context: Context) -> impl Filter<Extract = (Principal,), Error = Rejection> + Clone {
    bearer(context.auth.clone()).and(path_and_query()).and(with(context)).and_then(
        |principal: Principal, path: String, context: Context| async move {
            context.routing.check(principal.user, &path).map_err(warp::reject::custom)?;
            require_device(&context.reads, principal).await.map_err(warp::reject::custom)?;
            Ok::<_, Rejection>(principal)
        },
    )
}

/// The client's IP address, when the accept loop recorded it.
pub fn client_ip() -> impl Filter<Extract = (Option<IpAddr>,), Error = Infallible> + Clone {
    warp::ext::optional::<ClientAddr>().map(|addr: Option<ClientAddr>| addr.map(|ClientAddr(addr)| addr.ip()))
}
