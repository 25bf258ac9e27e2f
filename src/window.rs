//! Step 4 of a tick: which half-open windows to pull, from the checkpoint, the clock and the
//! delay / historic / margin / maximum-window rules. Pure: values in, values out.

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};

use crate::config::WindowRules;

/// The longest span one message trace query may cover (both APIs).
pub const MAX_QUERY_SPAN: Duration = Duration::days(10);

/// `t` down to its UTC hour: audits and a cut-over's overlap read Devo hour by hour.
pub fn floor_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::hours(1)).unwrap_or(t)
}

/// `t` up to a UTC hour (itself when it is one).
pub fn ceil_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    let floor = floor_hour(t);
    if floor == t {
        t
    } else {
        floor + Duration::hours(1)
    }
}

/// Where a window stopped part-way in an earlier tick: everything received after `until`, and
/// the records at exactly `until` whose keys are listed, were delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// Inclusive upper bound of what is left of the window.
    pub until: DateTime<Utc>,
    /// Keys (`id` + recipient) of the records at `until` that were already delivered.
    pub sent_at_until: Vec<String>,
}

/// One window `[start, end)`, possibly resumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Inclusive start.
    pub start: DateTime<Utc>,
    /// Exclusive end: records at `end` belong to the next window.
    pub end: DateTime<Utc>,
    /// Set when an earlier tick delivered the newest part of this window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Resume>,
}

impl Window {
    /// Upper bound of the query (`receivedDateTime le …`): the API's bounds are inclusive.
    pub fn query_end(&self) -> DateTime<Utc> {
        self.resume.as_ref().map_or(self.end, |r| r.until)
    }

    /// Whether a record received at `received` with `key` is to be sent in this window.
    pub fn wants(&self, received: DateTime<Utc>, key: &str) -> bool {
        if received < self.start {
            return false;
        }
        match &self.resume {
            None => received < self.end,
            Some(r) => {
                received < r.until
                    || (received == r.until && !r.sent_at_until.iter().any(|k| k == key))
            }
        }
    }
}

/// A span that can no longer be pulled because it fell outside the API's lookback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// Start of the lost span.
    pub from: DateTime<Utc>,
    /// Where pulling resumes.
    pub to: DateTime<Utc>,
}

/// A span that made no progress in earlier ticks, planned in pieces of this length (see
/// `crate::checkpoint::split`), for the summary and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Split {
    /// The stuck span's start.
    pub start: DateTime<Utc>,
    /// The stuck span's end.
    pub until: DateTime<Utc>,
    /// Length of each piece.
    pub piece_seconds: i64,
    /// Ticks it was stuck.
    pub stuck_ticks: u32,
    /// Why it is split.
    pub reason: SplitReason,
}

/// Why a span is pulled in pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitReason {
    /// It made no progress for `crate::checkpoint::split::SPLIT_AFTER` ticks: halved, and halved again.
    Stuck,
    /// A window of the Reporting Web Service (no order, so no resume point) was cut by the
    /// deadline: split at once, in pieces sized by the rate the tick measured (`crate::checkpoint::cut`).
    ReportingCut,
}

impl SplitReason {
    /// As the summary and the log write it.
    pub fn as_str(self) -> &'static str {
        match self {
            SplitReason::Stuck => "stuck",
            SplitReason::ReportingCut => "reporting_cut",
        }
    }
}

impl Split {
    /// The split of a window cut by the deadline: pieces of `piece_seconds` from `start`.
    pub fn cut(
        start: DateTime<Utc>,
        until: DateTime<Utc>,
        piece_seconds: i64,
        ticks: u32,
    ) -> Split {
        Split {
            start,
            until,
            piece_seconds,
            stuck_ticks: ticks,
            reason: SplitReason::ReportingCut,
        }
    }
}

/// The windows a tick should pull, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Where the plan starts (the checkpoint, or now − historic, moved into the lookback).
    pub start: DateTime<Utc>,
    /// now − delay: no window ends later.
    pub horizon: DateTime<Utc>,
    /// A span skipped because it fell outside the lookback, to be logged as a warning.
    pub skipped: Option<Skipped>,
    /// Contiguous windows from `start` towards `horizon`.
    pub windows: Vec<Window>,
    /// The stuck span cut into pieces, if any (see `crate::checkpoint::split`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
}

