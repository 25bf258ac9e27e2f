//! Ledger objects in the state store: written by the fresh pass before it commits a window,
//! read by the reconciliation pass for its window, deleted once that window is committed.

use chrono::{DateTime, Utc};

use crate::ledger::part::{decode_into, encode};
use crate::ledger::{Fingerprint, LedgerIndex, LedgerPart};
use crate::state::{Condition, StateError, StateStore};

/// The object tag of every ledger object (`key=value`): the bucket's lifecycle rule expires
/// tagged objects after 3 days as a backstop, wherever the layout puts them
/// (`{dir}/ledger/`, `{dir}/tenants/NAME/ledger/`): a lifecycle prefix cannot hold a wildcard.
pub const TAGGING: &str = "m365-trace-to-devo=ledger";

/// Writes `part` with `fingerprints` (a part is written once: `If-None-Match: *`; an object
/// left by a crashed tick is replaced).
pub async fn write(
    store: &impl StateStore,
    checkpoint_key: &str,
    part: &LedgerPart,
    fingerprints: Vec<Fingerprint>,
) -> Result<(), StateError> {
    let key = part.key(checkpoint_key);
    let body = encode(fingerprints);
    match store
        .put_tagged(&key, body.clone(), Condition::Absent, TAGGING)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_conflict() => {
            let found = store.get(&key).await?;
            match found {
                Some(old) => store
                    .put_tagged(&key, body, Condition::Matches(&old.etag), TAGGING)
                    .await
                    .map(|_| ()),
                None => store
                    .put_tagged(&key, body, Condition::Absent, TAGGING)
                    .await
                    .map(|_| ()),
            }
        }
        Err(e) => Err(e),
    }
}

/// Loads the parts of `parts` that overlap `[start, end)` into one index; a part whose object
/// is missing or unreadable makes its span's records be sent again.
pub async fn load(
    store: &impl StateStore,
    checkpoint_key: &str,
    parts: &[LedgerPart],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<LedgerIndex, StateError> {
    let overlapping: Vec<&LedgerPart> = parts
        .iter()
        .filter(|p| p.start < end && start < p.end)
        .collect();
    // Reserved once from the counts in the checkpoint: the index is all the memory the ledger
    // keeps (16 bytes a record), next to one object's bytes at a time (9 bytes a record).
    let expected: u64 = overlapping.iter().map(|p| p.records).sum();
    let mut fingerprints = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    let mut missing = Vec::new();
    for part in overlapping {
        let object = store.get(&part.key(checkpoint_key)).await?;
        if !object.is_some_and(|o| decode_into(&o.body, &mut fingerprints)) {
            missing.push((part.start, part.end));
        }
    }
    Ok(LedgerIndex::new(fingerprints, missing))
}

/// Deletes the objects of `parts` (best effort: the bucket's lifecycle rule removes leftovers).
pub async fn delete(store: &impl StateStore, checkpoint_key: &str, parts: &[LedgerPart]) {
    for part in parts {
        if let Err(e) = store.delete(&part.key(checkpoint_key)).await {
            tracing::debug!(error = %e, "a ledger object could not be deleted; the lifecycle rule removes it");
        }
    }
}
