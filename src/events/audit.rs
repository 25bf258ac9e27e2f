//! Reading back from Devo: one line per audited hour, per repair, per failure, and a retried
//! Query API request.

use std::time::Duration;

use crate::events::{Event, ms};
use crate::verify::compare::HourAudit;

/// An hour was compared.
pub struct HourAudited<'a>(pub &'a HourAudit);

impl Event for HourAudited<'_> {
    const NAME: &'static str = "audit_hour";
    fn emit(&self) {
        let a = self.0;
        if a.clean() {
            tracing::info!(event = Self::NAME, hour = %a.hour.to_rfc3339(), microsoft = a.microsoft, devo = a.devo, devo_lines = a.devo_lines, missing = a.missing, extra = a.extra, stale = a.stale, "Devo holds every record of the hour");
        } else {
            tracing::warn!(event = Self::NAME, hour = %a.hour.to_rfc3339(), microsoft = a.microsoft, devo = a.devo, devo_lines = a.devo_lines, missing = a.missing, extra = a.extra, stale = a.stale, "Devo lacks records of the hour");
        }
    }
}

/// The records Devo lacked in an hour were sent again.
pub struct Repaired<'a>(pub &'a crate::verify::audit::Repair);

impl Event for Repaired<'_> {
    const NAME: &'static str = "audit_repair";
    fn emit(&self) {
        let r = self.0;
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
