//! Who may run: the lease found, taken over or lost.

use chrono::{DateTime, Utc};

use crate::events::Event;

/// Another invocation holds a live lease: this one pulls nothing.
pub struct Held<'a> {
    pub holder: &'a str,
    /// Until when.
    pub until: DateTime<Utc>,
}

impl Event for Held<'_> {
    const NAME: &'static str = "lease_held";
    fn emit(&self) {
        tracing::warn!(event = Self::NAME, holder = %self.holder, until = %self.until.to_rfc3339(), "another invocation holds the lease; nothing pulled");
    }
}

/// A live lease carries this invocation's own request id: a second delivery of the same event
/// while the first runs. This one leaves without pulling or writing.
pub struct Duplicate<'a> {
    /// The request id.
    pub owner: &'a str,
    /// Until when the first delivery holds the lease.
    pub until: DateTime<Utc>,
}

impl Event for Duplicate<'_> {
    const NAME: &'static str = "lease_duplicate";
    fn emit(&self) {
        tracing::warn!(event = Self::NAME, owner = %self.owner, until = %self.until.to_rfc3339(), "a second delivery of the same event while the first holds the lease; nothing pulled");
    }
}

/// An expired lease was taken over (its owner crashed or timed out).
pub struct TakenOver<'a> {
    /// The owner whose lease expired.
    pub previous_owner: &'a str,
    /// When it expired.
    pub expired_at: DateTime<Utc>,
}

impl Event for TakenOver<'_> {
    const NAME: &'static str = "lease_taken_over";
    fn emit(&self) {
        tracing::warn!(event = Self::NAME, previous_owner = %self.previous_owner, expired_at = %self.expired_at.to_rfc3339(), "took over an expired lease");
    }
}

/// A conditional write failed: another invocation wrote the checkpoint; this one stops.
pub struct Lost {
    /// The step that found out: claim, commit or release.
    pub at: &'static str,
}

impl Event for Lost {
    const NAME: &'static str = "lease_lost";
    fn emit(&self) {
        tracing::error!(
            event = Self::NAME,
            at = self.at,
            "the checkpoint was changed by another invocation; this one stops"
        );
    }
}

/// The lease could not be given back after a failure; it expires by itself.
pub struct ReleaseFailed<'a> {
    pub error: &'a dyn std::fmt::Display,
}

impl Event for ReleaseFailed<'_> {
    const NAME: &'static str = "release_failed";
    fn emit(&self) {
        tracing::warn!(event = Self::NAME, error = %self.error, "could not release the lease; it expires by itself");
    }
}
