//! A tick's last line: its summary (or its failure) and its metrics, as one EMF document.

use chrono::{DateTime, Utc};

use crate::events::Event;
use crate::events::metrics::{Dimensions, FailedTick, TickMetrics, emf};
use crate::summary::{LeaseReport, Summary};

/// Where a tick's metrics belong.
#[derive(Debug, Clone, Copy)]
pub struct MetricsContext<'a> {
    /// The function, the API and the tenant (the dimensions), and whether lag and failures are
    /// also published per tenant.
    pub dimensions: Dimensions<'a>,
    /// The invocation's wall time.
    pub elapsed_ms: u64,
    /// When the tick ended: the metrics' timestamp, and what the lag is measured against.
    pub at: DateTime<Utc>,
}

/// A tick finished: the summary line, then the EMF document of its counters.
pub struct TickFinished<'a> {
    /// The summary returned to Lambda.
    pub summary: &'a Summary,
    /// The metrics' dimensions and duration.
    pub metrics: MetricsContext<'a>,
}

impl Event for TickFinished<'_> {
    const NAME: &'static str = "summary";
    fn emit(&self) {
        let (s, m) = (self.summary, &self.metrics);
        println!(
            "{}",
            emf(TickMetrics::Finished(s), &m.dimensions, m.elapsed_ms, m.at)
        );
        let c = &s.counts;
        // The schedule's lag (the complete record's, with two passes); none for a backfill.
        let lag_seconds = s
            .complete_until
            .or(s.checkpoint)
            .filter(|_| s.backfill.is_none())
            .map(|end| (m.at - end).num_seconds().max(0));
        tracing::info!(
            event = Self::NAME,
            // Also in `span.tenant`; kept on the line for the dashboard's `stats … by tenant`
            // and the queries operators saved before the spans.
            tenant = m.dimensions.tenant,
            api = s.api,
            lease = lease_outcome(&s.lease),
            windows = c.windows,
            pages = c.pages,
            requests = c.requests,
            retries = c.retries,
            throttled_requests = c.throttled_requests,
            records_pulled = c.records_pulled,
            events_sent = c.events_sent,
            bytes_sent = c.bytes_sent,
            duplicates_skipped = c.duplicates_skipped,
            outside_window = c.outside_window,
            missing_key = c.missing_key,
            late_records = c.late_records,
            status_changes = c.status_changes,
            ledger_missing = c.ledger_missing,
            quota_contention = c.quota_contention,
            request_budget = s.request_budget,
            status_line = s.status_line,
            passes = %s.passes.iter().map(|p| p.pass).collect::<Vec<_>>().join(","),
            complete_until = s.complete_until.map(|t| t.to_rfc3339()),
            split = s.split.is_some(),
            checkpoint = s.checkpoint.map(|t| t.to_rfc3339()),
            lag_seconds,
            partial = s.partial.is_some(),
            caught_up = s.caught_up,
            backfill = s.backfill.as_ref().map(|b| b.name.as_str()),
            remaining_seconds = s.backfill.as_ref().map(|b| b.remaining_seconds),
            reset = s.reset.is_some(),
            duration_ms = s.duration_ms,
            "tick finished"
        );
    }
}

/// A tick failed: the error line with its `errorType`, then the EMF document (`TickFailed` 1).
pub struct TickFailed<'a> {
    /// The failure's stable `errorType`.
    pub error_type: &'a str,
    pub error: &'a dyn std::fmt::Display,
    /// What is known of the failed tick besides its error.
    pub after: FailedTick<'a>,
    /// The metrics' dimensions and duration.
    pub metrics: MetricsContext<'a>,
}

impl Event for TickFailed<'_> {
    const NAME: &'static str = "tick_failed";
    fn emit(&self) {
        let m = &self.metrics;
        println!(
            "{}",
            emf(
                TickMetrics::Failed(self.after),
                &m.dimensions,
                m.elapsed_ms,
                m.at
            )
        );
        tracing::error!(
            event = Self::NAME,
            tenant = m.dimensions.tenant,
            error_type = self.error_type,
            error = %self.error,
            status_line = self.after.status_line,
            quota_contention = self.after.quota_contention,
            "tick failed"
        );
    }
}

/// The runtime gave no future deadline (local emulators): the tick uses a fixed budget.
pub struct NoDeadline {
    /// What the runtime sent.
    pub deadline_ms: u64,
}

impl Event for NoDeadline {
    const NAME: &'static str = "no_deadline";
    fn emit(&self) {
        tracing::warn!(
            event = Self::NAME,
            deadline_ms = self.deadline_ms,
            "the runtime gave no future deadline; using 120 s"
        );
    }
}

fn lease_outcome(report: &LeaseReport) -> &'static str {
    match report {
        LeaseReport::Acquired { .. } => "acquired",
        LeaseReport::TakenOver { .. } => "taken_over",
        LeaseReport::HeldByOther { .. } => "held_by_other",
        LeaseReport::Duplicate { .. } => "duplicate",
        LeaseReport::Lost { .. } => "lost",
    }
}
