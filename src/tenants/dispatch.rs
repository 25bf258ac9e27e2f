//! The fan-out: a scheduled event in a deployment with a registry runs no tick itself; it
//! starts one asynchronous invocation of its own function per enabled tenant, a bounded number
//! at a time, so that hundreds of tenants start within seconds and each tick runs (and fails)
//! in its own invocation. The invocations go through [`Invoker`], so the planning and the
//! bookkeeping are unit-tested without Lambda.

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinSet;

use crate::tenants::TenantsError;
use crate::tenants::registry::{Invalid, Registry, UnknownField};
pub use crate::tenants::retry::{Invoker, Refused};
use crate::tenants::retry::{Started, start};

/// Invocations in flight at once: an asynchronous `Invoke` answers in tens of milliseconds, so
/// 32 at a time start 1,000 tenants in about a second without a burst of connections.
pub const DISPATCH_CONCURRENCY: usize = 32;

/// How the dispatch paces itself: how many at once, the first wait before a retry, and when
/// it must stop retrying (the invocation's deadline minus what answering needs).
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Invocations in flight at once.
    pub concurrency: usize,
    /// First wait before retrying a throttled invocation (then doubling, with jitter).
    pub retry_min_delay: Duration,
    /// No retry waits past this instant.
    pub until: tokio::time::Instant,
}

/// A tenant whose tick could not be started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub tenant: String,
    /// Why (the last refusal).
    pub error: String,
    /// Attempts made.
    pub attempts: u32,
}

/// What a scheduled event in a deployment with a registry did: the handler's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DispatchSummary {
    /// Entries in the registry, valid or not.
    pub tenants: usize,
    /// Tenants whose tick was started, in registry order.
    pub dispatched: Vec<String>,
    /// Tenants skipped because they are disabled.
    pub disabled: Vec<String>,
    /// Entries that cannot run, each with its position, name and problem (not started; the
    /// others were).
    pub invalid: Vec<Invalid>,
    /// Fields this version does not read (accepted; a typo shows here).
    pub unknown_fields: Vec<UnknownField>,
    /// Tenants whose tick could not be started, after retries.
    pub failed: Vec<Failure>,
    /// Invocations tried again after throttling or a server error.
    pub retries: u32,
    /// Wall time of the fan-out.
    pub duration_ms: u64,
}

