//! Where a pass stands, and every way it moves: planned (from where it stands, past what the
//! API's lookback lost), carved (a stuck span in pieces), advanced (a window delivered, whole
//! or part-way), resumed (the windows left part-way come first) and stuck (no progress).
//! Pure: values in, values out.
//!
//! Invariants, for every sequence of window outcomes:
//!
//! - **end**: every record received before `end` was delivered by this pass (or reported as
//!   skipped). It moves forward only past a window delivered whole, or to the start of a plan
//!   (which starts at `end`, or later only past a reported skip).
//! - **open windows** (`partial`, then `then`): windows left part-way, each with its resume
//!   point, tiling `[end, …)` without a gap. A window delivered part-way becomes the first; the
//!   windows it was carved from keep theirs after it, so no resume point is forgotten.
//! - **stuck**: the span that made no progress in the last ticks, until `end` passes it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::checkpoint::cut::{self, Measured};
use crate::checkpoint::sent::Sent;
use crate::checkpoint::split::{self, Ended, Stuck};
use crate::ledger::Fingerprint;
use crate::window::{self, Bounds, Plan, Resume, Skipped, Split, SplitReason, Window};

/// Where one pass stands: the end of its last delivered window, the windows it left part-way,
/// the span that made no progress, and (the reconciliation pass only) the young spans due for
/// a second look.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Every record received before it was delivered by this pass.
    #[serde(default)]
    pub end: Option<DateTime<Utc>>,
    /// A window whose newest part was delivered; it starts at `end`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<Window>,
    /// Further windows left part-way after `partial`, each starting where the previous one
    /// ends: what is left of the window a carved piece was cut from, with its resume point.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub then: Vec<Window>,
    /// A span that made no progress in the last ticks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stuck: Option<Stuck>,
    /// The reconciliation pass only: the spans the fresh pass pulled while they were younger
    /// than `DELAY_SECONDS`, sorted, disjoint, none before `end` — each is pulled again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub due: Vec<Span>,
    /// What the relay confirmed of a window of an unordered source cut by the deadline: its
    /// pieces skip those lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<Sent>,
}

impl Position {
    /// The windows left part-way, oldest first.
    pub fn open(&self) -> Vec<Window> {
        self.partial.iter().chain(&self.then).cloned().collect()
    }

    fn set_open(&mut self, mut open: Vec<Window>) {
        open.retain(|w| w.resume.is_some());
        let mut rest = open.into_iter();
        self.partial = rest.next();
        self.then = rest.collect();
    }

