//! The Lambda handler: classify the event, run the tick, return and log the summary.

use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;

use crate::app::App;
use tracing::Instrument;

use crate::error::TickError;
use crate::event::{Invocation, classify};
use crate::job::Target;
use crate::metrics::{TickMetrics, emf};
use crate::summary::LeaseReport;
use crate::tick::{self, TickRequest};

/// Handles one invocation: every log line it writes carries the request id (in `span`), and
/// its metrics are written as one EMF document. A failure reaches Lambda with the stable
/// `errorType` of [`TickError::error_type`].
pub async fn handle(
    app: &App,
    event: LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, TickError> {
    let span = tracing::info_span!("invocation", request_id = %event.context.request_id);
    handle_in_span(app, event).instrument(span).await
}

async fn handle_in_span(
    app: &App,
    event: LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, TickError> {
    let started = std::time::Instant::now();
    let request = TickRequest {
        request_id: event.context.request_id.clone(),
        deadline: deadline(event.context.deadline),
    };
    let function_name = Some(event.context.env_config.function_name.clone())
        .filter(|n| !n.is_empty())
        .or_else(|| std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok())
        .unwrap_or_else(|| "m365-trace-to-devo".to_owned());
    let api = app.config().map_or("unknown", |c| c.trace_api.as_str());
    let result = match classify(&event.payload) {
        Ok(Invocation::Tick) => {
            tick::run_target(app, &request, &Target::Scheduled, &mut |_| {}).await
        }
        Ok(Invocation::Backfill(backfill)) => {
            tick::run_target(app, &request, &Target::Backfill(backfill), &mut |_| {}).await
        }
        Err(e) => Err(TickError::Event(e)),
    };
    let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let measured = match &result {
        Ok(summary) => TickMetrics::Finished(summary),
        Err(_) => TickMetrics::Failed,
    };
    println!(
        "{}",
        emf(measured, &function_name, api, elapsed, Utc::now())
    );
    match result {
        Ok(summary) => {
            tracing::info!(
                event = "summary",
                api = summary.api,
                lease = lease_outcome(&summary.lease),
                windows = summary.counts.windows,
                pages = summary.counts.pages,
                requests = summary.counts.requests,
                retries = summary.counts.retries,
                throttled_requests = summary.counts.throttled_requests,
                records_pulled = summary.counts.records_pulled,
                events_sent = summary.counts.events_sent,
                bytes_sent = summary.counts.bytes_sent,
                duplicates_skipped = summary.counts.duplicates_skipped,
                outside_window = summary.counts.outside_window,
                missing_key = summary.counts.missing_key,
                split = summary.split.is_some(),
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
            tracing::error!(event = "tick_failed", error_type = error.error_type(), error = %error, "tick failed");
            Err(error)
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
