//! The reconciliation pass's ledger: a part it could not use.

use chrono::{DateTime, Utc};

use crate::events::Event;

/// A ledger part listed in the checkpoint could not be used (absent, unreadable after a retry,
/// or not the part listed): its span's records are sent again, a repeat and never a loss, and
/// counted in the summary's `ledger_missing`.
pub struct LedgerMissing<'a> {
    /// The object's key.
    pub key: &'a str,
    /// Start of its span.
    pub start: DateTime<Utc>,
    /// End of its span.
    pub end: DateTime<Utc>,
    /// `absent`, `unreadable` or `corrupt`.
    pub reason: &'static str,
    /// What went wrong (the S3 error, or how the bytes disagree with the checkpoint).
    pub detail: &'a dyn std::fmt::Display,
}

impl Event for LedgerMissing<'_> {
    const NAME: &'static str = "ledger_missing";
    fn emit(&self) {
        tracing::warn!(event = Self::NAME, key = %self.key, start = %self.start.to_rfc3339(),
            end = %self.end.to_rfc3339(), reason = self.reason, detail = %self.detail,
            "a ledger part could not be used; its span's records are sent again");
    }
}
