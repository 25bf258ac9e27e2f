//! A Reporting Web Service row as the transfer sees it: its identity, its received time and the
//! object as received. A leaf type, shared by the report's client and the page of either API.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::trace::record::{content_key, has_identity};

/// One `MessageTrace` row: its identity, its received time and the object as received.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportingRecord {
    /// `MessageTraceId|RecipientAddress`, as reported (empty parts included); the dedup uses
    /// [`crate::trace::page::TraceRecord::key`], which stands in a content key when a part
    /// is missing.
    pub key: String,
    /// `Received`, in UTC; `None` when it cannot be read (the row is still sent).
    pub received: Option<DateTime<Utc>>,
    /// Every field of the row (unknown ones too), `__metadata` removed, dates in JSON light form.
    pub fields: Map<String, Value>,
}

/// Fields the service fills from the query (its bounds, the row's position), not from the
/// message: left out of a content key so that the same row keeps its key in another window.
const QUERY_FIELDS: [&str; 3] = ["StartDate", "EndDate", "Index"];

impl ReportingRecord {
    /// Whether the row lacks its `MessageTraceId` or its `RecipientAddress`, so that
    /// [`ReportingRecord::key`] could be shared by different rows.
    pub fn missing_key(&self) -> bool {
        !has_identity(
            &field_text(&self.fields, "MessageTraceId"),
            &field_text(&self.fields, "RecipientAddress"),
        )
    }

    /// The key derived from the row's fields, those set by the query excepted.
    pub fn content_key(&self) -> String {
        let message: std::collections::BTreeMap<&String, &Value> = self
            .fields
            .iter()
            .filter(|(name, _)| !QUERY_FIELDS.contains(&name.as_str()))
            .collect();
        content_key(&message)
    }
}

/// A field as text (for keys): strings as they are, numbers written out, anything else empty.
pub fn field_text(fields: &Map<String, Value>, name: &str) -> String {
    match fields.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}
