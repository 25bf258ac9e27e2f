//! The last stage of a tick: delivery details, after both passes (and the scheduled audit),
//! with what the request budget leaves (docs/design.md, "Delivery details"). The queue is
//! drained under the lease and committed once the relay confirmed what left it.

use crate::config::{Config, DetailSettings, TraceApi};
use crate::details::{self, Target};
use crate::error::TickError;
use crate::events::Event;
use crate::events::details::DetailsFinished;
use crate::state::StateStore;
use crate::summary::Counts;
use crate::tick::claim::Claimed;
use crate::tick::deliver::End;
use crate::tick::job::Job;
use crate::tick::pass::{self, Ran};
use crate::transfer::{ForwardSettings, Transfer};

/// Share of the request budget the detail calls may bring the last five minutes' requests to:
/// half. The next tick starts while most of this tick's requests still count; below half, its
/// fresh pass has at least half of the budget and its reconciliation pass (which stops at
/// three quarters) at least a quarter, however long the detail queue is.
const DETAIL_SHARE: (usize, usize) = (1, 2);

/// The deliveries whose details this job notes as its windows are committed: a scheduled
/// Graph job with `DETAIL_STATUSES` set. (The Reporting Web Service has no details; a
/// backfill's checkpoint is left when its range is done, so it would strand its queue.)
pub(super) fn wanted<'c>(job: &Job, config: &'c Config) -> Option<&'c DetailSettings> {
    let scheduled = job.range().is_none();
    let graph = config.trace_api == TraceApi::Graph;
    (scheduled && graph && config.details.on()).then_some(&config.details)
}

/// Drains the detail queue after `passes`, unless one of them failed or lost the lease (what
/// stopped it would stop the details too), and commits it. Returns what it counted.
pub(super) async fn run<S: StateStore>(
    transfer: &mut Transfer<'_>,
    context: &pass::Context<'_>,
    claimed: &mut Claimed<'_, S>,
    passes: &[Ran],
) -> Result<Counts, TickError> {
    let blocked = passes
        .iter()
        .any(|r| matches!(r.delivery.end, End::Failed { .. } | End::LeaseLost));
    let Some(settings) = wanted(context.job, context.config).filter(|_| !blocked) else {
        return Ok(Counts::default());
    };
    let started = std::time::Instant::now();
    let forward = ForwardSettings {
        tag: &settings.tag,
        ..transfer.forward_settings().clone()
    };
    let organization = transfer.organization().to_owned();
    let rules = &context.config.rules;
    let clock = context.clock;
    let earliest = rules.earliest(clock.now);
    let settled = claimed.checkpoint().complete_until();
    let before = claimed.checkpoint().details.clone();
    transfer.lend_budget(DETAIL_SHARE.0, DETAIL_SHARE.1);
    let drained = match transfer.graph_calls() {
        Some(calls) => {
            let target = Target {
                forward: &forward,
                organization: &organization,
                settings,
            };
            let queue = &mut claimed.checkpoint_mut().details;
            Some(details::drain(queue, calls, target, (clock.wall(), earliest, settled)).await)
        }
        None => None,
    };
    transfer.restore_budget();
    let Some(drained) = drained else {
        return Ok(Counts::default());
    };
    DetailsFinished {
        deliveries: drained.deliveries,
        lines: drained.lines,
        requests: u64::from(drained.spent.requests),
        waiting: claimed.checkpoint().details.len() as u64,
        stopped: drained.stopped.as_str(),
        error: drained
            .relay_error
            .as_ref()
            .map(|e| e as &dyn std::fmt::Display),
        elapsed: started.elapsed(),
    }
    .emit();
    if claimed.checkpoint().details != before {
        claimed.checkpoint_mut().recent_requests = transfer.request_history(clock.wall());
        claimed.save("details").await?;
    }
    Ok(Counts {
        requests: u64::from(drained.spent.requests),
        throttled_requests: u64::from(drained.spent.throttled),
        unconfirmed_lines: drained.unconfirmed,
        details_sent: drained.lines,
        details_dropped: drained.dropped,
        ..Counts::default()
    })
}
