//! The unit of work: which tenant, which pass, its checkpoint key, its bounds and the plan of
//! its windows. The handler decides which jobs an event asks for; the tick runs one job.

use chrono::{DateTime, Utc};

use crate::backfill::{self, BackfillError, Range};
use crate::checkpoint::Checkpoint;
use crate::config::{Config, WindowRules};
use crate::event::BackfillRequest;
use crate::reset::{self, Reset};
use crate::split;
use crate::summary::Summary;
use crate::window::{self, Bounds, Plan, Skipped};

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

/// Whose records a job moves: where its credentials, its state and its Devo identity are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Its name in the tenant registry; `None` for the deployment's one tenant.
    pub name: Option<String>,
    /// The secret with its Microsoft credentials (and Devo material).
    pub secret_id: String,
    /// Key of its scheduled checkpoint.
    pub state_key: String,
    /// Host field of its lines.
    pub devo_hostname: String,
    /// Devo tag of its lines.
    pub devo_tag: String,
    /// Its `RESET_BEFORE`: a new value restarts its schedule from `HISTORIC_DAYS` back.
    pub reset_before: Option<DateTime<Utc>>,
}

impl Tenant {
    /// The deployment's one tenant: `SECRET_ID`, `STATE_KEY`, `DEVO_HOSTNAME`, `DEVO_TAG`.
    pub fn single(config: &Config) -> Tenant {
        Tenant {
            name: None,
            secret_id: config.secret_id.clone(),
            state_key: config.state_key.clone(),
            devo_hostname: config.devo_hostname.clone(),
            devo_tag: config.devo_tag.clone(),
            reset_before: config.reset_before,
        }
    }

    /// The name metrics and logs use: the registry name, `default` for the one tenant.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(DEFAULT_TENANT)
    }
}

/// The `Tenant` metric dimension and log field of a deployment without a registry.
pub const DEFAULT_TENANT: &str = "default";

/// Which pass over a tenant's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pass {
    /// The schedule: from the checkpoint towards now − delay.
    Scheduled,
    /// A backfill of an accepted range, under its own checkpoint.
    Backfill(Range),
}

/// One job: a pass over one tenant's records under one checkpoint.
#[derive(Debug, Clone)]
pub struct Job {
    /// Whose records.
    pub tenant: Tenant,
    /// Which pass.
    pub pass: Pass,
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
        let (pass, key) = match target {
            Target::Scheduled => (Pass::Scheduled, tenant.state_key.clone()),
            Target::Backfill(request) => {
                let range =
                    backfill::validate(request, now, &config.rules, config.trace_api.as_str())?;
                let key = backfill::checkpoint_key(&tenant.state_key, &range);
                (Pass::Backfill(range), key)
            }
        };
        Ok(Job { tenant, pass, key })
    }

    /// The backfill's range, if this is one.
    pub fn range(&self) -> Option<&Range> {
        match &self.pass {
            Pass::Backfill(range) => Some(range),
            Pass::Scheduled => None,
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
        match &self.pass {
            Pass::Scheduled => reset::apply(checkpoint, self.tenant.reset_before),
            Pass::Backfill(range) => {
                checkpoint.backfill = Some(range.clone());
                None
            }
        }
    }

    /// The limits the windows are planned within.
    pub fn bounds(&self, now: DateTime<Utc>, rules: &WindowRules) -> Bounds {
        match &self.pass {
            Pass::Scheduled => Bounds::scheduled(now, rules),
            Pass::Backfill(range) => backfill::bounds(range, now, rules),
        }
    }

    /// The windows to pull from `checkpoint` at `now`: planned by the window rules, with the
    /// span a reset skipped reported, and a stuck span cut into pieces.
    pub fn plan(
        &self,
        checkpoint: &Checkpoint,
        reset: Option<&Reset>,
        now: DateTime<Utc>,
        rules: &WindowRules,
    ) -> Plan {
        let bounds = self.bounds(now, rules);
        let progress = window::Progress {
            end: checkpoint.end,
            partial: checkpoint.partial.as_ref(),
        };
        let mut plan = window::plan_within(progress, &bounds, MAX_WINDOWS_PER_TICK);
        if let Some(skipped) = reset.and_then(|r| reset_skip(r, bounds.start)) {
            plan.skipped = Some(plan.skipped.map_or(skipped, |s| Skipped {
                from: s.from.min(skipped.from),
                to: s.to.max(skipped.to),
            }));
        }
        if let Some(split) = checkpoint.stuck.as_ref().and_then(split::Stuck::split) {
            plan.windows = split::carve(std::mem::take(&mut plan.windows), &split);
            plan.windows.truncate(MAX_WINDOWS_PER_TICK);
            plan.split = Some(split);
        }
        plan
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
    use crate::window::tests::{now, rules};

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
            pass: Pass::Scheduled,
            key: "d/checkpoint.json".into(),
        }
    }

    #[test]
    fn a_reset_that_moves_the_schedule_forward_reports_the_span_it_skips() {
        let mut c = Checkpoint::empty(now());
        let old = now() - Duration::days(20);
        c.end = None;
        let reset = Reset {
            reset_before: now(),
            previous_value: None,
            previous_checkpoint: Some(old),
        };
        let plan = job().plan(&c, Some(&reset), now(), &rules());
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
            job().plan(&c, Some(&recent), now(), &rules()).skipped,
            None,
            "moved back: nothing skipped"
        );
    }

    #[test]
    fn a_stuck_span_is_planned_in_pieces() {
        let mut c = Checkpoint::empty(now());
        let start = now() - Duration::days(2);
        c.end = Some(start);
        c.stuck = Some(split::Stuck {
            start,
            until: start + Duration::hours(6),
            ticks: 2,
            error: None,
        });
        let plan = job().plan(&c, None, now(), &rules());
        assert_eq!(
            plan.windows[0].end - plan.windows[0].start,
            Duration::hours(3)
        );
        assert_eq!(plan.windows[1].start, start + Duration::hours(3));
        assert_eq!(plan.split.map(|s| s.piece_seconds), Some(3 * 3600));
    }
}
