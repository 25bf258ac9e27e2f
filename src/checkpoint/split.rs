//! No failure repeats forever: a span where delivery stood still for two ticks in a row is
//! pulled in smaller pieces, older first, halving again each time it stays stuck, so that a
//! poisoned page or a window too big for one tick still advances. Pure: values in, values out.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::window::{Split, SplitReason, Window};

/// Stuck ticks after which the span is split (the first failure may be transient).
pub const SPLIT_AFTER: u32 = 2;
/// The most halvings (a 6-hour window becomes pieces of about 5 s).
pub const MAX_HALVINGS: u32 = 12;
/// The smallest piece.
pub const MIN_PIECE: Duration = Duration::seconds(1);

/// A span where delivery stood still, kept in the checkpoint until delivery passes its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stuck {
    /// Where delivery stood: the start of the window that did not advance.
    pub start: DateTime<Utc>,
    /// The end of that window's query: the span that did not advance is `[start, until]`.
    pub until: DateTime<Utc>,
    /// Consecutive ticks that ended inside the span without progress.
    pub ticks: u32,
    /// The last failure, for the operator (`None` when the time budget ran out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where a window of an unordered source cut by the deadline is cut
    /// (`crate::checkpoint::cut::boundaries`): the span is split at once, without waiting for
    /// [`SPLIT_AFTER`] ticks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cut_at: Vec<DateTime<Utc>>,
}

impl Stuck {
    /// The split it calls for: at once in the pieces of a cut, once it has been stuck
    /// [`SPLIT_AFTER`] ticks in halves (then quarters…); the shorter when both apply.
    pub fn split(&self) -> Option<Split> {
        let halved = (self.ticks >= SPLIT_AFTER).then(|| {
            let halvings = (self.ticks - SPLIT_AFTER + 1).min(MAX_HALVINGS);
            let piece = (self.until - self.start) / (1i32 << halvings);
            piece.num_seconds().max(MIN_PIECE.num_seconds())
        });
        let cut = (!self.cut_at.is_empty()).then(|| longest(self.start, self.until, &self.cut_at));
        let (piece_seconds, reason) = match (cut, halved) {
            (Some(cut), Some(halved)) if halved < cut => (halved, SplitReason::Stuck),
            (Some(cut), _) => (cut, SplitReason::ReportingCut),
            (None, Some(halved)) => (halved, SplitReason::Stuck),
            (None, None) => return None,
        };
        Some(Split {
            start: self.start,
            until: self.until,
            piece_seconds,
            stuck_ticks: self.ticks,
            reason,
        })
    }

    /// The span of a window `[start, until]` of an unordered source cut by the deadline, to be
    /// split at once at `cuts`. A cut piece of a span already cut keeps the span's end and
    /// its later cuts, so that its later pieces stay as they were.
    pub fn cut(
        stuck: Option<Stuck>,
        start: DateTime<Utc>,
        until: DateTime<Utc>,
        mut cuts: Vec<DateTime<Utc>>,
    ) -> Stuck {
        let within = stuck.filter(|s| start >= s.start && start < s.until);
        if let Some(s) = &within {
            cuts.extend(s.cut_at.iter().copied().filter(|c| *c >= until));
            cuts.sort_unstable();
            cuts.dedup();
        }
        Stuck {
            start,
            until: within.as_ref().map_or(until, |s| s.until.max(until)),
            ticks: within.as_ref().map_or(1, |s| s.ticks.max(1)),
            error: None,
            cut_at: cuts,
        }
    }
}

/// The longest piece of `[start, end)` cut at `cuts`, in seconds (for the summary).
pub fn longest(start: DateTime<Utc>, end: DateTime<Utc>, cuts: &[DateTime<Utc>]) -> i64 {
    let mut edges = vec![start];
    edges.extend(cuts.iter().copied());
    edges.push(end);
    edges
        .windows(2)
        .map(|p| (p[1] - p[0]).num_seconds())
        .max()
        .unwrap_or(0)
        .max(MIN_PIECE.num_seconds())
}