/// What the checkpoint says about progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct Standing<'a> {
    /// End of the last delivered window.
    pub end: Option<DateTime<Utc>>,
    /// A window left part-way.
    pub partial: Option<&'a Window>,
}

/// The limits a plan is made within: where to start without progress, where to stop, the
/// oldest instant the API still serves, and the longest window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Where a plan without progress starts.
    pub start: DateTime<Utc>,
    /// No window ends later.
    pub horizon: DateTime<Utc>,
    /// The API's lookback limit plus the margin: no window starts earlier.
    pub earliest: DateTime<Utc>,
    /// The longest window.
    pub span: Duration,
}

impl Bounds {
    /// The scheduled tick's bounds: from now − historic to now − delay.
    pub fn scheduled(now: DateTime<Utc>, rules: &WindowRules) -> Bounds {
        Bounds {
            start: now - rules.historic,
            horizon: now - rules.delay,
            earliest: rules.earliest(now),
            span: rules
                .max_window
                .min(MAX_QUERY_SPAN)
                .max(Duration::seconds(1)),
        }
    }
}

/// Plans at most `max_windows` windows of the scheduled tick.
pub fn plan(
    progress: Standing<'_>,
    now: DateTime<Utc>,
    rules: &WindowRules,
    max_windows: usize,
) -> Plan {
    plan_within(progress, &Bounds::scheduled(now, rules), max_windows)
}

