//! An audit the command line asks for: the configuration, the secret's Query API token, the
//! checkpoint's `complete_until`, cut-over and request budget (read, never written: an audit
//! takes no lease and runs beside the schedule), then the hours.

use chrono::{DateTime, Utc};

use crate::app::App;
use crate::checkpoint;
use crate::clock::Clock;
use crate::state::S3Store;
use crate::tenants::Tenant;
use crate::trace::auth::TokenSource;
use crate::trace::request_budget::{GRAPH_PERIOD, RequestBudget};
use crate::verify::audit::{AuditReport, RepairMode, Services, audit_hours, query_client};
use crate::verify::failure::AuditError;
use crate::verify::hours;

/// The range and mode of an audit (the command line's `audit`).
#[derive(Debug, Clone, Copy)]
pub struct AuditRequest {
    /// Start (widened down to its hour).
    pub from: DateTime<Utc>,
    /// End (widened up to an hour).
    pub to: DateTime<Utc>,
    /// Whether to send what Devo lacks.
    pub repair: RepairMode,
}

/// Audits `request` for `tenant`, stopping before `deadline`: the configuration, the secret's
/// token, the checkpoint's `complete_until` and request budget (read, never written: the audit
/// takes no lease), then hour after hour.
pub async fn run(
    app: &App,
    tenant: &Tenant,
    request: &AuditRequest,
    deadline: DateTime<Utc>,
) -> Result<AuditReport, AuditError> {
    let config = app.config()?;
    let clock = Clock::start(app.time(), deadline, app.options().commit_reserve)?;
    let secret = app
        .secrets()
        .load_for(&tenant.secret_id, &config.secret_id)
        .await?;
    let client = query_client(app, config, tenant, &secret)?;
    let store = S3Store::new(app.s3().clone(), config.state_bucket.clone());
    let found = checkpoint::load(&store, &tenant.state_key).await?;
    let (complete_until, history, cutover) = found
        .map(|s| {
            let c = s.checkpoint;
            (c.complete_until(), c.recent_requests, c.cutover)
        })
        .unwrap_or_default();
    let served_from = config.rules.earliest(clock.now);
    let checkpoint = (complete_until, cutover.as_ref());
    let hours = hours::plan(request.from, request.to, checkpoint, served_from);
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
