//! The unit of work: which tenant, which pass, its checkpoint key, its bounds and the plan of
//! its windows. The handler decides which jobs an event asks for; the tick runs one job.

use chrono::{DateTime, Utc};

use crate::checkpoint::backfill::BackfillRequest;
use crate::checkpoint::backfill::{self, BackfillError, Range};
use crate::checkpoint::reset::{self, Reset};
use crate::checkpoint::second_look::{self, Gap};
use crate::checkpoint::{Checkpoint, Track};
use crate::config::Config;
use crate::summary::Summary;
use crate::tenants::Tenant;
use crate::window::{Bounds, Plan, Skipped};

/// Windows planned at most per tick (a 90-day catch-up of 6-hour windows is 360).
pub const MAX_WINDOWS_PER_TICK: usize = 1000;

/// What an invocation asks to run: the schedule's next windows, or a backfill range.
#[derive(Debug, Clone)]
pub enum Target {
    /// The scheduled checkpoint (`STATE_KEY`), towards now − delay.
    Scheduled,
    /// A range, under `backfill/{name}.json` next to `STATE_KEY`.
    Backfill(BackfillRequest),
}

/// What a job covers: the schedule, or a backfill range under its own checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// The schedule: from the checkpoint towards now − delay.
    Scheduled,
    /// A backfill of an accepted range, under its own checkpoint.
    Backfill(Range),
}

/// One pass of a tick over a job's records (docs/design.md, "Passes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// The one pass at `DELAY_SECONDS` (`FRESH_DELAY_SECONDS=0`).
    Single,
    /// Up to now − `FRESH_DELAY_SECONDS`, each record once, writing the ledger.
    Fresh,
    /// Up to now − `DELAY_SECONDS`, the ledger's spans, what the fresh pass did not send.
    Reconcile,
    /// A backfill's range.
    Backfill,
}

impl Pass {
    /// The position the pass moves in the checkpoint.
    pub fn track(self) -> Track {
        match self {
            Pass::Reconcile => Track::Reconcile,
            Pass::Single | Pass::Fresh | Pass::Backfill => Track::Primary,
        }
    }

    /// Its name in summaries, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Pass::Single => "single",
            Pass::Fresh => "fresh",
            Pass::Reconcile => "reconcile",
            Pass::Backfill => "backfill",
        }
    }
}

/// A pass's plan, and the due spans it dropped without a second look.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The windows to pull.
    pub plan: Plan,
    /// The spans the reconciliation pass dropped (past the lookback, past the ledger's cap).
    pub gaps: Vec<Gap>,
}

/// One job: one tenant's records under one checkpoint, in one or two passes.
#[derive(Debug, Clone)]
pub struct Job {
    /// Whose records.
    pub tenant: Tenant,
    /// The schedule or a backfill.
    pub kind: Kind,
    /// The checkpoint object's key.
    pub key: String,
}

impl Job {
    /// Resolves `target` for `tenant` at `now`: refuses a backfill range the API cannot serve.
    pub fn resolve(
        target: &Target,
        tenant: Tenant,
        config: &Config,
        now: DateTime<Utc>,
    ) -> Result<Job, BackfillError> {
        let (kind, key) = match target {
            Target::Scheduled => (Kind::Scheduled, tenant.state_key.clone()),
            Target::Backfill(request) => {
                let range =
                    backfill::validate(request, now, &config.rules, config.trace_api.as_str())?;
                let key = backfill::checkpoint_key(&tenant.state_key, &range);
                (Kind::Backfill(range), key)
            }
        };
        Ok(Job { tenant, kind, key })
    }

    /// The backfill's range, if this is one.
    pub fn range(&self) -> Option<&Range> {
        match &self.kind {
            Kind::Backfill(range) => Some(range),
            Kind::Scheduled => None,
        }
    }

