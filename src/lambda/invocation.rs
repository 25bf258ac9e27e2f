//! What an invocation asks for: a scheduled tick (any event that is neither a backfill nor a
//! tenant's), a backfill, or a registry tenant's tick or backfill.

use crate::app::App;
use crate::checkpoint::backfill::BackfillRequest;
use crate::error::TickError;
use crate::tenants::registry::valid_name;
use crate::tenants::{self, DEFAULT_TENANT, Tenant, TenantsError};
use crate::tick::job::Target;
use thiserror::Error;

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

impl From<EventError> for TickError {
    fn from(error: EventError) -> TickError {
        TickError::Event(Box::new(error))
    }
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

/// What an invocation runs, resolved once from its event and the deployment.
#[derive(Debug)]
pub(super) enum Run {
    /// A scheduled event in a deployment with a tenant registry (at `registry`): start every
    /// enabled tenant's tick.
    Dispatch {
        /// The registry's key.
        registry: String,
    },
    /// One tenant's tick or backfill: the deployment's one tenant, or a registry's.
    Tick {
        /// Whose records.
        tenant: Tenant,
        /// The schedule or a backfill.
        target: Target,
    },
}

/// Resolves `payload` for this deployment: what to run, and the tenant's label for the metrics
/// and the log (`default` for the one tenant or an event that names none, `invalid` for a name
/// that cannot be a tenant's: it does not become a metric dimension).
pub(super) async fn resolve(
    app: &App,
    payload: &serde_json::Value,
) -> (String, Result<Run, TickError>) {
    let registry = app.config().ok().and_then(|c| c.tenants_key.clone());
    let single = DEFAULT_TENANT.to_owned();
    let invocation = match classify(payload) {
        Ok(invocation) => invocation,
        Err(e) => return (single, Err(e.into())),
    };
    match (invocation, registry) {
        (Invocation::Tick, Some(registry)) => (single, Ok(Run::Dispatch { registry })),
        (Invocation::Backfill(_), Some(key)) => {
            let bucket = app
                .config()
                .map(|c| c.state_bucket.clone())
                .unwrap_or_default();
            let refused = TenantsError::BackfillNeedsTenant { bucket, key };
            (single, Err(refused.into()))
        }
        (Invocation::Tick, None) => (single, the_one(app, Target::Scheduled)),
        (Invocation::Backfill(backfill), None) => {
            (single, the_one(app, Target::Backfill(backfill)))
        }
        (Invocation::Tenant { name, backfill }, _) => {
            let target = backfill.map_or(Target::Scheduled, Target::Backfill);
            let run = tenants::tenant(app, &name, false)
                .await
                .map(|tenant| Run::Tick { tenant, target })
                .map_err(TickError::from);
            let label = if valid_name(&name) {
                name
            } else {
                "invalid".to_owned()
            };
            (label, run)
        }
    }
}

/// `target` of the deployment's one tenant.
fn the_one(app: &App, target: Target) -> Result<Run, TickError> {
    let tenant = Tenant::single(app.config()?);
    Ok(Run::Tick { tenant, target })
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
