//! Media in an S3-compatible bucket: `--media s3://BUCKET/PREFIX`, with the endpoint, region
//! and credentials from the usual AWS environment variables (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`) or
//! `--media-endpoint`. Requests go through `object_store` (path-style, so MinIO, SeaweedFS,
//! Garage and Ceph work as well as AWS), over rustls with ring.

use super::object::ObjectMedia;
use super::store::{MediaError, MediaResult};
use object_store::aws::AmazonS3Builder;
use object_store::prefix::PrefixStore;
use std::sync::Arc;

/// Where media live: the data directory, or a bucket.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaLocation {
    Local(std::path::PathBuf),
    S3 { bucket: String, prefix: String },
}

impl MediaLocation {
    /// `s3://BUCKET` or `s3://BUCKET/PREFIX`; anything else is a folder.
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some(rest) = text.strip_prefix("s3://") else {
            if text.contains("://") {
                return Err(format!("{text:?} is neither a folder nor an s3://BUCKET/PREFIX location"));
            }
            return Ok(Self::Local(text.into()));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        if !valid_bucket {
            return Err(format!("{bucket:?} is not a bucket name (3-63 lowercase letters, digits, '-' or '.')"));
        }
        let prefix = prefix.trim_matches('/').to_string();
        if prefix.split('/').any(|p| p.is_empty() && !prefix.is_empty() || p == "." || p == "..") {
            return Err(format!("{prefix:?} is not a usable prefix in the bucket"));
        }
        Ok(Self::S3 { bucket: bucket.into(), prefix })
    }
}

/// Opens the media store at `location`; `endpoint` is the S3 endpoint (see [`open`]).
pub fn open_location(location: &MediaLocation, endpoint: Option<&str>) -> MediaResult<ObjectMedia> {
    match location {
        MediaLocation::Local(dir) => ObjectMedia::local(dir),
        MediaLocation::S3 { bucket, prefix } => open(bucket, prefix, endpoint),
    }
}

impl std::fmt::Display for MediaLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(dir) => write!(f, "{}", dir.display()),
            Self::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Self::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// Makes rustls use ring (the one crypto library in the build) for every HTTPS client; safe
/// to call again.
pub fn use_ring_for_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The media store for a bucket, configured by this process's AWS environment variables;
/// `endpoint` overrides `AWS_ENDPOINT_URL` (an `http://` endpoint is allowed: a bucket on the
/// lab's own network).
pub fn open(bucket: &str, prefix: &str, endpoint: Option<&str>) -> MediaResult<ObjectMedia> {
    open_with(bucket, prefix, endpoint, std::env::vars().filter(|(k, _)| k.starts_with("AWS_")))
}

/// [`open`] with the AWS variables given (`AWS_ACCESS_KEY_ID`, ...), not read from the
/// environment.
pub fn open_with(
    bucket: &str,
    prefix: &str,
    endpoint: Option<&str>,
    vars: impl IntoIterator<Item = (String, String)>,
) -> MediaResult<ObjectMedia> {
    use_ring_for_tls();
    // A wrong endpoint or a bucket that is down is reported within seconds, not minutes.
    let retry = object_store::RetryConfig {
        max_retries: 4,
        retry_timeout: std::time::Duration::from_secs(20),
        ..Default::default()
    };
    let mut builder = AmazonS3Builder::new().with_bucket_name(bucket).with_retry(retry);
    let mut endpoint = endpoint.map(str::to_string);
    let mut region = false;
    for (key, value) in vars {
        let key = key.to_ascii_lowercase();
        region |= key == "aws_region" || key == "aws_default_region";
        if key == "aws_endpoint_url" || key == "aws_endpoint" {
            endpoint = endpoint.or(Some(value));
        } else if let Ok(config) = key.parse() {
            builder = builder.with_config(config, value);
        }
    }
    if let Some(endpoint) = endpoint {
        builder = builder.with_allow_http(endpoint.starts_with("http://")).with_endpoint(endpoint);
    }
    if !region {
        builder = builder.with_region("us-east-1");
    }
    let s3 = builder.build().map_err(|e| MediaError::Backend(format!("cannot use the bucket {bucket}: {e}")))?;
    let inner: Arc<dyn object_store::ObjectStore> =
        if prefix.is_empty() { Arc::new(s3) } else { Arc::new(PrefixStore::new(s3, prefix)) };
    Ok(ObjectMedia::new(inner))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        assert_eq!(MediaLocation::parse("data").unwrap(), MediaLocation::Local("data".into()));
        assert_eq!(
            MediaLocation::parse("s3://vidplay-media").unwrap(),
            MediaLocation::S3 { bucket: "vidplay-media".into(), prefix: "".into() }
        );
        let lab = MediaLocation::parse("s3://lab.media/vidplay/main/").unwrap();
        assert_eq!(lab, MediaLocation::S3 { bucket: "lab.media".into(), prefix: "vidplay/main".into() });
        assert_eq!(lab.to_string(), "s3://lab.media/vidplay/main");
        for bad in
            ["s3://", "s3://UPPER", "s3://ab", "s3://b_u_c/x", "s3://bucket/a//b", "s3://bucket/../x", "gs://bucket"]
        {
            assert!(MediaLocation::parse(bad).is_err(), "{bad}");
        }
    }
}
