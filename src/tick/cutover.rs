//! A cut-over's overlap in a tick (`checkpoint/cutover.rs` has its rules): before the primary
//! pass pulls a window that meets the overlap, the keys Devo holds for its hours are read, so
//! that the window sends only what Devo lacks. A tick whose overlap needs reading and cannot
//! read it fails (`DevoQuery`, `Secret` or `Config`) rather than send blind.

use crate::app::App;
use crate::checkpoint::Checkpoint;
use crate::clock::Clock;
use crate::error::TickError;
use crate::events::Event;
use crate::events::cutover::CutoverOverlap;
use crate::ledger::LedgerIndex;
use crate::secret::Secret;
use crate::tick::job::Job;
use crate::trace::http::Budget;
use crate::verify::QueryError;
use crate::verify::audit::query_client;
use crate::verify::cutover::held::Held;
use crate::window::Window;

/// What a tick reads Devo's keys with, while its checkpoint's overlap is pending.
#[derive(Debug)]
pub(super) struct Overlap {
    held: Held,
    budget: Budget,
}

impl Overlap {
    /// The reader of `job`'s tick for `checkpoint`, announced in the log; `None` for a
    /// backfill, without a cut-over, or once the primary pass is past its overlap.
    pub(super) fn of(
        app: &App,
        job: &Job,
        secret: &Secret,
        clock: &Clock,
        checkpoint: &Checkpoint,
    ) -> Result<Option<Overlap>, TickError> {
        let Some(cutover) = checkpoint
            .cutover
            .as_ref()
            .filter(|c| job.range().is_none() && c.pending(checkpoint.primary.end))
        else {
            return Ok(None);
        };
        CutoverOverlap {
            cutover,
            open: cutover.open(clock.now),
        }
        .emit();
        let config = app.config()?;
        let tenant = &job.tenant;
        let client = query_client(app, config, tenant, secret)?;
        let held = Held::new(
            client,
            &tenant.devo_tag,
            &cutover.earlier,
            &tenant.devo_hostname,
        );
        let budget = clock.pull_budget(config.request_timeout, app.options().retry_min_delay);
        Ok(Some(Overlap { held, budget }))
    }

    /// What Devo holds for `window` when it meets `checkpoint`'s overlap; `None` otherwise.
    pub(super) async fn held_for(
        &self,
        checkpoint: &Checkpoint,
        window: &Window,
    ) -> Result<Option<LedgerIndex>, QueryError> {
        let Some(cutover) = &checkpoint.cutover else {
            return Ok(None);
        };
        let hours = cutover.hours_of(window);
        if hours.is_empty() {
            return Ok(None);
        }
        self.held.index(&hours, &self.budget).await.map(Some)
    }
}
