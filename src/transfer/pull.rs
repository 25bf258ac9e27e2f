//! Asking for a window's pages: the API, its tokens, the request budget and the time budget,
//! and what asking cost, counted as each request is sent (a page that then failed included).

use crate::summary::Counts;
use crate::trace::TraceError;
use crate::trace::auth::TokenSource;
use crate::trace::fetch::Spent;
use crate::trace::http::Budget;
use crate::trace::page::SourcePage;
use crate::trace::request_budget::RequestBudget;
use crate::trace::source::TraceSource;

/// What a window's pages are asked with.
pub(super) struct Pull<'r> {
    /// The API.
    pub source: &'r TraceSource,
    pub tokens: &'r mut TokenSource,
    /// The client-side request budget, kept in the checkpoint.
    pub throttle: &'r mut RequestBudget,
    /// Pulling stops when this runs out.
    pub budget: Budget,
    /// How errors and logs name the window's query.
    pub what: String,
}

impl Pull<'_> {
    /// The page at `url`, its requests and 429s added to `tally` whether it came or not.
    pub async fn page(&mut self, url: &str, tally: &mut Counts) -> Result<SourcePage, TraceError> {
        let mut spent = Spent::default();
        let (tokens, throttle) = (&mut *self.tokens, &mut *self.throttle);
        let page = self
            .source
            .page(url, tokens, &self.budget, throttle, &self.what, &mut spent)
            .await;
        tally.requests += u64::from(spent.requests);
        tally.retries += u64::from(spent.requests.saturating_sub(1));
        tally.throttled_requests += u64::from(spent.throttled);
        page
    }
}
