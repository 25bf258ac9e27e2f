//! The Lambda handler: classify the event, run the tick, return and log the summary.

use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;

use crate::app::App;
use crate::event::{Invocation, classify};
use crate::summary::LeaseReport;
use crate::tick::{self, Target, TickRequest};

/// Handles one invocation.
pub async fn handle(
    app: &App,
    event: LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, lambda_runtime::Error> {
    let request = TickRequest {
        request_id: event.context.request_id.clone(),
        deadline: deadline(event.context.deadline),
    };
    let target = match classify(&event.payload)? {
        Invocation::Tick => Target::Scheduled,
        Invocation::Backfill(backfill) => Target::Backfill(backfill),
    };
    let result = tick::run_target(app, &request, &target, &mut |_| {}).await;
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
                backfill = summary.backfill.as_ref().map(|b| b.name.as_str()),
                remaining_seconds = summary.backfill.as_ref().map(|b| b.remaining_seconds),
                reset = summary.reset.is_some(),
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

/// The Lambda deadline (milliseconds since the epoch) as a time.
pub fn deadline(ms: u64) -> DateTime<Utc> {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or_else(|| Utc::now() + chrono::Duration::minutes(1))
}
