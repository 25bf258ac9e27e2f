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
            details_sent = c.details_sent,
            details_queued = c.details_queued,
            details_dropped = c.details_dropped,
            cutover_suppressed = c.cutover_suppressed,
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

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use chrono::TimeZone;

    use super::*;
    use crate::events::metrics::Dimensions;
    use crate::summary::Counts;

    /// The log lines written while it is in use.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_summary_line_carries_every_field_and_the_docs_name_each() {
        let at = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        let checkpoint = crate::checkpoint::Checkpoint::empty(at);
        let lease = LeaseReport::Acquired {
            owner: "r".into(),
            expires_at: at,
        };
        let counts = Counts {
            details_sent: 9,
            quota_contention: 1,
            ..Counts::default()
        };
        let started = std::time::Instant::now();
        let mut summary = Summary::finished("graph", lease, counts, &checkpoint, true, started);
        summary.checkpoint = Some(at);
        summary.complete_until = Some(at);
        summary.request_budget = Some(45);
        summary.status_line = Some("sent");
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            TickFinished {
                summary: &summary,
                metrics: MetricsContext {
                    dimensions: Dimensions {
                        function_name: "collector",
                        api: "graph",
                        tenant: "default",
                        per_tenant: false,
                    },
                    elapsed_ms: 900,
                    at,
                },
            }
            .emit();
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        // With its message, more than the 32 fields older versions of tracing allowed
        // (Cargo.toml asks for 0.1.44, which has no such limit): every one written, a
        // backfill's two only when set.
        let fields: Vec<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .filter(|k| !["timestamp", "level", "target", "message"].contains(k))
            .collect();
        assert_eq!(fields.len(), 34, "{line}");
        assert_eq!(
            (&line["details_sent"], &line["details_queued"]),
            (&serde_json::json!(9), &serde_json::json!(0))
        );
        assert_eq!(line["quota_contention"], serde_json::json!(1));
        assert_eq!(line["status_line"], serde_json::json!("sent"));
        assert!(line["duration_ms"].is_u64(), "{line}");
        let docs = include_str!("../../docs/operations.md");
        let undocumented: Vec<&&str> = fields
            .iter()
            .chain(&["backfill", "remaining_seconds"])
            .filter(|f| !docs.contains(&format!("`{f}`")))
            .collect();
        assert!(
            undocumented.is_empty(),
            "docs/operations.md does not name {undocumented:?}"
        );
    }
}
