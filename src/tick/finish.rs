//! Step 7: the lease goes back with the final checkpoint, and the summary says what each pass
//! did — or the tick reports a window's failure, after what it delivered was committed.

use crate::checkpoint::LastError;
use crate::checkpoint::reset::Reset;
use crate::error::TickError;
use crate::events::Event;
use crate::events::window::WindowFailed;
use crate::state::StateStore;
use crate::summary::{AuditSummary, Counts, PassReport, Summary};
use crate::tick::claim::Claimed;
use crate::tick::deliver::End;
use crate::tick::job::Job;
use crate::tick::pass::Ran;

/// What the tick learned of the tenant's Graph quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BudgetReport {
    /// 429s heard while under its own budget.
    pub quota_contention: u64,
    /// The effective budget after the tick (Graph only).
    pub request_budget: Option<usize>,
}

/// Releases the lease and returns the summary (the passes' counts, the details' and what the
/// scheduled audit found), or the failure of a window after its delivered part was committed.
pub(super) async fn finish<S: StateStore>(
    mut claimed: Claimed<'_, S>,
    job: &Job,
    api: &'static str,
    (passes, details, audit): (Vec<Ran>, Counts, Option<AuditSummary>),
    reset: Option<Reset>,
    started: std::time::Instant,
    budget: BudgetReport,
) -> Result<Summary, TickError> {
    let checkpoint = claimed.checkpoint().clone();
    let mut counts = details;
    let mut reports = Vec::with_capacity(passes.len());
    let mut failure = None;
    let mut all_caught_up = true;
    let (mut skipped, mut split, mut gaps) = (None, None, Vec::new());
    for ran in passes {
        gaps.extend(ran.gaps.iter().copied());
        skipped = skipped.or(ran.plan.skipped);
        split = split.or(ran.cut).or(ran.plan.split);
        counts += ran.delivery.counts;
        all_caught_up &= ran.caught_up();
        reports.push(PassReport::new(
            ran.pass.as_str(),
            &ran.delivery.counts,
            ran.caught_up(),
        ));
        if let End::Failed { window, error } = ran.delivery.end {
            failure = Some((window, error));
        }
    }
    if let Some((window, error)) = failure {
        WindowFailed {
            window: &window,
            error: &error,
        }
        .emit();
        let failure = TickError::Transfer {
            start: window.start,
            end: window.end,
            source: Box::new(error),
        };
        return Err(fail(claimed, failure).await);
    }
    claimed.checkpoint_mut().last_error = None;
    let reconcile_partial = checkpoint
        .reconcile
        .as_ref()
        .is_some_and(|r| r.partial.is_some() || !r.then.is_empty());
    let caught_up = all_caught_up && checkpoint.primary.open().is_empty() && !reconcile_partial;
    let lease = claimed.release().await?;
    counts.quota_contention = budget.quota_contention;
    let mut summary = Summary::finished(api, lease, counts, &checkpoint, caught_up, started);
    summary.request_budget = budget.request_budget;
    summary.passes = reports;
    summary.skipped = skipped;
    summary.split = split;
    summary.reconcile_gaps = gaps;
    summary.audit = audit;
    Ok(job.annotate(summary, reset))
}

/// After a failure under the lease (a window, a state write, a source that cannot be built):
/// records it in the checkpoint and gives the lease back, best effort, so that the next tick
/// need not wait for its expiry; returns the failure for the tick to report.
pub(super) async fn fail<S: StateStore>(
    mut claimed: Claimed<'_, S>,
    failure: TickError,
) -> TickError {
    claimed.checkpoint_mut().last_error = Some(LastError {
        at: claimed.now(),
        error_type: failure.error_type().to_owned(),
        message: crate::error_chain(&failure),
    });
    claimed.abandon().await;
    failure
}
