//! One face for both APIs, so that a window's transfer does not care where records come from.

use crate::trace::TraceError;
use crate::trace::auth::TokenSource;
use crate::trace::fetch::Spent;
use crate::trace::graph::GraphClient;
use crate::trace::http::Budget;
use crate::trace::page::SourcePage;
use crate::trace::reporting::ReportingClient;
use crate::trace::request_budget::RequestBudget;
use crate::window::Window;

/// The API a tick pulls from (`TRACE_API`), built once per cold start.
#[derive(Debug, Clone)]
pub enum TraceSource {
    /// Microsoft Graph message trace.
    Graph(GraphClient),
    /// The Reporting Web Service `MessageTrace` report.
    Reporting(ReportingClient),
}

impl TraceSource {
    /// The token scope of the API.
    pub fn scope(&self) -> String {
        match self {
            TraceSource::Graph(c) => c.scope(),
            TraceSource::Reporting(c) => c.scope(),
        }
    }

    /// Whether pages come newest first, which is what lets a window cut by the deadline resume
    /// part-way. Without it, such a window is split at once (`crate::checkpoint::cut`).
    pub fn newest_first(&self) -> bool {
        matches!(self, TraceSource::Graph(_))
    }

    /// How errors and logs name a window's query.
    pub fn describe_window(&self, window: &Window) -> String {
        match self {
            TraceSource::Graph(_) => crate::trace::graph::describe_window(window),
            TraceSource::Reporting(_) => format!(
                "MessageTrace {}..{}",
                crate::trace::reporting::query_time(window.start),
                crate::trace::reporting::query_time(window.query_end())
            ),
        }
    }

    /// The first page of `window`.
    pub fn first_page_url(&self, window: &Window) -> String {
        match self {
            TraceSource::Graph(c) => c.first_page_url(window),
            TraceSource::Reporting(c) => c.first_page_url(window),
        }
    }

    /// Fetches one page, with retries within the budget, counting its requests in `spent`.
    /// `throttle` is Graph's budget of 100 requests per 5 minutes; the Reporting Web Service
    /// has no such documented limit.
    pub async fn page(
        &self,
        url: &str,
        tokens: &mut TokenSource,
        budget: &Budget,
        throttle: &mut RequestBudget,
        what: &str,
        spent: &mut Spent,
    ) -> Result<SourcePage, TraceError> {
        Ok(match self {
            TraceSource::Graph(c) => c.page(url, tokens, budget, throttle, what, spent).await?,
            TraceSource::Reporting(c) => c.page(url, tokens, budget, what, spent).await?,
        })
    }
}
