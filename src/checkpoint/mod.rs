//! The checkpoint object: its format, the positions of each pass, and typed conditional reads
//! and writes of it.

pub mod backfill;
pub(crate) mod cut;
pub mod cutover;
pub mod details;
pub(crate) mod lease;
mod position;
pub mod quota_share;
pub(crate) mod reset;
pub(crate) mod second_look;
pub(crate) mod sent;
pub(crate) mod split;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::checkpoint::lease::Lease;
use crate::ledger::LedgerPart;
use crate::state::{Condition, StateError, StateStore};
pub use position::{Position, Progress, Span};

/// Format version written in every checkpoint.
pub const FORMAT_VERSION: u32 = 1;

/// The state that survives between ticks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format version.
    pub version: u32,
    /// The primary pass's position (the single, fresh or backfill pass), at the top level:
    /// `end`, `partial`, `then`, `stuck`.
    #[serde(flatten)]
    pub primary: Position,
    /// The running invocation's claim, if any.
    #[serde(default)]
    pub lease: Option<Lease>,
    /// When this object was last written.
    pub updated_at: DateTime<Utc>,
    /// Which API the records come from (informational).
    #[serde(default)]
    pub api: Option<String>,
    /// Times of the API requests of the last 5 minutes: the client-side throttle budget that
    /// survives between ticks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_requests: Vec<DateTime<Utc>>,
    /// The lowered request budget while another application spends the tenant's shared quota
    /// (absent: the whole `REQUEST_BUDGET_PER_5_MINUTES`; older checkpoints load without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_share: Option<crate::checkpoint::quota_share::QuotaShare>,
    /// The `RESET_BEFORE` value this checkpoint last restarted for (scheduled checkpoint only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_before: Option<DateTime<Utc>>,
    /// The range a backfill checkpoint belongs to (backfill checkpoints only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<crate::checkpoint::backfill::Range>,
    /// The reconciliation pass's position, and the spans due for its second look.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile: Option<Position>,
    /// Ledger parts the fresh pass wrote that the reconciliation pass has yet to read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ledger: Vec<LedgerPart>,
    /// How the last tick failed, cleared by the next one that finishes (`tenants list`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    /// Deliveries waiting for their delivery details, and those already fetched.
    #[serde(default, skip_serializing_if = "details::DetailQueue::is_empty")]
    pub details: details::DetailQueue,
    /// The scheduled audit's position (`AUDIT_HOURS`): every hour before `until` was compared
    /// with what Devo holds (scheduled checkpoint only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditMark>,
    /// The take-over from an earlier collector (`cutover`): the overlap in which a record is
    /// sent only when Devo does not hold it (scheduled checkpoint only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutover: Option<cutover::Cutover>,
}

/// Where the scheduled audit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditMark {
    /// The end of the last hour compared.
    pub until: DateTime<Utc>,
}

/// A failed tick, as the operator's `tenants list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    /// When it failed.
    pub at: DateTime<Utc>,
    /// Its stable `errorType` (docs/operations.md, "Error types").
    pub error_type: String,
    /// Its message (never a secret).
    pub message: String,
}

/// Which position a pass moves: the primary one (the single, fresh or backfill pass) or the
/// reconciliation pass's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// [`Checkpoint::primary`].
    Primary,
    /// [`Checkpoint::reconcile`].
    Reconcile,
}

impl Checkpoint {
    /// A checkpoint that has never delivered anything.
    pub fn empty(now: DateTime<Utc>) -> Checkpoint {
        Checkpoint {
            version: FORMAT_VERSION,
            primary: Position::default(),
            lease: None,
            updated_at: now,
            api: None,
            recent_requests: Vec::new(),
            quota_share: None,
            reset_before: None,
            backfill: None,
            reconcile: None,
            ledger: Vec::new(),
            last_error: None,
            details: details::DetailQueue::default(),
            audit: None,
            cutover: None,
        }
    }

    /// The position `track` moves.
    pub fn position(&self, track: Track) -> Position {
        match track {
            Track::Primary => self.primary.clone(),
            Track::Reconcile => self.reconcile.clone().unwrap_or_default(),
        }
    }

    /// The position `track` moves, to move it.
    pub fn position_mut(&mut self, track: Track) -> &mut Position {
        match track {
            Track::Primary => &mut self.primary,
            Track::Reconcile => self.reconcile.get_or_insert_with(Position::default),
        }
    }

    /// The spans due for the reconciliation pass's second look.
    pub fn due(&self) -> &[position::Span] {
        self.reconcile.as_ref().map_or(&[], |r| r.due.as_slice())
    }

    /// The instant before which every record is in Devo in its complete form: the oldest
    /// span due for a second look, or the primary position when none waits.
    pub fn complete_until(&self) -> Option<DateTime<Utc>> {
        let waiting = self.due().first().map(|d| d.0);
        match (waiting, self.primary.end) {
            (Some(w), Some(e)) => Some(w.min(e)),
            (w, e) => w.or(e),
        }
    }

