//! The Devo relay's streams: retried, closed when idle, found ended by the relay.

use std::time::Duration;

use crate::events::{Event, ms};

/// The relay failed; what it did not confirm is sent again on a new stream.
pub struct DevoRetry<'a> {
    /// Failures in a row without a confirmation.
    pub attempt: u32,
    /// Why.
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
