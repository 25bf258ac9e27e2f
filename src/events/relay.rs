//! The Devo relay's streams: retried, closed when idle, found ended by the relay.

use std::time::Duration;

use crate::events::{Event, ms};

/// The relay failed; what it did not confirm is sent again on a new stream.
pub struct DevoRetry<'a> {
    /// Failures in a row without a confirmation.
    pub attempt: u32,
    pub error: &'a dyn std::fmt::Display,
}

impl Event for DevoRetry<'_> {
    const NAME: &'static str = "devo_retry";
    fn emit(&self) {
        tracing::warn!(event = Self::NAME, attempt = self.attempt, error = %self.error, "relay failed; sending what it did not confirm again");
    }
}

/// A stream idle for `DEVO_IDLE_SECONDS` was closed (confirming it) before the next write.
pub struct IdleClosed {
    /// How long it was idle.
    pub idle: Duration,
}

impl Event for IdleClosed {
    const NAME: &'static str = "devo_idle_close";
    fn emit(&self) {
        tracing::debug!(
            event = Self::NAME,
            idle_ms = ms(self.idle),
            "closing an idle relay stream"
        );
    }
}

/// The relay ended an idle stream: what it carried was read; a new stream is opened.
pub struct EndedWhileIdle {
    /// Lines the stream carried.
    pub lines: u64,
}

impl Event for EndedWhileIdle {
    const NAME: &'static str = "devo_ended_idle";
    fn emit(&self) {
        tracing::info!(
            event = Self::NAME,
            lines = self.lines,
            "the relay ended an idle stream; opening a new one"
        );
    }
}

/// A stream reached `DEVO_CONFIRM_BYTES` or `DEVO_CONFIRM_SECONDS` (or could not take the next
/// page and still be confirmed in time): it was closed and confirmed; the next page opens a
/// new one.
pub struct ConfirmStep {
    /// Lines the stream carried.
    pub lines: u64,
    /// Bytes the stream carried.
    pub bytes: u64,
    /// The relay's read rate measured so far, bytes per second.
    pub rate: f64,
}

impl Event for ConfirmStep {
    const NAME: &'static str = "devo_confirm_step";
    fn emit(&self) {
        tracing::debug!(
            event = Self::NAME,
            lines = self.lines,
            bytes = self.bytes,
            rate_bytes_per_second = self.rate.round() as u64,
            "relay stream confirmed; going on in a new one"
        );
    }
}

/// Writing stopped before the deadline: the next page could not be confirmed in the time left
/// at the relay's read rate; the window resumes from what was confirmed.
pub struct StopWriting {
    /// Bytes of the page that was not written.
    pub page_bytes: u64,
    /// The relay's read rate measured so far, bytes per second.
    pub rate: f64,
    /// Time left for relay streams.
    pub left: Duration,
}

impl Event for StopWriting {
    const NAME: &'static str = "devo_stop_writing";
    fn emit(&self) {
        tracing::info!(
            event = Self::NAME,
            page_bytes = self.page_bytes,
            rate_bytes_per_second = self.rate.round() as u64,
            left_ms = ms(self.left),
            "not enough time left to confirm another page at the relay's read rate; stopping here"
        );
    }
}