    /// Where the pass stands, as compared tick to tick: its end and, within the window left
    /// part-way, the instant down to which its newest part was delivered.
    pub fn standing(&self) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        let until = self
            .partial
            .as_ref()
            .and_then(|w| w.resume.as_ref().map(|r| r.until));
        (self.end, until)
    }

    /// Plans at most `max_windows` windows from where the pass stands within `bounds`: the
    /// windows left part-way first, then new ones up to the horizon. What the lookback lost is
    /// reported in the plan's `skipped`, and the position moves past it.
    pub fn plan(&mut self, bounds: &Bounds, max_windows: usize) -> Plan {
        let open = self.open();
        let plan = match open.split_first() {
            Some((first, rest)) if !rest.is_empty() && first.start >= bounds.earliest => {
                // Several windows left part-way: they come first, as they are.
                let after = rest.last().map_or(first.end, |w| w.end);
                let progress = window::Standing {
                    end: Some(after),
                    partial: None,
                };
                let budget = max_windows.saturating_sub(open.len()).max(1);
                let mut plan = window::plan_within(progress, bounds, budget);
                plan.windows.splice(0..0, open.iter().cloned());
                plan.windows.truncate(max_windows);
                plan.start = first.start;
                plan
            }
            first => {
                // One window left part-way (or several reaching past the lookback: only the
                // first is kept, the rest of the span is pulled again, a repeat, never a loss).
                let progress = window::Standing {
                    end: self.end,
                    partial: first.map(|(w, _)| w),
                };
                window::plan_within(progress, bounds, max_windows)
            }
        };
        self.start_at(&plan);
        plan
    }

    /// Records where the pass stands before its first window: a fresh start or a skip moves
    /// the end; the windows left part-way stay until they are delivered.
    pub fn start_at(&mut self, plan: &Plan) {
        match plan.windows.first() {
            Some(first) => {
                self.end = Some(first.start);
                let open: Vec<Window> = self
                    .open()
                    .into_iter()
                    .filter(|w| w.start >= first.start)
                    .collect();
                // A window the lookback cut keeps its resume point from the plan.
                let open = match (open.first(), first.resume.is_some()) {
                    (Some(w), true) if w.start != first.start => vec![first.clone()],
                    (None, true) => vec![first.clone()],
                    _ => open,
                };
                self.set_open(open);
            }
            None => {
                self.end = Some(self.end.map_or(plan.start, |e| e.max(plan.start)));
                self.set_open(Vec::new());
            }
        }
    }

    /// Cuts the plan's windows inside the stuck span into pieces, once it has been stuck long
    /// enough; each window left part-way keeps its resume point on its last piece.
    pub fn carve(&self, plan: &mut Plan, max_windows: usize) {
        if let Some((stuck, split)) = self.stuck.as_ref().and_then(|s| Some((s, s.split()?))) {
            let windows = std::mem::take(&mut plan.windows);
            plan.windows = match split.reason {
                SplitReason::ReportingCut => {
                    split::carve_at(windows, stuck.start, stuck.until, &stuck.cut_at)
                }
                SplitReason::Stuck => split::carve(windows, &split),
            };
            plan.windows.truncate(max_windows);
            plan.split = Some(split);
        }
    }

    /// What `progress` in `window` does to the position; whether anything changed. A window
    /// delivered whole moves the end past it (the windows left part-way after it keep their
    /// resume points); one delivered part-way becomes the first window left part-way, before
    /// the rest of the window it was carved from.
    pub fn advance(&mut self, window: &Window, progress: &Progress) -> bool {
        let after = |open: Vec<Window>| -> Vec<Window> {
            open.into_iter()
                .filter(|w| w.end > window.end)
                .map(|w| Window {
                    start: w.start.max(window.end),
                    ..w
                })
                .collect()
        };
        match progress {
            Progress::Complete => {
                self.end = Some(window.end);
                let open = after(self.open());
                self.set_open(open);
            }
            Progress::Partial(resume) => {
                self.end = Some(window.start);
                let mut open = vec![Window {
                    resume: Some(resume.clone()),
                    ..window.clone()
                }];
                open.extend(after(self.open()));
                self.set_open(open);
            }
            Progress::NotStarted => return false,
        }
        self.trim_due();
        true
    }

    /// Updates the stuck span from how a tick that planned `first` ended, given where the pass
    /// stood before its first window.
    pub fn after_tick(
        &mut self,
        first: Option<&Window>,
        before: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
        ended: Ended,
    ) {
        let after = self.standing();
        self.stuck = split::after_tick(self.stuck.take(), first, before, after, ended);
    }

    /// A window of an unordered source (no resume point) was cut by the deadline after
    /// `measured`, its relay having confirmed `confirmed`: it is split at once, in pieces one
    /// tick pulls at the measured rate, and its pieces skip what was confirmed. Call after
    /// [`Position::after_tick`]. Returns the split the next tick plans.
    pub fn cut(
        &mut self,
        window: &Window,
        measured: &Measured,
        confirmed: Vec<Fingerprint>,
    ) -> Option<Split> {
        let until = window.query_end();
        let cuts = cut::boundaries(window.start, until, measured);
        self.stuck = Some(Stuck::cut(self.stuck.take(), window.start, until, cuts));
        self.sent = Sent::after_cut(self.sent.take(), window, confirmed);
        self.stuck.as_ref().and_then(Stuck::split)
    }

    /// The fingerprints `window` skips: confirmed by a tick that cut it.
    pub fn sent_in(&self, window: &Window) -> Vec<Fingerprint> {
        self.sent
            .as_ref()
            .and_then(|s| s.within(window))
            .map(<[Fingerprint]>::to_vec)
            .unwrap_or_default()
    }

    /// Moves past `skipped`: nothing before its end is pulled any more.
    pub fn skip(&mut self, skipped: &Skipped) {
        self.end = Some(self.end.map_or(skipped.to, |e| e.max(skipped.to)));
        let to = skipped.to;
        let open: Vec<Window> = self
            .open()
            .into_iter()
            .filter(|w| w.resume.as_ref().is_some_and(|r| r.until >= to) && w.end > to)
            .map(|w| Window {
                start: w.start.max(to),
                ..w
            })
            .collect();
        self.set_open(open);
        self.trim_due();
    }

    /// Drops the part of the due spans before `end` (reconciled, or reported as a gap), and
    /// the lines confirmed in a cut window once `end` passed it.
    fn trim_due(&mut self) {
        if let Some(end) = self.end {
            self.due = after(&self.due, end);
            self.sent = self.sent.take().filter(|s| s.end > end);
        }
    }
}

/// A span `[start, end)`.
pub type Span = (DateTime<Utc>, DateTime<Utc>);

/// How far a window got: what the relay confirmed, never just what was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Every record of the window was delivered.
    Complete,
    /// The newest part was delivered; the rest resumes from here.
    Partial(Resume),
    /// Nothing new can be recorded as delivered.
    NotStarted,
}

