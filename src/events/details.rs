//! Delivery details: the tick's detail stage, a delivery whose details could not be fetched,
//! and deliveries dropped from the queue.

use crate::events::{Event, ms};

/// The detail stage of a tick ended.
pub struct DetailsFinished<'a> {
    /// Deliveries whose detail lines the relay confirmed.
    pub deliveries: u64,
    /// Detail lines confirmed.
    pub lines: u64,
    /// Requests made for them.
    pub requests: u64,
    /// Deliveries still waiting.
    pub waiting: u64,
    /// Why it stopped: `done` (nothing due), `budget`, `throttled`, `time`, `relay`,
    /// `microsoft`.
    pub stopped: &'static str,
    /// The failure that stopped it, when one did (the relay's; Microsoft's are on their
    /// `details_fetch_failed` line).
    pub error: Option<&'a dyn std::fmt::Display>,
    pub elapsed: std::time::Duration,
}

impl Event for DetailsFinished<'_> {
    const NAME: &'static str = "details";
    fn emit(&self) {
        let error = self.error.map(ToString::to_string);
        tracing::info!(
            event = Self::NAME,
            deliveries = self.deliveries,
            lines = self.lines,
            requests = self.requests,
            waiting = self.waiting,
            stopped = self.stopped,
            error = error.as_deref(),
            ms = ms(self.elapsed),
            "delivery details"
        );
    }
}

/// A delivery's details could not be fetched this tick: it stays queued (or, after its last
/// attempt, is dropped and a `details_dropped` line says so).
pub struct DetailFetchFailed<'a> {
    /// The message trace id (never the address).
    pub trace_id: &'a str,
    /// The status the details were asked for.
    pub status: &'a str,
    pub error: &'a dyn std::fmt::Display,
}

impl Event for DetailFetchFailed<'_> {
    const NAME: &'static str = "details_fetch_failed";
    fn emit(&self) {
        tracing::warn!(event = Self::NAME, trace_id = self.trace_id, status = self.status,
            error = %self.error, "a delivery's details could not be fetched");
    }
}

/// Deliveries left the queue without their details: counted in the summary's
/// `details_dropped`.
pub struct DetailsDropped<'a> {
    /// `queue_full`, `gone`, `refused`, `failing`, `lookback`, `unwanted`.
    pub reason: &'static str,
    /// How many.
    pub deliveries: usize,
    /// The message trace id of the first (never the address).
    pub first: &'a str,
}

impl Event for DetailsDropped<'_> {
    const NAME: &'static str = "details_dropped";
    fn emit(&self) {
        tracing::warn!(
            event = Self::NAME,
            reason = self.reason,
            deliveries = self.deliveries,
            first_trace_id = self.first,
            "deliveries dropped without their details"
        );
    }
}
