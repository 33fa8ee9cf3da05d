//! Media files of catalog items in an object store: the local disk by default, any
//! S3-compatible store through `object_store` when several instances share the catalog.
//! Uploads are recognised by their bytes, never by a name or a declared type, checked
//! against a size limit, and images are decoded (which proves them well-formed) and get
//! a thumbnail.

use std::io::Cursor;
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;

use crate::{AppError, AppResult};

/// Longest side of a thumbnail, in pixels.
pub const THUMB_SIDE: u32 = 320;
/// Largest image accepted, per side.
const MAX_IMAGE_SIDE: u32 = 12_000;

/// What an upload turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sniffed {
    pub kind: &'static str,
    pub content_type: &'static str,
    pub ext: &'static str,
}

/// Recognises the file types the catalog accepts from their first bytes.
pub fn sniff(b: &[u8]) -> Option<Sniffed> {
    let s = |kind, content_type, ext| {
        Some(Sniffed {
            kind,
            content_type,
            ext,
        })
    };
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        return s("image", "image/png", "png");
    }
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return s("image", "image/jpeg", "jpg");
    }
    if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        return s("image", "image/gif", "gif");
    }
    if b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        return s("image", "image/webp", "webp");
    }
    if b.len() >= 12 && &b[4..8] == b"ftyp" {
        return s("video", "video/mp4", "mp4");
    }
    if b.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        return s("video", "video/webm", "webm");
    }
    None
}

/// A checked upload, ready to store.
#[derive(Debug)]
pub struct Prepared {
    pub sniffed: Sniffed,
    pub bytes: Vec<u8>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// A JPEG thumbnail, for images.
    pub thumbnail: Option<Vec<u8>>,
}

/// Checks an upload: size, type from its bytes, and for images a full decode and a
/// thumbnail. CPU-bound: call it off the async runtime.
pub fn prepare(bytes: Vec<u8>, max_bytes: usize) -> AppResult<Prepared> {
    if bytes.len() > max_bytes {
        return Err(AppError::bad(
            "media_too_large",
            format!("media files may have at most {max_bytes} bytes"),
        ));
    }
    if bytes.is_empty() {
        return Err(AppError::bad("invalid_media", "the upload is empty"));
    }
    let sniffed = sniff(&bytes).ok_or_else(|| {
        AppError::bad(
            "unsupported_media_type",
            "accepted media: PNG, JPEG, GIF, WebP images and MP4, WebM videos",
        )
    })?;
    if sniffed.kind == "video" {
        return Ok(Prepared {
            sniffed,
            bytes,
            width: None,
            height: None,
            thumbnail: None,
        });
    }
    let mut reader = image::ImageReader::new(Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|_| AppError::bad("invalid_media", "the image cannot be read"))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(256 * 1024 * 1024);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| AppError::bad("invalid_media", format!("the image cannot be decoded: {e}")))?;
    let thumb = img.thumbnail(THUMB_SIDE, THUMB_SIDE).to_rgb8();
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
        .encode_image(&thumb)
        .map_err(|e| AppError::Internal(format!("thumbnail encoding: {e}")))?;
    Ok(Prepared {
        sniffed,
        width: Some(img.width()),
        height: Some(img.height()),
        bytes,
        thumbnail: Some(out),
    })
}

/// Where media bytes live.
#[derive(Clone)]
pub struct MediaStore {
    store: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for MediaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MediaStore({})", self.store)
    }
}

fn storage_error(e: object_store::Error) -> AppError {
    match e {
        object_store::Error::NotFound { .. } => AppError::NotFound,
        other => AppError::Internal(format!("media storage: {other}")),
    }
}

fn object_path(key: &str) -> AppResult<ObjectPath> {
    ObjectPath::parse(key).map_err(|e| AppError::Internal(format!("media key: {e}")))
}

