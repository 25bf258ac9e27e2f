//! The audit: per hour, what Microsoft lists against what Devo holds for the tenant, and with
//! `repair` the records Devo lacks sent again through the tick's own transfer (the hour pulled
//! once more, with what Devo holds as its ledger: only what Devo does not have is sent).
//!
//! Bounded: hour after hour until the clock's pulling budget runs out (the hours not reached
//! are reported); every Query API answer is paged; a failure stops the audit and is reported
//! with what was compared before it.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::app::App;
use crate::checkpoint;
use crate::clock::Clock;
use crate::config::Config;
use crate::devo::DevoTls;
use crate::error::TickError;
use crate::events::Event;
use crate::events::audit::{AuditFailed, HourAudited, Repaired};
use crate::ledger::LedgerIndex;
use crate::secret::Secret;
use crate::state::S3Store;
use crate::summary::Counts;
use crate::tenants::Tenant;
use crate::trace::auth::TokenSource;
use crate::trace::http::Budget;
use crate::trace::request_budget::{GRAPH_PERIOD, RequestBudget};
use crate::transfer::{ForwardSettings, Ledger, Progress, Retry, Transfer, TransferError};
use crate::verify::compare::{HourAudit, compare, held_fingerprints};
use crate::verify::hours::{self, Hours, Skipped};
use crate::verify::listing::Lister;
use crate::verify::{HourKeys, QueryClient, QueryError, Target};
use crate::window::Window;

/// What was sent again for one hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Repair {
    /// The hour.
    pub hour: DateTime<Utc>,
    /// Lines sent.
    pub sent: u64,
    /// Of those, records Devo had no line of.
    pub missing_sent: u64,
    /// Of those, records Devo held only with another status.
    pub stale_sent: u64,
    /// Whether the whole hour was gone through (otherwise run the repair again).
    pub complete: bool,
}

/// Why the audit stopped early.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The stable `errorType`.
    pub error_type: &'static str,
    /// What failed and what to fix.
    pub error: String,
}

/// What an audit found (and repaired).
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditReport {
    /// The table read.
    pub table: String,
    /// The host field read.
    pub hostname: String,
    /// The checkpoint's `complete_until` when the audit began.
    pub complete_until: Option<DateTime<Utc>>,
    /// One row per hour compared, oldest first.
    pub hours: Vec<HourAudit>,
    /// One entry per hour repaired.
    pub repairs: Vec<Repair>,
    /// Hours of the range not audited, and why (`not_complete`, `lookback`, `no_checkpoint`,
    /// `deadline`: the time ran out before them, `failed`: after the failure).
    pub skipped: Vec<Skipped>,
    /// The failure that stopped it, if any.
    pub failure: Option<Failure>,
}

impl AuditReport {
    /// Records Devo lacks over the hours compared.
    pub fn missing(&self) -> u64 {
        self.hours.iter().map(|h| h.missing).sum()
    }

    /// Records Devo holds that Microsoft does not list.
    pub fn extra(&self) -> u64 {
        self.hours.iter().map(|h| h.extra).sum()
    }

    /// Records Devo holds only with an older status.
    pub fn stale(&self) -> u64 {
        self.hours.iter().map(|h| h.stale).sum()
    }
}

/// The range and mode of an audit (the command line's `audit`).
#[derive(Debug, Clone, Copy)]
pub struct AuditRequest {
    /// Start (widened down to its hour).
    pub from: DateTime<Utc>,
    /// End (widened up to an hour).
    pub to: DateTime<Utc>,
    /// Send what Devo lacks.
    pub repair: bool,
}

