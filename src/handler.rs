//! The Lambda handler: classify the event, run the tick, return and log the summary.

use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;

use crate::app::App;
use crate::event::{Invocation, classify};
use crate::tick::{self, TickError, TickRequest};

/// Handles one invocation.
pub async fn handle(app: &App, event: LambdaEvent<serde_json::Value>) -> Result<serde_json::Value, lambda_runtime::Error> {
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
            let value = serde_json::to_value(&summary)?;
            tracing::info!(event = "summary", summary = %value, "tick finished");
            Ok(value)
        }
        Err(error) => {
            tracing::error!(event = "tick_failed", error = %error, "tick failed");
            Err(Box::new(error))
        }
    }
}

/// The Lambda deadline (milliseconds since the epoch) as a time.
pub fn deadline(ms: u64) -> DateTime<Utc> {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or_else(|| Utc::now() + chrono::Duration::minutes(1))
}
