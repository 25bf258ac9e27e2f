//! After step 7: the tick's status line to Devo (`STATUS_TAG`), best effort, bounded by the
//! deadline; it never changes the tick's outcome or `errorType`.

use std::time::Duration;

use crate::app::App;
use crate::error::TickError;
use crate::events::Event;
use crate::events::health::StatusNotSent;
use crate::health::{self, Destination, Outcome, StatusError, StatusLine, StatusSent};
use crate::tick::job::{Kind, Target};
use crate::tick::{Prepared, Ran, Reported};

/// Kept before the deadline for the handler to return once the line is sent.
const KEEP: Duration = Duration::from_millis(500);

/// A scheduled tick that failed before the Devo material was usable cannot send its line: that
/// is logged (`status_not_sent`) when a line was due.
pub(super) fn unreachable(
    app: &App,
    target: &Target,
    tenant: &str,
    failure: TickError,
) -> Reported {
    let due =
        matches!(target, Target::Scheduled) && app.config().is_ok_and(|c| c.status_tag.is_some());
    if due {
        StatusNotSent {
            tenant,
            error: &StatusError::NoRelay,
        }
        .emit();
    }
    Reported {
        result: Err(failure),
        status_line: due.then_some(StatusSent::NotSent),
        quota_contention: 0,
    }
}

/// Sends the status line of a scheduled tick that got the lease (succeeded or not) and notes
/// in its summary what became of it.
pub(super) async fn report(prepared: &Prepared<'_>, ran: Ran) -> Reported {
    let Ran {
        mut result,
        standing,
    } = ran;
    let quota_contention = standing.as_ref().map_or(0, |s| s.counts.quota_contention);
    let Some(standing) = standing.filter(|_| prepared.job.kind == Kind::Scheduled) else {
        return Reported {
            result,
            status_line: None,
            quota_contention,
        };
    };
    let status = match &prepared.config.status_tag {
        None => StatusSent::Off,
        Some(tag) => {
            let message = result.as_ref().err().map(|e| crate::error_chain(e));
            let outcome = match &result {
                Ok(summary) => Outcome::of(summary),
                Err(e) => Outcome::Failed {
                    error_type: e.error_type(),
                    error: message.as_deref().unwrap_or_default(),
                },
            };
            let tenant = &prepared.job.tenant;
            let api = prepared.config.trace_api.as_str();
            let now = prepared.clock.wall();
            let line = StatusLine::new(tenant.label(), api, &standing, outcome, now);
            let to = Destination {
                devo: &prepared.devo,
                hostname: &tenant.devo_hostname,
                tag,
            };
            health::report(to, &line, now, prepared.clock.before_deadline(KEEP)).await
        }
    };
    if let Ok(summary) = &mut result {
        summary.status_line = Some(status.as_str());
    }
    Reported {
        result,
        status_line: Some(status),
        quota_contention,
    }
}
