//! Steps 5 and 6 for one window: its pages become Devo lines through four stages — paging
//! (first URL, nextLinks, restarts), admission (window bounds, then dedup), the frontier (what
//! was delivered by which instant) and forwarding (framing and relay streams).

mod admission;
mod collect;
pub mod dedup;
mod forward;
mod frontier;
mod paging;
mod pull;
mod run;

pub use collect::Fingerprinted;
pub use forward::{Forward, ForwardSettings};

use chrono::{DateTime, Utc};
use std::time::Duration;

use thiserror::Error;

use crate::config::DetailSettings;
use crate::devo::DevoError;
use crate::ledger::LedgerIndex;
use crate::summary::Counts;
use crate::trace::TraceError;
use crate::trace::auth::TokenSource;
use crate::trace::detail::DetailCandidate;
use crate::trace::graph::{Calls, GraphClient};
use crate::trace::http::Budget;
use crate::trace::request_budget::RequestBudget;
use crate::trace::source::TraceSource;
use crate::window::Window;

/// Why a window could not be delivered.
#[derive(Debug, Error)]
pub enum TransferError {
    /// Microsoft failed.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// Devo failed.
    #[error(transparent)]
    Devo(#[from] DevoError),
    /// A record could not be written as JSON.
    #[error("record {key} cannot be written as JSON: {detail}")]
    Encode {
        /// The record's key.
        key: String,
        /// serde_json's reason.
        detail: String,
    },
}

impl TransferError {
    /// The stable `errorType` of a window's failure: the relay's, or Microsoft's.
    pub fn error_type(&self) -> &'static str {
        match self {
            TransferError::Devo(_) => "Devo",
            TransferError::Trace(_) | TransferError::Encode { .. } => "Microsoft",
        }
    }

    /// Whether the failure may depend on the window's data (a page, a query, a record), so
    /// that pulling the window in smaller pieces may get past it. Failures of a whole service
    /// (credentials, permissions, the relay) are not.
    pub fn may_depend_on_data(&self) -> bool {
        match self {
            // A page or query the API keeps failing on; not credentials or permissions (401,
            // 403), nor a link to another host.
            TransferError::Trace(TraceError::Api { status, .. }) => !matches!(status, 401 | 403),
            TransferError::Trace(
                TraceError::Malformed { .. }
                | TraceError::Transport { .. }
                | TraceError::OutOfTime { .. },
            ) => true,
            TransferError::Trace(_) => false,
            TransferError::Devo(_) => false,
            TransferError::Encode { .. } => true,
        }
    }
}

pub use crate::checkpoint::Progress;

/// A window's transfer: how far it got, and why it stopped short if it failed. A failed
/// window's progress is committed before the failure is reported.
#[derive(Debug)]
pub struct WindowResult {
    /// What was delivered.
    pub progress: Progress,
    /// The failure that stopped it, if any.
    pub failure: Option<TransferError>,
    /// The fingerprints of the lines the relay confirmed, with their records' received times
    /// ([`Ledger::Collect`] only).
    pub fingerprints: Vec<collect::Fingerprinted>,
    /// An unordered source only: the fingerprints of every line the relay confirmed, which the
    /// pieces of a window cut by the deadline skip.
    pub sent: Vec<collect::Fingerprinted>,
    /// The deliveries among the confirmed lines whose details are wanted
    /// ([`Transfer::collect_details`]).
    pub details: Vec<DetailCandidate>,
}

/// What a window's transfer does with the fresh pass's ledger.
#[derive(Debug)]
pub enum Ledger {
    /// Nothing (a single pass, a backfill).
    None,
    /// Remember what the relay confirmed of the records received at or after this instant
    /// (the fresh pass: older spans need no second look, so their records are not held).
    Collect(DateTime<Utc>),
    /// Send only what it does not hold (the reconciliation pass).
    Filter(LedgerIndex),
}

/// The services and limits every window's transfer uses.
#[derive(Debug)]
pub struct Transfer<'a> {
    source: &'a TraceSource,
    tokens: &'a mut TokenSource,
    /// The client-side request budget, kept in the checkpoint.
    throttle: &'a mut RequestBudget,
    /// Pulling stops when this runs out.
    budget: Budget,
    forward: ForwardSettings<'a>,
    /// Tenant id, the Organization field.
    organization: &'a str,
    retry: Retry,
    /// Which deliveries' details are wanted, when they are.
    details: Option<&'a DetailSettings>,
}

