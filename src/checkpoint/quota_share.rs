//! How much of the tenant's shared Graph quota this function allows itself. Graph's message
//! trace quota (100 requests per 5 minutes) is the tenant's, shared with every other tool that
//! reads it: a 429 while this function's own spend is under its budget means another
//! application is spending it. The effective budget is then halved (at most once per period),
//! and raised back by a tenth of the configured budget for every period without such a 429:
//! additive increase, multiplicative decrease, never below a tenth of the configured budget,
//! never above it. Pure: kept in the checkpoint (`quota_share`) between ticks.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The throttle's period: one step up per quiet period, one step down at most per period.
pub const PERIOD: chrono::Duration = chrono::Duration::minutes(5);

/// A lowered budget: absent (the whole configured budget) once it has recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaShare {
    /// Requests per 5 minutes this function allows itself now.
    pub limit: usize,
    /// When it was last lowered: it is lowered again only a period later.
    pub lowered_at: DateTime<Utc>,
    /// Since when no contention was seen (or the last step up): the next step up is one period
    /// after it.
    pub quiet_since: DateTime<Utc>,
}

/// The lowest effective budget for a configured `ceiling`: a tenth of it, at least 1, so that
/// the tenant's records still move while another application takes most of the quota.
pub fn floor(ceiling: usize) -> usize {
    (ceiling / 10).max(1)
}

/// How much a quiet period gives back: a tenth of the configured budget, at least 1.
pub fn step(ceiling: usize) -> usize {
    (ceiling / 10).max(1)
}

/// The effective budget of `share` under the configured `ceiling`.
pub fn effective(share: Option<&QuotaShare>, ceiling: usize) -> usize {
    let ceiling = ceiling.max(1);
    share.map_or(ceiling, |s| {
        s.limit.clamp(floor(ceiling).min(ceiling), ceiling)
    })
}

/// After a 429 at `at` while under our own budget: halved, unless it was already lowered within
/// the last period (one burst of 429s lowers it once); the quiet period starts again.
pub fn contend(share: Option<QuotaShare>, ceiling: usize, at: DateTime<Utc>) -> QuotaShare {
    let current = effective(share.as_ref(), ceiling);
    match share {
        Some(s) if at < s.lowered_at + PERIOD => QuotaShare {
            limit: current,
            quiet_since: at.max(s.quiet_since),
            ..s
        },
        _ => QuotaShare {
            limit: (current / 2).max(floor(ceiling)).min(ceiling.max(1)),
            lowered_at: at,
            quiet_since: at,
        },
    }
}

/// The share at `now`: one step up for every whole period since `quiet_since`; `None` once it
/// is back at the configured `ceiling`.
pub fn recover(
    share: Option<QuotaShare>,
    ceiling: usize,
    now: DateTime<Utc>,
) -> Option<QuotaShare> {
    let s = share?;
    let quiet = now - s.quiet_since;
    let periods = if quiet < PERIOD {
        0
    } else {
        usize::try_from(quiet.num_seconds() / PERIOD.num_seconds()).unwrap_or(usize::MAX)
    };
    let limit = effective(Some(&s), ceiling).saturating_add(periods.saturating_mul(step(ceiling)));
    if limit >= ceiling {
        return None;
    }
    let periods = i32::try_from(periods).unwrap_or(i32::MAX);
    Some(QuotaShare {
        limit,
        quiet_since: s.quiet_since + PERIOD * periods,
        ..s
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
    }

    fn minutes(m: i64) -> chrono::Duration {
        chrono::Duration::minutes(m)
    }

    #[test]
    fn a_contention_halves_once_per_period_and_quiet_periods_give_a_tenth_back() {
        let lowered = contend(None, 90, t0());
        assert_eq!(lowered.limit, 45);
        // A burst of 429s within the period lowers it once.
        let burst = contend(Some(lowered), 90, t0() + minutes(2));
        assert_eq!(burst.limit, 45);
        assert_eq!(burst.quiet_since, t0() + minutes(2));
        // Then halved again.
        assert_eq!(contend(Some(burst), 90, t0() + minutes(6)).limit, 22);
        // Quiet: +9 per 5 minutes from the last 429.
        assert_eq!(recover(Some(burst), 90, t0() + minutes(6)), Some(burst));
        let up = recover(Some(burst), 90, t0() + minutes(7)).unwrap();
        assert_eq!((up.limit, up.quiet_since), (54, t0() + minutes(7)));
        assert_eq!(recover(Some(up), 90, t0() + minutes(22)).unwrap().limit, 81);
        assert_eq!(
            recover(Some(up), 90, t0() + minutes(27)),
            None,
            "back to 90"
        );
    }

    #[test]
    fn the_floor_keeps_the_tenant_moving_and_a_lowered_ceiling_bounds_the_share() {
        let mut share = None;
        for m in 0..10 {
            share = Some(contend(share, 90, t0() + minutes(6 * m)));
        }
        assert_eq!(share.unwrap().limit, 9);
        assert_eq!(effective(share.as_ref(), 90), 9);
        // REQUEST_BUDGET_PER_5_MINUTES lowered under the share: the ceiling wins.
        let high = QuotaShare {
            limit: 80,
            lowered_at: t0(),
            quiet_since: t0(),
        };
        assert_eq!(effective(Some(&high), 20), 20);
        assert_eq!(recover(Some(high), 20, t0()), None);
        assert_eq!(contend(None, 1, t0()).limit, 1);
    }

    /// One thing that happens to the budget: a contention or a check, `minutes` later.
    #[derive(Debug, Clone)]
    enum Step {
        Contention(i64),
        Quiet(i64),
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        prop::collection::vec(
            prop_oneof![
                (0i64..20).prop_map(Step::Contention),
                (0i64..40).prop_map(Step::Quiet)
            ],
            1..60,
        )
    }

    proptest! {
        #[test]
        fn never_below_the_floor_never_above_the_ceiling_and_always_recovers(
            ceiling in 1usize..1000,
            script in steps(),
        ) {
            let mut share: Option<QuotaShare> = None;
            let mut now = t0();
            for step in script {
                let (gap, contention) = match step {
                    Step::Contention(m) => (m, true),
                    Step::Quiet(m) => (m, false),
                };
                now += minutes(gap);
                share = recover(share, ceiling, now);
                if contention {
                    let before = effective(share.as_ref(), ceiling);
                    let lowered_lately = share.is_some_and(|s| now < s.lowered_at + PERIOD);
                    share = Some(contend(share, ceiling, now));
                    let after = effective(share.as_ref(), ceiling);
                    prop_assert!(after <= before);
                    if !lowered_lately && before > floor(ceiling) {
                        prop_assert!(after < before, "a contention lowers the budget");
                    }
                }
                let limit = effective(share.as_ref(), ceiling);
                prop_assert!(limit >= floor(ceiling).min(ceiling) && limit <= ceiling);
                // Round-trip through the checkpoint.
                let json = serde_json::to_string(&share).unwrap();
                prop_assert_eq!(serde_json::from_str::<Option<QuotaShare>>(&json).unwrap(), share);
            }
            // Without further contention it is back at the ceiling within ceiling/step periods.
            let periods = i32::try_from(ceiling / step(ceiling) + 1).unwrap();
            prop_assert_eq!(recover(share, ceiling, now + PERIOD * periods), None);
        }
    }
}
