//! One page of either API and its records: the leaf types the API clients produce and the
//! transfer consumes.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::trace::record::{GraphRecord, MappingContext, MessageTrace, to_message_trace};
use crate::trace::row::ReportingRecord;

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

    /// The delivery status (`delivered`, `Delivered`, …), which the ledger remembers.
    pub fn status(&self) -> Option<&str> {
        match self {
            TraceRecord::Graph(r) => r.status.as_deref(),
            TraceRecord::Reporting(r) => r.fields.get("Status").and_then(Value::as_str),
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
