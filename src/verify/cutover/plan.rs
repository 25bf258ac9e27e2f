//! What a `cutover` run does, decided from values (pure): the checkpoint found, the earlier
//! collector's newest line and what the operator asked. The plan is printed first; `--apply`
//! writes the checkpoint it carries.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::checkpoint::cutover::{Cutover, LineFilter, delivered};
use crate::checkpoint::lease::Lease;
use crate::checkpoint::{Checkpoint, Position};
use crate::verify::cutover::earlier::Found;

/// What the operator asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// The tenant's domain, as the earlier collector wrote it in `Organization`; without it,
    /// the earlier collector's lines are the tenant's hostname's.
    pub organization: Option<String>,
    /// The earlier collector is stopped: the overlap ends now.
    pub stopped: bool,
    /// Apply over a checkpoint that has delivered.
    pub replace: bool,
}

/// The instants and settings the decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// Now.
    pub now: DateTime<Utc>,
    /// `DELAY_SECONDS`: the margin before the earlier collector's newest `Received` (Microsoft
    /// may expose a record that late, so the earlier collector may have missed it).
    pub delay: Duration,
    /// The oldest instant the API still serves (its lookback, plus `MARGIN_SECONDS`).
    pub served_from: DateTime<Utc>,
    /// The tenant's `RESET_BEFORE`, recorded so that the first tick does not restart.
    pub reset_before: Option<DateTime<Utc>>,
}

/// What the run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A new cut-over, its overlap open until the earlier collector is stopped.
    Start,
    /// A new cut-over of an earlier collector already stopped: its overlap ends now.
    StartStopped,
    /// The earlier collector was stopped: the open overlap ends now.
    Stop,
    /// Applied, the overlap still open: nothing to write.
    AlreadyOpen,
    /// Applied and stopped: nothing to write.
    AlreadyStopped,
}

/// The plan of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// What it does.
    pub action: Action,
    /// The earlier collector's lines.
    pub earlier: LineFilter,
    /// Its newest line, as found now.
    pub found: Option<Found>,
    /// The cut-over as it stands after the run.
    pub cutover: Cutover,
    /// Where the tenant's checkpoint starts (or stands).
    pub start: Option<DateTime<Utc>>,
    /// The end of a delivered checkpoint this cut-over replaces (`--replace-checkpoint`).
    pub replaces: Option<DateTime<Utc>>,
    /// What the operator should know.
    pub notes: Vec<String>,
    /// What `--apply` writes; `None` when there is nothing to write.
    #[serde(skip)]
    pub checkpoint: Option<Checkpoint>,
}

/// Why a run does nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No line of the earlier collector was found.
    NoEarlierLines,
    /// The checkpoint has delivered; its end.
    Delivered(Option<DateTime<Utc>>),
    /// A cut-over was applied with another filter.
    OtherEarlier(LineFilter),
}

/// Decides the run for `existing` (the checkpoint found), `earlier` (the lines asked for) and
/// `found` (the newest of them).
pub fn decide(
    existing: Option<&Checkpoint>,
    request: &Request,
    earlier: LineFilter,
    found: Option<Found>,
    ctx: &Context,
) -> Result<Plan, Refusal> {
    match existing.and_then(|c| c.cutover.clone()) {
        Some(applied) => decide_applied(existing, applied, request, earlier, found, ctx),
        None => start(existing, request, earlier, found, ctx),
    }
}

/// A new cut-over: the overlap from the earlier collector's newest `Received` less the margin
/// (and, over a delivered checkpoint, from where that one still owed records).
fn start(
    existing: Option<&Checkpoint>,
    request: &Request,
    earlier: LineFilter,
    found: Option<Found>,
    ctx: &Context,
) -> Result<Plan, Refusal> {
    let found = found.ok_or(Refusal::NoEarlierLines)?;
    let replaces = existing.filter(|c| delivered(c));
    if replaces.is_some() && !request.replace {
        return Err(Refusal::Delivered(replaces.and_then(|c| c.primary.end)));
    }
    let owed = replaces.and_then(|c| {
        let due = c.due().first().map(|d| d.0);
        [c.primary.end, due].into_iter().flatten().min()
    });
    let from = owed.map_or(found.newest - ctx.delay, |o| {
        o.min(found.newest - ctx.delay)
    });
    let cutover = Cutover {
        from,
        until: request.stopped.then_some(ctx.now),
        newest: found.newest,
        earlier: earlier.clone(),
        applied_at: ctx.now,
    };
    let mut checkpoint = existing
        .cloned()
        .unwrap_or_else(|| Checkpoint::empty(ctx.now));
    checkpoint.primary = Position {
        end: Some(from),
        ..Position::default()
    };
    checkpoint.reconcile = None;
    checkpoint.ledger.clear();
    checkpoint.lease = None;
    checkpoint.last_error = None;
    checkpoint.updated_at = ctx.now;
    checkpoint.reset_before = ctx.reset_before.or(checkpoint.reset_before);
    checkpoint.cutover = Some(cutover.clone());
    let notes = start_notes(&found, from, ctx);
    Ok(Plan {
        action: if request.stopped {
            Action::StartStopped
        } else {
            Action::Start
        },
        earlier,
        found: Some(found),
        cutover,
        start: Some(from),
        replaces: replaces.and_then(|c| c.primary.end),
        notes,
        checkpoint: Some(checkpoint),
    })
}

