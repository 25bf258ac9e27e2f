//! One tick, top to bottom: config, secret, lease, window, pull, forward, commit.

mod audit;
mod claim;
mod deliver;
mod finish;
pub(crate) mod job;
mod pass;

pub use claim::{Claim, Claimed};
pub use deliver::WindowDone;
pub use job::Target;

use chrono::{DateTime, Utc};
use tracing::Instrument;

use crate::app::App;
use crate::checkpoint;
use crate::clock::Clock;
use crate::config::Config;
use crate::devo::DevoTls;
use crate::error::TickError;
use crate::state::S3Store;
use crate::summary::Summary;
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
    run_for(app, request, tenant, target, on_window).await
}

/// Runs the seven steps for `target` of `tenant` (a registry's tenant, or the one tenant),
/// in a `tick` span that puts the request id and the tenant on every line it writes.
pub async fn run_for(
    app: &App,
    request: &TickRequest,
    tenant: Tenant,
    target: &Target,
    on_window: &mut (dyn FnMut(&WindowDone<'_>) + Send),
) -> Result<Summary, TickError> {
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
) -> Result<Summary, TickError> {
    let started = std::time::Instant::now();
    // 1. config: the job, and the time it may use
    let config = app.config()?;
    let clock = Clock::start(app.time(), request.deadline, app.options().commit_reserve)?;
    let job = Job::resolve(target, tenant, config, clock.now)?;
    let api = config.trace_api.as_str();

    // 2. secret (a tenant's Devo material may come from SECRET_ID)
    let secret = app
        .secrets()
        .load_for(&job.tenant.secret_id, &config.secret_id)
        .await?;
    let devo = DevoTls::new(&secret.devo, &config.devo_address, &config.devo_server_name)
        .map_err(TickError::DevoSetup)?;

    // 3. lease
    let store = S3Store::new(app.s3().clone(), config.state_bucket.clone());
    let found = checkpoint::load(&store, &job.key).await?;
    job.check_found(found.as_ref().map(|s| &s.checkpoint))?;
    let expires_at = clock.lease_expiry(app.options().lease_slack);
    let (owner, at) = (request.request_id.as_str(), (clock.now, app.time()));
    let mut claimed = match Claimed::claim(&store, &job.key, found, owner, at, expires_at).await? {
        Claim::Claimed(claimed) => claimed,
        Claim::Refused { checkpoint, report } => {
            return Ok(job.annotate(Summary::refused(api, report, &checkpoint, started), None));
        }
    };
    let reset = job.prepare(claimed.checkpoint_mut(), config);

    // 4–6. window, pull, forward: each pass plans its windows and delivers them, each committed
    let context = pass::Context {
        job: &job,
        reset: reset.as_ref(),
        clock: &clock,
        config,
    };
    let ran = async {
        let mut session = Session::open(app, config, &secret, claimed.checkpoint())?;
        let mut transfer = session.transfer(app, config, &job, &secret, &devo, &clock)?;
        let mut passes: Vec<pass::Ran> = Vec::new();
        for p in job.passes(claimed.checkpoint(), config) {
            if passes.last().is_some_and(|r| !r.caught_up()) {
                break;
            }
            // The request id, the tenant and the pass on every line the pass writes.
            let span = tracing::info_span!(
                "pass",
                request_id = %request.request_id,
                tenant = job.tenant.label(),
                pass = p.as_str()
            );
            let ran = pass::run(&mut transfer, &context, p, &mut claimed, on_window)
                .instrument(span)
                .await?;
            passes.push(ran);
        }
        drop(transfer);
        let audit = audit::Scheduled::new(app, config, &job, &secret, &clock);
        let audited = audit.after(&passes, &mut session, claimed.checkpoint_mut());
        let audited = audited.await;
        claimed.checkpoint_mut().recent_requests = session.throttle.history(clock.wall());
        Ok::<_, TickError>((passes, audited))
    }
    .await;
    // Any failure after the claim gives the lease back (best effort).
    let (passes, audited) = match ran {
        Ok(ran) => ran,
        Err(failure) => return Err(finish::fail(claimed, failure).await),
    };

    // 7. commit: the lease goes back
    finish::finish(claimed, &job, api, (passes, audited), reset, started).await
}

/// What the passes of a tick share besides the lease: the token cache and the request budget.
struct Session {
    tokens: TokenSource,
    throttle: RequestBudget,
}

impl Session {
    /// Tokens for the API of `TRACE_API`, and the request budget as the checkpoint left it.
    fn open(
        app: &App,
        config: &Config,
        secret: &crate::secret::Secret,
        checkpoint: &crate::checkpoint::Checkpoint,
    ) -> Result<Session, TickError> {
        let scope = app.source()?.scope();
        let tokens = TokenSource::new(app.http().clone(), &config.endpoints.login, scope, secret);
        let history = &checkpoint.recent_requests;
        let throttle = RequestBudget::new(history, config.request_budget, GRAPH_PERIOD);
        Ok(Session { tokens, throttle })
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
