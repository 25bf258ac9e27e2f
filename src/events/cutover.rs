//! A tick reading a cut-over's overlap: one line per tick while it does.

use crate::checkpoint::cutover::Cutover;
use crate::events::Event;

/// The tick reads what Devo holds for the windows of the overlap; while the overlap is open,
/// the primary pass waits `DELAY_SECONDS`.
pub struct CutoverOverlap<'a> {
    pub cutover: &'a Cutover,
    /// Whether the earlier collector may still deliver (no `until` yet, or just set).
    pub open: bool,
}

impl Event for CutoverOverlap<'_> {
    const NAME: &'static str = "cutover_overlap";
    fn emit(&self) {
        let c = self.cutover;
        let until = c.until.map(|u| u.to_rfc3339());
        let earlier = format!("{} = {}", c.earlier.field, c.earlier.value);
        if self.open && c.until.is_none() {
            tracing::warn!(event = Self::NAME, from = %c.from.to_rfc3339(), until, open = true, earlier, "cut-over: the earlier collector may still deliver, so the primary pass waits DELAY_SECONDS; once it is stopped, run `m365-trace-to-devo-cli cutover --stopped --apply`");
        } else {
            tracing::info!(event = Self::NAME, from = %c.from.to_rfc3339(), until, open = self.open, earlier, "cut-over: sending only what Devo does not hold in the overlap");
        }
    }
}
