//! One delivery's detail rows from Graph, page by page, under the tick's budgets: what it got,
//! or what its failure means for the queue (drop the delivery, count an attempt, stop the
//! stage). It never waits for the request budget or a 429.

use crate::checkpoint::details::DropReason;
use crate::trace::TraceError;
use crate::trace::detail::{DetailCandidate, DetailRow, describe};
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

/// Requests made, and of those answered 429.
#[derive(Debug, Default, Clone, Copy)]
pub struct Spent {
    pub requests: u64,
    pub throttled: u64,
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
        let page = calls.client.details_page(&url, under, &what).await;
        let fetched = match page {
            Ok(fetched) => fetched,
            Err(e) => {
                spent.requests += u64::from(matches!(e, TraceError::Api { .. }));
                return judge(e, spent);
            }
        };
        spent.requests += u64::from(fetched.requests);
        spent.throttled += u64::from(fetched.throttled);
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
fn judge(e: TraceError, spent: &mut Spent) -> Answer {
    match &e {
        TraceError::Api { status: 429, .. } => {
            spent.throttled += 1;
            Answer::Stop(Stop::Throttled, Some(e))
        }
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
        let mut spent = Spent::default();
        assert!(matches!(
            judge(api(404), &mut spent),
            Answer::Drop(DropReason::Gone, _)
        ));
        assert!(matches!(
            judge(api(400), &mut spent),
            Answer::Drop(DropReason::Refused, _)
        ));
        assert!(matches!(
            judge(api(429), &mut spent),
            Answer::Stop(Stop::Throttled, _)
        ));
        assert_eq!(spent.throttled, 1);
        assert!(matches!(
            judge(api(403), &mut spent),
            Answer::Stop(Stop::Microsoft, _)
        ));
        assert!(matches!(judge(api(503), &mut spent), Answer::Failed(_)));
    }
}
