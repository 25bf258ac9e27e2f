//! Steps 4 to 6 for one pass: plan its windows, deliver them (each committed), and note what
//! got stuck.

use chrono::{DateTime, Utc};

use crate::checkpoint::{Checkpoint, Track};
use crate::claim::Claimed;
use crate::clock::Clock;
use crate::config::Config;
use crate::deliver::{Delivery, End, PassRun, WindowDone, deliver};
use crate::error::TickError;
use crate::events::Event;
use crate::events::plan::{ResetApplied, Skipped, WindowSplit};
use crate::job::{Job, Pass};
use crate::reset::Reset;
use crate::split::{self, Ended};
use crate::state::StateStore;
use crate::transfer::Transfer;
use crate::window::Plan;

/// Share of the request budget the reconciliation pass may use (the rest is the next fresh
/// pass's): three quarters.
const RECONCILE_SHARE: (usize, usize) = (3, 4);

/// What one pass did.
#[derive(Debug)]
pub(super) struct Ran {
    /// The pass.
    pub pass: Pass,
    /// Its plan.
    pub plan: Plan,
    /// Its delivery.
    pub delivery: Delivery,
}

impl Ran {
    /// Whether the pass reached its horizon (the next pass may run).
    pub fn caught_up(&self) -> bool {
        matches!(self.delivery.end, End::CaughtUp)
    }
}

/// What every pass of a tick shares.
#[derive(Debug, Clone, Copy)]
pub(super) struct Context<'a> {
    /// The job.
    pub job: &'a Job,
    /// The reset the job's checkpoint just applied, if any.
    pub reset: Option<&'a Reset>,
    /// The tick's clock.
    pub clock: &'a Clock,
    /// The configuration.
    pub config: &'a Config,
}

/// Plans `pass`, delivers its windows and notes what got stuck.
pub(super) async fn run<S: StateStore>(
    transfer: &mut Transfer<'_>,
    context: &Context<'_>,
    pass: Pass,
    claimed: &mut Claimed<'_, S>,
    on_window: &mut (dyn FnMut(&WindowDone<'_>) + Send),
) -> Result<Ran, TickError> {
    let Context {
        job,
        reset,
        clock,
        config,
    } = *context;
    // 4. window
    let track = pass.track();
    let reset = reset.filter(|_| track == Track::Primary);
    let plan = job.plan(pass, claimed.checkpoint(), reset, clock.now, config);
    announce(&plan, reset);
    stand_at(claimed.checkpoint_mut(), track, &plan);
    let before = claimed.checkpoint().standing(track);

    // 5 + 6. pull and forward, window after window, each committed
    if pass == Pass::Reconcile {
        transfer.throttle.lend(RECONCILE_SHARE.0, RECONCILE_SHARE.1);
    }
    let young_from = clock.now - config.rules.delay;
    let run = PassRun { pass, young_from };
    let delivery = deliver(transfer, run, &plan, claimed, on_window).await;
    transfer.throttle.restore();
    let delivery = delivery?;
    note_stuck(claimed.checkpoint_mut(), track, &plan, before, &delivery);
    Ok(Ran {
        pass,
        plan,
        delivery,
    })
}

/// Logs what the plan skips and splits, and the reset it follows.
fn announce(plan: &Plan, reset: Option<&Reset>) {
    if let Some(r) = reset {
        ResetApplied(r).emit();
    }
    if let Some(span) = plan.skipped {
        Skipped(span).emit();
    }
    if let Some(split) = plan.split {
        WindowSplit(split).emit();
    }
}

/// Records where `track` stands before its first window: a fresh start or a skip moves the
/// end; a window left part-way stays until it is delivered (its pieces may come first).
pub fn stand_at(checkpoint: &mut Checkpoint, track: Track, plan: &Plan) {
    let position = checkpoint.position_mut(track);
    match plan.windows.first() {
        Some(first) => {
            *position.end = Some(first.start);
            *position.partial = match position.partial.take() {
                Some(p)
                    if first.resume.is_none() && p.start == first.start && p.end > first.end =>
                {
                    Some(p)
                }
                _ => first.resume.is_some().then(|| first.clone()),
            };
        }
        None => {
            *position.end = Some(position.end.map_or(plan.start, |e| e.max(plan.start)));
            *position.partial = None;
        }
    }
}

/// Updates the stuck span of `track` from how the delivery ended.
fn note_stuck(
    checkpoint: &mut Checkpoint,
    track: Track,
    plan: &Plan,
    before: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    delivery: &Delivery,
) {
    let ended = match &delivery.end {
        End::CaughtUp | End::LeaseLost => Ended::Normally,
        // Nothing pulled at all (the request budget, a short tick): not the window's fault.
        End::OutOfTime if delivery.counts.pages == 0 => Ended::Normally,
        End::OutOfTime => Ended::OutOfTime,
        End::Failed { error, .. } if error.may_depend_on_data() => Ended::Failed(error.to_string()),
        End::Failed { .. } => Ended::Normally,
    };
    let after = checkpoint.standing(track);
    let position = checkpoint.position_mut(track);
    *position.stuck = split::after_tick(
        position.stuck.take(),
        plan.windows.first(),
        before,
        after,
        ended,
    );
}
