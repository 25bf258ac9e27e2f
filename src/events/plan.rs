//! What a tick's plan does besides pulling: a reset, a skipped span, a split.

use crate::checkpoint::reset::Reset;
use crate::checkpoint::second_look::Gap;
use crate::events::Event;
use crate::window::{Skipped as SkippedSpan, Split, SplitReason};

/// `RESET_BEFORE` changed: the schedule restarts from `HISTORIC_DAYS` back.
pub struct ResetApplied<'a>(pub &'a Reset);

impl Event for ResetApplied<'_> {
    const NAME: &'static str = "reset";
    fn emit(&self) {
        tracing::warn!(event = Self::NAME, reset_before = %self.0.reset_before.to_rfc3339(),
            previous_checkpoint = self.0.previous_checkpoint.map(|t| t.to_rfc3339()),
            "RESET_BEFORE changed: the schedule restarts from HISTORIC_DAYS back; records are sent again");
    }
}

/// A span that is not pulled: outside the API's lookback, or passed over by a reset.
pub struct SpanSkipped(pub SkippedSpan);

impl Event for SpanSkipped {
    const NAME: &'static str = "skipped";
    fn emit(&self) {
        tracing::warn!(event = Self::NAME, from = %self.0.from.to_rfc3339(), to = %self.0.to.to_rfc3339(),
            "this span is outside the API's lookback (or before a reset's restart) and is not pulled");
    }
}

/// A span that made no progress in the last ticks, or a Reporting Web Service window cut by
/// the deadline, is pulled in smaller pieces.
pub struct WindowSplit(pub Split);

impl Event for WindowSplit {
    const NAME: &'static str = "window_split";
    fn emit(&self) {
        let s = &self.0;
        let why = match s.reason {
            SplitReason::Stuck => {
                "this span made no progress in the last ticks; it is pulled in smaller pieces, older first"
            }
            SplitReason::ReportingCut => {
                "this Reporting Web Service window was cut by the deadline and has no resume point; it is pulled in pieces one tick can pull at the rate measured, older first, skipping the lines already confirmed"
            }
        };
        tracing::warn!(event = Self::NAME, start = %s.start.to_rfc3339(), until = %s.until.to_rfc3339(),
            piece_seconds = s.piece_seconds, stuck_ticks = s.stuck_ticks, reason = s.reason.as_str(),
            "{why}");
    }
}

/// A span due for the reconciliation pass's second look is dropped without it: older than the
/// API's lookback, or the oldest past the ledger's cap. Late records there are not sent.
pub struct ReconcileGap<'a>(pub &'a Gap);

impl Event for ReconcileGap<'_> {
    const NAME: &'static str = "reconcile_gap";
    fn emit(&self) {
        let g = self.0;
        tracing::warn!(event = Self::NAME, from = %g.from.to_rfc3339(), to = %g.to.to_rfc3339(),
            seconds = (g.to - g.from).num_seconds(), reason = g.reason.as_str(),
            "this span gets no second look: records Microsoft exposed there late are not sent; the reconciliation moves on");
    }
}
