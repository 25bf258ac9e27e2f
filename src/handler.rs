//! The Lambda handler: classify the event, run the tick, return and log the summary.

use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;

use crate::app::App;
use tracing::Instrument;

use crate::error::TickError;
use crate::event::{Invocation, classify};
use crate::events::tick::{MetricsContext, NoDeadline, TickFailed, TickFinished};
use crate::events::{Event, ms};
use crate::job::Target;
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
    let metrics = MetricsContext {
        function_name: &function_name,
        api,
        elapsed_ms: ms(started.elapsed()),
    };
    match result {
        Ok(summary) => {
            TickFinished {
                summary: &summary,
                metrics,
            }
            .emit();
            Ok(serde_json::to_value(&summary)?)
        }
        Err(error) => {
            TickFailed {
                error_type: error.error_type(),
                error: &error,
                metrics,
            }
            .emit();
            Err(error)
        }
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
            NoDeadline { deadline_ms: ms }.emit();
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
