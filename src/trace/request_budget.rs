//! A rolling client-side request budget under Graph's message trace throttle (100 requests per
//! 5 minutes per tenant), kept in the checkpoint so that it survives between ticks, and lowered
//! while another application spends the tenant's shared quota ([`crate::checkpoint::quota_share`]).
//! Pure.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::checkpoint::quota_share::{self, QuotaShare};

/// Graph answers 429 past 100 message trace requests in 5 minutes; keep a tenth in reserve for
/// other tools of the tenant and for retries (`REQUEST_BUDGET_PER_5_MINUTES`'s default).
pub const GRAPH_LIMIT: usize = crate::config::defaults::REQUEST_BUDGET_PER_5_MINUTES;

/// The throttle's rolling period.
pub const GRAPH_PERIOD: chrono::Duration = chrono::Duration::minutes(5);

/// The times of the requests sent in the last period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestBudget {
    /// `REQUEST_BUDGET_PER_5_MINUTES`.
    ceiling: usize,
    period: chrono::Duration,
    sent: VecDeque<DateTime<Utc>>,
    /// While set, a share of the limit used without waiting (the reconciliation pass's).
    share: Option<usize>,
    /// The lowered budget while another application spends the tenant's quota.
    quota: Option<QuotaShare>,
    /// 429s this budget heard while under `ceiling`.
    contentions: u64,
}

/// A 429 while this function's own spend was under its budget: someone else spends the quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contention {
    /// Requests this function sent in the last period, the throttled one included.
    pub own_requests: usize,
    /// `REQUEST_BUDGET_PER_5_MINUTES`.
    pub budget: usize,
    /// The effective budget from now on.
    pub lowered_to: usize,
}

impl RequestBudget {
    /// A budget of `limit` requests per `period`, starting from `history`.
    pub fn new(history: &[DateTime<Utc>], limit: usize, period: chrono::Duration) -> RequestBudget {
        let mut sent: Vec<DateTime<Utc>> = history.to_vec();
        sent.sort();
        RequestBudget {
            ceiling: limit.max(1),
            period,
            sent: sent.into(),
            share: None,
            quota: None,
            contentions: 0,
        }
    }

    /// The same budget, lowered by `quota` (from the checkpoint) as it stands at `now`.
    pub fn with_quota(self, quota: Option<QuotaShare>, now: DateTime<Utc>) -> RequestBudget {
        let quota = quota_share::recover(quota, self.ceiling, now);
        RequestBudget { quota, ..self }
    }

    /// The requests allowed per period now: the configured budget, or less while another
    /// application spends the tenant's quota.
    pub fn limit(&self) -> usize {
        quota_share::effective(self.quota.as_ref(), self.ceiling)
    }

    /// The lowered budget, for the checkpoint (`None`: the whole configured budget).
    pub fn quota(&self) -> Option<QuotaShare> {
        self.quota
    }

    /// 429s heard while this function's own spend was under its budget.
    pub fn contentions(&self) -> u64 {
        self.contentions
    }

    /// Hears of a 429 at `now`. Under the configured budget, another application spends the
    /// tenant's quota: the contention is counted and the effective budget lowered.
    pub fn throttled(&mut self, now: DateTime<Utc>) -> Option<Contention> {
        self.prune(now);
        let own_requests = self.sent.len();
        if own_requests >= self.ceiling {
            return None;
        }
        self.contentions += 1;
        self.quota = Some(quota_share::contend(self.quota, self.ceiling, now));
        Some(Contention {
            own_requests,
            budget: self.ceiling,
            lowered_to: self.limit(),
        })
    }

    /// Until [`RequestBudget::restore`], allows only `numerator / denominator` of the limit, and
    /// never waits for it: the reconciliation pass leaves the rest to the next fresh pass.
    pub fn lend(&mut self, numerator: usize, denominator: usize) {
        self.share = Some((self.limit() * numerator / denominator.max(1)).max(1));
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
        let limit = self.share.unwrap_or_else(|| self.limit());
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

    #[test]
    fn a_429_under_our_own_budget_is_contention_and_lowers_the_budget_until_it_recovers() {
        let mut b = RequestBudget::new(&[], 20, GRAPH_PERIOD);
        for s in 0..5 {
            b.record(t0() + chrono::Duration::seconds(s));
        }
        let contention = b.throttled(t0() + chrono::Duration::seconds(5)).unwrap();
        assert_eq!(
            (
                contention.own_requests,
                contention.budget,
                contention.lowered_to
            ),
            (5, 20, 10)
        );
        assert_eq!((b.limit(), b.contentions()), (10, 1));
        // Ten requests in the period: the eleventh waits for the oldest to leave it.
        for s in 5..10 {
            b.record(t0() + chrono::Duration::seconds(s));
        }
        assert_eq!(
            b.wait_at(t0() + chrono::Duration::seconds(10)),
            Duration::from_secs(290)
        );
        // The next tick starts from the checkpoint: still lowered, then back after quiet periods.
        let at = |m: i64| t0() + chrono::Duration::minutes(m);
        let next = RequestBudget::new(&[], 20, GRAPH_PERIOD).with_quota(b.quota(), at(1));
        assert_eq!(next.limit(), 10);
        let later = RequestBudget::new(&[], 20, GRAPH_PERIOD).with_quota(b.quota(), at(6));
        assert_eq!(later.limit(), 12);
        let recovered = RequestBudget::new(&[], 20, GRAPH_PERIOD).with_quota(b.quota(), at(26));
        assert_eq!((recovered.limit(), recovered.quota()), (20, None));
    }

    #[test]
    fn a_429_at_our_own_budget_is_ours_not_contention() {
        let mut b = RequestBudget::new(&[], 3, GRAPH_PERIOD);
        for s in 0..3 {
            b.record(t0() + chrono::Duration::seconds(s));
        }
        assert_eq!(b.throttled(t0() + chrono::Duration::seconds(3)), None);
        assert_eq!((b.limit(), b.contentions(), b.quota()), (3, 0, None));
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
