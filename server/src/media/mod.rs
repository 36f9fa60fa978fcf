//! Media: where result files and uploads are kept ([`store::MediaStore`], the local disk or an
//! S3-compatible bucket ([`s3`]) through [`object::ObjectMedia`]), how results become files ([`writer`], [`encode`], [`zip`]),
//! and how uploaded images are read ([`input`]).

pub mod clip;
#[cfg(feature = "testkit")]
pub mod conformance;
pub mod encode;
pub mod input;
pub mod object;
pub mod s3;
pub mod store;
pub mod writer;
pub mod zip;

pub use store::{MediaError, MediaStore};
