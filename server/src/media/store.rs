//! Where result files and uploads are kept: the [`MediaStore`] interface (put, get with byte
//! ranges, delete, list). Keys come from [`app::media_files`]; nothing else names a file.

use bytes::Bytes;
use futures_util::TryStreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use std::ops::Range;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The asked range lies outside the object.
    #[error("the range {start}-{end} is outside the file ({size} bytes)")]
    Range { start: u64, end: u64, size: u64 },
    #[error("the key {0:?} is not a valid media key")]
    Key(String),
    #[error("media storage failed: {0}")]
    Backend(String),
}

pub type MediaResult<T> = Result<T, MediaError>;

/// An object read back: the bytes asked for, and the whole object's size.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    pub bytes: Bytes,
    /// The range returned, within `0..size`.
    pub range: Range<u64>,
    pub size: u64,
}

/// Which bytes of an object to read.
#[derive(Debug, Clone, PartialEq)]
pub enum Span {
    All,
    /// `start..end` (an end past the object's end is cut there).
    Between(Range<u64>),
    /// The last N bytes (all of them when the object is shorter).
    Last(u64),
}

impl Span {
    /// The bytes of an object of `size` bytes this span covers, or the error that it covers none.
    pub fn within(&self, size: u64) -> MediaResult<Range<u64>> {
        match self {
            Self::All => Ok(0..size),
            Self::Between(r) if r.start >= r.end || r.start >= size => {
                Err(MediaError::Range { start: r.start, end: r.end, size })
            }
            Self::Between(r) => Ok(r.start..r.end.min(size)),
            Self::Last(n) if *n == 0 || size == 0 => Err(MediaError::Range { start: size, end: size, size }),
            Self::Last(n) => Ok(size - (*n).min(size)..size),
        }
    }
}

/// An object being read: its bytes arrive in chunks of bounded size, so a reader holds only
/// the chunk in flight however large the object or however many readers there are.
pub struct Streamed {
    pub chunks: BoxStream<'static, MediaResult<Bytes>>,
    /// The range being read, within `0..size`.
    pub range: Range<u64>,
    pub size: u64,
}

pub trait MediaStore: Send + Sync + 'static {
    /// Stores `bytes` at `key`, atomically: a reader sees the old object, or the whole new one.
    fn put(&self, key: &str, bytes: Bytes) -> BoxFuture<'_, MediaResult<()>>;
    /// The `span` of the object at `key` as a stream of chunks, or `None` when there is none.
    fn stream(&self, key: &str, span: Span) -> BoxFuture<'_, MediaResult<Option<Streamed>>>;
    /// The object at `key` (only `range` of it when given; a range running past the end is cut
    /// at the end), or `None` when there is none.
    fn get(&self, key: &str, range: Option<Range<u64>>) -> BoxFuture<'_, MediaResult<Option<Fetched>>> {
        let span = range.map_or(Span::All, Span::Between);
        let key = key.to_string();
        Box::pin(async move {
            let Some(streamed) = self.stream(&key, span).await? else { return Ok(None) };
            let parts: Vec<Bytes> = streamed.chunks.try_collect().await?;
            let bytes =
                if parts.len() == 1 { parts.into_iter().next().unwrap_or_default() } else { parts.concat().into() };
            Ok(Some(Fetched { bytes, range: streamed.range, size: streamed.size }))
        })
    }
    /// Copies the object at `from` to `to` (replacing what is there) within the store, without
    /// reading it through this process where the store can (a bucket copies it itself).
    fn copy(&self, from: &str, to: &str) -> BoxFuture<'_, MediaResult<()>>;
    /// Removes the object at `key`; removing a missing object is not an error.
    fn delete(&self, key: &str) -> BoxFuture<'_, MediaResult<()>>;
    /// Every key under `prefix` (a folder: `media/ID/`), in no particular order.
    fn list(&self, prefix: &str) -> BoxFuture<'_, MediaResult<Vec<String>>>;
}

/// Removes every object under `prefix`; returns how many.
pub async fn delete_prefix(store: &dyn MediaStore, prefix: &str) -> MediaResult<usize> {
    let keys = store.list(prefix).await?;
    for key in &keys {
        store.delete(key).await?;
    }
    Ok(keys.len())
}

/// The ids of the results stored (`media/ID/...`), without duplicates.
pub async fn result_ids(store: &dyn MediaStore) -> MediaResult<Vec<String>> {
    let prefix = format!("{}/", app::media_files::RESULTS);
    let mut ids: Vec<String> = store
        .list(&prefix)
        .await?
        .iter()
        .filter_map(|k| k.strip_prefix(&prefix)?.split('/').next().map(str::to_string))
        .collect();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// The `count` stored frames of result `id`, in order; the message says which is missing or
/// unreadable.
pub async fn result_frames(store: &dyn MediaStore, id: &str, count: usize) -> Result<Vec<image::RgbImage>, String> {
    let mut frames = Vec::with_capacity(count);
    for i in 0..count {
        let key = app::media_files::key(id, app::media_files::MediaFile::Frame(i));
        let fetched = store.get(&key, None).await.map_err(|e| e.to_string())?;
        let bytes = fetched.ok_or_else(|| format!("frame {i} is missing"))?.bytes;
        frames.push(super::input::decode(&bytes, "a stored frame").map_err(|e| e.to_string())?);
    }
    Ok(frames)
}
