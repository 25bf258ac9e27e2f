//! The fan-out: a scheduled event in a deployment with a registry runs no tick itself; it
//! starts one asynchronous invocation of its own function per enabled tenant, a bounded number
//! at a time, so that hundreds of tenants start within seconds and each tick runs (and fails)
//! in its own invocation. The invocations go through [`Invoker`], so the planning and the
//! bookkeeping are unit-tested without Lambda.

use std::future::Future;
use std::time::Instant;

use serde::Serialize;
use tokio::task::JoinSet;

use crate::tenants::TenantsError;
use crate::tenants::registry::Registry;

/// Invocations in flight at once: an asynchronous `Invoke` answers in tens of milliseconds, so
/// 32 at a time start 1,000 tenants in about a second without a burst of connections.
pub const DISPATCH_CONCURRENCY: usize = 32;

/// Starts one tenant's tick: an asynchronous invocation of the function with `payload`.
pub trait Invoker: Clone + Send + Sync + 'static {
    /// Queues the invocation; `Err` says why it was not accepted.
    fn invoke(&self, payload: Vec<u8>) -> impl Future<Output = Result<(), String>> + Send;
}

/// A tenant whose tick could not be started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The tenant.
    pub tenant: String,
    /// Why.
    pub error: String,
}

/// What a scheduled event in a deployment with a registry did: the handler's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DispatchSummary {
    /// Tenants in the registry.
    pub tenants: usize,
    /// Tenants whose tick was started, in registry order.
    pub dispatched: Vec<String>,
    /// Tenants skipped because they are disabled.
    pub disabled: Vec<String>,
    /// Tenants whose tick could not be started.
    pub failed: Vec<Failure>,
    /// Wall time of the fan-out.
    pub duration_ms: u64,
}

impl DispatchSummary {
    /// The summary, or [`TenantsError::Dispatch`] when any tick could not be started.
    pub fn into_result(self) -> Result<DispatchSummary, TenantsError> {
        let Some(first) = self.failed.first() else {
            return Ok(self);
        };
        let mut names: Vec<&str> = self
            .failed
            .iter()
            .take(20)
            .map(|f| f.tenant.as_str())
            .collect();
        if self.failed.len() > 20 {
            names.push("…");
        }
        Err(TenantsError::Dispatch {
            failed: self.failed.len(),
            total: self.failed.len() + self.dispatched.len(),
            names: names.join(", "),
            first_error: first.error.clone(),
        })
    }
}

/// The event that runs one tenant's tick.
pub fn payload(name: &str) -> Vec<u8> {
    serde_json::json!({ "tenant": name })
        .to_string()
        .into_bytes()
}

/// Starts the tick of every enabled tenant of `registry` through `invoker`, at most
/// `concurrency` invocations in flight.
pub async fn dispatch<I: Invoker>(
    invoker: &I,
    registry: &Registry,
    concurrency: usize,
) -> DispatchSummary {
    let started = Instant::now();
    let mut summary = DispatchSummary {
        tenants: registry.tenants.len(),
        disabled: registry
            .tenants
            .iter()
            .filter(|e| !e.enabled)
            .map(|e| e.name.clone())
            .collect(),
        ..DispatchSummary::default()
    };
    let mut outcomes: Vec<(usize, String, Result<(), String>)> = Vec::new();
    let mut in_flight = JoinSet::new();
    let names: Vec<String> = registry.enabled().map(|e| e.name.clone()).collect();
    for (index, name) in names.into_iter().enumerate() {
        if in_flight.len() >= concurrency.max(1)
            && let Some(done) = in_flight.join_next().await
        {
            outcomes.push(joined(done));
        }
        let invoker = invoker.clone();
        in_flight.spawn(async move {
            let result = invoker.invoke(payload(&name)).await;
            (index, name, result)
        });
    }
    while let Some(done) = in_flight.join_next().await {
        outcomes.push(joined(done));
    }
    outcomes.sort_by_key(|(index, _, _)| *index);
    for (_, tenant, result) in outcomes {
        match result {
            Ok(()) => summary.dispatched.push(tenant),
            Err(error) => summary.failed.push(Failure { tenant, error }),
        }
    }
    summary.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    summary
}

