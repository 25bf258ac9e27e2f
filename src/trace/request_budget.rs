//! A rolling client-side request budget under Graph's message trace throttle (100 requests per
//! 5 minutes per tenant), kept in the checkpoint so that it survives between ticks. Pure.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Graph answers 429 past 100 message trace requests in 5 minutes; keep a tenth in reserve for
/// other tools of the tenant and for retries (`REQUEST_BUDGET_PER_5_MINUTES`'s default).
pub const GRAPH_LIMIT: usize = crate::config::defaults::REQUEST_BUDGET_PER_5_MINUTES;

/// The throttle's rolling period.
pub const GRAPH_PERIOD: chrono::Duration = chrono::Duration::minutes(5);

/// The times of the requests sent in the last period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestBudget {
    limit: usize,
    period: chrono::Duration,
    sent: VecDeque<DateTime<Utc>>,
    /// While set, a share of the limit used without waiting (the reconciliation pass's).
    share: Option<usize>,
}

impl RequestBudget {
    /// A budget of `limit` requests per `period`, starting from `history`.
    pub fn new(history: &[DateTime<Utc>], limit: usize, period: chrono::Duration) -> RequestBudget {
        let mut sent: Vec<DateTime<Utc>> = history.to_vec();
        sent.sort();
        RequestBudget {
            limit: limit.max(1),
            period,
            sent: sent.into(),
            share: None,
        }
    }

    /// Until [`RequestBudget::restore`], allows only `numerator / denominator` of the limit, and
    /// never waits for it: the reconciliation pass leaves the rest to the next fresh pass.
    pub fn lend(&mut self, numerator: usize, denominator: usize) {
        self.share = Some((self.limit * numerator / denominator.max(1)).max(1));
    }

    /// Back to the whole limit, waiting when it is used up.
    pub fn restore(&mut self) {
        self.share = None;
    }

    /// Whether the budget is only lent: a request over it must not wait.
    pub fn lent(&self) -> bool {
        self.share.is_some()
    }

    fn prune(&mut self, now: DateTime<Utc>) {
        while self.sent.front().is_some_and(|t| *t + self.period <= now) {
            self.sent.pop_front();
        }
    }

    /// How long to wait at `now` before one more request stays within the budget.
    pub fn wait_at(&mut self, now: DateTime<Utc>) -> Duration {
        self.prune(now);
        let limit = self.share.unwrap_or(self.limit);
        if self.sent.len() < limit {
            return Duration::ZERO;
        }
        let index = self.sent.len() - limit;
        self.sent
            .get(index)
            .and_then(|t| (*t + self.period - now).to_std().ok())
            .unwrap_or(Duration::ZERO)
    }

    /// Counts a request sent at `now`.
    pub fn record(&mut self, now: DateTime<Utc>) {
        self.sent.push_back(now);
    }

    /// The requests of the last period, for the checkpoint.
    pub fn history(&mut self, now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        self.prune(now);
        self.sent.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
    }

    #[test]
    fn waits_for_the_oldest_request_to_leave_the_period() {
        let mut b = RequestBudget::new(&[], 3, chrono::Duration::minutes(5));
        for s in 0..3 {
            assert_eq!(
                b.wait_at(t0() + chrono::Duration::seconds(s)),
                Duration::ZERO
            );
            b.record(t0() + chrono::Duration::seconds(s));
        }
        assert_eq!(
            b.wait_at(t0() + chrono::Duration::seconds(10)),
            Duration::from_secs(290)
        );
        assert_eq!(
            b.wait_at(t0() + chrono::Duration::seconds(300)),
            Duration::ZERO
        );
        assert_eq!(b.history(t0() + chrono::Duration::seconds(300)).len(), 2);
    }

    proptest! {
        #[test]
        fn following_the_waits_never_exceeds_the_limit_in_any_period(
            gaps in prop::collection::vec(0i64..20_000, 1..400),
        ) {
            let period = chrono::Duration::minutes(5);
            let mut b = RequestBudget::new(&[], 90, period);
            let mut now = t0();
            let mut sent = Vec::new();
            for gap in gaps {
                now += chrono::Duration::milliseconds(gap);
                now += chrono::Duration::from_std(b.wait_at(now)).unwrap();
                b.record(now);
                sent.push(now);
                // Round-trip through the checkpoint.
                b = RequestBudget::new(&b.history(now), 90, period);
            }
            for (i, t) in sent.iter().enumerate() {
                let in_period = sent[i..].iter().filter(|u| **u < *t + period).count();
                prop_assert!(in_period <= 90);
            }
        }
    }
}