/// A cut-over already applied: `--stopped` ends its open overlap now; anything else leaves it.
fn decide_applied(
    existing: Option<&Checkpoint>,
    applied: Cutover,
    request: &Request,
    earlier: LineFilter,
    found: Option<Found>,
    ctx: &Context,
) -> Result<Plan, Refusal> {
    if request.organization.is_some() && earlier != applied.earlier {
        return Err(Refusal::OtherEarlier(applied.earlier));
    }
    let mut notes = Vec::new();
    if let Some(f) = found.as_ref().filter(|f| f.newest > applied.newest) {
        notes.push(format!(
            "The earlier collector wrote lines up to {} after the cut-over was applied (its newest then: {}); the overlap covers them.",
            z(f.newest),
            z(applied.newest)
        ));
    }
    let mut plan = Plan {
        action: Action::AlreadyOpen,
        earlier: applied.earlier.clone(),
        found,
        cutover: applied.clone(),
        start: existing.and_then(|c| c.primary.end),
        replaces: None,
        notes,
        checkpoint: None,
    };
    match (applied.until, request.stopped) {
        (Some(_), _) => plan.action = Action::AlreadyStopped,
        (None, false) => {}
        (None, true) => {
            let mut checkpoint = existing
                .cloned()
                .unwrap_or_else(|| Checkpoint::empty(ctx.now));
            plan.cutover.until = Some(ctx.now);
            checkpoint.cutover = Some(plan.cutover.clone());
            checkpoint.updated_at = ctx.now;
            plan.action = Action::Stop;
            plan.checkpoint = Some(checkpoint);
        }
    }
    Ok(plan)
}

fn start_notes(found: &Found, from: DateTime<Utc>, ctx: &Context) -> Vec<String> {
    let mut notes = Vec::new();
    let age = ctx.now - found.newest;
    if age > ctx.delay {
        notes.push(format!(
            "The earlier collector's newest line is {} h old. If it is behind (catching up after an outage) rather than idle, stop it first and apply with --stopped: while the overlap is open, an hour is read once it is DELAY_SECONDS old, by when the earlier collector is assumed to have delivered it.",
            age.num_hours()
        ));
    }
    if found.newest > ctx.now {
        notes.push(format!(
            "The earlier collector's newest Received, {}, is in the future: check its lines' Received field.",
            z(found.newest)
        ));
    }
    if from < ctx.served_from {
        notes.push(format!(
            "The overlap starts before the oldest instant the API still serves ({}): records received before it cannot be pulled; the first tick reports that span as skipped.",
            z(ctx.served_from)
        ));
    }
    if found.received_unreadable {
        notes.push(
            "The earlier collector's lines have no readable Received: the start of the hour of its newest line stands for it."
                .to_owned(),
        );
    }
    notes
}

/// A lease of a running tick at `now`, which an apply must not write over.
pub fn live_lease(existing: Option<&Checkpoint>, now: DateTime<Utc>) -> Option<&Lease> {
    existing
        .and_then(|c| c.lease.as_ref())
        .filter(|l| l.live_at(now))
}

