//! [`MediaStore`] over the `object_store` crate: the local disk today (the data directory);
//! an S3-compatible bucket is another `ObjectStore` given to [`ObjectMedia::new`].

use super::store::{MediaError, MediaResult, MediaStore, Span, Streamed};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use std::sync::Arc;

pub struct ObjectMedia {
    inner: Arc<dyn ObjectStore>,
}

impl ObjectMedia {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self { inner }
    }

    /// Files under `root` (created if missing): `root/media/ID/...`, `root/uploads/ID.png`.
    pub fn local(root: &std::path::Path) -> MediaResult<Self> {
        std::fs::create_dir_all(root)
            .map_err(|e| MediaError::Backend(format!("cannot create {}: {e}", root.display())))?;
        let fs = LocalFileSystem::new_with_prefix(root).map_err(backend)?.with_automatic_cleanup(true);
        Ok(Self::new(Arc::new(fs)))
    }
}

fn backend(e: object_store::Error) -> MediaError {
    MediaError::Backend(e.to_string())
}

/// A key as an object path; keys are plain relative names (no `..`, no empty parts).
fn path(key: &str) -> MediaResult<ObjectPath> {
    let plain = !key.is_empty()
        && key.split('/').all(|p| !p.is_empty() && p != "." && p != ".." && !p.starts_with('.'))
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '-' | '_'));
    if !plain {
        return Err(MediaError::Key(key.into()));
    }
    ObjectPath::parse(key).map_err(|_| MediaError::Key(key.into()))
}

impl MediaStore for ObjectMedia {
    fn put(&self, key: &str, bytes: Bytes) -> BoxFuture<'_, MediaResult<()>> {
        let location = path(key);
        Box::pin(async move {
            self.inner.put(&location?, bytes.into()).await.map_err(backend)?;
            Ok(())
        })
    }

    fn stream(&self, key: &str, span: Span) -> BoxFuture<'_, MediaResult<Option<Streamed>>> {
        let location = path(key);
        Box::pin(async move {
            let location = location?;
            let size = match self.inner.head(&location).await {
                Ok(meta) => meta.size,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(backend(e)),
            };
            // The size first, so a suffix range reads only its bytes (and is checked here, the
            // same for every backend).
            let range = span.within(size)?;
            if range.is_empty() {
                return Ok(Some(Streamed { chunks: futures_util::stream::empty().boxed(), range, size }));
            }
            let options = GetOptions { range: Some(GetRange::Bounded(range.clone())), ..GetOptions::default() };
            let result = match self.inner.get_opts(&location, options).await {
                Ok(r) => r,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(backend(e)),
            };
            let range = result.range.clone();
            // Files are read a chunk at a time, bucket objects as their response body arrives.
            let chunks = result.into_stream().map_err(backend).boxed();
            Ok(Some(Streamed { chunks, range, size }))
        })
    }

    fn copy(&self, from: &str, to: &str) -> BoxFuture<'_, MediaResult<()>> {
        let (from, to) = (path(from), path(to));
        Box::pin(async move { self.inner.copy(&from?, &to?).await.map_err(backend) })
    }

    fn delete(&self, key: &str) -> BoxFuture<'_, MediaResult<()>> {
        let location = path(key);
        Box::pin(async move {
            match self.inner.delete(&location?).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(backend(e)),
            }
        })
    }

    fn list(&self, prefix: &str) -> BoxFuture<'_, MediaResult<Vec<String>>> {
        let prefix = prefix.trim_end_matches('/').to_string();
        Box::pin(async move {
            let prefix = if prefix.is_empty() { None } else { Some(path(&prefix)?) };
            let metas: Vec<_> = self.inner.list(prefix.as_ref()).try_collect().await.map_err(backend)?;
            Ok(metas.into_iter().map(|m| m.location.to_string()).collect())
        })
    }
}
