//! The reconciliation pass's position: which spans get a second look, and how it moves past the
//! ones it cannot pull. Pure: values in, values out.
//!
//! Invariants (docs/design.md, "Passes"):
//!
//! - Every span the fresh pass pulled while it was younger than `DELAY_SECONDS` is in `due`
//!   until the reconciliation pass delivered it — whether the fresh pass found records there or
//!   not (an empty span gets its second look too: what Microsoft exposes there later is late).
//! - A span between due spans was pulled when already older than `DELAY_SECONDS` (or never
//!   by the fresh pass): it needs no second look, and the plan passes over it.
//! - The plan never passes a due span it did not pull, except a span older than the API's
//!   lookback (minus `MARGIN_SECONDS`) or the oldest spans past the ledger's cap, each dropped
//!   as a reported [`Gap`].
//! - The pass never plans past the primary pass's end (its horizon is the lesser of
//!   now − `DELAY_SECONDS` and that end): a window the fresh pass left part-way is not read as
//!   late records.
//! - A window's ledger fits in memory: it ends before the part that would take the
//!   fingerprints it loads past [`MAX_INDEX_RECORDS`] (the fresh pass writes parts of at most
//!   [`MAX_PART_RECORDS`]).

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::checkpoint::position::{Position, Span, add};
use crate::ledger::{Fingerprint, LedgerPart};
use crate::window::{Plan, Skipped, Window};

/// The most fingerprints in one ledger part: 500 000 (4.5 MB as an object, 8 MB in memory).
pub const MAX_PART_RECORDS: usize = 500_000;
/// The most fingerprints one reconciliation window loads: 3 000 000 (48 MB at 16 bytes each,
/// next to one object's bytes: under 64 MB with a tenant's 10 M records a day).
pub const MAX_INDEX_RECORDS: u64 = 3_000_000;
/// The most ledger parts the checkpoint lists (about 150 bytes each): past it, the oldest due
/// spans are dropped as a [`Gap`] (`ledger_full`). Five-minute ticks write about 300 parts a
/// day of `DELAY_SECONDS`; this is a week of them.
pub const MAX_LEDGER_PARTS: usize = 2_000;
/// The most due spans: spans merge when they touch, so many only come with many pauses.
pub const MAX_DUE_SPANS: usize = 2_000;

/// Why a due span is dropped without its second look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GapReason {
    /// Older than the API's lookback minus `MARGIN_SECONDS`: the API refuses it.
    Lookback,
    /// The oldest of more spans or parts than the checkpoint keeps.
    LedgerFull,
}

impl GapReason {
    /// Its name in the log and the summary.
    pub fn as_str(self) -> &'static str {
        match self {
            GapReason::Lookback => "lookback",
            GapReason::LedgerFull => "ledger_full",
        }
    }
}

/// A due span dropped without its second look: what Microsoft exposed there late is not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// Start of the span.
    pub from: DateTime<Utc>,
    /// End of the span.
    pub to: DateTime<Utc>,
    pub reason: GapReason,
}

/// The limits a second look is planned within.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// now − `DELAY_SECONDS`, or the primary pass's end if earlier.
    pub horizon: DateTime<Utc>,
    /// now − lookback + `MARGIN_SECONDS`: no window starts earlier.
    pub earliest: DateTime<Utc>,
    /// The longest window.
    pub span: Duration,
    /// The most windows.
    pub max_windows: usize,
}

/// What of `due` lies before `at`.
fn before(due: &[Span], at: DateTime<Utc>) -> Vec<Span> {
    due.iter()
        .filter(|(s, _)| *s < at)
        .map(|&(s, e)| (s, e.min(at)))
        .collect()
}

/// The seconds `gaps` cover.
pub fn seconds(gaps: &[Gap]) -> i64 {
    gaps.iter().map(|g| (g.to - g.from).num_seconds()).sum()
}