fn z(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap()
    }

    fn org() -> LineFilter {
        LineFilter {
            field: "Organization".into(),
            value: "contoso.com".into(),
        }
    }

    fn found(newest: DateTime<Utc>) -> Option<Found> {
        Some(Found {
            newest,
            hour: newest,
            hour_lines: 3,
            lines: 300,
            received_unreadable: false,
        })
    }

    fn ctx() -> Context {
        Context {
            now: t(24, 11, 0),
            delay: Duration::hours(25),
            served_from: t(1, 0, 0),
            reset_before: Some(t(20, 0, 0)),
        }
    }

    /// `decide` for the earlier collector of `org()` with its newest line at `newest`.
    fn decided(
        existing: Option<&Checkpoint>,
        request: &Request,
        newest: Option<DateTime<Utc>>,
        ctx: &Context,
    ) -> Result<Plan, Refusal> {
        decide(existing, request, org(), newest.and_then(found), ctx)
    }

    fn asked(stopped: bool) -> Request {
        Request {
            organization: Some("contoso.com".into()),
            stopped,
            replace: false,
        }
    }

    #[test]
    fn a_new_cut_over_starts_a_delay_before_the_newest_line_and_stays_open() {
        let plan = decided(None, &asked(false), Some(t(24, 10, 15)), &ctx()).unwrap();
        assert_eq!(plan.action, Action::Start);
        let from = t(23, 9, 15);
        assert_eq!((plan.start, plan.cutover.from), (Some(from), from));
        assert_eq!(plan.cutover.until, None);
        let c = plan.checkpoint.unwrap();
        assert_eq!(c.primary.end, Some(from));
        assert_eq!(c.cutover.as_ref().map(|c| c.earlier.clone()), Some(org()));
        assert_eq!(
            c.reset_before,
            Some(t(20, 0, 0)),
            "no restart at the first tick"
        );
        assert!(plan.notes.is_empty(), "{:?}", plan.notes);
        let stopped = decided(None, &asked(true), Some(t(24, 10, 15)), &ctx()).unwrap();
        assert_eq!(stopped.action, Action::StartStopped);
        assert_eq!(stopped.cutover.until, Some(ctx().now));
    }

    #[test]
    fn nothing_found_or_a_delivered_checkpoint_is_refused() {
        assert_eq!(
            decided(None, &asked(false), None, &ctx()).unwrap_err(),
            Refusal::NoEarlierLines
        );
        let mut delivered = Checkpoint::empty(t(24, 0, 0));
        delivered.primary.end = Some(t(24, 9, 0));
        assert_eq!(
            decided(Some(&delivered), &asked(false), Some(t(24, 10, 15)), &ctx()).unwrap_err(),
            Refusal::Delivered(Some(t(24, 9, 0)))
        );
        // A checkpoint that only recorded a failure is not a delivery.
        let mut failed = Checkpoint::empty(t(24, 0, 0));
        failed.last_error = Some(crate::checkpoint::LastError {
            at: t(24, 0, 0),
            error_type: "Secret".into(),
            message: "m".into(),
        });
        let plan = decided(Some(&failed), &asked(false), Some(t(24, 10, 15)), &ctx()).unwrap();
        assert_eq!(plan.checkpoint.unwrap().last_error, None);
    }

    #[test]
    fn replacing_a_delivered_checkpoint_covers_what_it_still_owed() {
        let mut old = Checkpoint::empty(t(24, 0, 0));
        old.primary.end = Some(t(24, 10, 50));
        old.position_mut(crate::checkpoint::Track::Reconcile)
            .owe((t(22, 8, 0), t(24, 10, 50)));
        let replace = Request {
            replace: true,
            ..asked(false)
        };
        let plan = decided(Some(&old), &replace, Some(t(24, 10, 15)), &ctx()).unwrap();
        assert_eq!(
            plan.cutover.from,
            t(22, 8, 0),
            "the span due for a second look too"
        );
        assert_eq!(plan.replaces, Some(t(24, 10, 50)));
        let c = plan.checkpoint.unwrap();
        assert_eq!((c.reconcile, c.ledger.len()), (None, 0));
    }

    #[test]
    fn an_applied_cut_over_is_stopped_once_and_kept_otherwise() {
        let applied = decided(None, &asked(false), Some(t(24, 10, 15)), &ctx())
            .unwrap()
            .checkpoint
            .unwrap();
        let later = Context {
            now: t(24, 14, 0),
            ..ctx()
        };
        let again = decided(Some(&applied), &asked(false), Some(t(24, 13, 0)), &later).unwrap();
        assert_eq!(again.action, Action::AlreadyOpen);
        assert!(again.checkpoint.is_none());
        assert!(again.notes[0].contains("after the cut-over was applied"));
        let stop = decided(Some(&applied), &asked(true), Some(t(24, 13, 0)), &later).unwrap();
        assert_eq!(stop.action, Action::Stop);
        let stopped = stop.checkpoint.unwrap();
        let c = stopped.cutover.clone().unwrap();
        assert_eq!(c.until, Some(t(24, 14, 0)));
        assert_eq!(c.from, t(23, 9, 15), "the overlap's start stays");
        assert_eq!(stopped.primary, applied.primary, "the position stays");
        let twice = decided(Some(&stopped), &asked(true), None, &later).unwrap();
        assert_eq!(twice.action, Action::AlreadyStopped);
        let other = Request {
            organization: Some("fabrikam.com".into()),
            ..asked(true)
        };
        let fabrikam = LineFilter {
            value: "fabrikam.com".into(),
            ..org()
        };
        assert_eq!(
            decide(Some(&applied), &other, fabrikam, None, &later).unwrap_err(),
            Refusal::OtherEarlier(org())
        );
    }

    #[test]
    fn an_old_newest_line_and_the_lookback_are_pointed_out() {
        let plan = decided(
            None,
            &asked(false),
            Some(t(20, 0, 0)),
            &Context {
                served_from: t(19, 12, 0),
                ..ctx()
            },
        )
        .unwrap();
        assert!(
            plan.notes.iter().any(|n| n.contains("h old")),
            "{:?}",
            plan.notes
        );
        assert!(
            plan.notes.iter().any(|n| n.contains("cannot be pulled")),
            "{:?}",
            plan.notes
        );
    }

    #[test]
    fn only_a_live_lease_stops_an_apply() {
        let mut c = Checkpoint::empty(t(24, 0, 0));
        c.lease = Some(Lease {
            owner: "r".into(),
            expires_at: t(24, 11, 5),
        });
        assert!(live_lease(Some(&c), t(24, 11, 0)).is_some());
        assert!(live_lease(Some(&c), t(24, 11, 5)).is_none());
        assert!(live_lease(None, t(24, 11, 0)).is_none());
    }
}
