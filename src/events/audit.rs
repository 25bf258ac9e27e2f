//! Reading back from Devo: one line per audited hour, per repair, per failure, and a retried
//! Query API request.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::events::{Event, ms};

/// An hour was compared: distinct records on each side, and Devo's lines.
pub struct HourAudited {
    pub hour: DateTime<Utc>,
    pub microsoft: u64,
    pub devo: u64,
    pub devo_lines: u64,
    pub missing: u64,
    pub extra: u64,
    pub stale: u64,
}

impl Event for HourAudited {
    const NAME: &'static str = "audit_hour";
    fn emit(&self) {
        let a = self;
        if a.missing == 0 && a.stale == 0 {
            tracing::info!(event = Self::NAME, hour = %a.hour.to_rfc3339(), microsoft = a.microsoft, devo = a.devo, devo_lines = a.devo_lines, missing = a.missing, extra = a.extra, stale = a.stale, "Devo holds every record of the hour");
        } else {
            tracing::warn!(event = Self::NAME, hour = %a.hour.to_rfc3339(), microsoft = a.microsoft, devo = a.devo, devo_lines = a.devo_lines, missing = a.missing, extra = a.extra, stale = a.stale, "Devo lacks records of the hour");
        }
    }
}

/// The records Devo lacked in an hour were sent again.
pub struct Repaired {
    pub hour: DateTime<Utc>,
    pub sent: u64,
    pub missing_sent: u64,
    pub stale_sent: u64,
    /// Whether the whole hour was gone through.
    pub complete: bool,
}

impl Event for Repaired {
    const NAME: &'static str = "audit_repair";
    fn emit(&self) {
        let r = self;
        tracing::info!(event = Self::NAME, hour = %r.hour.to_rfc3339(), sent = r.sent, missing_sent = r.missing_sent, stale_sent = r.stale_sent, complete = r.complete, "sent the records Devo lacked");
    }
}

/// The audit stopped on a failure (what it compared before is reported).
pub struct AuditFailed<'a> {
    /// The stable `errorType`.
    pub error_type: &'a str,
    pub error: &'a str,
}

impl Event for AuditFailed<'_> {
    const NAME: &'static str = "audit_failed";
    fn emit(&self) {
        tracing::error!(
            event = Self::NAME,
            error_type = self.error_type,
            error = self.error,
            "the audit stopped"
        );
    }
}

/// A Query API request failed transiently and is tried again after `delay`.
pub struct QueryRetry<'a> {
    pub delay: Duration,
    pub error: &'a dyn std::fmt::Display,
}

impl Event for QueryRetry<'_> {
    const NAME: &'static str = "devo_query_retry";
    fn emit(&self) {
        tracing::warn!(event = Self::NAME, delay_ms = ms(self.delay), error = %self.error, "retrying a Devo Query API request");
    }
}
