//! The behaviour every [`MediaStore`] must have, as one suite each implementation's tests run
//! (`cargo test` runs it against the local disk and against a real S3 server, SeaweedFS).

use super::store::{MediaError, MediaStore, Span, delete_prefix, result_ids};
use bytes::Bytes;
use futures_util::TryStreamExt;

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
    assert_eq!(
        (tail.bytes.as_ref(), tail.range.clone()),
        (&bytes[9_990..], 9_990..10_000),
        "a range past the end is cut"
    );
    // A range that ends before it starts, written out: the literal `60..40` reads as a mistake.
    let backwards = std::ops::Range { start: 60, end: 40 };
    for bad in [10_000..10_001, 50..50, backwards] {
        let e = store.get("media/0123456789abcdef/video.mp4", Some(bad.clone())).await.unwrap_err();
        assert!(matches!(e, MediaError::Range { .. }), "{bad:?}: {e}");
    }

    // Streamed: a large object arrives in bounded chunks, and a suffix reads only its bytes.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let zip = "media/0123456789abcdef/frames.zip";
    store.put(zip, Bytes::from(big.clone())).await.unwrap();
    let streamed = store.stream(zip, Span::All).await.unwrap().expect("stored");
    assert_eq!((streamed.range.clone(), streamed.size), (0..3_000_000, 3_000_000));
    let chunks: Vec<Bytes> = streamed.chunks.try_collect().await.unwrap();
    assert!(chunks.len() > 2 && chunks.iter().all(|c| c.len() <= 1 << 20), "{} chunks", chunks.len());
    assert!(chunks.concat() == big);
    for (n, expect) in [(1, 2_999_999..3_000_000), (4_000_000, 0..3_000_000)] {
        let last = store.stream(zip, Span::Last(n)).await.unwrap().unwrap();
        assert_eq!(last.range, expect);
        let bytes: Vec<Bytes> = last.chunks.try_collect().await.unwrap();
        assert!(bytes.concat() == big[expect.start as usize..], "the last {n} bytes");
    }
    let e = store.stream(zip, Span::Last(0)).await.err().expect("no bytes asked");
    assert!(matches!(e, MediaError::Range { size: 3_000_000, .. }), "{e}");
    assert!(store.stream("media/0123456789abcdef/none.png", Span::Last(3)).await.unwrap().is_none());
    store.delete(zip).await.unwrap();

    // Missing objects are None; deleting them is fine.
    assert!(store.get("media/0123456789abcdef/none.png", None).await.unwrap().is_none());
    assert!(store.get("media/fedcba9876543210/video.mp4", Some(0..10)).await.unwrap().is_none());
    store.delete("media/fedcba9876543210/video.mp4").await.unwrap();

    // Overwrites replace the whole object.
    store.put("media/0123456789abcdef/video.mp4", Bytes::from_static(b"short")).await.unwrap();
    let again = store.get("media/0123456789abcdef/video.mp4", None).await.unwrap().unwrap();
    assert_eq!((again.bytes.as_ref(), again.size), (&b"short"[..], 5));

    // Copies replace what is at the destination, and leave the source.
    store.put("attempts/0123456789abcdef/a1/poster.png", Bytes::from_static(b"new")).await.unwrap();
    store.put("media/0123456789abcdef/poster.png", Bytes::from_static(b"old")).await.unwrap();
    store.copy("attempts/0123456789abcdef/a1/poster.png", "media/0123456789abcdef/poster.png").await.unwrap();
    let copied = store.get("media/0123456789abcdef/poster.png", None).await.unwrap().unwrap();
    assert_eq!(copied.bytes.as_ref(), b"new");
    assert!(store.get("attempts/0123456789abcdef/a1/poster.png", None).await.unwrap().is_some());
    assert!(store.copy("attempts/0123456789abcdef/none.png", "media/0123456789abcdef/x.png").await.is_err());
    assert!(store.copy("attempts/0123456789abcdef/a1/poster.png", "../x").await.is_err());
    delete_prefix(store, "attempts/").await.unwrap();
    store.delete("media/0123456789abcdef/poster.png").await.unwrap();

    // Listing by folder, and removing a folder.
    store.put("media/0123456789abcdef/frames/0000.png", Bytes::from_static(b"f0")).await.unwrap();
    store.put("media/0123456789abcdef0/poster.png", Bytes::from_static(b"p")).await.unwrap();
    store.put("uploads/0123456789abcdef.png", Bytes::from_static(b"u")).await.unwrap();
    let mut listed = store.list("media/0123456789abcdef/").await.unwrap();
    listed.sort();
    assert_eq!(
        listed,
        ["media/0123456789abcdef/frames/0000.png", "media/0123456789abcdef/video.mp4"],
        "a folder, not a name prefix"
    );
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_s3_bucket_conforms_with_and_without_a_prefix() {
        use crate::media::MediaStore;
        let (weed, bucket) = crate::services::shared::bucket("vidplay-media").await.unwrap();
        // Credentials as a deployment gives them: the AWS environment variables.
        let open = |bucket: &str, prefix: &str| {
            let vars = weed.env().into_iter().map(|(k, v)| (k.to_string(), v));
            crate::media::s3::open_with(bucket, prefix, None, vars).unwrap()
        };
        let whole = open(&bucket, "");
        super::run(&whole).await;
        let prefixed = open(&bucket, "lab/one");
        // The bucket is not empty now, but nothing is under the prefix.
        super::run(&prefixed).await;
        // The prefixed store's objects are under the prefix in the bucket.
        let listed = whole.list("lab/one/media/").await.unwrap();
        assert_eq!(listed, ["lab/one/media/0123456789abcdef0/poster.png"]);
        // Wrong credentials, or no server there: errors that say so, not panics.
        let gone = format!("http://127.0.0.1:{}", crate::services::postgres::unused_port());
        let nowhere = crate::media::s3::open_with(&bucket, "", Some(&gone), Vec::new()).unwrap();
        let e = nowhere.put("media/x/y.png", bytes::Bytes::from_static(b"x")).await.unwrap_err();
        assert!(matches!(e, crate::media::MediaError::Backend(_)), "{e}");
        let wrong = crate::media::s3::open_with(
            &bucket,
            "",
            Some(&weed.endpoint()),
            [
                ("AWS_SECRET_ACCESS_KEY".to_string(), "wrong".to_string()),
                ("AWS_ACCESS_KEY_ID".to_string(), "vidplay-test-key".to_string()),
            ],
        )
        .unwrap();
        let e = wrong.get("media/0123456789abcdef0/poster.png", None).await.unwrap_err();
        assert!(matches!(e, crate::media::MediaError::Backend(_)), "{e}");
    }
}
