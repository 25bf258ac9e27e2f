//! Steps 5 and 6 across the plan: each window is transferred and then committed at once, so
//! that what a window delivered is kept even when it, or a later window, fails.

use chrono::{DateTime, Utc};

use crate::checkpoint::Track;
use crate::checkpoint::cut::Measured;
use crate::checkpoint::details::DropReason;
use crate::error::TickError;
use crate::events::Event;
use crate::events::details::DetailsDropped;
use crate::events::window::WindowFinished;
use crate::ledger::Fingerprint;
use crate::state::{StateError, StateStore};
use crate::summary::Counts;
use crate::tick::claim::{Claimed, Saved};
use crate::tick::cutover::Overlap;
use crate::tick::job::{MAX_WINDOWS_PER_TICK, Pass};
use crate::trace::detail::DetailCandidate;
use crate::transfer::{Ledger, Progress, Transfer, TransferError};
use crate::verify::QueryError;
use crate::window::{Plan, Window};

/// A window just finished, for progress displays (the JSON log line is written anyway).
#[derive(Debug)]
pub struct WindowDone<'a> {
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
        window: Window,
        error: TransferError,
    },
}

/// What a plan's delivery did.
#[derive(Debug)]
pub struct Delivery {
    pub counts: Counts,
    /// How it ended.
    pub end: End,
    /// A window of an unordered source cut by the deadline: it has no resume point.
    pub cut: Option<Cut>,
}

impl Delivery {
    fn ended(counts: Counts, end: End) -> Delivery {
        Delivery {
            counts,
            end,
            cut: None,
        }
    }
}

/// A window of an unordered source (the Reporting Web Service) cut by the deadline, and what
/// its tick measured and delivered of it.
#[derive(Debug)]
pub struct Cut {
    /// The window.
    pub window: Window,
    /// Rows pulled, time pulling, time the tick had, when the lines delivered were received.
    pub measured: Measured,
    /// The fingerprints of the lines the relay confirmed.
    pub confirmed: Vec<Fingerprint>,
}

/// Which pass a plan belongs to, the instant before which the fresh pass's windows need no
/// second look (now − `DELAY_SECONDS`), how many deliveries may wait for details, and what
/// Devo holds in a cut-over's overlap.
#[derive(Debug, Clone, Copy)]
pub struct PassRun<'a> {
    pub pass: Pass,
    /// now − `DELAY_SECONDS` at the tick's start.
    pub young_from: DateTime<Utc>,
    /// `DETAIL_QUEUE_MAX`.
    pub detail_queue_max: usize,
    /// Reads what Devo holds for the primary pass's windows in a cut-over's overlap.
    pub overlap: Option<&'a Overlap>,
}

impl PassRun<'_> {
    /// What Devo holds for `window`, when the pass is the primary one and the window meets
    /// the overlap.
    async fn held(
        &self,
        checkpoint: &crate::checkpoint::Checkpoint,
        window: &Window,
    ) -> Result<Option<crate::ledger::LedgerIndex>, QueryError> {
        match self.overlap {
            Some(overlap) if self.pass.track() == Track::Primary => {
                overlap.held_for(checkpoint, window).await
            }
            _ => Ok(None),
        }
    }
}

