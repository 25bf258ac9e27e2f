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

use crate::checkpoint::second_look::Span;
use crate::split::{self, Ended, Stuck};
use crate::transfer::Progress;
use crate::window::{self, Bounds, Plan, Skipped, Window};

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
                let progress = window::Progress {
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
                let progress = window::Progress {
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
        if let Some(split) = self.stuck.as_ref().and_then(Stuck::split) {
            plan.windows = split::carve(std::mem::take(&mut plan.windows), &split);
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

    /// Drops the part of the due spans before `end` (reconciled, or reported as a gap).
    fn trim_due(&mut self) {
        if let Some(end) = self.end {
            self.due = crate::checkpoint::second_look::after(&self.due, end);
        }
    }
}

#[cfg(test)]
mod tests {}
