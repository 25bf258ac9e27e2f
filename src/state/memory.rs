//! An in-memory [`StateStore`] with S3's conditional-write semantics, for fast unit tests of
//! the lease, commit and conflict logic.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::state::{Condition, Object, StateError, StateStore};

/// Objects in a map; every write gets a new ETag.
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Mutex<HashMap<String, Object>>,
    versions: Mutex<u64>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn objects(&self) -> MutexGuard<'_, HashMap<String, Object>> {
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces `key` unconditionally, as an operator or another invocation would.
    pub fn overwrite(&self, key: &str, body: Vec<u8>) -> String {
        let etag = self.next_etag();
        self.objects().insert(
            key.to_owned(),
            Object {
                body,
                etag: etag.clone(),
            },
        );
        etag
    }

    fn next_etag(&self) -> String {
        let mut v = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        *v += 1;
        format!("\"v{v}\"")
    }
}

impl StateStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Object>, StateError> {
        Ok(self.objects().get(key).cloned())
    }

    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        condition: Condition<'_>,
    ) -> Result<String, StateError> {
        let etag = self.next_etag();
        let mut objects = self.objects();
        let holds = match (condition, objects.get(key)) {
            (Condition::Absent, None) => true,
            (Condition::Matches(want), Some(found)) => found.etag == want,
            _ => false,
        };
        if !holds {
            return Err(StateError::Conflict {
                bucket: "memory".into(),
                key: key.to_owned(),
                status: 412,
            });
        }
        objects.insert(
            key.to_owned(),
            Object {
                body,
                etag: etag.clone(),
            },
        );
        Ok(etag)
    }

    async fn delete(&self, key: &str) -> Result<(), StateError> {
        self.objects().remove(key);
        Ok(())
    }

    fn bucket(&self) -> &str {
        "memory"
    }
}
