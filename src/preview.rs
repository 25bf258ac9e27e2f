//! What the next run would pull, without pulling and without taking the lease: the checkpoint
//! is read, never written (the command line's `plan`).

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;

use crate::app::App;
use crate::backfill;
use crate::checkpoint::{Checkpoint, CheckpointStore};
use crate::lease::Lease;
use crate::reset::{self, Reset};
use crate::tick::{Job, Target, TickError};
use crate::window::{self, Plan};

/// The windows a run would pull now, and the state they come from.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    /// `s3://bucket/key` of the checkpoint read.
    pub checkpoint_object: String,
    /// Whether the object exists.
    pub checkpoint_found: bool,
    /// Its end: everything received before it was sent.
    pub checkpoint: Option<DateTime<Utc>>,
    /// The lease found in it (a live one of another run means the next run would wait).
    pub lease: Option<Lease>,
    /// The restart the next tick would apply because `RESET_BEFORE` changed.
    pub reset: Option<Reset>,
    /// The backfill's progress (backfill previews only).
    pub backfill: Option<backfill::Report>,
    /// The windows, in order.
    pub plan: Plan,
}

/// Plans `target` at the current time from the stored checkpoint.
pub async fn preview(app: &App, target: &Target) -> Result<Preview, TickError> {
    let now = Utc::now().trunc_subsecs(0);
    let config = app.config()?;
    let job = Job::resolve(target, config, now)?;
    let store = CheckpointStore::new(app.s3().clone(), config.state_bucket.clone());
    let found = store.load(&job.key).await?;
    let checkpoint_found = found.is_some();
    let mut checkpoint = found.map_or_else(|| Checkpoint::empty(now), |s| s.checkpoint);
    if let Some(range) = &job.range {
        backfill::check_stored(range, &checkpoint)?;
    }
    let reset = match job.range {
        None => reset::apply(&mut checkpoint, config.reset_before),
        Some(_) => None,
    };
    let plan = window::plan_within(
        window::Progress {
            end: checkpoint.end,
            partial: checkpoint.partial.as_ref(),
        },
        &job.bounds(now, &config.rules),
        crate::tick::MAX_WINDOWS_PER_TICK,
    );
    Ok(Preview {
        checkpoint_object: format!("s3://{}/{}", config.state_bucket, job.key),
        checkpoint_found,
        checkpoint: checkpoint.end,
        lease: checkpoint.lease.clone(),
        reset,
        backfill: job
            .range
            .as_ref()
            .map(|r| backfill::report(r, &job.key, checkpoint.end, checkpoint.partial.is_some())),
        plan,
    })
}
