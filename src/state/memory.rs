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
    faults: Mutex<Faults>,
}

/// The failures S3 has that a unit test asks for.
#[derive(Debug, Default)]
struct Faults {
    /// Reads of a key that fail (403), how many times.
    failing_reads: HashMap<String, usize>,
    /// Writes of a key that are applied and then answered 412, as an SDK retry of a PUT
    /// whose first answer was lost sees it, how many times.
    applied_then_conflict: HashMap<String, usize>,
}

/// Takes one from the count of `key` in `map`; whether there was one.
fn take_one(map: &mut HashMap<String, usize>, key: &str) -> bool {
    match map.get_mut(key) {
        Some(n) if *n > 0 => {
            *n -= 1;
            true
        }
        _ => false,
    }
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

    /// Makes the next `times` reads of `key` fail with 403, as S3 does for a denied or
    /// undecryptable (KMS) object.
    pub fn fail_reads(&self, key: &str, times: usize) {
        self.faults().failing_reads.insert(key.to_owned(), times);
    }

    /// Makes the next `times` conditional writes of `key` take effect and then fail with 412:
    /// what an SDK retry of a PUT that S3 applied (its answer lost) reads.
    pub fn apply_then_conflict(&self, key: &str, times: usize) {
        self.faults()
            .applied_then_conflict
            .insert(key.to_owned(), times);
    }

    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn conflict(key: &str) -> StateError {
        StateError::Conflict {
            bucket: "memory".into(),
            key: key.to_owned(),
            status: 412,
        }
    }

    fn next_etag(&self) -> String {
        let mut v = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        *v += 1;
        format!("\"v{v}\"")
    }
}

impl StateStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Object>, StateError> {
        if take_one(&mut self.faults().failing_reads, key) {
            return Err(StateError::Denied {
                bucket: "memory".into(),
                key: key.to_owned(),
                operation: "GetObject",
                status: 403,
            });
        }
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
            return Err(MemoryStore::conflict(key));
        }
        objects.insert(
            key.to_owned(),
            Object {
                body,
                etag: etag.clone(),
            },
        );
        if take_one(&mut self.faults().applied_then_conflict, key) {
            return Err(MemoryStore::conflict(key));
        }
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