/// Graph calls outside a window (delivery details), under the tick's tokens, time budget and
/// request budget.
#[derive(Debug)]
pub struct GraphCalls<'t> {
    /// The Graph client.
    pub client: &'t GraphClient,
    /// What its requests run under.
    pub under: Calls<'t>,
}

/// How a window's delivery is retried when the relay fails.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// First delay before delivering again (then doubling).
    pub min_delay: Duration,
    /// Relay failures in a row, without anything confirmed between them, before giving up.
    pub devo_attempts: u32,
}

impl<'a> Transfer<'a> {
    /// The services and limits of one tick's windows: the API and its tokens, the request
    /// budget (kept in the checkpoint), the pull's time budget, the relay, the tenant id (the
    /// Organization field) and the relay's retries.
    pub fn new(
        source: &'a TraceSource,
        tokens: &'a mut TokenSource,
        throttle: &'a mut RequestBudget,
        budget: Budget,
        forward: ForwardSettings<'a>,
        organization: &'a str,
        retry: Retry,
    ) -> Transfer<'a> {
        Transfer {
            source,
            tokens,
            throttle,
            budget,
            forward,
            organization,
            retry,
            details: None,
        }
    }

    /// From now on, windows note the delivered records whose status `settings` wants details
    /// for ([`WindowResult::details`]); `None` notes none.
    pub fn collect_details(&mut self, settings: Option<&'a DetailSettings>) {
        self.details = settings.filter(|s| s.on());
    }

    /// Graph calls under the tick's tokens and budgets; `None` for the Reporting Web Service.
    pub fn graph_calls(&mut self) -> Option<GraphCalls<'_>> {
        match self.source {
            TraceSource::Graph(client) => Some(GraphCalls {
                client,
                under: Calls {
                    tokens: &mut *self.tokens,
                    budget: &self.budget,
                    throttle: &mut *self.throttle,
                },
            }),
            TraceSource::Reporting(_) => None,
        }
    }

    /// The tick's token cache and request budget, for Microsoft calls outside a window (the
    /// scheduled audit).
    pub fn budgets(&mut self) -> (&mut TokenSource, &mut RequestBudget) {
        (&mut *self.tokens, &mut *self.throttle)
    }

    /// The tenant id: the lines' `Organization`.
    pub fn organization(&self) -> &'a str {
        self.organization
    }

    /// The relay and the limits of its streams, as the windows use them (the relay's read
    /// rate measured so far included).
    pub fn forward_settings(&self) -> &ForwardSettings<'a> {
        &self.forward
    }

    /// Whether the API pages newest first (a window cut part-way resumes below its oldest
    /// delivered record); an unordered source's window is cut instead.
    pub fn newest_first(&self) -> bool {
        self.source.newest_first()
    }

    /// What is left of the pull's time budget.
    pub fn time_left(&self) -> Duration {
        self.budget.remaining()
    }

    /// Whether the pull's time budget has run out.
    pub fn out_of_time(&self) -> bool {
        self.budget.exhausted()
    }

    /// The requests of the request budget's period before `now`, for the checkpoint.
    pub fn request_history(&mut self, now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        self.throttle.history(now)
    }

    /// Lends `numerator / denominator` of the request budget to the next pass (the rest stays
    /// for the next tick's fresh pass) until [`Transfer::restore_budget`].
    pub fn lend_budget(&mut self, numerator: usize, denominator: usize) {
        self.throttle.lend(numerator, denominator);
    }

    /// Gives the whole request budget back.
    pub fn restore_budget(&mut self) {
        self.throttle.restore();
    }
}

impl Transfer<'_> {
    /// Pulls `window` and delivers it, skipping the lines of `sent` (sorted fingerprints a
    /// cut tick confirmed); `counts` grows as pages arrive and streams are confirmed.
    pub async fn window(
        &mut self,
        window: &Window,
        ledger: Ledger,
        sent: Vec<crate::ledger::Fingerprint>,
        counts: &mut Counts,
    ) -> WindowResult {
        self.window_held(window, ledger, sent, None, counts).await
    }

    /// Like [`Transfer::window`], sending nothing whose key and status are in `held` (what
    /// Devo holds, keys lower-cased: a cut-over's overlap). What it holds counts as delivered
    /// and goes into the fresh pass's ledger.
    pub async fn window_held(
        &mut self,
        window: &Window,
        ledger: Ledger,
        sent: Vec<crate::ledger::Fingerprint>,
        held: Option<LedgerIndex>,
        counts: &mut Counts,
    ) -> WindowResult {
        run::Run::new(self, window, ledger, sent, held)
            .go(counts)
            .await
    }
}