    /// The passes a tick runs, in order: the fresh pass first, so that it spends the request
    /// budget first; the reconciliation pass while ledger parts wait (also after the fresh pass
    /// was turned off); a backfill is one pass.
    pub fn passes(&self, checkpoint: &Checkpoint, config: &Config) -> Vec<Pass> {
        match (&self.kind, config.fresh_delay.is_zero()) {
            (Kind::Backfill(_), _) => vec![Pass::Backfill],
            (Kind::Scheduled, false) => vec![Pass::Fresh, Pass::Reconcile],
            (Kind::Scheduled, true) if checkpoint.due().is_empty() => vec![Pass::Single],
            (Kind::Scheduled, true) => vec![Pass::Single, Pass::Reconcile],
        }
    }

    /// Refuses a stored backfill checkpoint of the same name that belongs to another range.
    pub fn check_found(&self, found: Option<&Checkpoint>) -> Result<(), BackfillError> {
        match (self.range(), found) {
            (Some(range), Some(stored)) => backfill::check_stored(range, stored.backfill.as_ref()),
            _ => Ok(()),
        }
    }

    /// Records what this job's checkpoint carries besides progress (the API, the backfill's
    /// range) and applies a new `RESET_BEFORE` to the schedule.
    pub fn prepare(&self, checkpoint: &mut Checkpoint, config: &Config) -> Option<Reset> {
        checkpoint.api = Some(config.trace_api.as_str().to_owned());
        match &self.kind {
            Kind::Scheduled => reset::apply(checkpoint, self.tenant.reset_before),
            Kind::Backfill(range) => {
                checkpoint.backfill = Some(range.clone());
                None
            }
        }
    }

    /// The limits the primary pass's windows are planned within.
    pub fn bounds(&self, pass: Pass, now: DateTime<Utc>, config: &Config) -> Bounds {
        let rules = &config.rules;
        match (&self.kind, pass) {
            (Kind::Backfill(range), _) => backfill::bounds(range, now, rules),
            (Kind::Scheduled, Pass::Fresh) => Bounds {
                horizon: now - config.fresh_delay,
                ..Bounds::scheduled(now, rules)
            },
            (Kind::Scheduled, _) => Bounds::scheduled(now, rules),
        }
    }

    /// Plans the windows `pass` pulls from `checkpoint` at `now` and moves the pass's position
    /// to the plan's start: planned by the window rules (the span a reset skipped reported, a
    /// stuck span cut into pieces; no later than a cut-over's open overlap allows), or over the
    /// spans due for a second look for the reconciliation pass (the spans it drops returned as
    /// gaps).
    pub fn plan(
        &self,
        pass: Pass,
        checkpoint: &mut Checkpoint,
        reset: Option<&Reset>,
        now: DateTime<Utc>,
        config: &Config,
    ) -> Planned {
        let mut bounds = self.bounds(pass, now, config);
        if let (Kind::Scheduled, Track::Primary, Some(cutover)) =
            (&self.kind, pass.track(), &checkpoint.cutover)
        {
            // While the earlier collector may still deliver, wait until it has.
            bounds.horizon = cutover.horizon(bounds.horizon, now, config.rules.delay);
        }
        let primary_end = checkpoint.primary.end;
        let parts = std::mem::take(&mut checkpoint.ledger);
        let position = checkpoint.position_mut(pass.track());
        let (mut plan, gaps) = match pass {
            Pass::Reconcile => {
                let limits = second_look::Limits {
                    horizon: primary_end.map_or(bounds.horizon, |e| e.min(bounds.horizon)),
                    earliest: bounds.earliest,
                    span: bounds.span,
                    max_windows: MAX_WINDOWS_PER_TICK,
                };
                position.plan_second_look(&parts, &limits)
            }
            _ => {
                let mut plan = position.plan(&bounds, MAX_WINDOWS_PER_TICK);
                if let Some(skipped) = reset.and_then(|r| reset_skip(r, bounds.start)) {
                    plan.skipped = Some(plan.skipped.map_or(skipped, |s| Skipped {
                        from: s.from.min(skipped.from),
                        to: s.to.max(skipped.to),
                    }));
                }
                (plan, Vec::new())
            }
        };
        position.carve(&mut plan, MAX_WINDOWS_PER_TICK);
        checkpoint.ledger = parts;
        Planned { plan, gaps }
    }

