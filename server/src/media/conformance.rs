//! The behaviour every [`MediaStore`] must have, as one suite each implementation's tests run
//! (`cargo test` runs it against the local disk; an S3 store runs the same).

use super::store::{MediaError, MediaStore, delete_prefix, result_ids};
use bytes::Bytes;

/// Runs every check against `store`, which must start empty. Panics on the first failure.
pub async fn run(store: &dyn MediaStore) {
    let bytes: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    store.put("media/0123456789abcdef/video.mp4", Bytes::from(bytes.clone())).await.unwrap();

    // Whole objects and ranges.
    let all = store.get("media/0123456789abcdef/video.mp4", None).await.unwrap().expect("stored");
    assert_eq!((all.bytes.as_ref(), all.size, all.range.clone()), (&bytes[..], 10_000, 0..10_000));
    let part = store.get("media/0123456789abcdef/video.mp4", Some(100..200)).await.unwrap().unwrap();
    assert_eq!((part.bytes.as_ref(), part.range.clone(), part.size), (&bytes[100..200], 100..200, 10_000));
    let tail = store.get("media/0123456789abcdef/video.mp4", Some(9_990..20_000)).await.unwrap().unwrap();
    assert_eq!((tail.bytes.as_ref(), tail.range.clone()), (&bytes[9_990..], 9_990..10_000), "a range past the end is cut");
    for bad in [10_000..10_001, 50..50, 60..40] {
        let e = store.get("media/0123456789abcdef/video.mp4", Some(bad.clone())).await.unwrap_err();
        assert!(matches!(e, MediaError::Range { .. }), "{bad:?}: {e}");
    }

    // Missing objects are None; deleting them is fine.
    assert!(store.get("media/0123456789abcdef/none.png", None).await.unwrap().is_none());
    assert!(store.get("media/fedcba9876543210/video.mp4", Some(0..10)).await.unwrap().is_none());
    store.delete("media/fedcba9876543210/video.mp4").await.unwrap();

    // Overwrites replace the whole object.
    store.put("media/0123456789abcdef/video.mp4", Bytes::from_static(b"short")).await.unwrap();
    let again = store.get("media/0123456789abcdef/video.mp4", None).await.unwrap().unwrap();
    assert_eq!((again.bytes.as_ref(), again.size), (&b"short"[..], 5));

    // Listing by folder, and removing a folder.
    store.put("media/0123456789abcdef/frames/0000.png", Bytes::from_static(b"f0")).await.unwrap();
    store.put("media/0123456789abcdef0/poster.png", Bytes::from_static(b"p")).await.unwrap();
    store.put("uploads/0123456789abcdef.png", Bytes::from_static(b"u")).await.unwrap();
    let mut listed = store.list("media/0123456789abcdef/").await.unwrap();
    listed.sort();
    assert_eq!(listed, ["media/0123456789abcdef/frames/0000.png", "media/0123456789abcdef/video.mp4"], "a folder, not a name prefix");
    assert_eq!(store.list("uploads/").await.unwrap(), ["uploads/0123456789abcdef.png"]);
    assert!(store.list("media/ffffffffffffffff/").await.unwrap().is_empty());
    assert_eq!(result_ids(store).await.unwrap(), ["0123456789abcdef", "0123456789abcdef0"]);
    assert_eq!(delete_prefix(store, "media/0123456789abcdef/").await.unwrap(), 2);
    assert!(store.get("media/0123456789abcdef/frames/0000.png", None).await.unwrap().is_none());
    assert_eq!(result_ids(store).await.unwrap(), ["0123456789abcdef0"]);

    // Keys that could leave the store are refused.
    for bad in ["", "../secret", "media/../../etc/passwd", "media/.hidden", "media//x", "/abs", "media/a b"] {
        let e = store.put(bad, Bytes::from_static(b"x")).await.unwrap_err();
        assert!(matches!(e, MediaError::Key(_)), "{bad:?}: {e}");
        assert!(store.get(bad, None).await.is_err(), "{bad:?}");
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_local_disk_store_conforms() {
        let dir = std::env::temp_dir().join(format!("vidplay-media-conformance-{}", crate::ids::new_id()));
        let store = super::super::object::ObjectMedia::local(&dir).unwrap();
        super::run(&store).await;
        // The files are where the layout says.
        assert!(dir.join("media/0123456789abcdef0/poster.png").is_file());
        assert!(dir.join("uploads/0123456789abcdef.png").is_file());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
