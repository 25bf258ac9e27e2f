//! Steps 4 to 6 for one pass: plan its windows, deliver them (each committed), and note what
//! got stuck.

use chrono::{DateTime, Utc};

use crate::checkpoint::reset::Reset;
use crate::checkpoint::second_look::Gap;
use crate::checkpoint::split::Ended;
use crate::checkpoint::{Checkpoint, Track};
use crate::clock::Clock;
use crate::config::Config;
use crate::error::TickError;
use crate::events::Event;
use crate::events::plan::{ReconcileGap, ResetApplied, SpanSkipped, WindowSplit};
use crate::state::StateStore;
use crate::tick::claim::Claimed;
use crate::tick::cutover::Overlap;
use crate::tick::deliver::{Delivery, End, PassRun, WindowDone, deliver};
use crate::tick::job::{Job, Pass, Planned};
use crate::transfer::Transfer;
use crate::window::{Plan, Split};

/// Share of the request budget the reconciliation pass may use (the rest is the next fresh
/// pass's): three quarters.
const RECONCILE_SHARE: (usize, usize) = (3, 4);

/// What one pass did.
#[derive(Debug)]
pub(super) struct Ran {
    pub pass: Pass,
    pub plan: Plan,
    /// The due spans it dropped without a second look.
    pub gaps: Vec<Gap>,
    pub delivery: Delivery,
    /// The split a window cut by the deadline calls for (an unordered source), from the next
    /// tick on.
    pub cut: Option<Split>,
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
    pub job: &'a Job,
    /// The reset the job's checkpoint just applied, if any.
    pub reset: Option<&'a Reset>,
    /// The tick's clock.
    pub clock: &'a Clock,
    pub config: &'a Config,
    /// What Devo holds, read for the windows of a cut-over's overlap.
    pub overlap: Option<&'a Overlap>,
}

impl<'a> Context<'a> {
    /// The same context, reading what Devo holds with `overlap`.
    pub fn with_overlap(self, overlap: Option<&'a Overlap>) -> Context<'a> {
        Context { overlap, ..self }
    }
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
        overlap,
    } = *context;
    // 4. window
    let track = pass.track();
    let reset = reset.filter(|_| track == Track::Primary);
    let Planned { plan, gaps } = job.plan(pass, claimed.checkpoint_mut(), reset, clock.now, config);
    announce(&plan, reset, &gaps);
    if pass == Pass::Reconcile {
        // Parts of spans dropped as gaps: gone with the next write.
        claimed.take_covered();
    }
    let before = claimed.checkpoint().standing(track);

    // 5 + 6. pull and forward, window after window, each committed
    if pass == Pass::Reconcile {
        transfer.lend_budget(RECONCILE_SHARE.0, RECONCILE_SHARE.1);
    }
    let young_from = clock.now - config.rules.delay;
    let run = PassRun {
        pass,
        young_from,
        detail_queue_max: config.details.queue_max,
        overlap,
    };
    let delivery = deliver(transfer, run, &plan, claimed, on_window).await;
    transfer.restore_budget();
    let delivery = delivery?;
    note_stuck(claimed.checkpoint_mut(), track, &plan, before, &delivery);
    let cut = delivery.cut.as_ref().and_then(|cut| {
        let confirmed = cut.confirmed.clone();
        let position = claimed.checkpoint_mut().position_mut(track);
        position.cut(&cut.window, &cut.measured, confirmed)
    });
    if let Some(split) = cut {
        WindowSplit(split).emit();
    }
    Ok(Ran {
        pass,
        plan,
        gaps,
        delivery,
        cut,
    })
}

/// Logs what the plan skips, drops and splits, and the reset it follows.
fn announce(plan: &Plan, reset: Option<&Reset>, gaps: &[Gap]) {
    for gap in gaps {
        ReconcileGap(gap).emit();
    }
    if let Some(r) = reset {
        ResetApplied(r).emit();
    }
    if let Some(span) = plan.skipped {
        SpanSkipped(span).emit();
    }
    if let Some(split) = plan.split {
        WindowSplit(split).emit();
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
    checkpoint
        .position_mut(track)
        .after_tick(plan.windows.first(), before, ended);
}