/// How a tick ended, as far as getting stuck is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Caught up, or moved forward.
    Normally,
    /// The time budget ran out before the first window delivered anything.
    OutOfTime,
    /// A window failed with a failure that may depend on the data (a page, a record, a query);
    /// failures of a whole service (credentials, the relay, S3) are not counted.
    Failed(String),
}

/// The checkpoint's new [`Stuck`] after a tick that planned `first` and moved delivery from
/// `before` to `after` (positions as [`crate::checkpoint::Checkpoint::standing`]).
pub fn after_tick(
    stuck: Option<Stuck>,
    first: Option<&Window>,
    before: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    after: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    ended: Ended,
) -> Option<Stuck> {
    let first = first?;
    let stood_still = before == after;
    let stuck = stuck.filter(|s| after.0.is_none_or(|end| end < s.until));
    let error = match ended {
        Ended::Normally => return stuck,
        _ if !stood_still => return stuck,
        Ended::OutOfTime => None,
        Ended::Failed(e) => Some(e),
    };
    match stuck {
        Some(s) if first.start >= s.start && first.start < s.until => Some(Stuck {
            ticks: s.ticks + 1,
            error,
            ..s
        }),
        _ => Some(Stuck {
            start: first.start,
            until: first.query_end(),
            ticks: 1,
            error,
            cut_at: Vec::new(),
        }),
    }
}

/// Cuts the windows that start inside `[start, until)` at `cuts` (ascending) and at `until`
/// (the pieces were sized for the span's rows only), older first; a window left part-way
/// keeps its resume point on its last piece.
pub fn carve_at(
    windows: Vec<Window>,
    start: DateTime<Utc>,
    until: DateTime<Utc>,
    cuts: &[DateTime<Utc>],
) -> Vec<Window> {
    let mut out = Vec::with_capacity(windows.len() + cuts.len());
    for window in windows {
        let stop = window.query_end();
        let mut from = window.start;
        if from >= start && from < until {
            let at_until = std::iter::once(&until);
            for &cut in cuts.iter().chain(at_until) {
                if cut <= from || cut >= stop {
                    continue;
                }
                out.push(Window {
                    start: from,
                    end: cut,
                    resume: None,
                });
                from = cut;
            }
        }
        out.push(Window {
            start: from,
            ..window
        });
    }
    out
}

