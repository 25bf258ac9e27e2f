//! One window's transfer: pages, refused nextLinks, the time budget, odd records, the outcome.

use std::time::Duration;

use crate::events::{Event, ms};
use crate::summary::Counts;
use crate::window::Window;

/// A window ended: how far it got and what it cost.
pub struct WindowFinished<'a> {
    /// The pass that pulled it (also in `span.pass`; kept on the line for saved queries).
    pub pass: &'static str,
    pub window: &'a Window,
    /// `complete`, `partial` or `not_started`.
    pub outcome: &'static str,
    /// What this window alone counted.
    pub counts: &'a Counts,
    /// Its wall time.
    pub elapsed: Duration,
}

impl Event for WindowFinished<'_> {
    const NAME: &'static str = "window";
    fn emit(&self) {
        let c = self.counts;
        tracing::info!(
            event = Self::NAME,
            pass = self.pass,
            start = %self.window.start.to_rfc3339(),
            end = %self.window.end.to_rfc3339(),
            resumed = self.window.resume.is_some(),
            outcome = self.outcome,
            pages = c.pages,
            records = c.records_pulled,
            events = c.events_sent,
            duplicates = c.duplicates_skipped,
            late_records = c.late_records,
            status_changes = c.status_changes,
            ledger_missing = c.ledger_missing,
            cutover_suppressed = c.cutover_suppressed,
            ms = ms(self.elapsed),
            "window"
        );
    }
}

/// A window failed; what it delivered was committed before the tick reports the failure.
pub struct WindowFailed<'a> {
    pub window: &'a Window,
    pub error: &'a dyn std::fmt::Display,
}

impl Event for WindowFailed<'_> {
    const NAME: &'static str = "window_failed";
    fn emit(&self) {
        tracing::error!(event = Self::NAME, start = %self.window.start.to_rfc3339(), end = %self.window.end.to_rfc3339(),
            error = %self.error, "window not fully delivered; what it delivered is committed");
    }
}

/// Records the API returned outside the window, or without an id or recipient.
pub struct OddRecords<'a> {
    pub window: &'a Window,
    /// Records outside it (left to their own window).
    pub outside_window: u64,
    /// Records without an id or recipient (sent keyed by their content).
    pub missing_key: u64,
}

impl Event for OddRecords<'_> {
    const NAME: &'static str = "odd_records";
    fn emit(&self) {
        tracing::warn!(
            event = Self::NAME,
            outside_window = self.outside_window,
            missing_key = self.missing_key,
            start = %self.window.start.to_rfc3339(),
            end = %self.window.end.to_rfc3339(),
            "records outside the window were left to their own window; records without an id or recipient were sent keyed by their content"
        );
    }
}

/// One page pulled (debug).
pub struct PagePulled {
    /// Records on it.
    pub records: usize,
    pub bytes: usize,
    /// From asking to having it.
    pub latency: Duration,
}

impl Event for PagePulled {
    const NAME: &'static str = "page";
    fn emit(&self) {
        tracing::debug!(
            event = Self::NAME,
            records = self.records,
            bytes = self.bytes,
            latency_ms = ms(self.latency),
            "page pulled"
        );
    }
}

/// The time budget ran out inside a window: it resumes in the next tick.
pub struct OutOfTime<'a> {
    /// The last failure, if a request was being retried.
    pub error: &'a dyn std::fmt::Display,
}

impl Event for OutOfTime<'_> {
    const NAME: &'static str = "out_of_time";
    fn emit(&self) {
        tracing::warn!(event = Self::NAME, error = %self.error, "time budget used up inside the window");
    }
}

/// Graph refused a nextLink: the rest of the window is asked for again, or, when the last
/// restart made no progress, the window fails.
pub struct NextLinkRefused<'a> {
    /// Graph's error code.
    pub code: &'a str,
    /// Restarts of this window so far.
    pub restarts: u32,
    /// Where the rest of the window now ends; `None` when the window gives up.
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

impl Event for NextLinkRefused<'_> {
    const NAME: &'static str = "next_link_failed";
    fn emit(&self) {
        match self.until {
            Some(until) => {
                tracing::warn!(event = Self::NAME, code = %self.code, restart = self.restarts,
                until = %until.to_rfc3339(), "the nextLink stopped working; pulling the rest of the window again")
            }
            None => tracing::warn!(event = Self::NAME, code = %self.code, restarts = self.restarts,
                "the nextLink was refused again without progress since the last restart"),
        }
    }
}
