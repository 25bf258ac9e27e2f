//! One tick, top to bottom: config, secret, lease, window, pull, forward, commit.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use thiserror::Error;

use crate::app::App;
use crate::backfill::{self, BackfillError, Range};
use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointStore, Stored};
use crate::config::ConfigError;
use crate::devo::{DevoError, DevoTls};
use crate::event::BackfillRequest;
use crate::lease::{self, Lease, LeaseDecision};
use crate::reset::{self, Reset};
use crate::secret::SecretError;
use crate::summary::{Counts, LeaseReport, Summary};
use crate::trace::auth::TokenSource;
use crate::trace::http::Budget;
use crate::trace::request_budget::{self, RequestBudget};
use crate::transfer::{Progress, Transfer, TransferError};
use crate::window::{self, Bounds, Plan, Window};

/// Why a tick failed. The checkpoint never moves past what was delivered.
#[derive(Debug, Error)]
pub enum TickError {
    /// Step 1.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// Step 2.
    #[error("secret: {0}")]
    Secret(#[from] SecretError),
    /// Step 2: the Devo material in the secret.
    #[error("devo: {0}")]
    DevoSetup(#[source] DevoError),
    /// Steps 3 and 7.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// Steps 5 and 6.
    #[error("window {start}..{end}: {source}")]
    Transfer {
        /// Window start.
        start: DateTime<Utc>,
        /// Window end.
        end: DateTime<Utc>,
        /// What failed.
        source: Box<TransferError>,
    },
    /// Step 1: a backfill range that cannot be pulled.
    #[error("backfill refused: {0}")]
    Backfill(#[from] BackfillError),
}

/// What a run pulls: the schedule's next windows, or a backfill range under its own
/// checkpoint. Both go through the same seven steps.
#[derive(Debug, Clone)]
pub enum Target {
    /// The scheduled checkpoint (`STATE_KEY`), towards now − delay.
    Scheduled,
    /// A range, under `backfill/{name}.json` next to `STATE_KEY`.
    Backfill(BackfillRequest),
}

/// A window just finished, for progress displays (the JSON log line is written anyway).
#[derive(Debug)]
pub struct WindowDone<'a> {
    /// The window.
    pub window: &'a Window,
    /// Its position in the plan, from 1.
    pub number: usize,
    /// Windows planned for this run.
    pub planned: usize,
    /// Totals of the run so far.
    pub counts: &'a Counts,
    /// `complete`, `partial` or `not_started`.
    pub outcome: &'static str,
}

/// The checkpoint a run works on and its limits, resolved from its target in step 1.
#[derive(Debug, Clone)]
pub struct Job {
    /// The checkpoint object's key.
    pub key: String,
    /// The backfill's accepted range; `None` for the schedule.
    pub range: Option<Range>,
}

impl Job {
    /// Resolves `target` at `now`: refuses a backfill range the API cannot serve.
    pub fn resolve(
        target: &Target,
        config: &crate::config::Config,
        now: DateTime<Utc>,
    ) -> Result<Job, BackfillError> {
        match target {
            Target::Scheduled => Ok(Job {
                key: config.state_key.clone(),
                range: None,
            }),
            Target::Backfill(request) => {
                let range =
                    backfill::validate(request, now, &config.rules, config.trace_api.as_str())?;
                Ok(Job {
                    key: backfill::checkpoint_key(&config.state_key, &range),
                    range: Some(range),
                })
            }
        }
    }

    /// The limits the windows are planned within.
    pub fn bounds(&self, now: DateTime<Utc>, rules: &crate::config::WindowRules) -> Bounds {
        match &self.range {
            None => Bounds::scheduled(now, rules),
            Some(range) => backfill::bounds(range, now, rules),
        }
    }

    /// Adds the target's own part of the summary.
    pub(crate) fn annotate(&self, mut summary: Summary, reset: Option<Reset>) -> Summary {
        summary.backfill = self
            .range
            .as_ref()
            .map(|r| backfill::report(r, &self.key, summary.checkpoint, summary.partial.is_some()));
        summary.reset = reset;
        summary
    }
}

/// The invocation a tick runs for.
#[derive(Debug, Clone)]
pub struct TickRequest {
    /// Lambda request id: the lease owner.
    pub request_id: String,
    /// Lambda deadline.
    pub deadline: DateTime<Utc>,
}

/// Windows planned at most per tick (a 90-day catch-up of 6-hour windows is 360).
pub const MAX_WINDOWS_PER_TICK: usize = 1000;

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
    // Whole seconds keep window bounds and query filters readable.
    let now = Utc::now().trunc_subsecs(0);

    // 1. config
    let config = app.config()?;
    let job = Job::resolve(target, config, now)?;

    // 2. secret
    let secret = app.secrets().load(&config.secret_id).await?;
    let devo = DevoTls::new(&secret.devo, &config.devo_address, &config.devo_server_name)
        .map_err(TickError::DevoSetup)?;

    // 3. lease
    let store = CheckpointStore::new(app.s3().clone(), config.state_bucket.clone());
    let key = job.key.as_str();
    let found = store.load(key).await?;
    if let (Some(range), Some(stored)) = (&job.range, &found) {
        backfill::check_stored(range, &stored.checkpoint)?;
    }
    let expires_at = request.deadline
        + chrono::Duration::from_std(app.options().lease_slack).unwrap_or_default();
    let (mut checkpoint, mut etag, lease_report) =
        match claim(&store, key, found, request, now, expires_at).await? {
            Claim::Claimed {
                checkpoint,
                etag,
                report,
            } => (checkpoint, etag, report),
            Claim::Refused { checkpoint, report } => {
                let summary = idle_summary(config.trace_api.as_str(), report, &checkpoint, started);
                return Ok(job.annotate(summary, None));
            }
        };
    checkpoint.api = Some(config.trace_api.as_str().to_owned());
    let reset = match &job.range {
        None => reset::apply(&mut checkpoint, config.reset_before),
        Some(range) => {
            checkpoint.backfill = Some(range.clone());
            None
        }
    };
    if let Some(r) = &reset {
        tracing::warn!(event = "reset", reset_before = %r.reset_before.to_rfc3339(),
            previous_checkpoint = r.previous_checkpoint.map(|t| t.to_rfc3339()),
            "RESET_BEFORE changed: the schedule restarts from HISTORIC_DAYS back; records are sent again");
    }

    // 4. window
    let plan: Plan = window::plan_within(
        window::Progress {
            end: checkpoint.end,
            partial: checkpoint.partial.as_ref(),
        },
        &job.bounds(now, &config.rules),
        MAX_WINDOWS_PER_TICK,
    );
    if let Some(skipped) = plan.skipped {
        tracing::warn!(event = "skipped", from = %skipped.from.to_rfc3339(), to = %skipped.to.to_rfc3339(),
            "this span is outside the API's lookback and can no longer be pulled");
    }
    // The plan's first window is where delivery stands (it records a skip, or a fresh start).
    match plan.windows.first() {
        Some(first) => {
            checkpoint.end = Some(first.start);
            checkpoint.partial = first.resume.is_some().then(|| first.clone());
        }
        None => {
            checkpoint.end = Some(checkpoint.end.map_or(plan.start, |e| e.max(plan.start)));
            checkpoint.partial = None;
        }
    }

    // 5 + 6. pull and forward, window after window, within the budget
    let budget_end = request.deadline
        - chrono::Duration::from_std(app.options().commit_reserve).unwrap_or_default();
    let budget = Budget::new(
        tokio::time::Instant::now() + (budget_end - Utc::now()).to_std().unwrap_or(Duration::ZERO),
        config.request_timeout,
        app.options().retry_min_delay,
    );
    let source = app.source()?;
    let mut throttle = RequestBudget::new(
        &checkpoint.recent_requests,
        config.request_budget,
        request_budget::GRAPH_PERIOD,
    );
    let mut tokens = TokenSource::new(
        app.http().clone(),
        &config.endpoints.login,
        source.scope(),
        &secret,
    );
    let mut transfer = Transfer {
        source,
        tokens: &mut tokens,
        devo: &devo,
        organization: &secret.tenant_id,
        hostname: &config.devo_hostname,
        tag: &config.devo_tag,
        budget,
        throttle: &mut throttle,
        io_timeout: config.request_timeout,
        close_timeout: app.options().devo_close_timeout,
    };
    let mut counts = Counts::default();
    let mut reached_horizon = plan.windows.len() < MAX_WINDOWS_PER_TICK;
    let mut lease_report = lease_report;
    for (number, window) in plan.windows.iter().enumerate() {
        if budget.exhausted() {
            reached_horizon = false;
            break;
        }
        let window_started = std::time::Instant::now();
        let before = counts;
        let mut attempt = 1;
        let progress = loop {
            match transfer.run(window, &mut counts).await {
                Ok(progress) => break progress,
                // The relay refused or broke the stream: deliver the window again on a new
                // connection (what the broken stream carried may arrive twice, never lost).
                Err(TransferError::Devo(e))
                    if e.is_retryable()
                        && attempt < app.options().devo_attempts
                        && !budget.exhausted() =>
                {
                    tracing::warn!(event = "devo_retry", attempt, error = %e, "relay failed; sending the window again");
                    tokio::time::sleep(app.options().retry_min_delay * 2u32.pow(attempt)).await;
                    attempt += 1;
                }
                Err(source) => {
                    checkpoint.recent_requests = transfer.throttle.history(Utc::now());
                    release(&store, key, &mut checkpoint, &etag).await;
                    tracing::error!(event = "window_failed", start = %window.start.to_rfc3339(), end = %window.end.to_rfc3339(), error = %source, "window not delivered; the checkpoint stays before it");
                    return Err(TickError::Transfer {
                        start: window.start,
                        end: window.end,
                        source: Box::new(source),
                    });
                }
            }
        };
        let outcome = match &progress {
            Progress::Complete => "complete",
            Progress::Partial(_) => "partial",
            Progress::NotStarted => "not_started",
        };
        tracing::info!(
            event = "window",
            start = %window.start.to_rfc3339(),
            end = %window.end.to_rfc3339(),
            resumed = window.resume.is_some(),
            outcome,
            pages = counts.pages - before.pages,
            records = counts.records_pulled - before.records_pulled,
            events = counts.events_sent - before.events_sent,
            duplicates = counts.duplicates_skipped - before.duplicates_skipped,
            ms = u64::try_from(window_started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "window"
        );
        on_window(&WindowDone {
            window,
            number: number + 1,
            planned: plan.windows.len(),
            counts: &counts,
            outcome,
        });
        match progress {
            Progress::Complete => {
                counts.windows += 1;
                checkpoint.end = Some(window.end);
                checkpoint.partial = None;
            }
            Progress::Partial(resume) => {
                checkpoint.end = Some(window.start);
                checkpoint.partial = Some(crate::window::Window {
                    resume: Some(resume),
                    ..window.clone()
                });
                reached_horizon = false;
            }
            Progress::NotStarted => {
                reached_horizon = false;
                break;
            }
        }
        checkpoint.updated_at = Utc::now();
        checkpoint.recent_requests = transfer.throttle.history(checkpoint.updated_at);
        match store.write(key, &checkpoint, Some(&etag)).await {
            Ok(new) => etag = new,
            Err(CheckpointError::Conflict { .. }) => {
                tracing::error!(
                    event = "lease_lost",
                    at = "commit",
                    "the checkpoint was changed by another invocation; stopping"
                );
                lease_report = LeaseReport::Lost { at: "commit" };
                let summary = finish_summary(
                    config.trace_api.as_str(),
                    lease_report,
                    counts,
                    &checkpoint,
                    false,
                    plan.skipped,
                    started,
                );
                return Ok(job.annotate(summary, reset));
            }
            Err(e) => return Err(e.into()),
        }
        if checkpoint.partial.is_some() {
            break;
        }
    }

    // 7. commit: release the lease
    checkpoint.lease = None;
    checkpoint.updated_at = Utc::now();
    checkpoint.recent_requests = transfer.throttle.history(checkpoint.updated_at);
    let caught_up = reached_horizon && checkpoint.partial.is_none();
    match store.write(key, &checkpoint, Some(&etag)).await {
        Ok(_) => {}
        Err(CheckpointError::Conflict { .. }) => {
            tracing::error!(
                event = "lease_lost",
                at = "release",
                "the checkpoint was changed by another invocation before release"
            );
            lease_report = LeaseReport::Lost { at: "release" };
        }
        Err(e) => return Err(e.into()),
    }
    let summary = finish_summary(
        config.trace_api.as_str(),
        lease_report,
        counts,
        &checkpoint,
        caught_up,
        plan.skipped,
        started,
    );
    Ok(job.annotate(summary, reset))
}

/// The result of trying to claim the state.
#[derive(Debug)]
pub enum Claim {
    /// The lease is ours; `etag` is what the next write must match.
    Claimed {
        /// The checkpoint with our lease.
        checkpoint: Checkpoint,
        /// Its ETag.
        etag: String,
        /// How it was claimed.
        report: LeaseReport,
    },
    /// Another invocation holds or just took the state: deliver nothing.
    Refused {
        /// The checkpoint as found.
        checkpoint: Checkpoint,
        /// Why.
        report: LeaseReport,
    },
}

/// Claims the checkpoint `found` at `key` for `request`, with a conditional write: creates it
/// with `If-None-Match: *`, or replaces it with `If-Match` on the ETag that was read.
pub async fn claim(
    store: &CheckpointStore,
    key: &str,
    found: Option<Stored>,
    request: &TickRequest,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<Claim, CheckpointError> {
    let (mut checkpoint, found_etag) = match found {
        Some(stored) => (stored.checkpoint, Some(stored.etag)),
        None => (Checkpoint::empty(now), None),
    };
    let report = match lease::decide(checkpoint.lease.as_ref(), &request.request_id, now) {
        LeaseDecision::HeldByOther { owner, until } => {
            tracing::warn!(event = "lease_held", holder = %owner, until = %until.to_rfc3339(), "another invocation holds the lease; nothing pulled");
            return Ok(Claim::Refused {
                checkpoint,
                report: LeaseReport::HeldByOther { owner, until },
            });
        }
        LeaseDecision::Claim => LeaseReport::Acquired {
            owner: request.request_id.clone(),
            expires_at,
        },
        LeaseDecision::TakeOver {
            previous_owner,
            expired_at,
        } => {
            tracing::warn!(event = "lease_taken_over", previous_owner = %previous_owner, expired_at = %expired_at.to_rfc3339(), "took over an expired lease");
            LeaseReport::TakenOver {
                owner: request.request_id.clone(),
                expires_at,
                previous_owner,
            }
        }
    };
    let mut claimed = checkpoint.clone();
    claimed.lease = Some(Lease {
        owner: request.request_id.clone(),
        expires_at,
    });
    claimed.updated_at = now;
    match store.write(key, &claimed, found_etag.as_deref()).await {
        Ok(etag) => Ok(Claim::Claimed {
            checkpoint: claimed,
            etag,
            report,
        }),
        Err(CheckpointError::Conflict { .. }) => {
            tracing::warn!(
                event = "lease_lost",
                at = "claim",
                "another invocation wrote the checkpoint first; nothing pulled"
            );
            checkpoint.lease = None;
            Ok(Claim::Refused {
                checkpoint,
                report: LeaseReport::Lost { at: "claim" },
            })
        }
        Err(e) => Err(e),
    }
}

/// Best effort: give the lease back after a failure so that the next tick need not wait for
/// its expiry. The checkpoint keeps what was delivered.
async fn release(store: &CheckpointStore, key: &str, checkpoint: &mut Checkpoint, etag: &str) {
    checkpoint.lease = None;
    checkpoint.updated_at = Utc::now();
    if let Err(e) = store.write(key, checkpoint, Some(etag)).await {
        tracing::warn!(event = "release_failed", error = %e, "could not release the lease; it expires by itself");
    }
}

fn idle_summary(
    api: &'static str,
    lease: LeaseReport,
    checkpoint: &Checkpoint,
    started: std::time::Instant,
) -> Summary {
    finish_summary(
        api,
        lease,
        Counts::default(),
        checkpoint,
        false,
        None,
        started,
    )
}

fn finish_summary(
    api: &'static str,
    lease: LeaseReport,
    counts: Counts,
    checkpoint: &Checkpoint,
    caught_up: bool,
    skipped: Option<crate::window::Skipped>,
    started: std::time::Instant,
) -> Summary {
    Summary {
        api,
        lease,
        counts,
        checkpoint: checkpoint.end,
        partial: checkpoint.partial.clone(),
        caught_up,
        skipped,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        backfill: None,
        reset: None,
    }
}
