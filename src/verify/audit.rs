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
use crate::config::Config;
use crate::events::Event;
use crate::events::audit::{AuditFailed, HourAudited, Repaired};
use crate::secret::Secret;
use crate::tenants::Tenant;
use crate::trace::http::Budget;
use crate::transfer::TransferError;
use crate::verify::answer::HeldKey;
use crate::verify::compare::{HourAudit, compare, fingerprint};
use crate::verify::failure::AuditError;
use crate::verify::hours::{Hours, Skipped};
use crate::verify::listing::Lister;
pub use crate::verify::repair::Repair;
use crate::verify::repair::{failed, repair_hour};
pub use crate::verify::services::Services;
use crate::verify::{QueryClient, QueryError, Target};
use crate::window::Window;

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
    /// Why a repair asked for sent nothing: Devo held no line of the range under this hostname.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair_refused: Option<String>,
}

/// Whether an audit sends what Devo lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepairMode {
    /// Compare only.
    Off,
    /// Send the missing and stale records — unless Devo holds no line at all of the range
    /// under this hostname: a wrong `DEVO_HOSTNAME` or `DEVO_TAG` is then likelier than a
    /// relay that lost everything, and re-sending the whole range would bill it twice.
    Missing,
    /// Send them even then (`--force`).
    Force,
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

/// The Query API client of the tenant: `DEVO_QUERY_URL` and the secret's `devo_query_token`.
pub fn query_client(
    app: &App,
    config: &Config,
    tenant: &Tenant,
    secret: &Secret,
) -> Result<QueryClient, QueryError> {
    client_with_token(app, config, tenant, secret.devo_query_token.clone())
}

/// The Query API client of the tenant with `token`, its `devo_query_token` (read alone by a
/// cut-over, which may run before the secret is complete).
pub fn client_with_token(
    app: &App,
    config: &Config,
    tenant: &Tenant,
    token: Option<crate::secret::QueryToken>,
) -> Result<QueryClient, QueryError> {
    let base = config
        .devo_query_url
        .as_deref()
        .ok_or(QueryError::NotConfigured)?;
    let token = token.ok_or_else(|| QueryError::NoToken {
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

/// Audits `hours` (and repairs them as `repair` says), reporting the failure that stops it.
pub async fn audit_hours(
    services: &mut Services<'_>,
    client: &QueryClient,
    hours: Hours,
    repair: RepairMode,
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
        let repair = repair_allowed(repair, &lines, &target, (first, end), &mut report);
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
                let reason = if e.out_of_time() {
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
        Ok::<(), AuditError>(())
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

/// Whether to repair: not when Devo holds no line at all of the range under this hostname,
/// unless forced (a wrong `DEVO_HOSTNAME` or `DEVO_TAG` is likelier; the report says so).
fn repair_allowed(
    mode: RepairMode,
    lines: &BTreeMap<DateTime<Utc>, u64>,
    target: &Target,
    (first, end): (DateTime<Utc>, DateTime<Utc>),
    report: &mut AuditReport,
) -> bool {
    match mode {
        RepairMode::Off => false,
        RepairMode::Force => true,
        RepairMode::Missing if !lines.is_empty() => true,
        RepairMode::Missing => {
            report.repair_refused = Some(format!(
                "Devo holds no line of hostname {} in table {} from {first} to {end}: check DEVO_HOSTNAME (the function's default is its name, which the command line does not know: set DEVO_HOSTNAME as the function has it) and DEVO_TAG; nothing was sent (--force sends every record of the range)",
                target.hostname, target.table
            ));
            false
        }
    }
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
) -> Result<(), AuditError> {
    let window = Window {
        start: hour,
        end: hour + Duration::hours(1),
        resume: None,
    };
    let listing = Lister {
        source: services.app.source().map_err(AuditError::Config)?,
        tokens: services.tokens,
        throttle: services.throttle,
    }
    .hour(hour, at.budget)
    .await
    .map_err(|e| failed(&window, TransferError::Trace(e)))?;
    let lines = at.lines.get(&hour).copied().unwrap_or(0);
    let mut held = Vec::new();
    if lines > 0 {
        let mut keep = |k: HeldKey| {
            held.push(fingerprint(
                &k.message_trace_id,
                &k.recipient,
                Some(&k.status),
            ));
        };
        let client = at.client;
        client
            .each_key_of_hour(at.target, hour, at.budget, &mut keep)
            .await?;
        held.sort_unstable();
    }
    let row = compare(hour, &listing.listed, listing.unkeyed, &held, lines);
    HourAudited {
        hour: row.hour,
        microsoft: row.microsoft,
        devo: row.devo,
        devo_lines: row.devo_lines,
        missing: row.missing,
        extra: row.extra,
        stale: row.stale,
    }
    .emit();
    report.hours.push(row);
    if repair && !row.clean() {
        let done = repair_hour(services, &window, held, at.budget).await?;
        Repaired {
            hour: done.hour,
            sent: done.sent,
            missing_sent: done.missing_sent,
            stale_sent: done.stale_sent,
            complete: done.complete,
        }
        .emit();
        report.repairs.push(done);
    }
    Ok(())
}
