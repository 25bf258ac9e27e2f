//! The checkpoint object: its format, and typed conditional reads and writes of it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::lease::Lease;
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
            last_error: None,
        }
    }

    /// Where delivery stands: the end of the last window delivered and, within the window
    /// left part-way, the instant down to which its newest part was delivered.
    pub fn position(&self) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        (
            self.end,
            self.partial
                .as_ref()
                .and_then(|p| p.resume.as_ref().map(|r| r.until)),
        )
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
    let body = serde_json::to_vec_pretty(checkpoint).map_err(|e| StateError::Invalid {
        bucket: store.bucket().to_owned(),
        key: key.to_owned(),
        problem: e.to_string(),
    })?;
    store.put(key, body, Condition::from_etag(etag)).await
}