/// Transfers the plan's windows one after another, committing each.
pub async fn deliver<S: StateStore>(
    transfer: &mut Transfer<'_>,
    run: PassRun<'_>,
    plan: &Plan,
    claimed: &mut Claimed<'_, S>,
    on_window: &mut (dyn FnMut(&WindowDone<'_>) + Send),
) -> Result<Delivery, TickError> {
    let mut counts = Counts::default();
    let delivery_started = std::time::Instant::now();
    for (number, window) in plan.windows.iter().enumerate() {
        if transfer.out_of_time() {
            return Ok(Delivery::ended(counts, End::OutOfTime));
        }
        // transfer: pull and forward the window
        let started = std::time::Instant::now();
        let mut this = Counts::default();
        let Some(mut result) = pull(transfer, run, claimed, window, &mut this).await? else {
            return Ok(Delivery::ended(counts, End::OutOfTime));
        };
        if result.progress == Progress::Complete {
            this.windows += 1;
        }
        counts += this;
        let outcome = outcome(&result.progress);
        WindowFinished {
            pass: run.pass.as_str(),
            window,
            outcome,
            counts: &this,
            elapsed: started.elapsed(),
        }
        .emit();
        on_window(&WindowDone {
            window,
            number: number + 1,
            planned: plan.windows.len(),
            counts: &counts,
            outcome,
        });
        // commit: what the relay confirmed, even when the window then failed
        let found = Found {
            fingerprints: std::mem::take(&mut result.fingerprints),
            details: std::mem::take(&mut result.details),
        };
        let history = transfer.request_history(claimed.now());
        let (saved, dropped) =
            commit(claimed, run, window, &result.progress, found, history).await?;
        counts.details_dropped += dropped;
        if saved == Saved::Lost {
            return Ok(Delivery::ended(counts, End::LeaseLost));
        }
        let (end, cut) = match (result.failure, result.progress) {
            (Some(error), _) => (
                End::Failed {
                    window: window.clone(),
                    error,
                },
                None,
            ),
            (None, Progress::Complete) => continue,
            (None, Progress::NotStarted) if !transfer.newest_first() => {
                let tick = delivery_started.elapsed() + transfer.time_left();
                let cut = cut(window, &this, started.elapsed(), tick, result.sent);
                (End::OutOfTime, cut)
            }
            (None, _) => (End::OutOfTime, None),
        };
        return Ok(Delivery { counts, end, cut });
    }
    let end = if plan.windows.len() < MAX_WINDOWS_PER_TICK {
        End::CaughtUp
    } else {
        End::OutOfTime
    };
    Ok(Delivery::ended(counts, end))
}

/// Pulls and forwards `window` with its ledger and, in a cut-over's overlap, what Devo holds;
/// `None` when the time ran out while Devo was read.
async fn pull<S: StateStore>(
    transfer: &mut Transfer<'_>,
    run: PassRun<'_>,
    claimed: &mut Claimed<'_, S>,
    window: &Window,
    this: &mut Counts,
) -> Result<Option<crate::transfer::WindowResult>, TickError> {
    let held = match run.held(claimed.checkpoint(), window).await {
        Ok(held) => held,
        Err(QueryError::OutOfTime { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let (ledger, sent) = ledger(claimed, run, window).await;
    let result = transfer.window_held(window, ledger, sent, held, this).await;
    Ok(Some(result))
}

/// What `window` is filtered with: the fresh pass's ledger or its part for the reconciliation
/// pass, and the lines a tick that cut it confirmed.
async fn ledger<S: StateStore>(
    claimed: &mut Claimed<'_, S>,
    run: PassRun<'_>,
    window: &Window,
) -> (Ledger, Vec<Fingerprint>) {
    let ledger = match run.pass {
        Pass::Fresh => Ledger::Collect(run.young_from),
        Pass::Reconcile => Ledger::Filter(claimed.ledger_for(window).await),
        Pass::Single | Pass::Backfill => Ledger::None,
    };
    let position = claimed.checkpoint().position(run.pass.track());
    (ledger, position.sent_in(window))
}

/// A window of an unordered source the deadline cut, once a page came (no page: nothing
/// measured, and the window is pulled whole at the next tick's start).
fn cut(
    window: &Window,
    this: &Counts,
    pulling: std::time::Duration,
    tick: std::time::Duration,
    sent: Vec<crate::transfer::Fingerprinted>,
) -> Option<Cut> {
    if this.pages == 0 {
        return None;
    }
    let (confirmed, received) = sent.into_iter().unzip();
    Some(Cut {
        window: window.clone(),
        measured: Measured {
            rows: this.records_pulled,
            pulling,
            tick,
            received,
        },
        confirmed,
    })
}

/// What a window's confirmed lines leave behind: the fresh pass's fingerprints, and the
/// deliveries whose details are wanted.
struct Found {
    fingerprints: Vec<crate::transfer::Fingerprinted>,
    details: Vec<DetailCandidate>,
}

/// Commits how far `window` got: the fresh pass's ledger part is written first; the parts a
/// reconciled window covered leave the checkpoint in the same write, and their objects after.
/// The deliveries it found waiting for details are queued in the same write; how many did
/// not fit is returned.
async fn commit<S: StateStore>(
    claimed: &mut Claimed<'_, S>,
    run: PassRun<'_>,
    window: &Window,
    progress: &Progress,
    found: Found,
    history: Vec<DateTime<Utc>>,
) -> Result<(Saved, u64), StateError> {
    claimed.checkpoint_mut().recent_requests = history;
    let had_parts = claimed.checkpoint().ledger.len();
    if run.pass == Pass::Fresh && *progress != Progress::NotStarted {
        claimed
            .remember(window, run.young_from, found.fingerprints)
            .await?;
    }
    let queued = (!found.details.is_empty()).then(|| {
        let queue = &mut claimed.checkpoint_mut().details;
        queue.enqueue(found.details, run.detail_queue_max)
    });
    let dropped = queued.as_ref().map_or(0, |q| q.dropped.len() as u64);
    if let Some(first) = queued.as_ref().and_then(|q| q.dropped.first()) {
        DetailsDropped {
            reason: DropReason::QueueFull.as_str(),
            deliveries: dropped as usize,
            first: &first.id,
        }
        .emit();
    }
    let track = run.pass.track();
    let moved = claimed
        .checkpoint_mut()
        .position_mut(track)
        .advance(window, progress);
    let covered = run.pass == Pass::Reconcile && claimed.take_covered();
    let enqueued = queued.is_some();
    if !moved && !covered && !enqueued && claimed.checkpoint().ledger.len() == had_parts {
        return Ok((Saved::Kept, dropped));
    }
    Ok((claimed.save("commit").await?, dropped))
}

fn outcome(progress: &Progress) -> &'static str {
    match progress {
        Progress::Complete => "complete",
        Progress::Partial(_) => "partial",
        Progress::NotStarted => "not_started",
    }
}