    /// Adds the job's own part of the summary.
    pub fn annotate(&self, mut summary: Summary, reset: Option<Reset>) -> Summary {
        summary.backfill = self
            .range()
            .map(|r| backfill::report(r, &self.key, summary.checkpoint, summary.partial.is_some()));
        summary.reset = reset;
        summary
    }
}

/// The span a reset moves the schedule past: when the checkpoint stood further back than
/// `HISTORIC_DAYS`, the restart skips from there to the new start.
fn reset_skip(reset: &Reset, start: DateTime<Utc>) -> Option<Skipped> {
    reset
        .previous_checkpoint
        .filter(|previous| *previous < start)
        .map(|from| Skipped { from, to: start })
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::window::tests::now;

    fn config() -> Config {
        Config::from_lookup(|k| match k {
            "SECRET_ID" => Some("s".into()),
            "STATE_BUCKET" => Some("b".into()),
            _ => None,
        })
        .unwrap()
    }

    #[test]
    fn a_tick_runs_the_fresh_pass_first_and_reconciles_while_ledger_parts_wait() {
        let mut c = Checkpoint::empty(now());
        assert_eq!(
            job().passes(&c, &config()),
            vec![Pass::Fresh, Pass::Reconcile]
        );
        let single = Config {
            fresh_delay: chrono::Duration::zero(),
            ..config()
        };
        assert_eq!(job().passes(&c, &single), vec![Pass::Single]);
        c.position_mut(Track::Reconcile)
            .owe((now() - Duration::hours(1), now()));
        assert_eq!(
            job().passes(&c, &single),
            vec![Pass::Single, Pass::Reconcile]
        );
        let fresh = job()
            .plan(Pass::Fresh, &mut c.clone(), None, now(), &config())
            .plan;
        assert_eq!(fresh.horizon, now() - Duration::seconds(600));
    }

    fn job() -> Job {
        Job {
            tenant: Tenant {
                name: None,
                secret_id: "s".into(),
                state_key: "d/checkpoint.json".into(),
                devo_hostname: "h".into(),
                devo_tag: "a.b".into(),
                reset_before: None,
            },
            kind: Kind::Scheduled,
            key: "d/checkpoint.json".into(),
        }
    }

    #[test]
    fn a_reset_that_moves_the_schedule_forward_reports_the_span_it_skips() {
        let mut c = Checkpoint::empty(now());
        let old = now() - Duration::days(20);
        c.primary.end = None;
        let reset = Reset {
            reset_before: now(),
            previous_value: None,
            previous_checkpoint: Some(old),
        };
        let plan = job()
            .plan(Pass::Single, &mut c.clone(), Some(&reset), now(), &config())
            .plan;
        assert_eq!(
            plan.skipped,
            Some(Skipped {
                from: old,
                to: now() - Duration::days(10)
            })
        );
        let recent = Reset {
            previous_checkpoint: Some(now() - Duration::days(2)),
            ..reset
        };
        assert_eq!(
            job()
                .plan(
                    Pass::Single,
                    &mut c.clone(),
                    Some(&recent),
                    now(),
                    &config()
                )
                .plan
                .skipped,
            None,
            "moved back: nothing skipped"
        );
    }

    #[test]
    fn a_stuck_span_is_planned_in_pieces() {
        let mut c = Checkpoint::empty(now());
        let start = now() - Duration::days(2);
        c.primary.end = Some(start);
        c.primary.stuck = Some(crate::checkpoint::split::Stuck {
            start,
            until: start + Duration::hours(6),
            ticks: 2,
            error: None,
            cut_at: Vec::new(),
        });
        let plan = job()
            .plan(Pass::Single, &mut c.clone(), None, now(), &config())
            .plan;
        assert_eq!(
            plan.windows[0].end - plan.windows[0].start,
            Duration::hours(3)
        );
        assert_eq!(plan.windows[1].start, start + Duration::hours(3));
        assert_eq!(plan.split.map(|s| s.piece_seconds), Some(3 * 3600));
    }
}