/// Adds `span` to the sorted, disjoint `due`, merging what overlaps or touches.
pub fn add(due: &mut Vec<Span>, span: Span) {
    if span.0 >= span.1 {
        return;
    }
    due.push(span);
    due.sort();
    let mut merged: Vec<Span> = Vec::with_capacity(due.len());
    for (s, e) in due.drain(..) {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    *due = merged;
}

/// What of `due` lies at or after `at`.
pub fn after(due: &[Span], at: DateTime<Utc>) -> Vec<Span> {
    due.iter()
        .filter(|(_, e)| *e > at)
        .map(|&(s, e)| (s.max(at), e))
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    use super::*;

    fn t(m: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap() + Duration::minutes(m)
    }

    fn window(s: i64, e: i64) -> Window {
        Window {
            start: t(s),
            end: t(e),
            resume: None,
        }
    }

    fn resumed(s: i64, e: i64, until: i64) -> Window {
        Window {
            resume: Some(Resume {
                until: t(until),
                sent_at_until: vec!["k".into()],
            }),
            ..window(s, e)
        }
    }

    fn bounds(horizon: i64, span: i64) -> Bounds {
        Bounds {
            start: t(0),
            horizon: t(horizon),
            earliest: t(-100_000),
            span: Duration::minutes(span),
        }
    }

    /// Whether the position holds the instant `sec` seconds in as delivered.
    fn claims(p: &Position, sec: i64) -> bool {
        let at = t(0) + Duration::seconds(sec);
        p.end.is_some_and(|e| at < e)
            || p.open().iter().any(|w| {
                w.resume.as_ref().is_some_and(|r| r.until < at) && at < w.end && at >= w.start
            })
    }

    #[test]
    fn a_carved_piece_left_part_way_keeps_the_resume_point_of_its_window() {
        let mut p = Position {
            end: Some(t(0)),
            partial: Some(resumed(0, 60, 40)),
            ..Position::default()
        };
        p.stuck = Some(Stuck {
            start: t(0),
            until: t(40),
            ticks: 2,
            error: None,
            cut_at: Vec::new(),
        });
        let mut plan = p.plan(&bounds(120, 60), 100);
        p.carve(&mut plan, 100);
        assert_eq!(plan.windows[0], window(0, 20), "{plan:?}");
        assert_eq!(p.open(), vec![resumed(0, 60, 40)], "planning moves nothing");
        // The first piece is delivered part-way: it comes first, the window's rest after it.
        let piece = Resume {
            until: t(10),
            sent_at_until: vec!["p".into()],
        };
        assert!(p.advance(&plan.windows[0], &Progress::Partial(piece.clone())));
        assert_eq!(p.end, Some(t(0)));
        assert_eq!(
            p.open(),
            vec![
                Window {
                    resume: Some(piece),
                    ..window(0, 20)
                },
                resumed(20, 60, 40)
            ]
        );
        // The next tick plans both, in order, then goes on.
        let next = p.plan(&bounds(120, 60), 100);
        assert_eq!(next.windows[1], resumed(20, 60, 40));
        assert_eq!(next.windows[2].start, t(60));
        assert!(p.advance(&next.windows[0], &Progress::Complete));
        assert_eq!((p.end, p.open()), (Some(t(20)), vec![resumed(20, 60, 40)]));
        assert!(p.advance(&next.windows[1], &Progress::Complete));
        assert_eq!((p.end, p.open()), (Some(t(60)), vec![]));
        assert!(!p.advance(&next.windows[2], &Progress::NotStarted));
    }

    #[test]
    fn a_cut_window_is_planned_in_pieces_at_once_and_a_cut_piece_keeps_the_later_cuts() {
        let mut p = Position {
            end: Some(t(0)),
            ..Position::default()
        };
        let plan = p.plan(&bounds(240, 120), 100);
        let whole = plan.windows[0].clone();
        // Cut after 40 rows spread over the window's two hours, 2 of the tick's 4 s pulling.
        let measured = Measured {
            rows: 40,
            pulling: std::time::Duration::from_secs(2),
            tick: std::time::Duration::from_secs(4),
            received: (0..40).map(|i| t(3 * i)).collect(),
        };
        let sent = vec![Fingerprint::of("a", None)];
        p.after_tick(Some(&whole), p.standing(), Ended::OutOfTime);
        let split = p
            .cut(&whole, &measured, sent.clone())
            .expect("split at once");
        assert_eq!(split.reason, SplitReason::ReportingCut);
        assert_eq!(split.stuck_ticks, 1, "no waiting for the stuck rule");
        let mut next = p.plan(&bounds(240, 120), 100);
        p.carve(&mut next, 100);
        let starts: Vec<_> = next.windows.iter().map(|w| w.start).collect();
        // 20 rows/s, 64 fit a tick, 32 sampled a piece: two pieces of 20 rows.
        assert_eq!(&starts[..3], &[t(0), t(60), t(120)], "{next:?}");
        assert_eq!(p.sent_in(&next.windows[1]), sent);
        // The first piece is delivered; the second is cut again: the span keeps its end.
        assert!(p.advance(&next.windows[0], &Progress::Complete));
        assert_eq!(
            p.sent_in(&next.windows[1]),
            sent,
            "kept until the window is passed"
        );
        let again = Measured {
            received: (20..40).map(|i| t(3 * i)).collect(),
            ..measured
        };
        p.cut(&next.windows[1], &again, vec![]).unwrap();
        let stuck = p.stuck.clone().unwrap();
        assert_eq!((stuck.start, stuck.until), (t(60), t(120)));
        assert!(p.advance(
            &Window {
                start: t(60),
                end: t(120),
                resume: None
            },
            &Progress::Complete
        ));
        assert_eq!(p.sent, None, "passed: dropped");
    }

    #[test]
    fn the_lookback_moves_the_position_and_reports_the_skip() {
        let mut p = Position {
            end: Some(t(0)),
            ..Position::default()
        };
        let b = Bounds {
            earliest: t(30),
            ..bounds(120, 60)
        };
        let plan = p.plan(&b, 100);
        assert_eq!(plan.skipped.map(|s| (s.from, s.to)), Some((t(0), t(30))));
        assert_eq!(p.end, Some(t(30)));
    }

    proptest! {
        /// Ticks of random outcomes (whole, part-way at a random instant, not started; a span
        /// stuck and carved): the position never holds as delivered what was not, and never
        /// forgets what was; its windows left part-way tile from its end.
        #[test]
        fn outcomes_never_move_the_position_past_what_was_not_delivered_nor_forget_a_resume_point(
            ticks in prop::collection::vec(
                (1i64..40, 1i64..30, 0u32..4, prop::collection::vec((0u8..3, 0i64..100), 1..8)),
                1..12,
            ),
        ) {
            let mut p = Position { end: Some(t(0)), ..Position::default() };
            let mut delivered = vec![false; 36_000];
            let mut horizon = 0;
            for (grow, span, stuck, outcomes) in ticks {
                horizon = (horizon + grow).min(590);
                if stuck >= 2 && let Some(first) = p.open().first().cloned().or_else(|| p.end.map(|e| Window { start: e, end: e + Duration::minutes(span), resume: None })) {
                    p.stuck = Some(Stuck { start: first.start, until: first.query_end().max(first.start + Duration::minutes(1)), ticks: stuck, error: None, cut_at: Vec::new() });
                }
                let mut plan = p.plan(&bounds(horizon, span), 100);
                p.carve(&mut plan, 100);
                for (w, (kind, at)) in plan.windows.iter().zip(outcomes) {
                    let secs = |x: DateTime<Utc>| (x - t(0)).num_seconds();
                    let (s, e) = (secs(w.start), secs(w.end));
                    // The query's end is inclusive for a resumed window, exclusive otherwise.
                    let top = if w.resume.is_some() { secs(w.query_end()) + 1 } else { e };
                    let progress = match kind {
                        0 => Progress::Complete,
                        1 => {
                            let until = s + (at * 60) % (top - 1 - s).max(1);
                            Progress::Partial(Resume { until: t(0) + Duration::seconds(until), sent_at_until: vec![] })
                        }
                        _ => Progress::NotStarted,
                    };
                    // What the window delivers: up to its query's end (a resumed window's
                    // newest part was delivered before); a part-way one, after its resume point.
                    let from = match &progress {
                        Progress::Complete => Some(s),
                        Progress::Partial(r) => Some(secs(r.until) + 1),
                        Progress::NotStarted => None,
                    };
                    if let Some(from) = from {
                        for x in from..top.min(e) { delivered[x as usize] = true; }
                    }
                    p.advance(w, &progress);
                    let open = p.open();
                    prop_assert_eq!(open.first().map(|w| w.start).or(p.end), p.end, "tiles from the end");
                    for pair in open.windows(2) {
                        prop_assert_eq!(pair[0].end, pair[1].start);
                    }
                    for x in (7..35_990).step_by(30) {
                        prop_assert!(!claims(&p, x) || delivered[x as usize], "claims {} undelivered: {:?}", x, p);
                        if delivered[x as usize] {
                            prop_assert!(claims(&p, x), "forgot {}: {:?}", x, p);
                        }
                    }
                    if progress != Progress::Complete { break; }
                }
                p.stuck = None;
            }
        }
    }
}