/// Audits `request` for `tenant`, stopping before `deadline`: the configuration, the secret's
/// token, the checkpoint's `complete_until` and request budget (read, never written: the audit
/// takes no lease), then hour after hour.
pub async fn run(
    app: &App,
    tenant: &Tenant,
    request: &AuditRequest,
    deadline: DateTime<Utc>,
) -> Result<AuditReport, TickError> {
    let config = app.config()?;
    let clock = Clock::start(app.time(), deadline, app.options().commit_reserve)?;
    let secret = app
        .secrets()
        .load_for(&tenant.secret_id, &config.secret_id)
        .await?;
    let client = query_client(app, config, tenant, &secret)?;
    let store = S3Store::new(app.s3().clone(), config.state_bucket.clone());
    let found = checkpoint::load(&store, &tenant.state_key).await?;
    let (complete_until, history) = found
        .map(|s| (s.checkpoint.complete_until(), s.checkpoint.recent_requests))
        .unwrap_or_default();
    let served_from = clock.now - config.rules.lookback + config.rules.margin;
    let hours = hours::plan(request.from, request.to, complete_until, served_from);
    let scope = app.source()?.scope();
    let mut tokens = TokenSource::new(app.http().clone(), &config.endpoints.login, scope, &secret);
    let mut throttle = RequestBudget::new(&history, config.request_budget, GRAPH_PERIOD);
    let mut services = Services {
        app,
        config,
        tenant,
        secret: &secret,
        clock: &clock,
        tokens: &mut tokens,
        throttle: &mut throttle,
    };
    let mut report = audit_hours(&mut services, &client, hours, request.repair).await;
    report.complete_until = complete_until;
    Ok(report)
}

/// What the hours of an audit are compared with: the tenant, its secret, the clock, the API's
/// tokens and request budget (the tick's own, for a scheduled audit).
pub struct Services<'a> {
    pub app: &'a App,
    pub config: &'a Config,
    pub tenant: &'a Tenant,
    pub secret: &'a Secret,
    pub clock: &'a Clock,
    pub tokens: &'a mut TokenSource,
    pub throttle: &'a mut RequestBudget,
}

/// The Query API client of the tenant: `DEVO_QUERY_URL` and the secret's `devo_query_token`.
pub fn query_client(
    app: &App,
    config: &Config,
    tenant: &Tenant,
    secret: &Secret,
) -> Result<QueryClient, QueryError> {
    let base = config
        .devo_query_url
        .as_deref()
        .ok_or(QueryError::NotConfigured)?;
    let token = secret
        .devo_query_token
        .clone()
        .ok_or_else(|| QueryError::NoToken {
            secret_id: tenant.secret_id.clone(),
            table: tenant.devo_tag.clone(),
        })?;
    Ok(QueryClient::new(
        app.http().clone(),
        base,
        token,
        &tenant.secret_id,
    ))
}

/// Audits `hours` (and repairs them when `repair`), reporting the failure that stops it.
pub async fn audit_hours(
    services: &mut Services<'_>,
    client: &QueryClient,
    hours: Hours,
    repair: bool,
) -> AuditReport {
    let target = Target {
        table: services.tenant.devo_tag.clone(),
        hostname: services.tenant.devo_hostname.clone(),
    };
    let mut report = AuditReport {
        table: target.table.clone(),
        hostname: target.hostname.clone(),
        skipped: hours.skipped,
        ..AuditReport::default()
    };
    let budget = services.clock.pull_budget(
        services.config.request_timeout,
        services.app.options().retry_min_delay,
    );
    let (Some(&first), Some(&last)) = (hours.hours.first(), hours.hours.last()) else {
        return report;
    };
    let end = last + Duration::hours(1);
    let outcome = async {
        let lines = client.lines_per_hour(&target, first, end, &budget).await?;
        for &hour in &hours.hours {
            if budget.exhausted() {
                report.skipped.push(Skipped {
                    from: hour,
                    to: end,
                    reason: "deadline",
                });
                break;
            }
            let at = Audited {
                client,
                target: &target,
                budget: &budget,
                lines: &lines,
            };
            if let Err(e) = audit_hour(services, &at, hour, repair, &mut report).await {
                let reason = if out_of_time(&e) {
                    "deadline"
                } else {
                    "failed"
                };
                report.skipped.push(Skipped {
                    from: hour,
                    to: end,
                    reason,
                });
                return if reason == "deadline" { Ok(()) } else { Err(e) };
            }
        }
        Ok::<(), TickError>(())
    }
    .await;
    if let Err(e) = outcome {
        let failure = Failure {
            error_type: e.error_type(),
            error: crate::error_chain(&e),
        };
        AuditFailed {
            error_type: failure.error_type,
            error: &failure.error,
        }
        .emit();
        report.failure = Some(failure);
    }
    report
}

