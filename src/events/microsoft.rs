//! Microsoft's APIs: retries, the request budget, repaired skip tokens.

use std::time::Duration;

use crate::events::{Event, ms};

/// A request failed transiently and is tried again after `delay`.
pub struct Retry<'a> {
    /// The wait (`Retry-After` when given).
    pub delay: Duration,
    pub error: &'a dyn std::fmt::Display,
}

impl Event for Retry<'_> {
    const NAME: &'static str = "retry";
    fn emit(&self) {
        tracing::warn!(event = Self::NAME, delay_ms = ms(self.delay), error = %self.error, "retrying after a transient failure");
    }
}

/// Waiting to stay under Graph's 100 requests per 5 minutes.
pub struct BudgetWait {
    pub wait: Duration,
}

impl Event for BudgetWait {
    const NAME: &'static str = "request_budget_wait";
    fn emit(&self) {
        tracing::info!(
            event = Self::NAME,
            wait_ms = ms(self.wait),
            "waiting to stay under Graph's 100 requests per 5 minutes"
        );
    }
}

/// A nextLink's skip token had double-encoded values and was repaired before it was followed.
pub struct SkipTokenRepaired;

impl Event for SkipTokenRepaired {
    const NAME: &'static str = "skiptoken_repaired";
    fn emit(&self) {
        tracing::warn!(
            event = Self::NAME,
            "the nextLink's skip token had double-encoded values (quoted twice); following it repaired"
        );
    }
}

/// Graph answered 429 while this function's own spend was under its budget: another
/// application spends the tenant's shared quota; the effective budget is lowered.
pub struct QuotaContention {
    /// Requests this function sent in the last 5 minutes, the throttled one included.
    pub own_requests: usize,
    /// `REQUEST_BUDGET_PER_5_MINUTES`.
    pub budget: usize,
    /// The effective budget from now on.
    pub lowered_to: usize,
}

impl Event for QuotaContention {
    const NAME: &'static str = "quota_contention";
    fn emit(&self) {
        let c = self;
        tracing::warn!(
            event = Self::NAME,
            own_requests = c.own_requests,
            budget = c.budget,
            lowered_to = c.lowered_to,
            "Graph answered 429 while this function had sent {} of its {} requests in the last 5 minutes: another application spends the tenant's quota; this tenant's budget is now {} requests per 5 minutes",
            c.own_requests,
            c.budget,
            c.lowered_to
        );
    }
}
