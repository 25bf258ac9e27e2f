//! What an invocation asks for: a scheduled tick (any event that is not a backfill) or a backfill.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use thiserror::Error;

/// A backfill request: `{"backfill": {"start": "RFC3339", "end": "RFC3339", "name": "…"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BackfillRequest {
    /// Inclusive start.
    pub start: DateTime<Utc>,
    /// Exclusive end.
    pub end: DateTime<Utc>,
    /// Optional name of the backfill's checkpoint.
    #[serde(default)]
    pub name: Option<String>,
}

/// The kind of run an event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// One scheduled tick: the EventBridge "Scheduled Event" envelope, a Scheduler input, `{}`…
    Tick,
    /// A backfill of a range.
    Backfill(BackfillRequest),
}

/// An event that names a backfill but does not describe one.
#[derive(Debug, Error)]
#[error(
    "the event's \"backfill\" is invalid: {0}; expected {{\"backfill\": {{\"start\": \"2026-11-01T00:00:00Z\", \"end\": \"2026-11-02T00:00:00Z\"}}}}"
)]
pub struct EventError(String);

/// Classifies an invocation payload.
pub fn classify(event: &serde_json::Value) -> Result<Invocation, EventError> {
    match event.get("backfill") {
        None => Ok(Invocation::Tick),
        Some(value) => serde_json::from_value::<BackfillRequest>(value.clone())
            .map(Invocation::Backfill)
            .map_err(|e| EventError(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anything_but_a_backfill_is_a_tick() {
        let scheduled = serde_json::json!({
            "version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-11-25T12:00:00Z", "region": "eu-west-1",
            "resources": ["arn:aws:events:eu-west-1:123456789012:rule/r"], "detail": {}
        });
        assert_eq!(classify(&scheduled).unwrap(), Invocation::Tick);
        assert_eq!(classify(&serde_json::json!({})).unwrap(), Invocation::Tick);
        assert_eq!(
            classify(&serde_json::Value::Null).unwrap(),
            Invocation::Tick
        );
        assert_eq!(
            classify(&serde_json::json!("input")).unwrap(),
            Invocation::Tick
        );
    }

    #[test]
    fn backfill_is_recognised_and_validated() {
        let ok = serde_json::json!({"backfill": {"start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z"}});
        assert!(matches!(classify(&ok).unwrap(), Invocation::Backfill(_)));
        let bad = serde_json::json!({"backfill": {"start": "yesterday"}});
        assert!(classify(&bad).unwrap_err().to_string().contains("backfill"));
    }
}
