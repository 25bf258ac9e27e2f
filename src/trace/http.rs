//! The tick's time budget, and how a failed request is retried within it.

use std::error::Error as _;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::now::TimeSource;

use crate::events::Event;
use crate::events::microsoft::Retry;
use crate::trace::error::TraceError;

/// Attempts after the first for one request.
const MAX_RETRIES: usize = 5;

/// The time a tick may spend pulling: the Lambda deadline minus what committing needs.
#[derive(Debug, Clone)]
pub struct Budget {
    until: Instant,
    request_timeout: Duration,
    retry_min_delay: Duration,
    time: TimeSource,
}

impl Budget {
    /// A budget that ends at `until`; no single request waits longer than `request_timeout`;
    /// retries start `retry_min_delay` apart and double.
    pub fn new(until: Instant, request_timeout: Duration, retry_min_delay: Duration) -> Budget {
        Budget {
            until,
            request_timeout,
            retry_min_delay,
            time: TimeSource::System,
        }
    }

    /// The same budget, reading the wall time from `time`.
    pub fn with_time(self, time: TimeSource) -> Budget {
        Budget { time, ..self }
    }

    /// The current wall time (token assertions, the request budget's history).
    pub fn now(&self) -> DateTime<Utc> {
        self.time.now()
    }

    /// Time left.
    pub fn remaining(&self) -> Duration {
        self.until.saturating_duration_since(Instant::now())
    }

    /// Whether pulling must stop now.
    pub fn exhausted(&self) -> bool {
        self.remaining() < Duration::from_millis(200)
    }

    /// Timeout of the next request: `REQUEST_TIMEOUT_SECONDS`, cut to what is left.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
            .min(self.remaining())
            .max(Duration::from_millis(100))
    }

    /// Exponential backoff with jitter for one request's retries.
    pub fn backoff(&self) -> ExponentialBackoff {
        ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.retry_min_delay)
            .with_max_delay(Duration::from_secs(30))
            .with_max_times(MAX_RETRIES)
            .build()
    }

    /// Sleeps before the next attempt (`Retry-After` when the server gave one), or returns the
    /// failure when the retries or the budget are used up.
    pub async fn wait_to_retry(
        &self,
        backoff: &mut ExponentialBackoff,
        retry_after: Option<Duration>,
        failure: TraceError,
    ) -> Result<(), TraceError> {
        let Some(next) = backoff.next() else {
            return Err(failure);
        };
        let delay = retry_after.unwrap_or(next);
        if delay + Duration::from_millis(200) >= self.remaining() {
            let (api, what) = match &failure {
                TraceError::Api { api, what, .. }
                | TraceError::Transport { api, what, .. }
                | TraceError::Malformed { api, what, .. }
                | TraceError::OutOfTime { api, what, .. }
                | TraceError::OffOrigin { api, what, .. } => (*api, what.clone()),
                TraceError::Token { .. } | TraceError::Credential { .. } => {
                    ("login", "token request".to_owned())
                }
            };
            return Err(TraceError::OutOfTime {
                api,
                what,
                last: failure.to_string(),
            });
        }
        Retry {
            delay,
            error: &failure,
        }
        .emit();
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

/// Turns a reqwest failure into an error that names the host and the cause, never the URL's query.
pub fn describe_transport(api: &'static str, what: String, e: &reqwest::Error) -> TraceError {
    let host = e
        .url()
        .map(|u| {
            format!(
                "{}:{}",
                u.host_str().unwrap_or("?"),
                u.port_or_known_default().unwrap_or(0)
            )
        })
        .unwrap_or_else(|| "?".to_owned());
    TraceError::Transport {
        api,
        what,
        host,
        detail: transport_detail(e),
    }
}

/// What went wrong with a request that got no answer: a timeout, no connection, or another
/// failure, with its causes (never the URL's query).
pub fn transport_detail(e: &reqwest::Error) -> String {
    let mut detail = if e.is_timeout() {
        "timed out (REQUEST_TIMEOUT_SECONDS)".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = e.source();
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    detail
}

/// Parses a `Retry-After` header given in seconds.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}
