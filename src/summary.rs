//! The JSON a tick returns, and logs as its last line.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::window::{Skipped, Split, Window};

/// What happened to the lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum LeaseReport {
    /// This invocation claimed the state.
    Acquired {
        /// The owner (this request id).
        owner: String,
        /// Until when.
        expires_at: DateTime<Utc>,
    },
    /// This invocation took over an expired lease.
    TakenOver {
        /// The owner (this request id).
        owner: String,
        /// Until when.
        expires_at: DateTime<Utc>,
        /// Whose lease had expired.
        previous_owner: String,
    },
    /// Another invocation holds the state: nothing was pulled or sent.
    HeldByOther {
        owner: String,
        /// Until when.
        until: DateTime<Utc>,
    },
    /// A live lease carries this invocation's own request id: a second delivery of the same
    /// event while the first runs (Lambda's asynchronous invocation is at-least-once). Nothing
    /// was pulled, sent or written.
    Duplicate {
        /// The request id.
        owner: String,
        /// Until when the first delivery holds the lease.
        until: DateTime<Utc>,
    },
    /// A conditional write failed: another invocation wrote the checkpoint; this one stopped.
    Lost {
        /// The step that found out.
        at: &'static str,
    },
}

/// Counters of one tick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Windows fully delivered.
    pub windows: u64,
    /// Pages fetched.
    pub pages: u64,
    /// HTTP requests to the API (retries included).
    pub requests: u64,
    /// Requests that were retries of a failed one.
    pub retries: u64,
    /// Requests answered 429 (throttled).
    pub throttled_requests: u64,
    /// Records returned by the API.
    pub records_pulled: u64,
    /// Lines delivered to Devo.
    pub events_sent: u64,
    /// Bytes delivered to Devo.
    pub bytes_sent: u64,
    /// Lines written on streams that broke or were cut before the relay confirmed them: sent
    /// again, so at most this many lines may arrive in Devo twice.
    pub unconfirmed_lines: u64,
    /// Records skipped as already sent (repeated across pages or at a boundary).
    pub duplicates_skipped: u64,
    /// Records the API returned outside the window asked for (left to their own window).
    pub outside_window: u64,
    /// Records sent without an id or recipient (keyed by their content).
    pub missing_key: u64,
    /// Reconciliation: records the fresh pass never saw (Microsoft exposed them late), sent.
    pub late_records: u64,
    /// Reconciliation: records whose status changed since the fresh pass sent them, sent again.
    pub status_changes: u64,
    /// Reconciliation: records of spans whose ledger object is missing, sent again.
    pub ledger_missing: u64,
    /// Cut-over: records of the overlap that Devo already held (the earlier collector's
    /// lines, or this tenant's), not sent.
    pub cutover_suppressed: u64,
    /// Delivery details: detail rows of problem deliveries sent to `DETAIL_TAG`.
    pub details_sent: u64,
    /// Delivery details: deliveries still waiting for their details after this tick.
    pub details_queued: u64,
    /// Delivery details: deliveries whose details will never be fetched (the queue was full,
    /// Microsoft no longer had them or refused the query, they kept failing, fell out of the
    /// lookback or left `DETAIL_STATUSES`).
    pub details_dropped: u64,
    /// 429s received while this function's own spend was under its budget: another
    /// application is spending the tenant's shared quota.
    pub quota_contention: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, part: Counts) {
        self.windows += part.windows;
        self.pages += part.pages;
        self.requests += part.requests;
        self.retries += part.retries;
        self.throttled_requests += part.throttled_requests;
        self.records_pulled += part.records_pulled;
        self.events_sent += part.events_sent;
        self.bytes_sent += part.bytes_sent;
        self.unconfirmed_lines += part.unconfirmed_lines;
        self.duplicates_skipped += part.duplicates_skipped;
        self.outside_window += part.outside_window;
        self.missing_key += part.missing_key;
        self.late_records += part.late_records;
        self.status_changes += part.status_changes;
        self.ledger_missing += part.ledger_missing;
        self.cutover_suppressed += part.cutover_suppressed;
        self.details_sent += part.details_sent;
        self.details_queued += part.details_queued;
        self.details_dropped += part.details_dropped;
        self.quota_contention += part.quota_contention;
    }
}

/// What one pass of a tick did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PassReport {
    /// `single`, `fresh`, `reconcile` or `backfill`.
    pub pass: &'static str,
    /// Windows fully delivered.
    pub windows: u64,
    /// Records returned by the API.
    pub records_pulled: u64,
    /// Lines delivered to Devo.
    pub events_sent: u64,
    /// Records Microsoft exposed late, sent by the reconciliation pass.
    pub late_records: u64,
    /// Records sent again because their status changed.
    pub status_changes: u64,
    /// Whether the pass reached its horizon.
    pub caught_up: bool,
}