impl DispatchSummary {
    /// The summary, or [`TenantsError::Dispatch`] when tenants were to be started and none
    /// could be (a missing permission, the function gone: nothing ran, the invocation fails).
    /// Failures beside started tenants are the summary's `failed` and the `DispatchFailed`
    /// metric, not a failed invocation.
    pub fn into_result(self) -> Result<DispatchSummary, TenantsError> {
        let Some(first) = self.failed.first().filter(|_| self.dispatched.is_empty()) else {
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

type Outcome = (usize, String, Started);

/// Starts the tick of every enabled valid tenant of `registry` through `invoker`, at most
/// `pace.concurrency` invocations in flight, each retried on throttling within the pace.
pub async fn dispatch<I: Invoker>(invoker: &I, registry: &Registry, pace: Pace) -> DispatchSummary {
    let started = Instant::now();
    let mut summary = DispatchSummary {
        tenants: registry.tenants.len() + registry.invalid.len(),
        disabled: registry
            .tenants
            .iter()
            .filter(|e| !e.enabled)
            .map(|e| e.name.clone())
            .collect(),
        invalid: registry.invalid.clone(),
        unknown_fields: registry.unknown_fields.clone(),
        ..DispatchSummary::default()
    };
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut in_flight = JoinSet::new();
    let names: Vec<String> = registry.enabled().map(|e| e.name.clone()).collect();
    for (index, name) in names.into_iter().enumerate() {
        if in_flight.len() >= pace.concurrency.max(1)
            && let Some(done) = in_flight.join_next().await
        {
            outcomes.push(joined(done));
        }
        let invoker = invoker.clone();
        in_flight.spawn(async move {
            let outcome = start(&invoker, payload(&name), pace.retry_min_delay, pace.until).await;
            (index, name, outcome)
        });
    }
    while let Some(done) = in_flight.join_next().await {
        outcomes.push(joined(done));
    }
    outcomes.sort_by_key(|(index, _, _)| *index);
    for (_, tenant, outcome) in outcomes {
        summary.retries += outcome.attempts.saturating_sub(1);
        match outcome.refused {
            None => summary.dispatched.push(tenant),
            Some(refused) => summary.failed.push(Failure {
                tenant,
                error: refused.message,
                attempts: outcome.attempts,
            }),
        }
    }
    summary.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    summary
}

/// A finished invocation task; one that panicked counts as failed (its name is lost, so it is
/// reported as such).
fn joined(done: Result<Outcome, tokio::task::JoinError>) -> Outcome {
    done.unwrap_or_else(|e| {
        let refused = Refused {
            status: None,
            code: None,
            message: format!("the invocation task failed: {e}"),
        };
        let outcome = Started {
            attempts: 1,
            refused: Some(refused),
        };
        (usize::MAX, "(unknown)".to_owned(), outcome)
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::tenants::registry::{Entry, Location};

    /// Counts attempts per payload; refuses those containing `refuse` with `status`, the first
    /// `throttle_first` attempts of each payload with 429.
    #[derive(Clone, Default)]
    struct Recorder {
        payloads: Arc<Mutex<Vec<String>>>,
        attempts: Arc<Mutex<std::collections::HashMap<String, u32>>>,
        in_flight: Arc<Mutex<(usize, usize)>>,
        refuse: Option<(&'static str, u16)>,
        throttle_first: u32,
    }

    impl Invoker for Recorder {
        async fn invoke(&self, payload: Vec<u8>) -> Result<(), Refused> {
            let text = String::from_utf8(payload).unwrap();
            let attempt = {
                let mut a = self.attempts.lock().unwrap();
                let n = a.entry(text.clone()).or_default();
                *n += 1;
                *n
            };
            {
                let mut f = self.in_flight.lock().unwrap();
                f.0 += 1;
                f.1 = f.1.max(f.0);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.in_flight.lock().unwrap().0 -= 1;
            let status = match self.refuse {
                Some((needle, status)) if text.contains(needle) => Some(status),
                _ if attempt <= self.throttle_first => Some(429),
                _ => None,
            };
            if let Some(status) = status {
                return Err(Refused {
                    status: Some(status),
                    code: None,
                    message: format!("HTTP {status}"),
                });
            }
            self.payloads.lock().unwrap().push(text);
            Ok(())
        }
    }

    fn registry(n: usize) -> Registry {
        Registry {
            tenants: (0..n)
                .map(|i| Entry {
                    enabled: i % 10 != 3,
                    ..Entry::named(&format!("t{i:03}"))
                })
                .collect(),
            ..Registry::default()
        }
    }

    fn pace(concurrency: usize) -> Pace {
        Pace {
            concurrency,
            retry_min_delay: Duration::from_millis(1),
            until: tokio::time::Instant::now() + Duration::from_secs(60),
        }
    }

    #[tokio::test]
    async fn every_enabled_tenant_is_started_once_and_disabled_ones_are_skipped() {
        let invoker = Recorder::default();
        let summary = dispatch(&invoker, &registry(100), pace(8)).await;
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
        let summary = dispatch(&Recorder::default(), &Registry::default(), pace(8)).await;
        assert_eq!((summary.tenants, summary.dispatched.len()), (0, 0));
        assert!(summary.into_result().is_ok());
    }

    #[tokio::test]
    async fn throttled_invocations_are_retried_and_each_tenant_starts_once() {
        let invoker = Recorder {
            throttle_first: 2,
            ..Recorder::default()
        };
        let summary = dispatch(&invoker, &registry(10), pace(4)).await;
        assert_eq!(summary.dispatched.len(), 9);
        assert_eq!(summary.failed, vec![]);
        assert_eq!(summary.retries, 18);
        assert_eq!(invoker.payloads.lock().unwrap().len(), 9, "each once");
    }

    #[tokio::test]
    async fn a_tenant_that_cannot_be_started_is_named_and_the_others_still_start() {
        let invoker = Recorder {
            refuse: Some(("t005", 503)),
            ..Recorder::default()
        };
        let summary = dispatch(&invoker, &registry(10), pace(4)).await;
        assert_eq!(summary.dispatched.len(), 8);
        let attempts = 1 + crate::tenants::retry::MAX_RETRIES as u32;
        assert_eq!(
            summary.failed,
            vec![Failure {
                tenant: "t005".into(),
                error: "HTTP 503".into(),
                attempts,
            }]
        );
        assert!(
            summary.into_result().is_ok(),
            "the others run: not a failed dispatch"
        );
        // Refused for good (no permission): one attempt each, and the dispatch fails.
        let invoker = Recorder {
            refuse: Some(("t", 403)),
            ..Recorder::default()
        };
        let summary = dispatch(&invoker, &registry(3), pace(4)).await;
        assert!(summary.failed.iter().all(|f| f.attempts == 1));
        let err = summary.into_result().unwrap_err();
        assert_eq!(err.error_type(), "Dispatch");
        let text = err.to_string();
        assert!(
            text.contains("none of the 3") && text.contains("(t000, t001, t002)"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn retries_stop_at_the_deadline() {
        let invoker = Recorder {
            refuse: Some(("t000", 429)),
            ..Recorder::default()
        };
        let pace = Pace {
            concurrency: 1,
            retry_min_delay: Duration::from_secs(30),
            until: tokio::time::Instant::now() + Duration::from_secs(5),
        };
        let summary = dispatch(&invoker, &registry(1), pace).await;
        assert_eq!(
            summary.failed[0].attempts, 1,
            "a 30 s wait does not fit in 5 s"
        );
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
