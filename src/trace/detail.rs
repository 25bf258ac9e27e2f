//! Delivery details: `GET /v1.0/admin/exchange/tracing/messageTraces/{id}/getDetailsByRecipient(recipientAddress='…')`,
//! the per-recipient events (`Receive`, `Fail`, `Quarantine`, …) that say why a delivery
//! failed or where it went. Pure: the delivery asked about, its URL, and the rows' parsing.

use chrono::{DateTime, Utc};
use serde::Deserialize;

pub use crate::checkpoint::details::DetailCandidate;
use crate::trace::record::{GraphRecord, lenient};

/// The delivery `record` describes, when it can be asked about: it has an id, a recipient, a
/// status and a time.
pub fn candidate(record: &GraphRecord) -> Option<DetailCandidate> {
    if record.missing_key() {
        return None;
    }
    Some(DetailCandidate {
        id: record.id.clone(),
        recipient: record.recipient_address.clone()?,
        sender: record.sender_address.clone(),
        message_id: record.message_id.clone(),
        status: record.status.clone()?,
        received: record.received_date_time?,
    })
}

/// One Graph `exchangeMessageTraceDetail`. Parsed leniently, field by field, like the trace
/// records: one odd row never blocks a delivery's details.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DetailRow {
    /// The row's id (Graph gives the message trace id).
    #[serde(default, deserialize_with = "lenient::text")]
    pub id: Option<String>,
    /// The Message-ID header.
    #[serde(default, deserialize_with = "lenient::text")]
    pub message_id: Option<String>,
    /// When the event happened (UTC).
    #[serde(default, deserialize_with = "lenient::time")]
    pub date_time: Option<DateTime<Utc>>,
    /// `Receive`, `Submit`, `Deliver`, `Fail`, `Quarantine`, `Transport rule`, …
    #[serde(default, deserialize_with = "lenient::text")]
    pub event: Option<String>,
    /// What was done to the message at this event (often empty).
    #[serde(default, deserialize_with = "lenient::text")]
    pub action: Option<String>,
    /// What happened: the NDR, the rule, the folder.
    #[serde(default, deserialize_with = "lenient::text")]
    pub description: Option<String>,
    /// Additional data of the event, an XML string.
    #[serde(default, deserialize_with = "lenient::text")]
    pub data: Option<String>,
}

#[derive(Deserialize)]
struct DetailsBody {
    #[serde(default)]
    value: Vec<DetailRow>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
}

/// Parses a `getDetailsByRecipient` body: its rows and its `@odata.nextLink`.
pub fn parse_details(body: &[u8]) -> Result<(Vec<DetailRow>, Option<String>), serde_json::Error> {
    serde_json::from_slice::<DetailsBody>(body).map(|b| (b.value, b.next_link))
}

/// An OData string literal: single quotes around it, each quote inside doubled (`o'brien` →
/// `'o''brien'`).
pub fn odata_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The URL of `candidate`'s details under the Graph at `base`: the trace id and the function
/// call are path segments, percent-encoded as such (a `/`, `%`, `?` or `#` in an address
/// cannot end the path), the address an OData string literal. `None` only for a base that
/// cannot carry a path (it was validated as a URL when the configuration was read).
pub fn details_url(base: &str, candidate: &DetailCandidate) -> Option<String> {
    let mut url = reqwest::Url::parse(&format!(
        "{}/v1.0/admin/exchange/tracing/messageTraces",
        base.trim_end_matches('/')
    ))
    .ok()?;
    let call = format!(
        "getDetailsByRecipient(recipientAddress={})",
        odata_string(&candidate.recipient)
    );
    url.path_segments_mut()
        .ok()?
        .push(&candidate.id)
        .push(&call);
    Some(url.to_string())
}

/// How errors and logs name a delivery's details (the trace id and the status; never the
/// address).
pub fn describe(candidate: &DetailCandidate) -> String {
    format!(
        "getDetailsByRecipient of message trace {} ({})",
        candidate.id, candidate.status
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery_to(recipient: &str) -> DetailCandidate {
        DetailCandidate {
            id: "7e3b2b2e-1b5e-4b17-80cc-2af6c1d9a3b1".into(),
            recipient: recipient.into(),
            sender: None,
            message_id: None,
            status: "failed".into(),
            received: Utc::now(),
        }
    }

    #[test]
    fn the_url_quotes_the_address_as_an_odata_string_in_one_path_segment() {
        let base = "https://graph.microsoft.com/";
        assert_eq!(
            details_url(base, &delivery_to("robert@contoso.com")).unwrap(),
            "https://graph.microsoft.com/v1.0/admin/exchange/tracing/messageTraces/7e3b2b2e-1b5e-4b17-80cc-2af6c1d9a3b1/getDetailsByRecipient(recipientAddress='robert@contoso.com')"
        );
        let url = details_url(base, &delivery_to("o'brien/x?y#z%@contoso.com")).unwrap();
        let parsed = reqwest::Url::parse(&url).unwrap();
        assert_eq!(parsed.query(), None);
        assert_eq!(parsed.fragment(), None);
        let last = parsed.path_segments().unwrap().next_back().unwrap();
        assert_eq!(
            last,
            "getDetailsByRecipient(recipientAddress='o''brien%2Fx%3Fy%23z%25@contoso.com')"
        );
        assert_eq!(odata_string("a''b"), "'a''''b'");
    }

    #[test]
    fn rows_parse_field_by_field_and_a_record_without_identity_is_not_asked_about() {
        let body = br#"{"value":[{"id":"t","messageId":"<m@x>","dateTime":"2026-11-24T10:30:05Z",
            "event":"Fail","action":"","description":"550 5.1.10 RESOLVER.ADR.RecipientNotFound",
            "data":"<root/>"},{"event":7,"dateTime":"soon"}],"@odata.nextLink":"https://g/n"}"#;
        let (rows, next) = parse_details(body).unwrap();
        assert_eq!(next.as_deref(), Some("https://g/n"));
        assert_eq!(rows[0].event.as_deref(), Some("Fail"));
        assert!(rows[0].date_time.is_some());
        assert_eq!(
            (rows[1].event.as_deref(), rows[1].date_time),
            (Some("7"), None)
        );
        let record: GraphRecord = serde_json::from_str(
            r#"{"id":"t","recipientAddress":"r@x","status":"failed","receivedDateTime":"2026-11-24T10:30:00Z"}"#,
        )
        .unwrap();
        assert_eq!(candidate(&record).unwrap().key(), "t|r@x");
        let keyless: GraphRecord =
            serde_json::from_str(r#"{"id":"","recipientAddress":"r@x","status":"failed"}"#)
                .unwrap();
        assert_eq!(candidate(&keyless), None);
    }
}
