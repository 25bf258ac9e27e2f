//! The scheduled audit (`AUDIT_HOURS`): after the passes and before the delivery details, with
//! the time and half the request budget the passes leave, the next complete hours are compared with what Devo holds, resuming where
//! the checkpoint's `audit.until` stopped. It reports (summary, `AuditMissing`, `AuditExtra`);
//! it never re-sends on its own: a repair is the operator's `audit --repair`, so that a wrong
//! `DEVO_TAG` or hostname in the audit cannot make the function send a day twice.

use chrono::{DateTime, Duration, Utc};

use crate::app::App;
use crate::checkpoint::{AuditMark, Checkpoint};
use crate::clock::Clock;
use crate::config::Config;
use crate::events::Event;
use crate::events::audit::AuditFailed;
use crate::secret::Secret;
use crate::summary::AuditSummary;
use crate::tenants::Tenant;
use crate::tick::job::Job;
use crate::tick::pass::Ran;
use crate::trace::auth::TokenSource;
use crate::trace::request_budget::RequestBudget;
use crate::verify::audit::{AuditReport, RepairMode, Services, audit_hours, query_client};
use crate::verify::hours;
use crate::window::floor_hour;

/// The share of the request budget the audit may use (the rest stays for the next fresh pass).
const AUDIT_SHARE: (usize, usize) = (1, 2);

/// What the scheduled tick needs to audit.
pub(super) struct Scheduled<'a> {
    app: &'a App,
    config: &'a Config,
    job: &'a Job,
    tenant: &'a Tenant,
    secret: &'a Secret,
    clock: &'a Clock,
}

impl<'a> Scheduled<'a> {
    /// The audit of `job`'s tick.
    pub(super) fn new(
        app: &'a App,
        config: &'a Config,
        job: &'a Job,
        secret: &'a Secret,
        clock: &'a Clock,
    ) -> Scheduled<'a> {
        Scheduled {
            app,
            config,
            job,
            tenant: &job.tenant,
            secret,
            clock,
        }
    }

    /// After the passes: audits, with the tick's tokens and request budget, when the job is
    /// the schedule's and every pass caught up.
    pub(super) async fn after(
        &self,
        passes: &[Ran],
        budgets: (&mut TokenSource, &mut RequestBudget),
        checkpoint: &mut Checkpoint,
    ) -> Option<AuditSummary> {
        let caught_up = passes.iter().all(Ran::caught_up);
        if self.job.range().is_some() || !caught_up {
            return None;
        }
        run(self, budgets, checkpoint).await
    }
}

/// Audits the next complete hours, at most `AUDIT_HOURS`, and moves `checkpoint.audit`; `None`
/// when the audit is off or no hour is due.
async fn run(
    s: &Scheduled<'_>,
    (tokens, throttle): (&mut TokenSource, &mut RequestBudget),
    checkpoint: &mut Checkpoint,
) -> Option<AuditSummary> {
    if !crate::checkpoint::cutover::hold_audit(checkpoint, s.clock.now) {
        return None; // a cut-over's overlap: the earlier collector's records are not ours
    }
    let complete_until = checkpoint.complete_until()?;
    let (from, to) = due(
        s.config.audit_hours,
        checkpoint.audit.map(|a| a.until),
        complete_until,
    )?;
    let client = match query_client(s.app, s.config, s.tenant, s.secret) {
        Ok(client) => client,
        Err(e) => {
            let failure = format!("{}: {e}", e.error_type());
            AuditFailed {
                error_type: e.error_type(),
                error: &e.to_string(),
            }
            .emit();
            return Some(AuditSummary {
                until: Some(from),
                failure: Some(failure),
                ..AuditSummary::default()
            });
        }
    };
    let served_from = s.config.rules.earliest(s.clock.now);
    let at = (Some(complete_until), checkpoint.cutover.as_ref());
    let planned = hours::plan(from, to, at, served_from);
    throttle.lend(AUDIT_SHARE.0, AUDIT_SHARE.1);
    let mut services = Services {
        app: s.app,
        config: s.config,
        tenant: s.tenant,
        secret: s.secret,
        clock: s.clock,
        tokens: &mut *tokens,
        throttle: &mut *throttle,
    };
    let report = audit_hours(&mut services, &client, planned, RepairMode::Off).await;
    throttle.restore();
    let until = reached(from, &report);
    checkpoint.audit = Some(AuditMark { until });
    Some(AuditSummary {
        hours: report.hours.len() as u64,
        missing: report.missing(),
        extra: report.extra(),
        stale: report.stale(),
        until: Some(until),
        failure: report
            .failure
            .map(|f| format!("{}: {}", f.error_type, f.error)),
    })
}

/// The hours due: from the audit's position (the last complete hour when it has none) to the
/// last complete hour, at most `max_hours`; `None` when off or nothing is due.
fn due(
    max_hours: u32,
    position: Option<DateTime<Utc>>,
    complete_until: DateTime<Utc>,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    if max_hours == 0 {
        return None;
    }
    let complete = floor_hour(complete_until);
    let from = position.unwrap_or(complete - Duration::hours(1));
    let to = complete.min(from + Duration::hours(i64::from(max_hours)));
    (to > from).then_some((from, to))
}

/// Where the audit stands after `report`: past every hour compared, and past the hours the API
/// no longer serves; never past an hour not compared.
fn reached(from: DateTime<Utc>, report: &AuditReport) -> DateTime<Utc> {
    let compared = report.hours.iter().map(|h| h.hour + Duration::hours(1));
    let gone = report
        .skipped
        .iter()
        .filter(|s| s.reason == "lookback")
        .map(|s| s.to);
    compared.chain(gone).fold(from, DateTime::max)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, h, m, 0).unwrap()
    }

    #[test]
    fn the_first_audit_takes_the_last_complete_hour_then_resumes_in_steps() {
        assert_eq!(due(0, None, t(12, 30)), None, "off");
        assert_eq!(due(6, None, t(12, 30)), Some((t(11, 0), t(12, 0))));
        assert_eq!(due(2, Some(t(6, 0)), t(12, 30)), Some((t(6, 0), t(8, 0))));
        assert_eq!(
            due(6, Some(t(12, 0)), t(12, 59)),
            None,
            "the hour is not complete yet"
        );
    }

    #[test]
    fn the_position_passes_only_what_was_compared() {
        let mut report = AuditReport::default();
        assert_eq!(reached(t(6, 0), &report), t(6, 0));
        let empty = crate::verify::compare::compare(t(6, 0), &[], 0, &[], 0);
        report.hours.push(empty);
        assert_eq!(reached(t(6, 0), &report), t(7, 0));
        report.skipped.push(hours::Skipped {
            from: t(7, 0),
            to: t(9, 0),
            reason: "deadline",
        });
        assert_eq!(
            reached(t(6, 0), &report),
            t(7, 0),
            "not reached is not passed"
        );
    }
}
