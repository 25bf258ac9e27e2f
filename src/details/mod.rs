//! Delivery details, the third stage of a tick: after both passes, with what the request budget
//! leaves, the deliveries waiting in the checkpoint's queue get their `getDetailsByRecipient`
//! events, oldest first, one Devo line per event under `DETAIL_TAG`.
//!
//! One file a concern: [`fetch`] asks Graph (never waiting for the budget or a 429),
//! [`mapping`] writes a row in the Reporting Web Service's `MessageTraceDetail` names,
//! [`deliver`] sends the lines on confirmed streams. The queue itself, pure, is the
//! checkpoint's ([`crate::checkpoint::details`]).

pub mod deliver;
pub mod fetch;
pub mod mapping;

use chrono::{DateTime, Utc};

use crate::checkpoint::details::{DetailQueue, DropReason};
use crate::config::DetailSettings;
use crate::events::Event;
use crate::events::details::{DetailFetchFailed, DetailsDropped};
use crate::trace::detail::DetailCandidate;
use crate::trace::fetch::Spent;
use crate::transfer::{ForwardSettings, GraphCalls};

pub use fetch::Stop;

/// What the stage did.
#[derive(Debug)]
pub struct Drained {
    /// Deliveries whose every detail line the relay confirmed (left the queue).
    pub deliveries: u64,
    /// Detail lines confirmed.
    pub lines: u64,
    /// Lines of relay streams that broke (sent again: possible duplicates).
    pub unconfirmed: u64,
    /// Deliveries dropped without details (see [`DropReason`]).
    pub dropped: u64,
    /// Requests made, and of those answered 429.
    pub spent: Spent,
    /// Why it stopped.
    pub stopped: Stop,
    /// The relay's failure, when it stopped the stage.
    pub relay_error: Option<crate::devo::DevoError>,
}

/// Where the stage sends and for whom.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The relay, with the tag `DETAIL_TAG`.
    pub forward: &'a ForwardSettings<'a>,
    /// The tenant id: the lines' `Organization`.
    pub organization: &'a str,
    /// Which deliveries are wanted, and when a pending one is due.
    pub settings: &'a DetailSettings,
}

/// Drains `queue` as far as the budgets allow at `now`: first what can no longer be asked
/// about (received before `earliest`, or no longer wanted) and the memory of what both
/// passes are past (`settled`) leave; then each due delivery, oldest first, is fetched and
/// its lines sent. A delivery leaves the queue once the relay confirmed its lines (the caller
/// commits the queue), or when it is dropped with a reason; anything else keeps it for a
/// later tick.
pub async fn drain(
    queue: &mut DetailQueue,
    mut calls: GraphCalls<'_>,
    target: Target<'_>,
    (now, earliest, settled): (DateTime<Utc>, DateTime<Utc>, Option<DateTime<Utc>>),
) -> Drained {
    let mut dropped = 0;
    let expired = queue.expire(earliest, settled, |status| target.settings.wants(status));
    for reason in [DropReason::Lookback, DropReason::Unwanted] {
        let these: Vec<&DetailCandidate> = expired
            .iter()
            .filter(|(_, r)| *r == reason)
            .map(|(c, _)| c)
            .collect();
        dropped += report_dropped(reason, &these);
    }
    let mut spent = Spent::default();
    let mut sink = deliver::Sink::new(target.forward, target.organization);
    let mut stopped = Stop::Done;
    let mut relay_error = None;
    for delivery in queue.due(now, target.settings.pending_after) {
        let rows = match fetch::rows(&mut calls, &delivery, &mut spent).await {
            fetch::Answer::Rows(rows) => rows,
            fetch::Answer::Drop(reason, error) => {
                failed(&delivery, &error);
                queue.remove(&delivery);
                dropped += report_dropped(reason, &[&delivery]);
                continue;
            }
            fetch::Answer::Failed(error) => {
                failed(&delivery, &error);
                if queue.failed(&delivery) {
                    dropped += report_dropped(DropReason::Failing, &[&delivery]);
                }
                stopped = Stop::Microsoft;
                break;
            }
            fetch::Answer::Stop(stop, error) => {
                if let Some(error) = &error {
                    failed(&delivery, error);
                }
                stopped = stop;
                break;
            }
        };
        match sink.send(delivery, &rows).await {
            Ok(()) => {}
            Err(deliver::NotWritten::NoTime) => {
                stopped = Stop::Time;
                break;
            }
            Err(deliver::NotWritten::Relay(e)) => {
                (stopped, relay_error) = (Stop::Relay, Some(e));
                break;
            }
        }
    }
    let closed = sink.close().await;
    if let Some(e) = closed.failure {
        (stopped, relay_error) = (Stop::Relay, Some(e));
    }
    queue.done(&closed.confirmed);
    Drained {
        deliveries: closed.confirmed.len() as u64,
        lines: closed.lines,
        unconfirmed: closed.unconfirmed,
        dropped,
        spent,
        stopped,
        relay_error,
    }
}

fn failed(delivery: &DetailCandidate, error: &dyn std::fmt::Display) {
    DetailFetchFailed {
        trace_id: &delivery.id,
        status: &delivery.status,
        error,
    }
    .emit();
}

/// Logs the deliveries dropped for `reason`; how many.
fn report_dropped(reason: DropReason, dropped: &[&DetailCandidate]) -> u64 {
    if let Some(first) = dropped.first() {
        DetailsDropped {
            reason: reason.as_str(),
            deliveries: dropped.len(),
            first: &first.id,
        }
        .emit();
    }
    dropped.len() as u64
}