    /// Where `track` stands, as compared tick to tick (see [`Position::standing`]).
    pub fn standing(&self, track: Track) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        match track {
            Track::Primary => self.primary.standing(),
            Track::Reconcile => self
                .reconcile
                .as_ref()
                .map_or((None, None), Position::standing),
        }
    }

    /// Brings a checkpoint written before the spans due for a second look were listed up to
    /// date: the span of every ledger part not yet reconciled is due. (Young spans that such a
    /// version pulled and found empty wrote no part: they cannot be told from old ones.)
    pub fn upgrade(&mut self) {
        if self.ledger.is_empty() {
            return;
        }
        let parts: Vec<position::Span> = self.ledger.iter().map(|p| (p.start, p.end)).collect();
        let position = self.position_mut(Track::Reconcile);
        let reconciled = position.end;
        for (start, end) in parts {
            let start = reconciled.map_or(start, |r| r.max(start));
            position.owe((start, end));
        }
    }
}

/// A checkpoint as read, with the ETag that a replacement must match.
#[derive(Debug, Clone)]
pub struct Stored {
    pub checkpoint: Checkpoint,
    /// The object's ETag.
    pub etag: String,
}

/// Reads the checkpoint at `key`; `None` when there is none yet.
pub async fn load(store: &impl StateStore, key: &str) -> Result<Option<Stored>, StateError> {
    let Some(object) = store.get(key).await? else {
        return Ok(None);
    };
    let invalid = |problem: String| StateError::Invalid {
        bucket: store.bucket().to_owned(),
        key: key.to_owned(),
        problem,
    };
    let mut checkpoint: Checkpoint =
        serde_json::from_slice(&object.body).map_err(|e| invalid(e.to_string()))?;
    if checkpoint.version != FORMAT_VERSION {
        return Err(invalid(format!(
            "format version {} is not {FORMAT_VERSION}",
            checkpoint.version
        )));
    }
    checkpoint.upgrade();
    Ok(Some(Stored {
        checkpoint,
        etag: object.etag,
    }))
}

/// Writes `checkpoint` at `key`: creates it when `etag` is `None`, else replaces it only if it
/// still has that ETag. Returns the new ETag.
pub async fn write(
    store: &impl StateStore,
    key: &str,
    checkpoint: &Checkpoint,
    etag: Option<&str>,
) -> Result<String, StateError> {
    let body = to_bytes(store, key, checkpoint)?;
    store.put(key, body, Condition::from_etag(etag)).await
}

/// Writes like [`write()`] a checkpoint of a tick under its lease: its bytes carry the lease
/// owner or the write's own instant, so a retried write that S3 had applied is recognised as
/// ours ([`crate::state::put_recognising`]) instead of read as a lost lease.
pub async fn write_leased(
    store: &impl StateStore,
    key: &str,
    checkpoint: &Checkpoint,
    etag: Option<&str>,
) -> Result<String, StateError> {
    let body = to_bytes(store, key, checkpoint)?;
    crate::state::put_recognising(store, key, body, Condition::from_etag(etag)).await
}

fn to_bytes(
    store: &impl StateStore,
    key: &str,
    checkpoint: &Checkpoint,
) -> Result<Vec<u8>, StateError> {
    serde_json::to_vec_pretty(checkpoint).map_err(|e| StateError::Invalid {
        bucket: store.bucket().to_owned(),
        key: key.to_owned(),
        problem: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::state::MemoryStore;

    #[tokio::test]
    async fn a_checkpoint_of_the_previous_shape_loads_and_its_ledger_spans_are_due() {
        // As the version before the due spans wrote it: end, partial, stuck, reconcile and
        // ledger parts.
        let old = br#"{"version":1,"end":"2026-11-24T10:00:00Z",
            "partial":{"start":"2026-11-24T10:00:00Z","end":"2026-11-24T10:05:00Z",
                "resume":{"until":"2026-11-24T10:03:00Z","sent_at_until":["a|b"]}},
            "stuck":{"start":"2026-11-24T10:00:00Z","until":"2026-11-24T10:03:00Z","ticks":1},
            "updated_at":"2026-11-24T10:06:00Z",
            "reconcile":{"end":"2026-11-23T09:02:00Z"},
            "ledger":[{"start":"2026-11-23T09:00:00Z","end":"2026-11-23T09:05:00Z","n":0,"records":4},
                      {"start":"2026-11-23T09:05:00Z","end":"2026-11-23T09:10:00Z","n":0,"records":2}]}"#;
        let store = MemoryStore::new();
        store.overwrite("k", old.to_vec());
        let c = load(&store, "k").await.unwrap().unwrap().checkpoint;
        let at = |h, m| Utc.with_ymd_and_hms(2026, 11, 24, h, m, 0).unwrap();
        let day_before = |h, m| at(h, m) - chrono::Duration::days(1);
        assert_eq!(c.primary.end, Some(at(10, 0)));
        assert_eq!(
            c.primary.partial.as_ref().map(|w| w.query_end()),
            Some(at(10, 3))
        );
        assert_eq!(c.primary.stuck.as_ref().map(|s| s.ticks), Some(1));
        assert_eq!(c.due(), &[(day_before(9, 2), day_before(9, 10))]);
        assert_eq!(c.complete_until(), Some(day_before(9, 2)));
        assert_eq!(c.ledger.len(), 2);
        // Written back, it keeps its old fields where they were, and reads the same.
        let json: serde_json::Value = serde_json::to_value(&c).unwrap();
        assert_eq!(json["end"], serde_json::json!("2026-11-24T10:00:00Z"));
        assert_eq!(
            json["partial"]["resume"]["sent_at_until"],
            serde_json::json!(["a|b"])
        );
        assert_eq!(
            json["reconcile"]["end"],
            serde_json::json!("2026-11-23T09:02:00Z")
        );
        let back: Checkpoint = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);
    }
}