/// Cuts the windows that start inside the split span into pieces of the split's length, older
/// first; a window left part-way keeps its resume point on its last piece.
pub fn carve(windows: Vec<Window>, split: &Split) -> Vec<Window> {
    let piece = Duration::seconds(split.piece_seconds).max(MIN_PIECE);
    let mut out = Vec::with_capacity(windows.len());
    for window in windows {
        let stop = window.query_end().min(split.until);
        let mut start = window.start;
        while start >= split.start && start + piece < stop {
            out.push(Window {
                start,
                end: start + piece,
                resume: None,
            });
            start += piece;
        }
        out.push(Window { start, ..window });
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;
    use crate::window::Resume;

    fn t(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap() + Duration::hours(h)
    }

    fn window(s: i64, e: i64) -> Window {
        Window {
            start: t(s),
            end: t(e),
            resume: None,
        }
    }

    #[test]
    fn two_ticks_without_progress_split_the_window_and_each_more_halves_again() {
        let w = window(0, 6);
        let here = (Some(t(0)), None);
        let s1 = after_tick(None, Some(&w), here, here, Ended::Failed("x".into()));
        assert_eq!(s1.as_ref().map(|s| s.ticks), Some(1));
        assert_eq!(
            s1.as_ref().and_then(Stuck::split),
            None,
            "one failure: retry as is"
        );
        let s2 = after_tick(s1, Some(&w), here, here, Ended::OutOfTime).unwrap();
        assert_eq!(s2.split().unwrap().piece_seconds, 3 * 3600);
        let s3 = after_tick(Some(s2), Some(&window(0, 3)), here, here, Ended::OutOfTime).unwrap();
        assert_eq!(s3.split().unwrap().piece_seconds, 3 * 1800);
        assert_eq!(
            (s3.start, s3.until),
            (t(0), t(6)),
            "the span stays the first one"
        );
    }

    #[test]
    fn progress_keeps_the_split_until_delivery_passes_the_span() {
        let s = Stuck {
            start: t(0),
            until: t(6),
            ticks: 3,
            error: None,
            cut_at: Vec::new(),
        };
        let moved = after_tick(
            Some(s.clone()),
            Some(&window(0, 1)),
            (Some(t(0)), None),
            (Some(t(1)), None),
            Ended::Normally,
        );
        assert_eq!(moved, Some(s.clone()));
        let passed = after_tick(
            Some(s),
            Some(&window(5, 6)),
            (Some(t(5)), None),
            (Some(t(6)), None),
            Ended::Normally,
        );
        assert_eq!(passed, None);
        assert_eq!(
            after_tick(None, None, (None, None), (None, None), Ended::OutOfTime),
            None,
            "nothing planned: nothing stuck"
        );
    }

    #[test]
    fn a_partial_window_is_carved_older_first_and_keeps_its_resume_point() {
        let partial = Window {
            resume: Some(Resume {
                until: t(4),
                sent_at_until: vec!["k".into()],
            }),
            ..window(0, 6)
        };
        let split = Split {
            start: t(0),
            until: t(4),
            piece_seconds: 3600,
            stuck_ticks: 2,
            reason: SplitReason::Stuck,
        };
        let pieces = carve(vec![partial.clone(), window(6, 12)], &split);
        assert_eq!(pieces[0], window(0, 1));
        assert_eq!(pieces[2], window(2, 3));
        assert_eq!(
            pieces[3],
            Window {
                start: t(3),
                ..partial
            }
        );
        assert_eq!(pieces[4], window(6, 12), "past the span: unchanged");
    }

    #[test]
    fn a_cut_window_is_carved_at_its_cuts_and_at_the_end_of_its_span() {
        let cuts = [t(1), t(3)];
        let pieces = carve_at(vec![window(0, 6), window(6, 12)], t(0), t(4), &cuts);
        assert_eq!(
            pieces,
            vec![
                window(0, 1),
                window(1, 3),
                window(3, 4),
                window(4, 6),
                window(6, 12)
            ]
        );
    }

    proptest! {
        #[test]
        fn carving_at_cuts_keeps_the_windows_contiguous(
            len in 1i64..30, span_start in 0i64..30, span_len in 1i64..40,
            mut cuts in prop::collection::vec(0i64..70, 0..8),
        ) {
            cuts.sort_unstable();
            cuts.dedup();
            let cuts: Vec<_> = cuts.into_iter().map(t).collect();
            let windows = vec![window(0, len), window(len, 2 * len)];
            let pieces = carve_at(windows, t(span_start), t(span_start + span_len), &cuts);
            prop_assert_eq!(pieces.first().map(|w| w.start), Some(t(0)));
            prop_assert_eq!(pieces.last().map(|w| w.end), Some(t(2 * len)));
            for pair in pieces.windows(2) {
                prop_assert_eq!(pair[0].end, pair[1].start);
                prop_assert!(pair[0].start < pair[0].end);
            }
        }

        #[test]
        fn carving_keeps_the_windows_contiguous_and_never_longer(
            starts in 0i64..20, len in 1i64..30, span_start in 0i64..30, span_len in 1i64..40, piece in 1i64..50_000,
        ) {
            let windows = vec![window(starts, starts + len), window(starts + len, starts + 2 * len)];
            let split = Split { start: t(span_start), until: t(span_start + span_len), piece_seconds: piece, stuck_ticks: 2, reason: SplitReason::Stuck };
            let pieces = carve(windows.clone(), &split);
            prop_assert_eq!(pieces.first().map(|w| w.start), Some(t(starts)));
            prop_assert_eq!(pieces.last().map(|w| w.end), Some(t(starts + 2 * len)));
            for pair in pieces.windows(2) {
                prop_assert_eq!(pair[0].end, pair[1].start);
                prop_assert!(pair[0].start < pair[0].end);
            }
        }
    }
}
