//! The state that survives between ticks, behind a small store of objects written only with
//! conditional PUTs: S3 in production, memory in unit tests.

pub mod error;
pub mod memory;
pub mod s3;

use std::future::Future;

pub use error::StateError;
pub use memory::MemoryStore;
pub use s3::S3Store;

/// An object as read, with the ETag that a replacement must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// The bytes.
    pub body: Vec<u8>,
    /// The object's ETag.
    pub etag: String,
}

/// The precondition of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition<'a> {
    /// Create only: `If-None-Match: *`.
    Absent,
    /// Replace only this version: `If-Match: ETag`.
    Matches(&'a str),
}

impl<'a> Condition<'a> {
    /// `Matches(etag)`, or `Absent` when there is no object yet.
    pub fn from_etag(etag: Option<&'a str>) -> Condition<'a> {
        etag.map_or(Condition::Absent, Condition::Matches)
    }
}

/// Objects by key in one bucket: read, conditionally write, delete.
pub trait StateStore: Send + Sync {
    /// Reads `key`; `None` when there is no such object.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Object>, StateError>> + Send;

    /// Writes `body` at `key` if `condition` holds; returns the new ETag. A failed precondition
    /// is [`StateError::Conflict`].
    fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        condition: Condition<'_>,
    ) -> impl Future<Output = Result<String, StateError>> + Send;

    /// Writes like [`StateStore::put`], with the object tags `tagging` (`key=value`, as S3's
    /// `x-amz-tagging` header), so that a bucket lifecycle rule can select the object whatever
    /// its key. A store without tags writes the object alone.
    fn put_tagged(
        &self,
        key: &str,
        body: Vec<u8>,
        condition: Condition<'_>,
        _tagging: &str,
    ) -> impl Future<Output = Result<String, StateError>> + Send {
        self.put(key, body, condition)
    }

    /// Deletes `key` (nothing happens when it does not exist).
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StateError>> + Send;

    /// The bucket, for messages.
    fn bucket(&self) -> &str;
}
