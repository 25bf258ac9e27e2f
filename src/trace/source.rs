//! One face for both APIs, so that a window's transfer does not care where records come from.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::trace::TraceError;
use crate::trace::auth::TokenSource;
use crate::trace::graph::GraphClient;
use crate::trace::http::Budget;
use crate::trace::record::{GraphRecord, MappingContext, MessageTrace, to_message_trace};
use crate::trace::reporting::{ReportingClient, ReportingRecord};
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

/// One record of either API.
#[derive(Debug, Clone)]
pub enum TraceRecord {
    /// A Graph `exchangeMessageTrace`, mapped onto the Reporting field names for Devo.
    Graph(GraphRecord),
    /// A Reporting Web Service row, passed as received.
    Reporting(ReportingRecord),
}

/// The JSON of a Devo line: the mapped Graph record or the row itself.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum DevoJson<'a> {
    /// Graph, mapped.
    Graph(Box<MessageTrace<'a>>),
    /// Reporting, as received.
    Reporting(&'a Map<String, Value>),
}

/// One page of either API.
#[derive(Debug)]
pub struct SourcePage {
    /// The records of the page.
    pub records: Vec<TraceRecord>,
    /// The next page's URL.
    pub next_link: Option<String>,
    /// Size of the body.
    pub bytes: usize,
    /// Requests made for this page (1 unless retried).
    pub requests: u32,
    /// Of those, the ones answered 429.
    pub throttled: u32,
}

impl TraceRecord {
    /// The identity across pages and windows, which the dedup and the checkpoint use:
    /// `id|recipient` (`MessageTraceId|RecipientAddress`), or, for a record that lacks either
    /// ([`TraceRecord::missing_key`]), `content:` and a hash of its fields, so that it is
    /// still sent and never folded into another record.
    pub fn key(&self) -> String {
        match self {
            TraceRecord::Graph(r) if r.missing_key() => r.content_key(),
            TraceRecord::Graph(r) => r.key(),
            TraceRecord::Reporting(r) if r.missing_key() => r.content_key(),
            TraceRecord::Reporting(r) => r.key.clone(),
        }
    }

    /// Whether the record came without its id or its recipient (its key is then derived from
    /// its content): what the transfer counts and logs.
    pub fn missing_key(&self) -> bool {
        match self {
            TraceRecord::Graph(r) => r.missing_key(),
            TraceRecord::Reporting(r) => r.missing_key(),
        }
    }

    /// When Exchange Online received the message; `None` when the record's time is unreadable.
    pub fn received(&self) -> Option<DateTime<Utc>> {
        match self {
            TraceRecord::Graph(r) => r.received_date_time,
            TraceRecord::Reporting(r) => r.received,
        }
    }

    /// The JSON part of the record's Devo line.
    pub fn devo_json<'a>(&'a self, context: &MappingContext<'a>, index: u64) -> DevoJson<'a> {
        match self {
            TraceRecord::Graph(r) => DevoJson::Graph(Box::new(to_message_trace(r, context, index))),
            TraceRecord::Reporting(r) => DevoJson::Reporting(&r.fields),
        }
    }
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
    /// part-way. Without it, such a window is pulled again whole.
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

    /// Fetches one page, with retries within the budget. `throttle` is Graph's budget of 100
    /// requests per 5 minutes; the Reporting Web Service has no such documented limit.
    pub async fn page(
        &self,
        url: &str,
        tokens: &mut TokenSource,
        budget: &Budget,
        throttle: &mut RequestBudget,
        what: &str,
    ) -> Result<SourcePage, TraceError> {
        Ok(match self {
            TraceSource::Graph(c) => c.page(url, tokens, budget, throttle, what).await?,
            TraceSource::Reporting(c) => c.page(url, tokens, budget, what).await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(json: &str) -> TraceRecord {
        TraceRecord::Graph(serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}")))
    }

    fn reporting(json: &str) -> TraceRecord {
        let body = format!(r#"{{"value":[{json}]}}"#);
        let (mut rows, _) = crate::trace::reporting::parse_page(body.as_bytes()).unwrap();
        TraceRecord::Reporting(rows.remove(0))
    }

    #[test]
    fn keyless_records_of_both_apis_get_their_own_stable_keys() {
        for (first, second, whole) in [
            (
                graph(r#"{"id":"","recipientAddress":"r@x.com","subject":"one"}"#),
                graph(r#"{"id":"","recipientAddress":"r@x.com","subject":"two"}"#),
                graph(r#"{"id":"m1","recipientAddress":"r@x.com","subject":"one"}"#),
            ),
            (
                reporting(r#"{"MessageTraceId":"m1","Subject":"one"}"#),
                reporting(r#"{"MessageTraceId":"m1","Subject":"two"}"#),
                reporting(r#"{"MessageTraceId":"m1","RecipientAddress":"r@x.com"}"#),
            ),
        ] {
            assert!(first.missing_key() && second.missing_key());
            assert_ne!(first.key(), second.key(), "two keyless records stay apart");
            assert_eq!(
                first.key(),
                first.clone().key(),
                "the same record, the same key"
            );
            assert!(first.key().starts_with("content:"));
            assert!(!whole.missing_key());
            assert_eq!(whole.key(), "m1|r@x.com");
        }
    }
}
