//! The collection's own status line in Devo.

use crate::events::Event;

/// A tick's status line could not be sent to Devo (the tick's outcome is unchanged).
pub struct StatusNotSent<'a> {
    /// The tenant whose line it was.
    pub tenant: &'a str,
    pub error: &'a dyn std::fmt::Display,
}

impl Event for StatusNotSent<'_> {
    const NAME: &'static str = "status_not_sent";
    fn emit(&self) {
        tracing::warn!(
            event = Self::NAME,
            tenant = self.tenant,
            error = %self.error,
            "the tick's status line was not sent to Devo; the tick's outcome is unchanged"
        );
    }
}
