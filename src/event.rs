//! What an invocation asks for: a scheduled tick (any event that is neither a backfill nor a
//! tenant's), a backfill, or a registry tenant's tick or backfill.

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
    /// A registry tenant's tick (`{"tenant": "NAME"}`) or backfill (with `"backfill"`).
    Tenant {
        /// The tenant's registry name.
        name: String,
        /// Its backfill, if one is asked for.
        backfill: Option<BackfillRequest>,
    },
}

/// An event that names a backfill or a tenant but does not describe one.
#[derive(Debug, Error)]
pub enum EventError {
    /// `"backfill"` is not a range.
    #[error(
        "the event's \"backfill\" is invalid: {0}; expected {{\"backfill\": {{\"start\": \"2026-11-01T00:00:00Z\", \"end\": \"2026-11-02T00:00:00Z\"}}}}"
    )]
    Backfill(String),
    /// `"tenant"` is not a name.
    #[error(
        "the event's \"tenant\" must be a tenant's name as a string, as {{\"tenant\": \"contoso\"}}; found {0}"
    )]
    Tenant(String),
}

/// Classifies an invocation payload.
pub fn classify(event: &serde_json::Value) -> Result<Invocation, EventError> {
    let backfill = event
        .get("backfill")
        .map(|value| {
            serde_json::from_value::<BackfillRequest>(value.clone())
                .map_err(|e| EventError::Backfill(e.to_string()))
        })
        .transpose()?;
    match (event.get("tenant"), backfill) {
        (Some(serde_json::Value::String(name)), backfill) => Ok(Invocation::Tenant {
            name: name.clone(),
            backfill,
        }),
        (Some(other), _) => Err(EventError::Tenant(other.to_string())),
        (None, Some(backfill)) => Ok(Invocation::Backfill(backfill)),
        (None, None) => Ok(Invocation::Tick),
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

    #[test]
    fn a_tenant_event_names_its_tenant_and_maybe_a_backfill() {
        assert_eq!(
            classify(&serde_json::json!({"tenant": "contoso"})).unwrap(),
            Invocation::Tenant {
                name: "contoso".into(),
                backfill: None
            }
        );
        let both = serde_json::json!({"tenant": "contoso", "backfill": {"start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z"}});
        assert!(matches!(
            classify(&both).unwrap(),
            Invocation::Tenant {
                backfill: Some(_),
                ..
            }
        ));
        let err = classify(&serde_json::json!({"tenant": 7}))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"tenant\" must be a tenant's name") && err.contains("found 7"),
            "{err}"
        );
    }
}