/// What every hour of one audit reads from.
struct Audited<'a> {
    client: &'a QueryClient,
    target: &'a Target,
    budget: &'a Budget,
    /// Devo's lines per hour.
    lines: &'a BTreeMap<DateTime<Utc>, u64>,
}

/// Compares one hour (and repairs it), adding its row and repair to `report`.
async fn audit_hour(
    services: &mut Services<'_>,
    at: &Audited<'_>,
    hour: DateTime<Utc>,
    repair: bool,
    report: &mut AuditReport,
) -> Result<(), TickError> {
    let window = Window {
        start: hour,
        end: hour + Duration::hours(1),
        resume: None,
    };
    let listing = Lister {
        source: services.app.source()?,
        tokens: services.tokens,
        throttle: services.throttle,
    }
    .hour(hour, at.budget)
    .await
    .map_err(|e| failed(&window, TransferError::Trace(e)))?;
    let lines = at.lines.get(&hour).copied().unwrap_or(0);
    let held = if lines == 0 {
        HourKeys::default()
    } else {
        at.client.keys_of_hour(at.target, hour, at.budget).await?
    };
    let row = compare(hour, &listing.listed, listing.unkeyed, &held.keys, lines);
    HourAudited(&row).emit();
    report.hours.push(row);
    if repair && !row.clean() {
        let done = repair_hour(services, &window, &held, at.budget).await?;
        Repaired(&done).emit();
        report.repairs.push(done);
    }
    Ok(())
}

/// Pulls `window` again and sends what Devo does not hold (`held` as its ledger).
async fn repair_hour(
    services: &mut Services<'_>,
    window: &Window,
    held: &HourKeys,
    budget: &Budget,
) -> Result<Repair, TickError> {
    let Services {
        app,
        config,
        tenant,
        secret,
        clock,
        tokens,
        throttle,
    } = services;
    let devo = DevoTls::new(&secret.devo, &config.devo_address, &config.devo_server_name)
        .map_err(TickError::DevoSetup)?;
    let settings = ForwardSettings {
        devo: &devo,
        hostname: &tenant.devo_hostname,
        tag: &tenant.devo_tag,
        idle: config.devo_idle,
        io_timeout: config.request_timeout,
        close_timeout: config
            .request_timeout
            .min(std::time::Duration::from_secs(10)),
        confirm_bytes: config.devo_confirm_bytes,
        confirm_after: config.devo_confirm_after,
        pace: std::cell::Cell::default(),
        clock,
    };
    let retry = Retry {
        min_delay: app.options().retry_min_delay,
        devo_attempts: app.options().devo_attempts,
    };
    let source = app.source()?;
    let mut transfer = Transfer::new(
        source,
        tokens,
        throttle,
        budget.clone(),
        settings,
        &secret.tenant_id,
        retry,
    );
    let index = LedgerIndex::new(held_fingerprints(&held.keys), Vec::new());
    let mut counts = Counts::default();
    let result = transfer
        .window(window, Ledger::Filter(index), Vec::new(), &mut counts)
        .await;
    if let Some(e) = result.failure {
        return Err(failed(window, e));
    }
    Ok(Repair {
        hour: window.start,
        sent: counts.events_sent,
        missing_sent: counts.late_records,
        stale_sent: counts.status_changes,
        complete: matches!(result.progress, Progress::Complete),
    })
}

/// Whether `e` only says the time (or the request budget's share) ran out: the hours left are
/// for the next run, not a failure.
fn out_of_time(e: &TickError) -> bool {
    match e {
        TickError::Query(QueryError::OutOfTime { .. }) => true,
        TickError::Transfer { source, .. } => matches!(
            source.as_ref(),
            TransferError::Trace(crate::trace::TraceError::OutOfTime { .. })
        ),
        _ => false,
    }
}

fn failed(window: &Window, e: TransferError) -> TickError {
    TickError::Transfer {
        start: window.start,
        end: window.end,
        source: Box::new(e),
    }
}
