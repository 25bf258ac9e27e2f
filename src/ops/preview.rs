//! What the next run would pull, without pulling and without taking the lease: the checkpoint
//! is read, never written (the command line's `plan`).

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;

use crate::app::App;
use crate::checkpoint::backfill;
use crate::checkpoint::lease::Lease;
use crate::checkpoint::reset::Reset;
use crate::checkpoint::{self, Checkpoint};
use crate::error::TickError;
use crate::state::S3Store;
use crate::tenants::Tenant;
use crate::tick::job::{Job, Pass, Target};
use crate::window::Plan;

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
    /// The windows of the first pass (the fresh one when two passes run), in order.
    pub plan: Plan,
    /// The reconciliation pass's windows, when it runs (its share of the time comes after the
    /// fresh pass's).
    pub reconcile: Option<Plan>,
}

/// Plans `target` of the deployment's one tenant at the current time from the stored checkpoint.
pub async fn preview(app: &App, target: &Target) -> Result<Preview, TickError> {
    let tenant = Tenant::single(app.config()?);
    preview_for(app, tenant, target).await
}

/// Plans `target` of `tenant` at the current time from the stored checkpoint.
pub async fn preview_for(app: &App, tenant: Tenant, target: &Target) -> Result<Preview, TickError> {
    let now = app.now().trunc_subsecs(0);
    let config = app.config()?;
    let job = Job::resolve(target, tenant, config, now)?;
    let store = S3Store::new(app.s3().clone(), config.state_bucket.clone());
    let found = checkpoint::load(&store, &job.key).await?;
    let checkpoint_found = found.is_some();
    let mut checkpoint = found.map_or_else(|| Checkpoint::empty(now), |s| s.checkpoint);
    job.check_found(Some(&checkpoint))?;
    let reset = job.prepare(&mut checkpoint, config);
    let passes = job.passes(&checkpoint, config);
    let first = passes.first().copied().unwrap_or(Pass::Single);
    let end = checkpoint.primary.end;
    let partial = checkpoint.primary.partial.is_some();
    let plan = job
        .plan(first, &mut checkpoint, reset.as_ref(), now, config)
        .plan;
    let reconcile = passes.contains(&Pass::Reconcile).then(|| {
        job.plan(Pass::Reconcile, &mut checkpoint, None, now, config)
            .plan
    });
    Ok(Preview {
        checkpoint_object: format!("s3://{}/{}", config.state_bucket, job.key),
        checkpoint_found,
        checkpoint: end,
        lease: checkpoint.lease.clone(),
        reset,
        backfill: job
            .range()
            .map(|r| backfill::report(r, &job.key, end, partial)),
        plan,
        reconcile,
    })
}
