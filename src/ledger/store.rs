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

/// Fingerprints reserved up front from the checkpoint's counts at most (64 MB of index): the
/// counts are not trusted with more before the objects confirm them.
const MAX_RESERVED: u64 = 4 << 20;

/// A ledger part that could not be used: its span's records are sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unusable {
    /// The object's key.
    pub key: String,
    /// Start of its span.
    pub start: DateTime<Utc>,
    /// End of its span.
    pub end: DateTime<Utc>,
    /// `absent`, `unreadable` or `corrupt`.
    pub reason: &'static str,
    /// S3's answer, or how the bytes disagree with the checkpoint.
    pub detail: String,
}

/// Loads the parts of `parts` that overlap `[start, end)` into one index. A part that cannot
/// be used (absent; unreadable after one retry, whatever S3 answered; or not the part the
/// checkpoint lists) makes its span's records be sent again, and is returned for the log: a
/// repeat, never a loss, and never a failed tick.
pub async fn load(
    store: &impl StateStore,
    checkpoint_key: &str,
    parts: &[LedgerPart],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> (LedgerIndex, Vec<Unusable>) {
    let overlapping: Vec<&LedgerPart> = parts
        .iter()
        .filter(|p| p.start < end && start < p.end)
        .collect();
    // Reserved once from the counts in the checkpoint, as far as they are plausible: the index
    // is all the memory the ledger keeps (16 bytes a record), next to one object's bytes at a
    // time (12 bytes a record).
    let expected = overlapping
        .iter()
        .fold(0u64, |sum, p| sum.saturating_add(p.records));
    let mut fingerprints = Vec::new();
    let _ =
        fingerprints.try_reserve_exact(usize::try_from(expected.min(MAX_RESERVED)).unwrap_or(0));
    let mut unusable = Vec::new();
    for part in overlapping {
        let key = part.key(checkpoint_key);
        if let Err((reason, detail)) = read_part(store, &key, part, &mut fingerprints).await {
            unusable.push(Unusable {
                key,
                start: part.start,
                end: part.end,
                reason,
                detail,
            });
        }
    }
    let missing = unusable.iter().map(|u| (u.start, u.end)).collect();
    (LedgerIndex::new(fingerprints, missing), unusable)
}

/// Appends the fingerprints of `part` (at `key`) to `out`, reading it a second time when the
/// first read fails; why not, when it cannot be used.
async fn read_part(
    store: &impl StateStore,
    key: &str,
    part: &LedgerPart,
    out: &mut Vec<Fingerprint>,
) -> Result<(), (&'static str, String)> {
    let object = match store.get(key).await {
        Ok(object) => object,
        Err(_) => store
            .get(key)
            .await
            .map_err(|e| ("unreadable", e.to_string()))?,
    };
    let object = object.ok_or(("absent", "no such object".to_owned()))?;
    decode_into(&object.body, part.records, out).map_err(|e| ("corrupt", e.to_string()))
}

/// Deletes the objects of `parts` (best effort: the bucket's lifecycle rule removes leftovers).
pub async fn delete(store: &impl StateStore, checkpoint_key: &str, parts: &[LedgerPart]) {
    for part in parts {
        if let Err(e) = store.delete(&part.key(checkpoint_key)).await {
            tracing::debug!(error = %e, "a ledger object could not be deleted; the lifecycle rule removes it");
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::ledger::Verdict;
    use crate::state::MemoryStore;

    const KEY: &str = "dir/checkpoint.json";

    fn part(records: u64) -> LedgerPart {
        let start = Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap();
        LedgerPart {
            start,
            end: start + Duration::minutes(5),
            n: 0,
            records,
        }
    }

    async fn stored(store: &MemoryStore) -> (LedgerPart, DateTime<Utc>) {
        let p = part(1);
        write(
            store,
            KEY,
            &p,
            vec![Fingerprint::of("a|r", Some("Delivered"))],
        )
        .await
        .unwrap();
        let at = p.start + Duration::minutes(1);
        (p, at)
    }

    async fn verdict(store: &MemoryStore, p: &LedgerPart, at: DateTime<Utc>) -> Verdict {
        let (index, unusable) = load(store, KEY, std::slice::from_ref(p), p.start, p.end).await;
        let verdict = index.verdict("a|r", Some("Delivered"), at);
        assert_eq!(verdict == Verdict::LedgerMissing, unusable.len() == 1);
        verdict
    }

    #[tokio::test]
    async fn one_failed_read_is_retried() {
        let store = MemoryStore::new();
        let (p, at) = stored(&store).await;
        store.fail_reads(&p.key(KEY), 1);
        assert_eq!(verdict(&store, &p, at).await, Verdict::Known);
    }

    #[tokio::test]
    async fn a_part_unreadable_twice_counts_as_missing() {
        let store = MemoryStore::new();
        let (p, at) = stored(&store).await;
        store.fail_reads(&p.key(KEY), 2);
        assert_eq!(verdict(&store, &p, at).await, Verdict::LedgerMissing);
    }

    #[tokio::test]
    async fn a_part_whose_count_disagrees_with_the_checkpoint_counts_as_missing() {
        let store = MemoryStore::new();
        let (p, at) = stored(&store).await;
        let claimed = LedgerPart {
            records: 1_000_000_000_000,
            ..p
        };
        assert_eq!(verdict(&store, &claimed, at).await, Verdict::LedgerMissing);
    }
}