impl PassReport {
    /// The report of a pass named `pass` that counted `counts`.
    pub fn new(pass: &'static str, counts: &Counts, caught_up: bool) -> PassReport {
        PassReport {
            pass,
            windows: counts.windows,
            records_pulled: counts.records_pulled,
            events_sent: counts.events_sent,
            late_records: counts.late_records,
            status_changes: counts.status_changes,
            caught_up,
        }
    }
}

/// The tick's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// graph or reporting.
    pub api: &'static str,
    /// The lease outcome.
    pub lease: LeaseReport,
    #[serde(flatten)]
    pub counts: Counts,
    /// The checkpoint's end after the tick: everything received before it was sent.
    pub checkpoint: Option<DateTime<Utc>>,
    /// A window left part-way, resumed by the next tick.
    pub partial: Option<Window>,
    /// Whether every pass reached its horizon.
    pub caught_up: bool,
    /// Every record received before this instant is in Devo in its complete form (the oldest
    /// span the reconciliation pass has yet to pull, or the checkpoint).
    pub complete_until: Option<DateTime<Utc>>,
    /// What each pass did.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub passes: Vec<PassReport>,
    /// A span that can no longer be pulled: lost to the API's lookback limit, or passed over
    /// by a `RESET_BEFORE` restart.
    pub skipped: Option<Skipped>,
    /// Spans due for a second look that the reconciliation pass dropped without it (past the
    /// API's lookback, or past the ledger's cap): late records there are not sent.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reconcile_gaps: Vec<crate::checkpoint::second_look::Gap>,
    /// A span pulled in pieces: one that made no progress in earlier ticks (`reason`
    /// `stuck`), pulled so by this tick, or a Reporting Web Service window this tick cut by
    /// the deadline (`reporting_cut`), pulled so from the next.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
    /// Wall time of the tick.
    pub duration_ms: u64,
    /// How much of a backfill is done and left (backfill runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backfill: Option<crate::checkpoint::backfill::Report>,
    /// The restart this tick applied because `RESET_BEFORE` changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset: Option<crate::checkpoint::reset::Reset>,
    /// Graph requests per 5 minutes this tenant allows itself after the tick:
    /// `REQUEST_BUDGET_PER_5_MINUTES`, or less while another application spends its quota.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_budget: Option<usize>,
    /// What became of the tick's status line in Devo: `sent`, `not_sent`, `off` (absent for a
    /// backfill and for a tick that did not get the lease).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_line: Option<&'static str>,
    /// What the scheduled audit (`AUDIT_HOURS`) compared this tick, when it compared anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditSummary>,
}

/// The scheduled audit of one tick: the hours it compared with Devo and what it found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuditSummary {
    /// Hours compared.
    pub hours: u64,
    /// Records Devo lacks (`AuditMissing`).
    pub missing: u64,
    /// Records Devo holds that Microsoft does not list (`AuditExtra`).
    pub extra: u64,
    /// Records Devo holds only with an older status.
    pub stale: u64,
    /// The audit's position after the tick: every hour before it was compared.
    pub until: Option<DateTime<Utc>>,
    /// `errorType: message` of the failure that stopped it (the tick itself succeeds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

impl Summary {
    /// A tick that did not get the lease: nothing was pulled or sent.
    pub fn refused(
        api: &'static str,
        lease: LeaseReport,
        checkpoint: &crate::checkpoint::Checkpoint,
        started: std::time::Instant,
    ) -> Summary {
        Summary::finished(api, lease, Counts::default(), checkpoint, false, started)
    }

    /// A tick that ran its passes (the caller adds what they skipped or split).
    pub fn finished(
        api: &'static str,
        lease: LeaseReport,
        counts: Counts,
        checkpoint: &crate::checkpoint::Checkpoint,
        caught_up: bool,
        started: std::time::Instant,
    ) -> Summary {
        let counts = Counts {
            details_queued: checkpoint.details.len() as u64,
            ..counts
        };
        Summary {
            api,
            lease,
            counts,
            checkpoint: checkpoint.primary.end,
            partial: checkpoint.primary.partial.clone(),
            caught_up,
            complete_until: checkpoint.complete_until(),
            passes: Vec::new(),
            skipped: None,
            reconcile_gaps: Vec::new(),
            split: None,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            backfill: None,
            reset: None,
            audit: None,
            request_budget: None,
            status_line: None,
        }
    }
}
