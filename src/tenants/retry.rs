//! Starting one tenant's tick despite Lambda's throttling: `Invoke` answered 429
//! (TooManyRequestsException) or 5xx is tried again with exponential backoff and jitter, while
//! the dispatch's invocation has time left; any other refusal is final at once.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::time::Instant;

/// Attempts after the first for one tenant.
pub const MAX_RETRIES: usize = 6;

/// Longest wait between two attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(10);

/// Why `Invoke` did not accept an invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The HTTP status, when Lambda answered.
    pub status: Option<u16>,
    /// Lambda's error code, such as `TooManyRequestsException`, when it gave one.
    pub code: Option<String>,
    /// What happened and what to do, for the dispatch's result.
    pub message: String,
}

/// Starts one tenant's tick: an asynchronous invocation of the function with `payload`.
pub trait Invoker: Clone + Send + Sync + 'static {
    /// Queues the invocation; `Err` says why it was not accepted.
    fn invoke(&self, payload: Vec<u8>) -> impl Future<Output = Result<(), Refused>> + Send;
}

/// Whether a refusal may pass: throttling (429) and Lambda's own failures (5xx). Anything else
/// (no permission, no such function, an answer lost in transit that may have been queued) is
/// not tried again: a retry could not help, or could start the tick twice.
pub fn retryable(refused: &Refused) -> bool {
    matches!(refused.status, Some(429 | 500..=599))
        || refused.code.as_deref() == Some("TooManyRequestsException")
}

/// The wait before the next attempt, or `None` when the tenant is given up: the refusal is
/// final, the backoff's attempts are spent, or the wait would not end before `remaining`.
pub fn next_wait(
    refused: &Refused,
    backoff: Option<Duration>,
    remaining: Duration,
) -> Option<Duration> {
    backoff.filter(|wait| retryable(refused) && *wait < remaining)
}

/// How one tenant's start went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// Attempts made (1 when accepted at once).
    pub attempts: u32,
    /// The last refusal, when it was never accepted.
    pub refused: Option<Refused>,
}

/// Invokes with `payload` until accepted, retrying throttling and 5xx with backoff from
/// `min_delay` while a wait ends before `until`.
pub async fn start<I: Invoker>(
    invoker: &I,
    payload: Vec<u8>,
    min_delay: Duration,
    until: Instant,
) -> Started {
    let mut backoff = ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(min_delay)
        .with_max_delay(MAX_DELAY)
        .with_max_times(MAX_RETRIES)
        .build();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let refused = match invoker.invoke(payload.clone()).await {
            Ok(()) => {
                return Started {
                    attempts,
                    refused: None,
                };
            }
            Err(refused) => refused,
        };
        let remaining = until.saturating_duration_since(Instant::now());
        match next_wait(&refused, backoff.next(), remaining) {
            Some(wait) => tokio::time::sleep(wait).await,
            None => {
                return Started {
                    attempts,
                    refused: Some(refused),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: Option<u16>, code: Option<&str>) -> Refused {
        Refused {
            status,
            code: code.map(str::to_owned),
            message: "m".into(),
        }
    }

    #[test]
    fn throttling_and_server_errors_are_retried_and_nothing_else() {
        for r in [
            refused(Some(429), Some("TooManyRequestsException")),
            refused(None, Some("TooManyRequestsException")),
            refused(Some(500), Some("ServiceException")),
            refused(Some(502), Some("EC2ThrottledException")),
            refused(Some(503), None),
        ] {
            assert!(retryable(&r), "{r:?}");
        }
        for r in [
            refused(Some(403), Some("AccessDeniedException")),
            refused(Some(404), Some("ResourceNotFoundException")),
            refused(Some(400), Some("InvalidParameterValueException")),
            refused(Some(202), None),
            refused(None, None),
        ] {
            assert!(!retryable(&r), "{r:?}");
        }
    }

    #[test]
    fn a_retry_waits_only_when_the_wait_ends_in_time_and_attempts_remain() {
        let throttled = refused(Some(429), None);
        let second = Duration::from_secs(1);
        assert_eq!(
            next_wait(&throttled, Some(second), 2 * second),
            Some(second)
        );
        assert_eq!(next_wait(&throttled, Some(second), second), None, "no time");
        assert_eq!(next_wait(&throttled, None, 60 * second), None, "spent");
        let denied = refused(Some(403), Some("AccessDeniedException"));
        assert_eq!(next_wait(&denied, Some(second), 60 * second), None, "final");
    }
}
