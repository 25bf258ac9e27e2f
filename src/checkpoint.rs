//! The checkpoint object: its format, and typed conditional reads and writes of it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::lease::Lease;
use crate::ledger::LedgerPart;
use crate::split::Stuck;
use crate::state::{Condition, StateError, StateStore};
use crate::window::Window;

/// Format version written in every checkpoint.
pub const FORMAT_VERSION: u32 = 1;

/// The state that survives between ticks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format version.
    pub version: u32,
    /// End of the last delivered window: every record received before it was sent.
    #[serde(default)]
    pub end: Option<DateTime<Utc>>,
    /// A window whose newest part was delivered when a tick ran out of time.
    #[serde(default)]
    pub partial: Option<Window>,
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
    /// The `RESET_BEFORE` value this checkpoint last restarted for (scheduled checkpoint only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_before: Option<DateTime<Utc>>,
    /// The range a backfill checkpoint belongs to (backfill checkpoints only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<crate::backfill::Range>,
    /// The span that made no progress in the last ticks, which the plan splits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stuck: Option<Stuck>,
    /// The reconciliation pass's position, inside the spans of `ledger`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile: Option<Position>,
    /// Ledger parts the fresh pass wrote that the reconciliation pass has yet to read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ledger: Vec<LedgerPart>,
    /// How the last tick failed, cleared by the next one that finishes (`tenants list`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
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

/// Which position a pass moves: the primary one (the single, fresh or backfill pass: `end`,
/// `partial`, `stuck`) or the reconciliation pass's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// `end`, `partial`, `stuck`.
    Primary,
    /// `reconcile`.
    Reconcile,
}

/// Where a pass stands: the end of its last delivered window, a window left part-way, and a
/// span that made no progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Every record received before it was delivered by this pass.
    #[serde(default)]
    pub end: Option<DateTime<Utc>>,
    /// A window whose newest part was delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<Window>,
    /// A span that made no progress in the last ticks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stuck: Option<Stuck>,
}

/// A pass's position in the checkpoint, to move it.
#[derive(Debug)]
pub struct PositionMut<'a> {
    /// See [`Position::end`].
    pub end: &'a mut Option<DateTime<Utc>>,
    /// See [`Position::partial`].
    pub partial: &'a mut Option<Window>,
    /// See [`Position::stuck`].
    pub stuck: &'a mut Option<Stuck>,
}

impl Checkpoint {
    /// A checkpoint that has never delivered anything.
    pub fn empty(now: DateTime<Utc>) -> Checkpoint {
        Checkpoint {
            version: FORMAT_VERSION,
            end: None,
            partial: None,
            lease: None,
            updated_at: now,
            api: None,
            recent_requests: Vec::new(),
            reset_before: None,
            backfill: None,
            stuck: None,
            reconcile: None,
            ledger: Vec::new(),
            last_error: None,
        }
    }

    /// The position `track` moves.
    pub fn position_of(&self, track: Track) -> Position {
        match track {
            Track::Primary => Position {
                end: self.end,
                partial: self.partial.clone(),
                stuck: self.stuck.clone(),
            },
            Track::Reconcile => self.reconcile.clone().unwrap_or_default(),
        }
    }

    /// The position `track` moves, to move it.
    pub fn position_mut(&mut self, track: Track) -> PositionMut<'_> {
        match track {
            Track::Primary => PositionMut {
                end: &mut self.end,
                partial: &mut self.partial,
                stuck: &mut self.stuck,
            },
            Track::Reconcile => {
                let p = self.reconcile.get_or_insert_with(Position::default);
                PositionMut {
                    end: &mut p.end,
                    partial: &mut p.partial,
                    stuck: &mut p.stuck,
                }
            }
        }
    }

    /// The instant before which every record is in Devo in its complete form: the oldest
    /// ledger span not yet reconciled, or the primary position when none waits.
    pub fn complete_until(&self) -> Option<DateTime<Utc>> {
        let reconciled = self.reconcile.as_ref().and_then(|p| p.end);
        let waiting = self
            .ledger
            .iter()
            .map(|p| reconciled.map_or(p.start, |r| r.max(p.start)))
            .min();
        match (waiting, self.end) {
            (Some(w), Some(e)) => Some(w.min(e)),
            (w, e) => w.or(e),
        }
    }

    /// Where `track` stands, as compared tick to tick: the end of its last window delivered
    /// and, within the window left part-way, the instant down to which its newest part was
    /// delivered.
    pub fn standing(&self, track: Track) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        let p = self.position_of(track);
        let until = p
            .partial
            .as_ref()
            .and_then(|w| w.resume.as_ref().map(|r| r.until));
        (p.end, until)
    }
}

/// A checkpoint as read, with the ETag that a replacement must match.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The content.
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
    let checkpoint: Checkpoint =
        serde_json::from_slice(&object.body).map_err(|e| invalid(e.to_string()))?;
    if checkpoint.version != FORMAT_VERSION {
        return Err(invalid(format!(
            "format version {} is not {FORMAT_VERSION}",
            checkpoint.version
        )));
    }
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

/// Writes like [`write`] a checkpoint of a tick under its lease: its bytes carry the lease
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
