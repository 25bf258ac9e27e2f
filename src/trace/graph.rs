//! Microsoft Graph message trace: `GET /v1.0/admin/exchange/tracing/messageTraces`, page by page.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use governor::DefaultDirectRateLimiter;
use serde::Deserialize;

use crate::events::Event;
use crate::events::microsoft::SkipTokenRepaired;
use crate::trace::auth::TokenSource;
use crate::trace::budget_gate::BudgetGate;
use crate::trace::detail::{DetailCandidate, DetailRow, parse_details};
use crate::trace::error::{TraceError, api_hint};
use crate::trace::fetch::{Fetched, PageRules, Spent, get_page, rate_limiter};
use crate::trace::http::Budget;
use crate::trace::origin::{self, Origin};
use crate::trace::page::{SourcePage, TraceRecord};
use crate::trace::record::GraphRecord;
use crate::trace::request_budget::RequestBudget;
use crate::trace::skiptoken;
use crate::window::Window;

#[derive(Deserialize)]
struct PageBody {
    #[serde(default)]
    value: Vec<GraphRecord>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: ErrorDetail,
}

#[derive(Deserialize, Default)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// What a Graph request runs under: the tick's tokens, its time budget and the request budget.
#[derive(Debug)]
pub struct Calls<'c> {
    /// The tick's token cache.
    pub tokens: &'c mut TokenSource,
    /// The pull's time budget.
    pub budget: &'c Budget,
    /// The request budget (kept in the checkpoint).
    pub throttle: &'c mut RequestBudget,
}

/// A Graph message trace client: the base URL, `$top` and the client-side request rate.
#[derive(Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    base: String,
    page_size: u32,
    origin: Origin,
    limiter: Arc<DefaultDirectRateLimiter>,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("base", &self.base)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

/// Formats a query bound as Graph accepts it: seconds, plus up to seven fractional digits.
pub fn query_time(t: DateTime<Utc>) -> String {
    if t.timestamp_subsec_nanos() == 0 {
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        format!(
            "{}.{:07}Z",
            t.format("%Y-%m-%dT%H:%M:%S"),
            crate::trace::record::ticks_100ns(t)
        )
    }
}

impl GraphClient {
    /// A client for the Graph at `base` (no trailing slash).
    pub fn new(
        http: reqwest::Client,
        base: &str,
        page_size: u32,
        requests_per_second: u32,
    ) -> GraphClient {
        GraphClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            page_size,
            origin: Origin::of(base, "GRAPH_URL"),
            limiter: rate_limiter(requests_per_second),
        }
    }

    /// The token scope for this Graph.
    pub fn scope(&self) -> String {
        format!("{}/.default", self.base)
    }

    /// The first page of a window: `receivedDateTime ge start and le end`, `$top`.
    pub fn first_page_url(&self, window: &Window) -> String {
        let filter = format!(
            "receivedDateTime ge {} and receivedDateTime le {}",
            query_time(window.start),
            query_time(window.query_end())
        );
        let mut url = match reqwest::Url::parse(&format!(
            "{}/v1.0/admin/exchange/tracing/messageTraces",
            self.base
        )) {
            Ok(url) => url,
            // The base was validated as a URL when the configuration was read.
            Err(_) => return format!("{}/v1.0/admin/exchange/tracing/messageTraces", self.base),
        };
        url.query_pairs_mut()
            .append_pair("$filter", &filter)
            .append_pair("$top", &self.page_size.to_string());
        url.to_string()
    }

    /// Fetches one page, with retries within the budget and `throttle` (a 429 waited out),
    /// counting its requests in `spent`.
    pub async fn page(
        &self,
        url: &str,
        tokens: &mut TokenSource,
        budget: &Budget,
        throttle: &mut RequestBudget,
        what: &str,
        spent: &mut Spent,
    ) -> Result<SourcePage, TraceError> {
        let parse = |body: &[u8]| parse_page(body).map_err(|e| e.to_string());
        let mut calls = Calls {
            tokens,
            budget,
            throttle,
        };
        let rules = self.rules(what, parse, true);
        let fetched = self.get(&rules, url, &mut calls, what, spent).await?;
        let (records, next_link) = fetched.value;
        Ok(SourcePage {
            records: records.into_iter().map(TraceRecord::Graph).collect(),
            next_link: next_link.map(|link| next_url(url, &link)),
            bytes: fetched.bytes,
        })
    }

    /// The URL of a delivery's details (`getDetailsByRecipient`).
    pub fn details_url(&self, candidate: &DetailCandidate) -> Result<String, TraceError> {
        crate::trace::detail::details_url(&self.base, candidate).ok_or_else(|| {
            TraceError::Malformed {
                api: "graph",
                what: crate::trace::detail::describe(candidate),
                problem: format!("GRAPH_URL {} cannot carry a path", self.base),
            }
        })
    }

    /// Fetches one page of a delivery's details, counting its requests in `spent` like a list
    /// page's (the same request budget hears its 429s). Unlike a list page it never waits:
    /// neither for the request budget (while it is lent, a request over the share fails as
    /// [`TraceError::OutOfTime`]) nor for a 429, which is returned at once.
    pub async fn details_page(
        &self,
        url: &str,
        calls: &mut Calls<'_>,
        what: &str,
        spent: &mut Spent,
    ) -> Result<Fetched<(Vec<DetailRow>, Option<String>)>, TraceError> {
        let parse = |body: &[u8]| parse_details(body).map_err(|e| e.to_string());
        let rules = self.rules(what, parse, false);
        let mut fetched = self.get(&rules, url, calls, what, spent).await?;
        fetched.value.1 = fetched.value.1.take().map(|link| next_url(url, &link));
        Ok(fetched)
    }

    /// One GET of `url` under `calls` by `rules`, each attempt through the request budget's
    /// gate and counted in `spent`.
    async fn get<T, P, R>(
        &self,
        rules: &PageRules<'_, P, R>,
        url: &str,
        calls: &mut Calls<'_>,
        what: &str,
        spent: &mut Spent,
    ) -> Result<Fetched<T>, TraceError>
    where
        P: Fn(&[u8]) -> Result<T, String>,
        R: Fn(u16, &[u8]) -> TraceError,
    {
        let mut gate = BudgetGate {
            throttle: &mut *calls.throttle,
            budget: calls.budget,
            what,
        };
        get_page(
            rules,
            url,
            calls.tokens,
            calls.budget,
            what,
            &mut gate,
            spent,
        )
        .await
    }

    /// How a Graph answer is fetched and read: the `Prefer` header (so that `recalled`
    /// arrives as itself, not `unknownFutureValue`), `parse` for a 200, Graph's error body
    /// otherwise.
    fn rules<'a, P>(
        &'a self,
        what: &'a str,
        parse: P,
        wait_when_throttled: bool,
    ) -> PageRules<'a, P, impl Fn(u16, &[u8]) -> TraceError + 'a> {
        PageRules {
            http: &self.http,
            limiter: &self.limiter,
            api: "graph",
            origin: &self.origin,
            parse,
            refusal: move |status, body: &[u8]| {
                let detail: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
                TraceError::Api {
                    api: "graph",
                    what: what.to_owned(),
                    status,
                    hint: api_hint(status, &detail.error.message),
                    code: if detail.error.code.is_empty() {
                        "-".into()
                    } else {
                        detail.error.code
                    },
                    message: detail.error.message,
                }
            },
            headers: &PREFER,
            wait_when_throttled,
        }
    }
}