/// Plans at most `max_windows` contiguous windows from the progress (or `bounds.start`)
/// towards `bounds.horizon`, moving a start older than `bounds.earliest` forward.
pub fn plan_within(progress: Standing<'_>, bounds: &Bounds, max_windows: usize) -> Plan {
    let Bounds {
        horizon,
        earliest,
        span,
        ..
    } = *bounds;
    let mut windows = Vec::new();
    let mut skipped = None;

    let mut start = progress.end.unwrap_or(bounds.start);
    if let Some(partial) = progress.partial {
        if partial.start < earliest {
            // The oldest part of the unfinished window is out of reach.
            skipped = Some(Skipped {
                from: partial.start,
                to: earliest.min(partial.end),
            });
            start = partial.end;
            if partial.query_end() >= earliest && partial.end > earliest {
                let mut rest = partial.clone();
                rest.start = earliest;
                windows.push(rest);
            }
        } else {
            windows.push(partial.clone());
            start = partial.end;
        }
    }
    if start < earliest {
        skipped = Some(Skipped {
            from: skipped.map_or(start, |s| s.from),
            to: earliest,
        });
        start = earliest;
    }
    let plan_start = windows.first().map_or(start, |w| w.start);
    while start < horizon && windows.len() < max_windows {
        let end = (start + span).min(horizon);
        windows.push(Window {
            start,
            end,
            resume: None,
        });
        start = end;
    }
    windows.truncate(max_windows);
    Plan {
        start: plan_start,
        horizon,
        skipped,
        windows,
        split: None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    /// The default rules (shared with other modules' tests).
    pub(crate) fn rules() -> WindowRules {
        WindowRules {
            delay: Duration::seconds(90_000),
            historic: Duration::days(10),
            margin: Duration::seconds(60),
            max_window: Duration::seconds(21_600),
            lookback: Duration::days(90),
        }
    }

    /// A fixed clock (shared with other modules' tests).
    pub(crate) fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
    }

    #[test]
    fn fresh_start_goes_back_historic_days_to_now_minus_delay() {
        let p = plan(Standing::default(), now(), &rules(), 1000);
        assert_eq!(p.start, now() - Duration::days(10));
        assert_eq!(p.windows.first().unwrap().start, now() - Duration::days(10));
        assert_eq!(p.windows.last().unwrap().end, now() - Duration::hours(25));
        // 10 days − 25 h = 215 h = 35 windows of 6 h and one of 5 h
        assert_eq!(p.windows.len(), 36);
        assert_eq!(p.skipped, None);
    }

    #[test]
    fn caught_up_checkpoint_plans_nothing() {
        let end = now() - Duration::hours(25);
        let p = plan(
            Standing {
                end: Some(end),
                partial: None,
            },
            now(),
            &rules(),
            1000,
        );
        assert!(p.windows.is_empty());
    }

    #[test]
    fn start_outside_lookback_moves_to_limit_plus_margin_and_reports_the_gap() {
        let old = now() - Duration::days(120);
        let p = plan(
            Standing {
                end: Some(old),
                partial: None,
            },
            now(),
            &rules(),
            3,
        );
        let limit = now() - Duration::days(90) + Duration::seconds(60);
        assert_eq!(
            p.skipped,
            Some(Skipped {
                from: old,
                to: limit
            })
        );
        assert_eq!(p.windows[0].start, limit);
        assert_eq!(p.windows.len(), 3);
    }

    #[test]
    fn partial_window_comes_first_then_the_rest() {
        let s = now() - Duration::hours(40);
        let partial = Window {
            start: s,
            end: s + Duration::hours(6),
            resume: Some(Resume {
                until: s + Duration::hours(2),
                sent_at_until: vec!["a|b".into()],
            }),
        };
        let p = plan(
            Standing {
                end: Some(s),
                partial: Some(&partial),
            },
            now(),
            &rules(),
            100,
        );
        assert_eq!(p.windows[0], partial);
        assert_eq!(p.windows[1].start, s + Duration::hours(6));
        assert_eq!(p.windows.last().unwrap().end, now() - Duration::hours(25));
    }

    #[test]
    fn window_membership_is_half_open_and_resume_skips_sent_keys() {
        let s = now() - Duration::hours(30);
        let w = Window {
            start: s,
            end: s + Duration::hours(1),
            resume: None,
        };
        assert!(w.wants(s, "k"));
        assert!(!w.wants(s + Duration::hours(1), "k"));
        let r = Window {
            resume: Some(Resume {
                until: s + Duration::minutes(10),
                sent_at_until: vec!["sent".into()],
            }),
            ..w
        };
        assert!(r.wants(s + Duration::minutes(10), "other"));
        assert!(!r.wants(s + Duration::minutes(10), "sent"));
        assert!(!r.wants(s + Duration::minutes(11), "other"));
        assert_eq!(r.query_end(), s + Duration::minutes(10));
    }

    proptest! {
        #[test]
        fn windows_are_contiguous_bounded_and_within_the_api_limits(
            end_offset_s in -200i64 * 86_400..86_400,
            has_checkpoint in any::<bool>(),
            delay in 0i64..30 * 86_400,
            historic_days in 0i64..=90,
            margin in 0i64..3_600,
            max_window in 60i64..=864_000,
            lookback_days in prop::sample::select(vec![10i64, 90]),
            max_windows in 1usize..500,
        ) {
            let rules = WindowRules {
                delay: Duration::seconds(delay),
                historic: Duration::days(historic_days.min(lookback_days)),
                margin: Duration::seconds(margin),
                max_window: Duration::seconds(max_window),
                lookback: Duration::days(lookback_days),
            };
            let end = has_checkpoint.then(|| now() + Duration::seconds(end_offset_s));
            let p = plan(Standing { end, partial: None }, now(), &rules, max_windows);
            prop_assert!(p.windows.len() <= max_windows);
            let earliest = now() - rules.lookback;
            let mut expected_start = p.start;
            for w in &p.windows {
                prop_assert_eq!(w.start, expected_start, "no gap, no overlap");
                prop_assert!(w.start < w.end);
                prop_assert!(w.end <= now() - rules.delay, "never past now − delay");
                prop_assert!(w.start > earliest || rules.margin.is_zero() && w.start == earliest, "inside the lookback");
                prop_assert!(w.end - w.start <= MAX_QUERY_SPAN);
                prop_assert!(w.end - w.start <= rules.max_window);
                expected_start = w.end;
            }
            if let Some(e) = end {
                // Never goes back before the checkpoint.
                prop_assert!(p.start >= e);
                prop_assert_eq!(p.skipped.is_some(), e < earliest + rules.margin);
            }
            if p.windows.len() < max_windows {
                // Caught up: nothing left before the horizon.
                let last = p.windows.last().map_or(p.start, |w| w.end);
                prop_assert!(last >= now() - rules.delay);
            }
        }
    }
}
