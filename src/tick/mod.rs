//! One tick, top to bottom: config, secret, lease, window, pull, forward, commit; then its
//! status line. Steps 4 to 6 run as stages: the fresh pass, the reconciliation pass, the
//! scheduled audit, then the delivery details.

mod audit;
mod claim;
mod cutover;
mod deliver;
mod details;
mod finish;
pub(crate) mod job;
mod pass;
mod status;

pub use claim::{Claim, Claimed};
pub use deliver::WindowDone;
pub use finish::BudgetReport;
pub use job::Target;

use chrono::{DateTime, Utc};
use tracing::Instrument;

use crate::app::App;
use crate::checkpoint;
use crate::clock::Clock;
use crate::config::{Config, TraceApi};
use crate::devo::DevoTls;
use crate::error::TickError;
use crate::health::{Standing, StatusSent};
use crate::state::S3Store;
use crate::summary::{Counts, Summary};
use crate::tenants::Tenant;

use crate::tick::job::Job;
use crate::trace::auth::TokenSource;
use crate::trace::request_budget::{GRAPH_PERIOD, RequestBudget};
use crate::transfer::{ForwardSettings, Retry, Transfer};

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

/// Runs the seven steps for `target` of the deployment's one tenant; `on_window` hears of
/// every window finished.
pub async fn run_target(
    app: &App,
    request: &TickRequest,
    target: &Target,
    on_window: &mut (dyn FnMut(&WindowDone<'_>) + Send),
) -> Result<Summary, TickError> {
    let tenant = Tenant::single(app.config()?);
    run_for(app, request, tenant, target, on_window)
        .await
        .result
}

/// Runs the seven steps for `target` of `tenant` (a registry's tenant, or the one tenant),
/// in a `tick` span that puts the request id and the tenant on every line it writes; returns
/// the tick's result and what became of its status line in Devo.
pub async fn run_for(
    app: &App,
    request: &TickRequest,
    tenant: Tenant,
    target: &Target,
    on_window: &mut (dyn FnMut(&WindowDone<'_>) + Send),
) -> Reported {
    let span = tracing::info_span!(
        "tick",
        request_id = %request.request_id,
        tenant = tenant.label()
    );
    Box::pin(run_in_span(app, request, tenant, target, on_window))
        .instrument(span)
        .await
}

async fn run_in_span(
    app: &App,
    request: &TickRequest,
    tenant: Tenant,
    target: &Target,
    on_window: &mut (dyn FnMut(&WindowDone<'_>) + Send),
) -> Reported {
    let started = std::time::Instant::now();
    let label = tenant.label().to_owned();
    // 1. config, 2. secret
    let prepared = match prepare(app, request, tenant, target).await {
        Ok(prepared) => prepared,
        Err(failure) => return status::unreachable(app, target, &label, failure),
    };
    // 3–7. lease, window, pull, forward, commit; then the status line
    let ran = leased(app, request, &prepared, started, on_window).await;
    status::report(&prepared, ran).await
}

/// Steps 1 and 2: the job, the time it may use, the secret and the relay's TLS material.
async fn prepare<'a>(
    app: &'a App,
    request: &TickRequest,
    tenant: Tenant,
    target: &Target,
) -> Result<Prepared<'a>, TickError> {
    let config = app.config()?;
    let clock = Clock::start(app.time(), request.deadline, app.options().commit_reserve)?;
    let job = Job::resolve(target, tenant, config, clock.now)?;
    // A tenant's Devo material may come from SECRET_ID.
    let secret = app
        .secrets()
        .load_for(&job.tenant.secret_id, &config.secret_id)
        .await?;
    let devo = DevoTls::new(&secret.devo, &config.devo_address, &config.devo_server_name)
        .map_err(TickError::DevoSetup)?;
    Ok(Prepared {
        config,
        clock,
        job,
        secret,
        devo,
    })
}

/// Steps 3 to 7, under the lease: claim it, run each pass (window after window, each
/// committed), give it back with the summary.
async fn leased(
    app: &App,
    request: &TickRequest,
    prepared: &Prepared<'_>,
    started: std::time::Instant,
    on_window: &mut (dyn FnMut(&WindowDone<'_>) + Send),
) -> Ran {
    let (config, clock, job) = (prepared.config, &prepared.clock, &prepared.job);
    let secret = &prepared.secret;
    let api = config.trace_api.as_str();
    // 3. lease
    let store = S3Store::new(app.s3().clone(), config.state_bucket.clone());
    let mut claimed = match claim(app, request, prepared, &store).await {
        Ok(Claim::Claimed(claimed)) => claimed,
        Ok(Claim::Refused { checkpoint, report }) => {
            let summary = Summary::refused(api, report, &checkpoint, started);
            return Ran::refused(job.annotate(summary, None));
        }
        Err(failure) => return Ran::failed(failure, Standing::default()),
    };
    let reset = job.prepare(claimed.checkpoint_mut(), config);
    let mut session = match Session::open(app, config, secret, claimed.checkpoint(), clock.now) {
        Ok(session) => session,
        Err(failure) => {
            return Ran::failed(finish::fail(claimed, failure).await, Standing::default());
        }
    };

    // 4–6. window, pull, forward, in stages, each committed
    let context = pass::Context {
        job,
        reset: reset.as_ref(),
        clock,
        config,
        overlap: None,
    };
    let mut done = Done::default();
    let ran = async {
        let overlap = cutover::Overlap::of(app, job, secret, clock, claimed.checkpoint())?;
        let context = context.with_overlap(overlap.as_ref());
        let mut transfer = session.transfer(app, config, job, secret, &prepared.devo, clock)?;
        transfer.collect_details(details::wanted(job, config));
        // the fresh pass, then the reconciliation pass: each plans and delivers its windows
        let passes = passes(
            &mut transfer,
            &context,
            &mut claimed,
            request,
            on_window,
            &mut done,
        )
        .await?;
        // the scheduled audit, bounded by AUDIT_HOURS, with what the passes leave
        let audit = audit::Scheduled::new(app, config, job, secret, clock);
        let audited = audit.after(&passes, transfer.budgets(), claimed.checkpoint_mut());
        let audited = audited.await;
        // the delivery details, with what the request budget leaves
        let details = details::run(&mut transfer, &context, &mut claimed, &passes).await?;
        done.counts += details;
        Ok::<_, TickError>((passes, details, audited))
    }
    .await;
    // The request budget's history and share, kept whatever happened.
    let budget = session.keep(claimed.checkpoint_mut(), clock.wall(), config);
    done.counts.quota_contention = budget.quota_contention;
    let fresh = !config.fresh_delay.is_zero();
    let standing = Standing::of_checkpoint(claimed.checkpoint(), done.names, done.counts, fresh)
        .with_budget(budget.request_budget);
    // Any failure after the claim gives the lease back (best effort).
    let ran = match ran {
        Ok(ran) => ran,
        Err(failure) => return Ran::failed(finish::fail(claimed, failure).await, standing),
    };
    // 7. commit: the lease goes back
    let result = finish::finish(claimed, job, api, ran, reset, started, budget).await;
    Ran::finished(result, standing, fresh)
}

/// What the stages of a tick did so far: what its status line reports should a later stage
/// fail.
#[derive(Default)]
struct Done {
    /// The passes run, in order.
    names: Vec<&'static str>,
    /// What they (and the delivery details) counted.
    counts: Counts,
}

/// The passes of the job, in order, each in a `pass` span, each noted in `done`; a pass that
/// did not reach its horizon ends the list (the reconciliation pass never runs before the
/// fresh pass caught up).
async fn passes<S: crate::state::StateStore>(
    transfer: &mut Transfer<'_>,
    context: &pass::Context<'_>,
    claimed: &mut Claimed<'_, S>,
    request: &TickRequest,
    on_window: &mut (dyn FnMut(&WindowDone<'_>) + Send),
    done: &mut Done,
) -> Result<Vec<pass::Ran>, TickError> {
    let mut passes: Vec<pass::Ran> = Vec::new();
    for p in context.job.passes(claimed.checkpoint(), context.config) {
        if passes.last().is_some_and(|r| !r.caught_up()) {
            break;
        }
        // The request id, the tenant and the pass on every line the pass writes.
        let span = tracing::info_span!(
            "pass",
            request_id = %request.request_id,
            tenant = context.job.tenant.label(),
            pass = p.as_str()
        );
        done.names.push(p.as_str());
        let ran = pass::run(transfer, context, p, claimed, on_window)
            .instrument(span)
            .await?;
        done.counts += ran.delivery.counts;
        passes.push(ran);
    }
    Ok(passes)
}

/// Step 3: reads the job's checkpoint and claims the lease on it.
async fn claim<'s>(
    app: &App,
    request: &TickRequest,
    prepared: &Prepared<'_>,
    store: &'s S3Store,
) -> Result<Claim<'s, S3Store>, TickError> {
    let Prepared { clock, job, .. } = prepared;
    let found = checkpoint::load(store, &job.key).await?;
    job.check_found(found.as_ref().map(|s| &s.checkpoint))?;
    let expires_at = clock.lease_expiry(app.options().lease_slack);
    let (owner, at) = (request.request_id.as_str(), (clock.now, app.time()));
    Ok(Claimed::claim(store, &job.key, found, owner, at, expires_at).await?)
}

/// Steps 1 and 2 done: what the rest of the tick, and its status line, use.
struct Prepared<'a> {
    config: &'a Config,
    clock: Clock,
    job: Job,
    secret: crate::secret::Secret,
    devo: DevoTls,
}

/// What the steps under the lease did.
struct Ran {
    result: Result<Summary, TickError>,
    /// Where the tick left its tenant; `None` when it did not get the lease.
    standing: Option<Standing>,
}

impl Ran {
    /// Another invocation holds the state: nothing was done, no status line is due.
    fn refused(summary: Summary) -> Ran {
        Ran {
            result: Ok(summary),
            standing: None,
        }
    }

    /// The tick failed, leaving its tenant at `standing`.
    fn failed(failure: TickError, standing: Standing) -> Ran {
        Ran {
            result: Err(failure),
            standing: Some(standing),
        }
    }

    /// Step 7 returned `result`; `standing` is where the passes left the tenant before it.
    fn finished(result: Result<Summary, TickError>, standing: Standing, fresh: bool) -> Ran {
        let standing = match &result {
            Ok(summary) => Standing::of_summary(summary, fresh),
            Err(_) => standing,
        };
        Ran {
            result,
            standing: Some(standing),
        }
    }
}

/// What a tick returns, and what became of its status line in Devo.
#[derive(Debug)]
pub struct Reported {
    /// The summary, or the failure.
    pub result: Result<Summary, TickError>,
    /// `None` when no line was due (a backfill, a tick that did not get the lease, a failure
    /// before the configuration could be read).
    pub status_line: Option<StatusSent>,
    /// 429s heard while under the tenant's own budget (also when the tick failed).
    pub quota_contention: u64,
}

/// What the passes of a tick share besides the lease: the token cache and the request budget.
struct Session {
    tokens: TokenSource,
    throttle: RequestBudget,
}

impl Session {
    /// Tokens for the API of `TRACE_API`, and the request budget as the checkpoint left it
    /// (lowered while another application spends the tenant's quota), at `now`.
    fn open(
        app: &App,
        config: &Config,
        secret: &crate::secret::Secret,
        checkpoint: &crate::checkpoint::Checkpoint,
        now: DateTime<Utc>,
    ) -> Result<Session, TickError> {
        let scope = app.source()?.scope();
        let tokens = TokenSource::new(app.http().clone(), &config.endpoints.login, scope, secret);
        let history = &checkpoint.recent_requests;
        let throttle = RequestBudget::new(history, config.request_budget, GRAPH_PERIOD)
            .with_quota(checkpoint.quota_share, now);
        Ok(Session { tokens, throttle })
    }

    /// Keeps the request budget in `checkpoint` (its history at `now`, its lowered share) and
    /// says what the tick learned of the tenant's quota.
    fn keep(
        &mut self,
        checkpoint: &mut crate::checkpoint::Checkpoint,
        now: DateTime<Utc>,
        config: &Config,
    ) -> BudgetReport {
        checkpoint.recent_requests = self.throttle.history(now);
        checkpoint.quota_share = self.throttle.quota();
        BudgetReport {
            quota_contention: self.throttle.contentions(),
            request_budget: (config.trace_api == TraceApi::Graph).then(|| self.throttle.limit()),
        }
    }

    /// The services and limits every window of the tick uses.
    fn transfer<'a>(
        &'a mut self,
        app: &'a App,
        config: &'a Config,
        job: &'a Job,
        secret: &'a crate::secret::Secret,
        devo: &'a DevoTls,
        clock: &'a Clock,
    ) -> Result<Transfer<'a>, TickError> {
        let retry = Retry {
            min_delay: app.options().retry_min_delay,
            devo_attempts: app.options().devo_attempts,
        };
        Ok(Transfer::new(
            app.source()?,
            &mut self.tokens,
            &mut self.throttle,
            clock.pull_budget(config.request_timeout, retry.min_delay),
            ForwardSettings::new(
                config,
                devo,
                (&job.tenant.devo_hostname, &job.tenant.devo_tag),
                clock,
            ),
            &secret.tenant_id,
            retry,
        ))
    }
}
