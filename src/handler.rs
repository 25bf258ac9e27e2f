//! The Lambda handler: classify the event, run the tick, return and log the summary.

use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;

use crate::app::App;
use crate::event::{Invocation, classify};
use crate::summary::LeaseReport;
use crate::tick::{self, TickError, TickRequest};

/// Handles one invocation.
pub async fn handle(
    app: &App,
    event: LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, lambda_runtime::Error> {
    let request = TickRequest {
        request_id: event.context.request_id.clone(),
        deadline: deadline(event.context.deadline),
    };
    let result = match classify(&event.payload)? {
        Invocation::Tick => tick::run(app, &request).await,
        Invocation::Backfill(_) => Err(TickError::BackfillUnsupported),
    };
    match result {
        Ok(summary) => {
            tracing::info!(
                event = "summary",
                api = summary.api,
                lease = lease_outcome(&summary.lease),
                windows = summary.counts.windows,
                pages = summary.counts.pages,
                requests = summary.counts.requests,
                records_pulled = summary.counts.records_pulled,
                events_sent = summary.counts.events_sent,
                bytes_sent = summary.counts.bytes_sent,
                duplicates_skipped = summary.counts.duplicates_skipped,
                checkpoint = summary.checkpoint.map(|t| t.to_rfc3339()),
                partial = summary.partial.is_some(),
                caught_up = summary.caught_up,
                duration_ms = summary.duration_ms,
                "tick finished"
            );
            Ok(serde_json::to_value(&summary)?)
        }
        Err(error) => {
            tracing::error!(event = "tick_failed", error = %error, "tick failed");
            Err(Box::new(error))
        }
    }
}

fn lease_outcome(report: &LeaseReport) -> &'static str {
    match report {
        LeaseReport::Acquired { .. } => "acquired",
        LeaseReport::TakenOver { .. } => "taken_over",
        LeaseReport::HeldByOther { .. } => "held_by_other",
        LeaseReport::Lost { .. } => "lost",
    }
}

/// Budget used when the runtime gives no usable deadline (local emulators such as
/// `cargo lambda watch` send a fixed, already past value).
const FALLBACK_BUDGET: chrono::Duration = chrono::Duration::seconds(120);

/// The Lambda deadline (milliseconds since the epoch) as a time; a missing or past deadline
/// becomes now + 120 s.
pub fn deadline(ms: u64) -> DateTime<Utc> {
    let now = Utc::now();
    match i64::try_from(ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
    {
        Some(deadline) if deadline > now => deadline,
        _ => {
            tracing::warn!(
                event = "no_deadline",
                deadline_ms = ms,
                "the runtime gave no future deadline; using 120 s"
            );
            now + FALLBACK_BUDGET
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_past_deadline_from_a_local_emulator_becomes_a_usable_budget() {
        let d = deadline(600_000);
        assert!(d > Utc::now() + chrono::Duration::seconds(100));
        let future = Utc::now() + chrono::Duration::seconds(30);
        assert_eq!(
            deadline(u64::try_from(future.timestamp_millis()).unwrap()),
            DateTime::from_timestamp_millis(future.timestamp_millis()).unwrap()
        );
    }
}