/// A finished invocation task; one that panicked counts as failed (its name is lost, so it is
/// reported as such).
fn joined(
    done: Result<(usize, String, Result<(), String>), tokio::task::JoinError>,
) -> (usize, String, Result<(), String>) {
    done.unwrap_or_else(|e| {
        (
            usize::MAX,
            "(unknown)".to_owned(),
            Err(format!("the invocation task failed: {e}")),
        )
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;
    use crate::tenants::registry::{Entry, Location};

    #[derive(Clone, Default)]
    struct Recorder {
        payloads: Arc<Mutex<Vec<String>>>,
        in_flight: Arc<Mutex<(usize, usize)>>,
        refuse: Option<&'static str>,
    }

    impl Invoker for Recorder {
        async fn invoke(&self, payload: Vec<u8>) -> Result<(), String> {
            let text = String::from_utf8(payload).unwrap();
            {
                let mut f = self.in_flight.lock().unwrap();
                f.0 += 1;
                f.1 = f.1.max(f.0);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.in_flight.lock().unwrap().0 -= 1;
            if self.refuse.is_some_and(|r| text.contains(r)) {
                return Err("TooManyRequestsException: Rate exceeded".into());
            }
            self.payloads.lock().unwrap().push(text);
            Ok(())
        }
    }

    fn registry(n: usize) -> Registry {
        Registry {
            tenants: (0..n)
                .map(|i| Entry {
                    name: format!("t{i:03}"),
                    secret_id: format!("s/{i}"),
                    enabled: i % 10 != 3,
                    devo_hostname: None,
                    devo_tag: None,
                    reset_before: None,
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn every_enabled_tenant_is_started_once_and_disabled_ones_are_skipped() {
        let invoker = Recorder::default();
        let summary = dispatch(&invoker, &registry(100), 8).await;
        assert_eq!(summary.tenants, 100);
        assert_eq!(summary.disabled.len(), 10);
        assert!(summary.disabled.contains(&"t003".to_owned()));
        assert_eq!(summary.dispatched.len(), 90);
        assert_eq!(summary.dispatched[0], "t000", "registry order");
        let mut payloads = invoker.payloads.lock().unwrap().clone();
        payloads.sort();
        payloads.dedup();
        assert_eq!(payloads.len(), 90);
        assert!(payloads.contains(&r#"{"tenant":"t000"}"#.to_owned()));
        assert!(!payloads.iter().any(|p| p.contains("t003")));
        let peak = invoker.in_flight.lock().unwrap().1;
        assert!(peak <= 8 && peak > 1, "bounded and concurrent: {peak}");
        assert!(summary.clone().into_result().is_ok());
    }

    #[tokio::test]
    async fn an_empty_registry_dispatches_nothing() {
        let summary = dispatch(&Recorder::default(), &Registry::default(), 8).await;
        assert_eq!((summary.tenants, summary.dispatched.len()), (0, 0));
        assert!(summary.into_result().is_ok());
    }

    #[tokio::test]
    async fn a_refused_invocation_is_reported_by_name_and_the_others_still_start() {
        let invoker = Recorder {
            refuse: Some("t005"),
            ..Recorder::default()
        };
        let summary = dispatch(&invoker, &registry(10), 4).await;
        assert_eq!(summary.dispatched.len(), 8);
        assert_eq!(
            summary.failed,
            vec![Failure {
                tenant: "t005".into(),
                error: "TooManyRequestsException: Rate exceeded".into()
            }]
        );
        let err = summary.into_result().unwrap_err();
        assert_eq!(err.error_type(), "Dispatch");
        let text = err.to_string();
        assert!(text.contains("1 of 9") && text.contains("(t005)"), "{text}");
    }

    #[test]
    fn the_registry_location_is_in_every_registry_error() {
        let at = Location {
            bucket: "b",
            key: "k.json",
        };
        let err = Registry::parse(at, b"{}").unwrap_err().to_string();
        assert!(err.contains("s3://b/k.json"), "{err}");
    }
}
