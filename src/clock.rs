//! The time a tick may use, cut from the invocation's deadline: pulling stops first, the relay
//! streams must be closed next, and the last part is kept for the checkpoint's commit. The
//! reserve scales with the invocation, so any Lambda timeout from a few seconds up works.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use thiserror::Error;
use tokio::time::Instant;

use crate::now::TimeSource;
use crate::trace::http::Budget;

/// Below this much time before the deadline a tick cannot deliver anything.
pub const MIN_BUDGET: Duration = Duration::from_secs(3);

/// The part of the invocation's time kept free for closing streams and committing, at most
/// the configured reserve.
const RESERVE_SHARE: u32 = 8;

/// An invocation too short to deliver anything.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error(
    "the invocation has {left_ms} ms before its deadline: the function timeout is too short to deliver anything; a tick needs at least {} s (set the function's Timeout to 60 s or more; the template's default is 240 s)",
    MIN_BUDGET.as_secs()
)]
pub struct TimeoutTooShort {
    /// Milliseconds from the tick's start to the deadline.
    pub left_ms: u64,
}

/// The tick's clock: when it started and by when each part must be done. The budgets run on
/// the monotonic clock; the wall time comes from its [`TimeSource`].
#[derive(Debug, Clone)]
pub struct Clock {
    /// The tick's start in whole seconds: window bounds and query filters stay readable.
    pub now: DateTime<Utc>,
    /// The invocation's deadline.
    pub deadline: DateTime<Utc>,
    pull_until: Instant,
    deliver_until: Instant,
    ends: Instant,
    time: TimeSource,
}

impl Clock {
    /// Starts the clock for an invocation due at `deadline`, keeping at most `max_reserve`
    /// (and at most an eighth of the time) for closing and committing.
    pub fn start(
        time: &TimeSource,
        deadline: DateTime<Utc>,
        max_reserve: Duration,
    ) -> Result<Clock, TimeoutTooShort> {
        let wall = time.now();
        let left = (deadline - wall).to_std().unwrap_or(Duration::ZERO);
        if left < MIN_BUDGET {
            return Err(TimeoutTooShort {
                left_ms: u64::try_from(left.as_millis()).unwrap_or(u64::MAX),
            });
        }
        let reserve = max_reserve.min(left / RESERVE_SHARE);
        let started = Instant::now();
        Ok(Clock {
            now: wall.trunc_subsecs(0),
            deadline,
            pull_until: started + left - reserve,
            deliver_until: started + left - reserve / 2,
            ends: started + left,
            time: time.clone(),
        })
    }

    /// The current wall time (not truncated, unlike [`Clock::now`], the tick's start).
    pub fn wall(&self) -> DateTime<Utc> {
        self.time.now()
    }

    /// The pulling budget: requests and retries stop when it runs out.
    pub fn pull_budget(&self, request_timeout: Duration, retry_min_delay: Duration) -> Budget {
        Budget::new(self.pull_until, request_timeout, retry_min_delay).with_time(self.time.clone())
    }

    /// `limit`, cut to the time left for relay streams (connect, write, close).
    pub fn devo_timeout(&self, limit: Duration) -> Duration {
        limit
            .min(self.deliver_until.saturating_duration_since(Instant::now()))
            .max(Duration::from_millis(50))
    }

    /// The time left for relay streams: a stream is written only if it can be confirmed
    /// within it.
    pub fn delivery_left(&self) -> Duration {
        self.deliver_until.saturating_duration_since(Instant::now())
    }

    /// The time left before the invocation's deadline, less `keep` (kept to return the
    /// result): what a last, best-effort step after the commit may use.
    pub fn before_deadline(&self, keep: Duration) -> Duration {
        self.ends
            .saturating_duration_since(Instant::now())
            .saturating_sub(keep)
    }

    /// When the lease of this tick expires: the deadline plus `slack`.
    pub fn lease_expiry(&self, slack: Duration) -> DateTime<Utc> {
        self.deadline + chrono::Duration::from_std(slack).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn left(until: Instant) -> Duration {
        until.saturating_duration_since(Instant::now())
    }

    #[tokio::test]
    async fn the_reserve_scales_with_the_invocation() {
        let short = Clock::start(
            &TimeSource::System,
            Utc::now() + chrono::Duration::seconds(15),
            Duration::from_secs(20),
        )
        .unwrap();
        let pull = left(short.pull_until);
        assert!(
            pull > Duration::from_secs(12) && pull < Duration::from_secs(14),
            "{pull:?}"
        );
        let long = Clock::start(
            &TimeSource::System,
            Utc::now() + chrono::Duration::seconds(240),
            Duration::from_secs(20),
        )
        .unwrap();
        let pull = left(long.pull_until);
        assert!(
            pull > Duration::from_secs(218) && pull <= Duration::from_secs(220),
            "{pull:?}"
        );
        assert!(long.deliver_until > long.pull_until);
    }

    #[test]
    fn a_deadline_too_close_is_refused_naming_the_minimum() {
        let e = Clock::start(
            &TimeSource::System,
            Utc::now() + chrono::Duration::seconds(2),
            Duration::from_secs(20),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("function timeout is too short"), "{text}");
        assert!(text.contains("at least 3 s"), "{text}");
    }
}