impl Position {
    /// Adds the young part of a window the fresh pass delivered (whole or part-way) to the
    /// spans due for a second look.
    pub fn owe(&mut self, span: Span) {
        add(&mut self.due, span);
    }

    /// Plans the reconciliation pass's windows over the due spans, from where it stands, within
    /// `limits`; the ledger `parts` bound each window's memory. Drops (and returns) the spans
    /// past the lookback and past the ledger's cap, moving the position past them.
    pub fn plan_second_look(&mut self, parts: &[LedgerPart], limits: &Limits) -> (Plan, Vec<Gap>) {
        let mut gaps = self.drop_before(limits.earliest, GapReason::Lookback);
        let excess = self.due.len().saturating_sub(MAX_DUE_SPANS);
        if excess > 0 {
            let cut = self.due[excess - 1].1;
            gaps.extend(self.drop_before(cut, GapReason::LedgerFull));
        }
        if parts.len() > MAX_LEDGER_PARTS {
            let mut ends: Vec<DateTime<Utc>> = parts.iter().map(|p| p.end).collect();
            ends.sort();
            let cut = ends[parts.len() - MAX_LEDGER_PARTS - 1];
            gaps.extend(self.drop_before(cut, GapReason::LedgerFull));
        }
        let mut windows = self.open();
        let mut from = windows.last().map(|w| w.end).or(self.end);
        for &(s, e) in &self.due {
            let mut start = from.map_or(s, |f| f.max(s));
            let stop = e.min(limits.horizon);
            while start < stop && windows.len() < limits.max_windows {
                let end = fit(parts, start, (start + limits.span).min(stop));
                windows.push(Window {
                    start,
                    end,
                    resume: None,
                });
                start = end;
            }
            from = Some(start);
            if e > limits.horizon || windows.len() >= limits.max_windows {
                break;
            }
        }
        let idle = self
            .due
            .first()
            .map_or(limits.horizon, |d| d.0.min(limits.horizon));
        let plan = Plan {
            start: windows.first().map_or(idle, |w| w.start),
            horizon: limits.horizon,
            skipped: None,
            windows,
            split: None,
        };
        self.start_at(&plan);
        (plan, gaps)
    }

    /// Drops the due spans (and the windows left part-way) before `at` as gaps of `reason`.
    fn drop_before(&mut self, at: DateTime<Utc>, reason: GapReason) -> Vec<Gap> {
        let lost = before(&self.due, at);
        if lost.is_empty() && self.end.is_some_and(|e| e >= at) {
            return Vec::new();
        }
        let from = self.end.unwrap_or(at).min(at);
        self.skip(&Skipped { from, to: at });
        lost.into_iter()
            .map(|(from, to)| Gap { from, to, reason })
            .collect()
    }
}

/// Where a window from `start` to at most `end` ends so that the fingerprints of the ledger
/// parts it overlaps stay within [`MAX_INDEX_RECORDS`]: before the first part that would pass
/// it (a part starting at `start` is always taken).
fn fit(parts: &[LedgerPart], start: DateTime<Utc>, end: DateTime<Utc>) -> DateTime<Utc> {
    let mut overlapping: Vec<&LedgerPart> = parts
        .iter()
        .filter(|p| p.start < end && start < p.end)
        .collect();
    overlapping.sort_by_key(|p| p.start);
    let mut sum = 0u64;
    for p in overlapping {
        if p.start > start && sum.saturating_add(p.records) > MAX_INDEX_RECORDS {
            return p.start;
        }
        sum = sum.saturating_add(p.records);
    }
    end
}

