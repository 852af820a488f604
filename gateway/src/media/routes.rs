//! The media endpoints (`/v1/media/...`).

use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::{Filter, Reply};

use super::downloads::DownloadQuery;
use super::store::*;
use super::uploads::UploadBody;
use crate::auth::Principal;
use crate::protocol::ApiError;
use crate::reads::{Projection, ReadModels};
use crate::rest::{Context, json_body, ok, respond, served, with};

/// The media routes.
pub fn routes(context: Context, media: Media) -> Vec<BoxedFilter<(warp::reply::Response,)>> {
    let reads = context.reads.clone();
    let served = served(context);
    let largest = [media.limits.image, media.limits.video, media.limits.voice, media.limits.document]
        .into_iter()
        .max()
        .unwrap_or(0);
    let media = move || with(media.clone());
    let start = warp::path!("v1" / "media" / "uploads")
        .and(warp::post())
        .and(served.clone())
        .and(json_body())
        .and(media())
        .and_then(|principal: Principal, body: UploadBody, media: Media| async move {
            respond(async { ok(media.start(principal, body).await?) }.await)
        })
        .boxed();
    let receive = warp::path!("v1" / "media" / "blobs" / String / "put")
        .and(warp::put())
        .and(warp::query::<Signed>())
        .and(warp::header::optional::<u64>("content-length"))
        .and(media())
        .and_then(|media_id: String, signed: Signed, length: Option<u64>, media: Media| async move {
            // Refused requests are answered before their body is read.
            let upload = media
                .admit(&media_id, &signed, length)
                .await
                .map_err(|error| warp::reject::custom(error.before_body()))?;
            Ok::<_, warp::Rejection>((media_id, upload, media))
        })
        .untuple_one()
        .and(warp::body::content_length_limit(largest))
        .and(warp::body::stream())
        .and_then(|media_id: String, upload: Upload, media: Media, body| async move {
            let body = Box::pin(body);
            respond(async { ok(media.receive(&media_id, upload, body).await?) }.await)
        })
        .boxed();
    let complete = warp::path!("v1" / "media" / "uploads" / String / "complete")
        .and(warp::post())
        .and(served.clone())
        .and(media())
        .and_then(|media_id: String, principal: Principal, media: Media| async move {
            respond(async { ok(media.complete(principal, &media_id).await?) }.await)
        })
        .boxed();
    let download = warp::path!("v1" / "media" / String)
        .and(warp::get())
        .and(warp::query::<DownloadQuery>())
        .and(served)
        .and(media())
        .and(with(reads))
        .and_then(
            |media_id: String, query: DownloadQuery, principal: Principal, media: Media, reads: ReadModels| async move {
                respond(
                    async {
                        let url = match media.download(principal, &media_id, query.size).await {
                            // The message that carries it may be in the log but
                            // not yet folded here (another gateway took it): a
                            // miss is final only behind a read barrier.
                            Err(error) if error.code == "not_found" => {
                                reads.barrier_all(Projection::History).await?;
                                media.download(principal, &media_id, query.size).await?
                            }
                            found => found?,
                        };
                        let mut response = warp::reply::with_status(warp::reply(), StatusCode::FOUND).into_response();
                        let location = warp::http::HeaderValue::from_str(&url)
                            .map_err(|error| ApiError::internal(error.to_string()))?;
                        response.headers_mut().insert(warp::http::header::LOCATION, location);
                        Ok(response)
                    }
                    .await,
                )
            },
        )
        .boxed();
    let fetch = warp::path!("v1" / "media" / "blobs" / String / String)
        .and(warp::get())
        .and(warp::query::<Signed>())
        .and(media())
        .and_then(|media_id: String, operation: String, signed: Signed, media: Media| async move {
            respond(media.serve(&media_id, &operation, signed).await)
        })
        .boxed();
    vec![start, receive, complete, download, fetch]
}
