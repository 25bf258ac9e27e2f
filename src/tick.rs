//! One tick, top to bottom: config, secret, lease, window, pull, forward, commit.

use chrono::{DateTime, Utc};

use crate::app::App;
use crate::checkpoint::{self, Checkpoint};
use crate::claim::{Claim, Claimed};
use crate::clock::Clock;
use crate::config::Config;
use crate::deliver::{Delivery, End, WindowDone, deliver};
use crate::devo::DevoTls;
use crate::error::TickError;
use crate::events::Event;
use crate::events::plan::{ResetApplied, Skipped, WindowSplit};
use crate::events::window::WindowFailed;
use crate::job::{Job, Target, Tenant};
use crate::reset::Reset;
use crate::split::{self, Ended};
use crate::state::S3Store;
use crate::summary::Summary;
use crate::trace::auth::TokenSource;
use crate::trace::request_budget::{self, RequestBudget};
use crate::transfer::Transfer;
use crate::transfer::forward::ForwardSettings;
use crate::window::Plan;

/// The invocation a tick runs for.
#[derive(Debug, Clone)]
pub struct TickRequest {
    /// Lambda request id: the lease owner.
    pub request_id: String,
    /// Lambda deadline.
    pub deadline: DateTime<Utc>,
}

/// Runs one scheduled tick.
pub async fn run(app: &App, request: &TickRequest) -> Result<Summary, TickError> {
    run_target(app, request, &Target::Scheduled, &mut |_| {}).await
}

/// Runs the seven steps for `target`; `on_window` hears of every window finished.
pub async fn run_target(
    app: &App,
    request: &TickRequest,
    target: &Target,
    on_window: &mut (dyn FnMut(&WindowDone<'_>) + Send),
) -> Result<Summary, TickError> {
    let started = std::time::Instant::now();
    // 1. config: the job, and the time it may use
    let config = app.config()?;
    let clock = Clock::start(request.deadline, app.options().commit_reserve)?;
    let job = Job::resolve(target, Tenant::single(config), config, clock.now)?;
    let api = config.trace_api.as_str();

    // 2. secret
    let secret = app.secrets().load(&job.tenant.secret_id).await?;
    let devo = DevoTls::new(&secret.devo, &config.devo_address, &config.devo_server_name)
        .map_err(TickError::DevoSetup)?;

    // 3. lease
    let store = S3Store::new(app.s3().clone(), config.state_bucket.clone());
    let found = checkpoint::load(&store, &job.key).await?;
    job.check_found(found.as_ref().map(|s| &s.checkpoint))?;
    let expires_at = clock.lease_expiry(app.options().lease_slack);
    let owner = request.request_id.as_str();
    let mut claimed =
        match Claimed::claim(&store, &job.key, found, owner, clock.now, expires_at).await? {
            Claim::Claimed(claimed) => claimed,
            Claim::Refused { checkpoint, report } => {
                return Ok(job.annotate(Summary::refused(api, report, &checkpoint, started), None));
            }
        };
    let reset = job.prepare(claimed.checkpoint_mut(), config);

    // 4. window
    let plan = job.plan(
        claimed.checkpoint(),
        reset.as_ref(),
        clock.now,
        &config.rules,
    );
    announce(&plan, reset.as_ref());
    stand_at(claimed.checkpoint_mut(), &plan);
    let before = claimed.checkpoint().position();

    // 5 + 6. pull and forward, window after window, each committed
    let source = app.source()?;
    let mut tokens = TokenSource::new(
        app.http().clone(),
        &config.endpoints.login,
        source.scope(),
        &secret,
    );
    let history = claimed.checkpoint().recent_requests.clone();
    let mut throttle = RequestBudget::new(
        &history,
        config.request_budget,
        request_budget::GRAPH_PERIOD,
    );
    let forward = forward_settings(config, &job, &devo, &clock);
    let mut transfer = Transfer {
        source,
        tokens: &mut tokens,
        throttle: &mut throttle,
        budget: clock.pull_budget(config.request_timeout, app.options().retry_min_delay),
        forward,
        organization: &secret.tenant_id,
        retry_min_delay: app.options().retry_min_delay,
        devo_attempts: app.options().devo_attempts,
    };
    let delivery = deliver(&mut transfer, &plan, &mut claimed, on_window).await?;
    claimed.checkpoint_mut().recent_requests = transfer.throttle.history(Utc::now());

    // 7. commit: what got stuck, then the lease goes back
    note_stuck(claimed.checkpoint_mut(), &plan, before, &delivery);
    finish(claimed, &job, api, delivery, &plan, reset, started).await
}

/// Releases the lease and returns the summary, or the failure of a window after its
/// delivered part was committed.
async fn finish(
    claimed: Claimed<'_, S3Store>,
    job: &Job,
    api: &'static str,
    delivery: Delivery,
    plan: &Plan,
    reset: Option<Reset>,
    started: std::time::Instant,
) -> Result<Summary, TickError> {
    let checkpoint = claimed.checkpoint().clone();
    let caught_up = matches!(delivery.end, End::CaughtUp) && checkpoint.partial.is_none();
    if let End::Failed { window, error } = delivery.end {
        WindowFailed {
            window: &window,
            error: &error,
        }
        .emit();
        claimed.abandon().await;
        return Err(TickError::Transfer {
            start: window.start,
            end: window.end,
            source: Box::new(error),
        });
    }
    let lease = claimed.release().await?;
    let summary = Summary::finished(
        api,
        lease,
        delivery.counts,
        &checkpoint,
        caught_up,
        Some(plan),
        started,
    );
    Ok(job.annotate(summary, reset))
}

fn forward_settings<'a>(
    config: &'a Config,
    job: &'a Job,
    devo: &'a DevoTls,
    clock: &'a Clock,
) -> ForwardSettings<'a> {
    ForwardSettings {
        devo,
        hostname: &job.tenant.devo_hostname,
        tag: &job.tenant.devo_tag,
        idle: config.devo_idle,
        io_timeout: config.request_timeout,
        close_timeout: config
            .request_timeout
            .min(std::time::Duration::from_secs(10)),
        clock,
    }
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

/// Records where delivery stands before the first window: a fresh start or a skip moves the
/// end; a window left part-way stays until it is delivered (its pieces may come first).
pub fn stand_at(checkpoint: &mut Checkpoint, plan: &Plan) {
    match plan.windows.first() {
        Some(first) => {
            checkpoint.end = Some(first.start);
            checkpoint.partial = match checkpoint.partial.take() {
                Some(p)
                    if first.resume.is_none() && p.start == first.start && p.end > first.end =>
                {
                    Some(p)
                }
                _ => first.resume.is_some().then(|| first.clone()),
            };
        }
        None => {
            checkpoint.end = Some(checkpoint.end.map_or(plan.start, |e| e.max(plan.start)));
            checkpoint.partial = None;
        }
    }
}

/// Updates the checkpoint's stuck span from how the delivery ended.
fn note_stuck(
    checkpoint: &mut Checkpoint,
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
    let after = checkpoint.position();
    checkpoint.stuck = split::after_tick(
        checkpoint.stuck.take(),
        plan.windows.first(),
        before,
        after,
        ended,
    );
}
