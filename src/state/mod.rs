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

/// Writes `body` at `key` if `condition` holds, like [`StateStore::put`], and recognises our own
/// write: when the precondition fails but the object now holds exactly `body`, an earlier
/// attempt of this very write was applied (an SDK retry after S3's answer was lost, which the
/// retry then reads as 412). Only for bytes no other invocation writes (a checkpoint carrying
/// the lease owner or the write's own instant): the write is ours, and its ETag is returned.
pub async fn put_recognising(
    store: &impl StateStore,
    key: &str,
    body: Vec<u8>,
    condition: Condition<'_>,
) -> Result<String, StateError> {
    match store.put(key, body.clone(), condition).await {
        Err(e) if e.is_conflict() => match store.get(key).await {
            Ok(Some(found)) if found.body == body => Ok(found.etag),
            _ => Err(e),
        },
        written => written,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_applied_before_its_412_is_ours_and_anothers_is_not() {
        let store = MemoryStore::new();
        store.apply_then_conflict("k", 1);
        let etag = put_recognising(&store, "k", b"mine".to_vec(), Condition::Absent)
            .await
            .expect("recognised as ours");
        assert_eq!(store.get("k").await.unwrap().unwrap().etag, etag);

        // Another invocation's write in between: a real conflict.
        store.overwrite("k", b"theirs".to_vec());
        let lost =
            put_recognising(&store, "k", b"mine 2".to_vec(), Condition::Matches(&etag)).await;
        assert!(lost.is_err_and(|e| e.is_conflict()));
    }
}