/// Asks Graph for the members of evolvable enums this client knows (`recalled`), which it
/// otherwise writes as `unknownFutureValue`.
const PREFER: [(&str, &str); 1] = [("Prefer", "include-unknown-enum-members")];

/// The URL to follow for a page's `@odata.nextLink`: resolved against the page it came from
/// (the origin check happens when it is fetched), its skip token repaired when Graph
/// double-encoded it.
pub fn next_url(page_url: &str, link: &str) -> String {
    let absolute = origin::resolve(page_url, link);
    match skiptoken::repair(&absolute) {
        Some(repaired) => {
            SkipTokenRepaired.emit();
            repaired
        }
        None => absolute,
    }
}

/// Parses a messageTraces page body: its records and its `@odata.nextLink`.
pub fn parse_page(body: &[u8]) -> Result<(Vec<GraphRecord>, Option<String>), serde_json::Error> {
    serde_json::from_slice::<PageBody>(body).map(|page| (page.value, page.next_link))
}

/// The window as it appears in errors and logs.
pub fn describe_window(window: &Window) -> String {
    format!(
        "messageTraces {}..{}",
        query_time(window.start),
        query_time(window.query_end())
    )
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn first_page_url_has_both_bounds_and_top() {
        let client = GraphClient::new(
            reqwest::Client::new(),
            "https://graph.microsoft.com/",
            5000,
            1,
        );
        let start = Utc.with_ymd_and_hms(2026, 11, 24, 0, 0, 0).unwrap();
        let window = Window {
            start,
            end: start + chrono::Duration::hours(6),
            resume: None,
        };
        let url = reqwest::Url::parse(&client.first_page_url(&window)).unwrap();
        assert_eq!(url.path(), "/v1.0/admin/exchange/tracing/messageTraces");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            vec![
                (
                    "$filter".to_owned(),
                    "receivedDateTime ge 2026-11-24T00:00:00Z and receivedDateTime le 2026-11-24T06:00:00Z".to_owned()
                ),
                ("$top".to_owned(), "5000".to_owned()),
            ]
        );
        assert_eq!(client.scope(), "https://graph.microsoft.com/.default");
        let t = start + chrono::Duration::nanoseconds(123_456_700);
        assert_eq!(query_time(t), "2026-11-24T00:00:00.1234567Z");
    }

    #[test]
    fn next_links_are_resolved_and_double_encoded_skip_tokens_repaired() {
        use base64::Engine;
        let page = "https://graph.microsoft.com/v1.0/admin/exchange/tracing/messageTraces?$top=5";
        let encode = |json: &str| {
            base64::engine::general_purpose::STANDARD
                .encode(json)
                .replace('=', "%3D")
        };
        let broken = encode(r#"{"StartDate":"\"2026-03-26T15:43:20Z\"","ResultSize":"1000"}"#);
        let healthy = encode(r#"{"StartDate":"2026-03-26T15:43:20Z","ResultSize":"1000"}"#);
        assert_eq!(
            next_url(page, &format!("messageTraces?$skiptoken={broken}")),
            format!(
                "https://graph.microsoft.com/v1.0/admin/exchange/tracing/messageTraces?$skiptoken={healthy}"
            )
        );
        let absolute = format!("https://evil.example/x?$skiptoken={healthy}");
        assert_eq!(
            next_url(page, &absolute),
            absolute,
            "kept as it points: refused when fetched"
        );
    }
}
