//! The media processor: reads `events.media` and makes the 150 px and
//! 400 px JPEG thumbnails of profile pictures and group icons (plain
//! images; message media may be end-to-end encrypted and is never opened).
//! Each gateway works the partitions it owns, from its committed position;
//! remaking a thumbnail writes the same bytes, so a replay is harmless.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use missive_core::media::{MediaUploaded, THUMBNAIL_SIZES, thumbnail_key};
use missive_infra::Log;
use missive_infra::objects::Objects;
use missive_processors::topics::EVENTS_MEDIA;
use missive_schemas::Codec;
use tokio_util::sync::CancellationToken;

use crate::worker::{self, StartAt, Tail};

/// Consumer group of the thumbnail maker.
pub const THUMBNAIL_GROUP: &str = "media-thumbnails";

/// Largest picture decoded: bounds memory against decompression bombs.
const MAX_PIXELS_SIDE: u32 = 12_000;
const MAX_DECODE_BYTES: u64 = 512 << 20;

pub async fn run(
    objects: Objects,
    log: Arc<dyn Log>,
    codec: Arc<Codec>,
    partitions: Vec<u32>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let tail = Tail { group: THUMBNAIL_GROUP, topic: EVENTS_MEDIA, partitions, start: StartAt::Beginning, batch: 64 };
    worker::run(log.as_ref(), &codec, &tail, &cancel, |uploaded: MediaUploaded| {
        let objects = objects.clone();
        async move {
            if uploaded.purpose.has_thumbnails() {
                make_retrying(&objects, &uploaded).await?;
            }
            Ok(())
        }
    })
    .await
}

/// Why a picture got no thumbnails.
enum Failure {
    /// Not a picture that decodes: skipped for good.
    Picture(image::ImageError),
    /// The store did not answer: try again.
    Storage(anyhow::Error),
}

/// Makes one picture's thumbnails, trying a failing store three times; if
/// it still fails, the worker stops before committing past this record and
/// is restarted from its committed position (a thumbnail is never skipped
/// for an outage).
async fn make_retrying(objects: &Objects, uploaded: &MediaUploaded) -> anyhow::Result<()> {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match make(objects, uploaded).await {
            Ok(()) => return Ok(()),
            Err(Failure::Picture(error)) => {
                tracing::warn!(media = %uploaded.media_id, %error, "not a picture that decodes; no thumbnails");
                return Ok(());
            }
            Err(Failure::Storage(error)) if attempt < 3 => {
                tracing::warn!(media = %uploaded.media_id, %error, attempt, "storage failed; making thumbnails again");
                tokio::time::sleep(Duration::from_millis(500) * attempt).await;
            }
            Err(Failure::Storage(error)) => return Err(error.context("thumbnails could not be stored")),
        }
    }
}

/// Makes and stores the thumbnails of one picture.
async fn make(objects: &Objects, uploaded: &MediaUploaded) -> Result<(), Failure> {
    let storage = |error: missive_infra::objects::ObjectsError| Failure::Storage(error.into());
    let Some(bytes) = objects.get(&uploaded.key).await.map_err(storage)? else {
        return Ok(()); // removed since: nothing to show
    };
    let thumbnails = tokio::task::spawn_blocking(move || render(&bytes))
        .await
        .map_err(|error| Failure::Storage(error.into()))?
        .map_err(Failure::Picture)?;
    for (size, jpeg) in thumbnails {
        objects.put(&thumbnail_key(&uploaded.key, size), jpeg.into()).await.map_err(storage)?;
    }
    Ok(())
}

/// JPEG thumbnails of an image (longest side 150 and 400 px, never enlarged).
pub fn render(bytes: &[u8]) -> Result<Vec<(u32, Vec<u8>)>, image::ImageError> {
    let mut reader = image::ImageReader::new(Cursor::new(bytes)).with_guessed_format()?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_PIXELS_SIDE);
    limits.max_image_height = Some(MAX_PIXELS_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let picture = reader.decode()?;
    THUMBNAIL_SIZES
        .iter()
        .map(|&size| {
            let scaled = if picture.width().max(picture.height()) > size {
                picture.thumbnail(size, size)
            } else {
                picture.clone()
            };
            let mut jpeg = Cursor::new(Vec::new());
            image::DynamicImage::ImageRgb8(scaled.to_rgb8()).write_to(&mut jpeg, image::ImageFormat::Jpeg)?;
            Ok((size, jpeg.into_inner()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnails_fit_their_size_keep_the_shape_and_never_enlarge() {
        let picture = image::RgbImage::from_fn(1200, 800, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
        let mut png = Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(picture).write_to(&mut png, image::ImageFormat::Png).expect("png");
        let thumbnails = render(png.get_ref()).expect("rendered");
        let sizes: Vec<(u32, (u32, u32))> = thumbnails
            .iter()
            .map(|(size, jpeg)| {
                let decoded = image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg).expect("jpeg");
                (*size, (decoded.width(), decoded.height()))
            })
            .collect();
        assert_eq!(sizes[0], (150, (150, 100)));
        assert!(sizes[1].0 == 400 && sizes[1].1.0 == 400 && (266..=267).contains(&sizes[1].1.1), "{sizes:?}");

        let small = image::RgbImage::from_pixel(64, 32, image::Rgb([1, 2, 3]));
        let mut png = Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(small).write_to(&mut png, image::ImageFormat::Png).expect("png");
        let kept: Vec<(u32, u32)> = render(png.get_ref())
            .expect("rendered")
            .iter()
            .map(|(_, jpeg)| image::load_from_memory(jpeg).map(|d| (d.width(), d.height())).expect("jpeg"))
            .collect();
        assert_eq!(kept, vec![(64, 32), (64, 32)]);
        assert!(render(b"not an image").is_err());
    }
}