/// Cuts the fingerprints the fresh pass delivered in the young span `span` into parts of at
/// most `max` records, at received-time boundaries between distinct instants (records of one
/// instant stay in one part): each part's span, and its fingerprints. The spans tile `span`.
pub fn cut(
    mut delivered: Vec<(Fingerprint, DateTime<Utc>)>,
    span: Span,
    max: usize,
) -> Vec<(Span, Vec<Fingerprint>)> {
    delivered.retain(|(_, at)| *at >= span.0 && *at < span.1);
    delivered.sort_by_key(|(_, at)| *at);
    let mut parts: Vec<(Span, Vec<Fingerprint>)> = Vec::new();
    let mut start = span.0;
    let mut current: Vec<Fingerprint> = Vec::new();
    let mut last: Option<DateTime<Utc>> = None;
    for (fingerprint, at) in delivered {
        if current.len() >= max.max(1) && last.is_some_and(|l| l < at) {
            parts.push(((start, at), std::mem::take(&mut current)));
            start = at;
        }
        current.push(fingerprint);
        last = Some(at);
    }
    if !current.is_empty() {
        parts.push(((start, span.1), current));
    }
    parts
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;
    use crate::checkpoint::position::Progress;
    use crate::window::Resume;

    fn t(m: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 0, 0, 0).unwrap() + Duration::minutes(m)
    }

    fn part(s: i64, e: i64, records: u64) -> LedgerPart {
        LedgerPart {
            start: t(s),
            end: t(e),
            n: 0,
            records,
        }
    }

    fn limits(horizon: i64) -> Limits {
        Limits {
            horizon: t(horizon),
            earliest: t(-100_000),
            span: Duration::minutes(8),
            max_windows: 100,
        }
    }

    fn bounds(plan: &Plan) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        plan.windows.iter().map(|w| (w.start, w.end)).collect()
    }

    #[test]
    fn due_spans_merge_when_they_touch_and_every_one_is_planned_empty_or_not() {
        let mut p = Position::default();
        for (s, e) in [(10, 15), (0, 5), (5, 10), (100, 130)] {
            p.owe((t(s), t(e)));
        }
        assert_eq!(p.due, vec![(t(0), t(15)), (t(100), t(130))]);
        let parts = [part(0, 5, 3)];
        let (plan, gaps) = p.plan_second_look(&parts, &limits(120));
        assert!(gaps.is_empty());
        assert_eq!(
            bounds(&plan),
            vec![
                (t(0), t(8)),
                (t(8), t(15)),
                (t(100), t(108)),
                (t(108), t(116)),
                (t(116), t(120))
            ],
            "15..100 was pulled old: passed over; nothing past the horizon"
        );
        assert!(p.advance(&plan.windows[0], &Progress::Complete));
        assert!(p.advance(&plan.windows[1], &Progress::Complete));
        assert_eq!(p.due, vec![(t(100), t(130))]);
        let resume = Resume {
            until: t(104),
            sent_at_until: vec![],
        };
        assert!(p.advance(&plan.windows[2], &Progress::Partial(resume)));
        assert_eq!(p.due, vec![(t(100), t(130))], "part-way: still due");
        assert_eq!(p.end, Some(t(100)));
    }

    #[test]
    fn spans_past_the_lookback_and_past_the_cap_are_dropped_as_gaps() {
        let mut p = Position {
            end: Some(t(0)),
            ..Position::default()
        };
        p.owe((t(0), t(10)));
        p.owe((t(20), t(40)));
        let l = Limits {
            earliest: t(30),
            ..limits(60)
        };
        let (plan, gaps) = p.plan_second_look(&[], &l);
        assert_eq!(
            gaps,
            vec![
                Gap {
                    from: t(0),
                    to: t(10),
                    reason: GapReason::Lookback
                },
                Gap {
                    from: t(20),
                    to: t(30),
                    reason: GapReason::Lookback
                }
            ]
        );
        assert_eq!(seconds(&gaps), 20 * 60);
        assert_eq!(bounds(&plan), vec![(t(30), t(38)), (t(38), t(40))]);
        assert_eq!(p.end, Some(t(30)));

        let mut p = Position::default();
        for i in 0..(MAX_DUE_SPANS as i64 + 2) {
            p.owe((t(2 * i), t(2 * i + 1)));
        }
        let (_, gaps) = p.plan_second_look(&[], &limits(100_000));
        assert_eq!(gaps.len(), 2, "the two oldest");
        assert!(gaps.iter().all(|g| g.reason == GapReason::LedgerFull));
        assert_eq!(p.due.len(), MAX_DUE_SPANS);
    }

    #[test]
    fn a_window_ends_before_the_part_that_would_pass_the_memory_cap() {
        let mut p = Position::default();
        p.owe((t(0), t(8)));
        let big = MAX_INDEX_RECORDS / 2 + 1;
        let parts = [part(0, 2, big), part(2, 5, big), part(5, 8, 10)];
        let (plan, _) = p.plan_second_look(&parts, &limits(60));
        assert_eq!(bounds(&plan), vec![(t(0), t(2)), (t(2), t(8))]);
    }

    #[test]
    fn parts_are_cut_between_distinct_instants() {
        let f = |k: u64| Fingerprint { key: k, status: 0 };
        let at = |m: i64| t(m);
        let delivered = vec![
            (f(1), at(1)),
            (f(2), at(1)),
            (f(3), at(1)),
            (f(4), at(2)),
            (f(5), at(3)),
            (f(6), at(-1)),
        ];
        let parts = cut(delivered, (t(0), t(10)), 2);
        let spans: Vec<Span> = parts.iter().map(|(s, _)| *s).collect();
        assert_eq!(spans, vec![(t(0), t(2)), (t(2), t(10))]);
        assert_eq!(parts[0].1.len(), 3, "one instant stays in one part");
        assert_eq!(parts[1].1, vec![f(4), f(5)]);
        assert!(cut(Vec::new(), (t(0), t(1)), 2).is_empty());
    }

    proptest! {
        /// Whatever spans become due and however windows end, everything owed and not yet
        /// delivered stays due, at or after the oldest due instant (`complete_until`).
        #[test]
        fn a_due_span_is_never_passed_without_its_second_look(
            owed in prop::collection::vec((0i64..300, 1i64..30), 1..10),
            outcomes in prop::collection::vec((0u8..3, 0i64..30), 1..40),
            horizon in 0i64..400,
        ) {
            let mut p = Position::default();
            let mut left = vec![false; 400];
            for (s, len) in owed {
                p.owe((t(s), t(s + len)));
                for m in s..s + len { left[m as usize] = true; }
            }
            let mut outcomes = outcomes.into_iter();
            loop {
                let (plan, gaps) = p.plan_second_look(&[], &limits(horizon));
                prop_assert!(gaps.is_empty());
                let mut stopped = false;
                for w in &plan.windows {
                    let Some((kind, at)) = outcomes.next() else { stopped = true; break };
                    let (s, e) = ((w.start - t(0)).num_minutes(), (w.end - t(0)).num_minutes());
                    let top = w.resume.as_ref().map_or(e, |r| (r.until - t(0)).num_minutes());
                    let progress = match kind {
                        0 => { for m in s..top { left[m as usize] = false; } Progress::Complete }
                        1 if top > s => {
                            let until = s + at % (top - s);
                            for m in until + 1..top { left[m as usize] = false; }
                            Progress::Partial(Resume { until: t(until), sent_at_until: vec![] })
                        }
                        _ => Progress::NotStarted,
                    };
                    p.advance(w, &progress);
                    let first_due = p.due.first().map(|d| d.0);
                    for (m, owed) in left.iter().enumerate() {
                        if *owed {
                            let at = t(m as i64);
                            prop_assert!(first_due.is_some_and(|f| f <= at), "{} owed before complete_until {:?}", m, p);
                            prop_assert!(p.due.iter().any(|(s, e)| *s <= at && at < *e), "{} owed, not due: {:?}", m, p);
                        }
                    }
                    if progress != Progress::Complete { stopped = true; break; }
                }
                if stopped || plan.windows.is_empty() { break; }
            }
        }
    }
}