impl MediaStore {
    /// Files under `dir` (created, owner-only).
    pub fn local(dir: &std::path::Path) -> anyhow::Result<MediaStore> {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(dir)
            .map_err(|e| anyhow::anyhow!("cannot create media directory {}: {e}", dir.display()))?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| anyhow::anyhow!("media directory {}: {e}", dir.display()))?;
        Ok(MediaStore {
            store: Arc::new(fs),
        })
    }

    /// Any object store (S3-compatible, in memory for tests).
    pub fn new(store: Arc<dyn ObjectStore>) -> MediaStore {
        MediaStore { store }
    }

    /// An object store named by URL: `s3://BUCKET[/PREFIX]` (S3 or any S3-compatible
    /// service; credentials, region and endpoint from the usual `AWS_*` variables, e.g.
    /// `AWS_ENDPOINT` and `AWS_ALLOW_HTTP=true` for MinIO) or `memory://` (tests).
    /// Several instances that share a catalog must share the media store too.
    pub fn from_url(url: &str) -> anyhow::Result<MediaStore> {
        if url == "memory://" {
            return Ok(MediaStore::new(Arc::new(
                object_store::memory::InMemory::new(),
            )));
        }
        let Some(rest) = url.strip_prefix("s3://") else {
            anyhow::bail!(
                "catalog.media_url must start with s3:// (or be memory://); for a local \
                 directory use catalog.media_dir"
            );
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            anyhow::bail!("catalog.media_url names no bucket: use s3://BUCKET[/PREFIX]");
        }
        let s3 = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| anyhow::anyhow!("catalog.media_url {url}: {e}"))?;
        let prefix = prefix.trim_matches('/');
        Ok(if prefix.is_empty() {
            MediaStore::new(Arc::new(s3))
        } else {
            MediaStore::new(Arc::new(object_store::prefix::PrefixStore::new(s3, prefix)))
        })
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> AppResult<()> {
        self.store
            .put(&object_path(key)?, bytes.into())
            .await
            .map_err(storage_error)?;
        Ok(())
    }

    pub async fn get(&self, key: &str) -> AppResult<Vec<u8>> {
        let r = self
            .store
            .get(&object_path(key)?)
            .await
            .map_err(storage_error)?;
        Ok(r.bytes().await.map_err(storage_error)?.to_vec())
    }

    /// Bytes `range` of an object.
    pub async fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> AppResult<Vec<u8>> {
        Ok(self
            .store
            .get_range(&object_path(key)?, range)
            .await
            .map_err(storage_error)?
            .to_vec())
    }

    /// Removes an object; a missing one is not an error.
    pub async fn delete(&self, key: &str) -> AppResult<()> {
        match self.store.delete(&object_path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(storage_error(e)),
        }
    }

    /// Whether an object exists.
    pub async fn exists(&self, key: &str) -> AppResult<bool> {
        match self.store.head(&object_path(key)?).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(storage_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_urls_name_an_s3_bucket_or_memory_and_nothing_else() {
        assert!(MediaStore::from_url("memory://").is_ok());
        let s3 = MediaStore::from_url("s3://custos-media").unwrap();
        assert!(format!("{s3:?}").contains("custos-media"), "{s3:?}");
        let prefixed = MediaStore::from_url("s3://custos-media/items/").unwrap();
        assert!(format!("{prefixed:?}").contains("items"), "{prefixed:?}");
        for bad in ["s3://", "/var/media", "gs://bucket", "file:///tmp/x"] {
            assert!(MediaStore::from_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn uploads_are_recognised_by_their_bytes() {
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1a\nrest").map(|s| s.content_type),
            Some("image/png")
        );
        assert_eq!(
            sniff(b"\0\0\0\x20ftypisom\0\0").map(|s| s.kind),
            Some("video")
        );
        assert_eq!(
            sniff(&[0x1A, 0x45, 0xDF, 0xA3, 1]).map(|s| s.ext),
            Some("webm")
        );
        assert_eq!(sniff(b"<html>not an image</html>"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn a_truncated_image_is_refused_and_a_real_one_gets_a_thumbnail() {
        let img = image::RgbImage::from_pixel(640, 400, image::Rgb([200, 10, 10]));
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let p = prepare(png.clone(), 1 << 20).unwrap();
        assert_eq!((p.width, p.height), (Some(640), Some(400)));
        let thumb = image::load_from_memory(p.thumbnail.as_deref().unwrap()).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (320, 200));
        let truncated = png[..png.len() / 2].to_vec();
        assert_eq!(
            prepare(truncated, 1 << 20).unwrap_err().code(),
            "invalid_media"
        );
        assert_eq!(prepare(png, 100).unwrap_err().code(), "media_too_large");
        assert_eq!(
            prepare(b"hello".to_vec(), 100).unwrap_err().code(),
            "unsupported_media_type"
        );
    }
}
