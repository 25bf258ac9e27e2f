//! One delivery's detail rows from Graph, page by page, under the tick's budgets: what it got,
//! or what its failure means for the queue (drop the delivery, count an attempt, stop the
//! stage). It never waits for the request budget or a 429.

use crate::checkpoint::details::DropReason;
use crate::trace::TraceError;
use crate::trace::detail::{DetailCandidate, DetailRow, describe};
use crate::trace::fetch::Spent;
use crate::transfer::GraphCalls;

/// Pages one delivery's details may take at most (a delivery has a handful of events).
const MAX_PAGES: usize = 20;

/// Why the stage stops before the queue is drained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Nothing due is left.
    Done,
    /// The request budget's share is used: the rest is the next tick's fresh pass's.
    Budget,
    /// Graph answered 429: the tenant's quota is used (by this function or another tool).
    Throttled,
    /// The tick's time budget ran out.
    Time,
    /// The relay failed.
    Relay,
    /// Microsoft failed (after the request's retries) or refused the credentials.
    Microsoft,
}

impl Stop {
    /// Its name in the `details` log line.
    pub fn as_str(self) -> &'static str {
        match self {
            Stop::Done => "done",
            Stop::Budget => "budget",
            Stop::Throttled => "throttled",
            Stop::Time => "time",
            Stop::Relay => "relay",
            Stop::Microsoft => "microsoft",
        }
    }
}

/// What asking for one delivery's details gave.
#[derive(Debug)]
pub enum Answer {
    /// Its rows (possibly none).
    Rows(Vec<DetailRow>),
    /// The delivery cannot be asked about: it leaves the queue, counted.
    Drop(DropReason, TraceError),
    /// The fetch failed: an attempt is counted against the delivery, and the stage stops.
    Failed(TraceError),
    /// The stage stops; the delivery waits, no attempt counted.
    Stop(Stop, Option<TraceError>),
}

/// Fetches `delivery`'s rows, following nextLinks, each request within the budget's share.
pub async fn rows(
    calls: &mut GraphCalls<'_>,
    delivery: &DetailCandidate,
    spent: &mut Spent,
) -> Answer {
    let what = describe(delivery);
    let mut url = match calls.client.details_url(delivery) {
        Ok(url) => url,
        Err(e) => return Answer::Drop(DropReason::Refused, e),
    };
    let mut rows = Vec::new();
    for _ in 0..MAX_PAGES {
        let under = &mut calls.under;
        if under.budget.exhausted() {
            return Answer::Stop(Stop::Time, None);
        }
        // Never wait: a request the budget's share cannot afford now is the next tick's.
        if !under.throttle.wait_at(under.budget.now()).is_zero() {
            return Answer::Stop(Stop::Budget, None);
        }
        // Counted as list pages are: each request sent, each 429 (heard by the request budget).
        let fetched = match calls.client.details_page(&url, under, &what, spent).await {
            Ok(fetched) => fetched,
            Err(e) => return judge(e),
        };
        let (page_rows, next) = fetched.value;
        rows.extend(page_rows);
        match next {
            Some(next) => url = next,
            None => return Answer::Rows(rows),
        }
    }
    Answer::Failed(TraceError::Malformed {
        api: "graph",
        what,
        problem: format!("more than {MAX_PAGES} pages of details"),
    })
}

/// What a failure means for the delivery and the stage.
fn judge(e: TraceError) -> Answer {
    match &e {
        TraceError::Api { status: 429, .. } => Answer::Stop(Stop::Throttled, Some(e)),
        TraceError::Api {
            status: 404 | 410, ..
        } => Answer::Drop(DropReason::Gone, e),
        TraceError::Api { status: 400, .. } | TraceError::OffOrigin { .. } => {
            Answer::Drop(DropReason::Refused, e)
        }
        TraceError::Api {
            status: 401 | 403, ..
        }
        | TraceError::Token { .. }
        | TraceError::Credential { .. } => Answer::Stop(Stop::Microsoft, Some(e)),
        TraceError::OutOfTime { .. } => Answer::Stop(Stop::Time, Some(e)),
        TraceError::Api { .. } | TraceError::Transport { .. } | TraceError::Malformed { .. } => {
            Answer::Failed(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> TraceError {
        TraceError::Api {
            api: "graph",
            what: "w".into(),
            status,
            code: "c".into(),
            message: "m".into(),
            hint: "",
        }
    }

    #[test]
    fn a_gone_or_refused_delivery_is_dropped_a_429_stops_the_stage_and_a_5xx_counts_an_attempt() {
        assert!(matches!(judge(api(404)), Answer::Drop(DropReason::Gone, _)));
        assert!(matches!(
            judge(api(400)),
            Answer::Drop(DropReason::Refused, _)
        ));
        assert!(matches!(judge(api(429)), Answer::Stop(Stop::Throttled, _)));
        assert!(matches!(judge(api(403)), Answer::Stop(Stop::Microsoft, _)));
        assert!(matches!(judge(api(503)), Answer::Failed(_)));
    }
}
