//! The repair of one hour: pulled again through the ordinary transfer, with what Devo holds as
//! its ledger, so that only the records whose key and status Devo lacks are sent — framed,
//! confirmed and retried like any window, with the tenant's hostname and tag.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::devo::DevoTls;
use crate::ledger::Fingerprint;
use crate::ledger::LedgerIndex;
use crate::summary::Counts;
use crate::trace::http::Budget;
use crate::transfer::{ForwardSettings, Ledger, Progress, Retry, Transfer, TransferError};
use crate::verify::failure::AuditError;
use crate::verify::services::Services;
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

/// Pulls `window` again and sends what Devo does not hold (`held`, its fingerprints, as the
/// ledger).
pub(super) async fn repair_hour(
    services: &mut Services<'_>,
    window: &Window,
    held: Vec<Fingerprint>,
    budget: &Budget,
) -> Result<Repair, AuditError> {
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
        .map_err(AuditError::DevoSetup)?;
    let line = (tenant.devo_hostname.as_str(), tenant.devo_tag.as_str());
    let settings = ForwardSettings::new(config, &devo, line, clock);
    let retry = Retry {
        min_delay: app.options().retry_min_delay,
        devo_attempts: app.options().devo_attempts,
    };
    let source = app.source().map_err(AuditError::Config)?;
    let mut transfer = Transfer::new(
        source,
        tokens,
        throttle,
        budget.clone(),
        settings,
        &secret.tenant_id,
        retry,
    );
    let index = LedgerIndex::new(held, Vec::new());
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

/// A failure of the hour `window`.
pub(super) fn failed(window: &Window, e: TransferError) -> AuditError {
    AuditError::Hour {
        start: window.start,
        end: window.end,
        source: Box::new(e),
    }
}
