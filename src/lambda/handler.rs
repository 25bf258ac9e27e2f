//! The Lambda handler: classify the event, run the tick (or, in a deployment with a tenant
//! registry, dispatch the tenants' ticks), return and log the summary.

use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;

use crate::app::App;
use tracing::Instrument;

use crate::error::TickError;
use crate::events::metrics::Dimensions;
use crate::events::metrics::FailedTick;
use crate::events::tenants::DispatchFailed;
use crate::events::tick::{MetricsContext, NoDeadline, TickFailed, TickFinished};
use crate::events::{Event, ms};
use crate::health::StatusSent;
use crate::lambda::invocation::{self, Run};
use crate::state::S3Store;
use crate::tenants::Tenant;
use crate::tenants::dispatch::{DISPATCH_CONCURRENCY, Pace};
use crate::tenants::invoke::LambdaInvoker;
use crate::tenants::{self, TenantsError};
use crate::tick::job::Target;
use crate::tick::{self, Reported, TickRequest};

/// Handles one invocation: every log line it writes carries the request id (in `span`), and
/// its metrics are written as one EMF document. A failure reaches Lambda with the stable
/// `errorType` of [`TickError::error_type`].
pub async fn handle(
    app: &App,
    event: LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, TickError> {
    let span = tracing::info_span!(
        "invocation",
        request_id = %event.context.request_id,
        tenant = tracing::field::Empty
    );
    // Boxed: the tick's and the dispatch's futures are deep; unboxed, the binary's future
    // would exceed the compiler's type-layout depth limit.
    Box::pin(handle_in_span(app, event)).instrument(span).await
}

async fn handle_in_span(
    app: &App,
    event: LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, TickError> {
    let started = std::time::Instant::now();
    let request = TickRequest {
        request_id: event.context.request_id.clone(),
        deadline: deadline(event.context.deadline, app.now()),
    };
    let function_name = Some(event.context.env_config.function_name.clone())
        .filter(|n| !n.is_empty())
        .or_else(|| std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok())
        .unwrap_or_else(|| "m365-trace-to-devo".to_owned());
    let api = app.config().map_or("unknown", |c| c.trace_api.as_str());
    let (tenant, resolved) = invocation::resolve(app, &event.payload).await;
    if !matches!(resolved, Ok(Run::Dispatch { .. })) {
        tracing::Span::current().record("tenant", tenant.as_str());
    }
    let result = match resolved {
        Ok(Run::Dispatch { registry }) => {
            let own = Some(event.context.invoked_function_arn.clone())
                .filter(|arn| !arn.is_empty())
                .or_else(|| std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok());
            let dimensions = Dimensions {
                function_name: &function_name,
                api,
                tenant: "dispatch",
                per_tenant: false,
            };
            return dispatch(app, &registry, own, request.deadline, dimensions).await;
        }
        Ok(Run::Tick { tenant, target }) => run(app, &request, tenant, &target).await,
        Err(e) => Reported {
            result: Err(e),
            status_line: None,
            quota_contention: 0,
        },
    };
    let metrics = MetricsContext {
        dimensions: Dimensions {
            function_name: &function_name,
            api,
            tenant: &tenant,
            per_tenant: app.config().is_ok_and(|c| c.tenant_metrics),
        },
        elapsed_ms: ms(started.elapsed()),
        at: app.now(),
    };
    match result.result {
        Ok(summary) => {
            TickFinished {
                summary: &summary,
                metrics,
            }
            .emit();
            let mut value = serde_json::to_value(&summary)?;
            if let Some(object) = value.as_object_mut() {
                object.insert("tenant".into(), tenant.into());
            }
            Ok(value)
        }
        Err(error) => {
            TickFailed {
                error_type: error.error_type(),
                error: &error,
                after: FailedTick {
                    status_line: result.status_line.map(StatusSent::as_str),
                    quota_contention: result.quota_contention,
                },
                metrics,
            }
            .emit();
            Err(error)
        }
    }
}

/// A tenant's tick or backfill (and its status line); a registry tenant's scheduled tick that
/// fails before its lease records the failure in its checkpoint for `tenants list`.
async fn run(app: &App, request: &TickRequest, tenant: Tenant, target: &Target) -> Reported {
    let registered = tenant.name.is_some();
    let key = tenant.state_key.clone();
    let result = tick::run_for(app, request, tenant, target, &mut |_| {}).await;
    if let (true, Err(e), Target::Scheduled) = (registered, &result.result, target)
        && !matches!(e, TickError::Transfer { .. })
    {
        tenants::note_failure(app, &key, e.error_type(), crate::error_chain(e)).await;
    }
    result
}

/// Kept free before the deadline for the dispatch to answer: no retry waits into it.
const DISPATCH_RESERVE: std::time::Duration = std::time::Duration::from_secs(3);

/// A scheduled event in a deployment with a registry: start every enabled tenant's tick,
/// retrying throttled invocations until [`DISPATCH_RESERVE`] before `deadline`.
async fn dispatch(
    app: &App,
    key: &str,
    own: Option<String>,
    deadline: DateTime<Utc>,
    dimensions: Dimensions<'_>,
) -> Result<serde_json::Value, TickError> {
    let config = app.config()?;
    let left = (deadline - app.now()).to_std().unwrap_or_default();
    let pace = Pace {
        concurrency: DISPATCH_CONCURRENCY,
        retry_min_delay: app.options().retry_min_delay,
        until: tokio::time::Instant::now() + left.saturating_sub(DISPATCH_RESERVE),
    };
    let outcome = match own {
        None => Err(TenantsError::NoFunctionName),
        Some(function) => {
            let store = S3Store::new(app.s3().clone(), config.state_bucket.clone());
            let invoker = LambdaInvoker::new(app.lambda().clone(), function);
            tenants::run_dispatch(&store, key, &invoker, pace, dimensions).await
        }
    };
    match outcome {
        Ok(summary) => Ok(serde_json::to_value(&summary)?),
        Err(error) => {
            DispatchFailed {
                error_type: error.error_type(),
                error: &error,
            }
            .emit();
            Err(error.into())
        }
    }
}

/// Budget used when the runtime gives no usable deadline (local emulators such as
/// `cargo lambda watch` send a fixed, already past value).
const FALLBACK_BUDGET: chrono::Duration = chrono::Duration::seconds(120);

/// The Lambda deadline (milliseconds since the epoch) as a time; a missing or past deadline
/// (as of `now`) becomes `now` + 120 s.
pub fn deadline(ms: u64, now: DateTime<Utc>) -> DateTime<Utc> {
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
        let d = deadline(600_000, Utc::now());
        assert!(d > Utc::now() + chrono::Duration::seconds(100));
        let future = Utc::now() + chrono::Duration::seconds(30);
        assert_eq!(
            deadline(
                u64::try_from(future.timestamp_millis()).unwrap(),
                Utc::now()
            ),
            DateTime::from_timestamp_millis(future.timestamp_millis()).unwrap()
        );
    }
}
