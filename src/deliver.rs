//! Steps 5 and 6 across the plan: each window is transferred and then committed at once, so
//! that what a window delivered is kept even when it, or a later window, fails.

use chrono::Utc;

use crate::claim::{Claimed, Saved};
use crate::job::MAX_WINDOWS_PER_TICK;
use crate::state::{StateError, StateStore};
use crate::summary::Counts;
use crate::transfer::{Progress, Transfer, TransferError};
use crate::window::{Plan, Window};

/// A window just finished, for progress displays (the JSON log line is written anyway).
#[derive(Debug)]
pub struct WindowDone<'a> {
    /// The window.
    pub window: &'a Window,
    /// Its position in the plan, from 1.
    pub number: usize,
    /// Windows planned for this run.
    pub planned: usize,
    /// Totals of the run so far.
    pub counts: &'a Counts,
    /// `complete`, `partial` or `not_started`.
    pub outcome: &'static str,
}

/// How the delivery of a plan ended.
#[derive(Debug)]
pub enum End {
    /// Every planned window was delivered and the plan reached the horizon.
    CaughtUp,
    /// The time budget ran out (or the plan was cut at its window limit).
    OutOfTime,
    /// Another invocation wrote the checkpoint: this one stopped.
    LeaseLost,
    /// A window failed after its delivered part was committed.
    Failed {
        /// The window.
        window: Window,
        /// Why.
        error: TransferError,
    },
}

/// What a plan's delivery did.
#[derive(Debug)]
pub struct Delivery {
    /// Totals.
    pub counts: Counts,
    /// How it ended.
    pub end: End,
}

/// Transfers the plan's windows one after another, committing each.
pub async fn deliver<S: StateStore>(
    transfer: &mut Transfer<'_>,
    plan: &Plan,
    claimed: &mut Claimed<'_, S>,
    on_window: &mut (dyn FnMut(&WindowDone<'_>) + Send),
) -> Result<Delivery, StateError> {
    let mut counts = Counts::default();
    for (number, window) in plan.windows.iter().enumerate() {
        if transfer.budget.exhausted() {
            return Ok(Delivery {
                counts,
                end: End::OutOfTime,
            });
        }
        // transfer: pull and forward the window
        let started = std::time::Instant::now();
        let before = counts;
        let result = transfer.window(window, &mut counts).await;
        if result.progress == Progress::Complete {
            counts.windows += 1;
        }
        let outcome = outcome(&result.progress);
        log_window(window, outcome, &counts, &before, started);
        on_window(&WindowDone {
            window,
            number: number + 1,
            planned: plan.windows.len(),
            counts: &counts,
            outcome,
        });
        // commit: what the relay confirmed, even when the window then failed
        claimed.checkpoint_mut().recent_requests = transfer.throttle.history(Utc::now());
        if claimed.commit(window, &result.progress).await? == Saved::Lost {
            return Ok(Delivery {
                counts,
                end: End::LeaseLost,
            });
        }
        let end = match (result.failure, result.progress) {
            (Some(error), _) => End::Failed {
                window: window.clone(),
                error,
            },
            (None, Progress::Complete) => continue,
            (None, _) => End::OutOfTime,
        };
        return Ok(Delivery { counts, end });
    }
    let end = if plan.windows.len() < MAX_WINDOWS_PER_TICK {
        End::CaughtUp
    } else {
        End::OutOfTime
    };
    Ok(Delivery { counts, end })
}

fn outcome(progress: &Progress) -> &'static str {
    match progress {
        Progress::Complete => "complete",
        Progress::Partial(_) => "partial",
        Progress::NotStarted => "not_started",
    }
}

fn log_window(
    window: &Window,
    outcome: &'static str,
    counts: &Counts,
    before: &Counts,
    started: std::time::Instant,
) {
    tracing::info!(
        event = "window",
        start = %window.start.to_rfc3339(),
        end = %window.end.to_rfc3339(),
        resumed = window.resume.is_some(),
        outcome,
        pages = counts.pages - before.pages,
        records = counts.records_pulled - before.records_pulled,
        events = counts.events_sent - before.events_sent,
        duplicates = counts.duplicates_skipped - before.duplicates_skipped,
        ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "window"
    );
}
