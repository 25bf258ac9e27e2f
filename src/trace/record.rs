//! A message trace record as Graph returns it, and as Devo's `cloud.office365.messagetracing`
//! parser reads it (the Reporting Web Service field names). Pure mapping.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One Graph `exchangeMessageTrace`.
///
/// Parsing is lenient field by field: a value of an unexpected type becomes text (numbers,
/// booleans) or is dropped, so that one odd record can never block a window forever. Only a
/// record whose `receivedDateTime` cannot be read has no time (`None`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphRecord {
    /// Message trace id (shared by the recipients of one message).
    #[serde(default, deserialize_with = "lenient::text_or_empty")]
    pub id: String,
    /// Message-ID header.
    #[serde(default, deserialize_with = "lenient::text")]
    pub message_id: Option<String>,
    /// When Exchange Online received the message (UTC).
    #[serde(default, deserialize_with = "lenient::time")]
    pub received_date_time: Option<DateTime<Utc>>,
    /// Sender SMTP address.
    #[serde(default, deserialize_with = "lenient::text")]
    pub sender_address: Option<String>,
    /// Recipient SMTP address.
    #[serde(default, deserialize_with = "lenient::text")]
    pub recipient_address: Option<String>,
    /// Subject line.
    #[serde(default, deserialize_with = "lenient::text")]
    pub subject: Option<String>,
    /// Delivery status, e.g. `delivered`.
    #[serde(default, deserialize_with = "lenient::text")]
    pub status: Option<String>,
    /// Size in bytes.
    #[serde(default, deserialize_with = "lenient::integer")]
    pub size: Option<i64>,
    /// Source IP.
    #[serde(default, rename = "fromIP", deserialize_with = "lenient::text")]
    pub from_ip: Option<String>,
    /// Destination IP.
    #[serde(default, rename = "toIP", deserialize_with = "lenient::text")]
    pub to_ip: Option<String>,
}

impl GraphRecord {
    /// The identity Graph gives the record: `id` + `recipientAddress`, as reported (empty
    /// parts included). The dedup uses [`crate::trace::page::TraceRecord::key`], which
    /// stands in a content key when a part is missing.
    pub fn key(&self) -> String {
        record_key(&self.id, self.recipient_address.as_deref().unwrap_or(""))
    }

    /// Whether the record lacks its id or its recipient, so that `id|recipient` could be
    /// shared by different records.
    pub fn missing_key(&self) -> bool {
        !has_identity(&self.id, self.recipient_address.as_deref().unwrap_or(""))
    }

    /// The key derived from every field of the record (see [`content_key`]).
    pub fn content_key(&self) -> String {
        content_key(self)
    }
}

/// Deserializers that take what the API sends and never fail on a field's type.
pub(crate) mod lenient {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    fn as_text(value: Value) -> Option<String> {
        match value {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null | Value::Array(_) | Value::Object(_) => None,
        }
    }

    pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(as_text(Value::deserialize(d)?))
    }

    pub fn text_or_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(as_text(Value::deserialize(d)?).unwrap_or_default())
    }

    pub fn integer<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
    }

    pub fn time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::String(s) => DateTime::parse_from_rfc3339(s.trim())
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            _ => None,
        })
    }
}

/// The identity of a record across pages and windows.
pub fn record_key(trace_id: &str, recipient: &str) -> String {
    format!("{trace_id}|{recipient}")
}

/// Prefix of a key derived from a record's content. It has no `|`, which every
/// [`record_key`] has, so the two kinds of key can never be equal.
pub const CONTENT_KEY_PREFIX: &str = "content:";

/// Whether a message trace id and a recipient identify a record (neither is blank).
pub fn has_identity(trace_id: &str, recipient: &str) -> bool {
    !trace_id.trim().is_empty() && !recipient.trim().is_empty()
}

/// The key of a record that has no identity of its own: `content:` and the SHA-256 (hex) of
/// its JSON. Stable across pages, ticks and releases for the same content, so a keyless record
/// is still sent once, never folded into another one.
pub fn content_key(content: &impl Serialize) -> String {
    // Serializing plain fields cannot fail; an empty document still gives a stable key.
    let json = serde_json::to_vec(content).unwrap_or_default();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &json);
    let mut key = String::with_capacity(CONTENT_KEY_PREFIX.len() + 64);
    key.push_str(CONTENT_KEY_PREFIX);
    for byte in digest.as_ref() {
        // Writing to a String cannot fail.
        let _ = write!(key, "{byte:02x}");
    }
    key
}

/// The Reporting Web Service `MessageTrace` shape that Devo parses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MessageTrace<'a> {
    /// Tenant (Graph does not return the organization's domain: the tenant id stands in).
    pub organization: &'a str,
    /// Message-ID header.
    pub message_id: Option<&'a str>,
    /// Received time, `yyyy-MM-ddTHH:mm:ss.fffffff` in UTC, as the Reporting Web Service writes
    /// it; `null` when the API sent no readable time.
    pub received: Option<String>,
    pub sender_address: Option<&'a str>,
    pub recipient_address: Option<&'a str>,
    pub subject: Option<&'a str>,
    /// Status with the Reporting Web Service's capitalisation, e.g. `Delivered`.
    pub status: Option<String>,
    /// Destination IP.
    #[serde(rename = "ToIP")]
    pub to_ip: Option<&'a str>,
    /// Source IP.
    #[serde(rename = "FromIP")]
    pub from_ip: Option<&'a str>,
    /// Size in bytes.
    pub size: Option<i64>,
    /// Message trace id.
    pub message_trace_id: &'a str,
    /// Start of the query window that returned the record.
    pub start_date: String,
    /// End of the query window that returned the record.
    pub end_date: String,
    /// Position of the record in the window's results.
    pub index: u64,
}

/// The window and tenant a record was pulled for.
#[derive(Debug, Clone, Copy)]
pub struct MappingContext<'a> {
    /// Tenant id.
    pub organization: &'a str,
    /// Window start.
    pub start: DateTime<Utc>,
    /// Window end.
    pub end: DateTime<Utc>,
}

/// Formats a time as the Reporting Web Service does: seven fractional digits, no zone (UTC).
pub fn reporting_time(t: DateTime<Utc>) -> String {
    format!("{}.{:07}", t.format("%Y-%m-%dT%H:%M:%S"), ticks_100ns(t))
}

/// Sub-second part in 100 ns ticks (.NET's resolution, seven digits).
pub fn ticks_100ns(t: DateTime<Utc>) -> u32 {
    // A leap second reports more than 10^9 ns: keep it within seven digits.
    (t.timestamp_subsec_nanos() / 100).min(9_999_999)
}

/// Maps a Graph status onto the Reporting Web Service spelling (`filteredAsSpam` → `FilteredAsSpam`).
pub fn reporting_status(status: &str) -> String {
    let mut chars = status.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Maps one Graph record onto the fields Devo's message tracing parser reads.
pub fn to_message_trace<'a>(
    record: &'a GraphRecord,
    context: &MappingContext<'a>,
    index: u64,
) -> MessageTrace<'a> {
    MessageTrace {
        organization: context.organization,
        message_id: record.message_id.as_deref(),
        received: record.received_date_time.map(reporting_time),
        sender_address: record.sender_address.as_deref(),
        recipient_address: record.recipient_address.as_deref(),
        subject: record.subject.as_deref(),
        status: record.status.as_deref().map(reporting_status),
        to_ip: record.to_ip.as_deref(),
        from_ip: record.from_ip.as_deref(),
        size: record.size,
        message_trace_id: &record.id,
        start_date: reporting_time(context.start),
        end_date: reporting_time(context.end),
        index,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn graph_record_maps_onto_reporting_field_names() {
        let json = r#"{"id":"4c0e-1","messageId":"<a@b>","receivedDateTime":"2026-11-24T10:15:30.1234567Z",
            "senderAddress":"s@contoso.com","recipientAddress":"r@contoso.com","subject":"Hi",
            "status":"filteredAsSpam","size":1234,"fromIP":"203.0.113.5","toIP":null}"#;
        let record: GraphRecord = serde_json::from_str(json).unwrap();
        assert_eq!(record.key(), "4c0e-1|r@contoso.com");
        let start = Utc.with_ymd_and_hms(2026, 11, 24, 6, 0, 0).unwrap();
        let context = MappingContext {
            organization: "tenant-1",
            start,
            end: start + chrono::Duration::hours(6),
        };
        let mapped = serde_json::to_value(to_message_trace(&record, &context, 7)).unwrap();
        assert_eq!(
            mapped,
            serde_json::json!({
                "Organization": "tenant-1", "MessageId": "<a@b>", "Received": "2026-11-24T10:15:30.1234567",
                "SenderAddress": "s@contoso.com", "RecipientAddress": "r@contoso.com", "Subject": "Hi",
                "Status": "FilteredAsSpam", "ToIP": null, "FromIP": "203.0.113.5", "Size": 1234,
                "MessageTraceId": "4c0e-1", "StartDate": "2026-11-24T06:00:00.0000000",
                "EndDate": "2026-11-24T12:00:00.0000000", "Index": 7
            })
        );
    }

    #[test]
    fn minimal_record_parses() {
        let record: GraphRecord =
            serde_json::from_str(r#"{"id":"x","receivedDateTime":"2026-11-24T10:15:30Z"}"#)
                .unwrap();
        assert_eq!(record.key(), "x|");
        assert_eq!(reporting_status("delivered"), "Delivered");
        assert_eq!(reporting_status(""), "");
    }

    fn keyless(json: &str) -> GraphRecord {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn records_without_an_id_or_recipient_are_keyed_by_their_content() {
        let a = keyless(
            r#"{"id":"","recipientAddress":"r@contoso.com","subject":"a","receivedDateTime":"2026-11-24T10:15:30Z"}"#,
        );
        let b = keyless(
            r#"{"id":"","recipientAddress":"r@contoso.com","subject":"b","receivedDateTime":"2026-11-24T10:15:30Z"}"#,
        );
        let c = keyless(r#"{"id":"x","subject":"a"}"#);
        assert!(a.missing_key() && b.missing_key() && c.missing_key());
        assert_eq!(
            a.key(),
            b.key(),
            "the reported identity alone would fold them"
        );
        assert_ne!(
            a.content_key(),
            b.content_key(),
            "two different records stay apart"
        );
        assert_eq!(
            a.content_key(),
            a.clone().content_key(),
            "the same record keeps its key"
        );
        assert!(a.content_key().starts_with(CONTENT_KEY_PREFIX));
        assert!(
            !a.content_key().contains('|'),
            "never equal to an id|recipient key"
        );
        let whole = keyless(r#"{"id":"x","recipientAddress":"r@contoso.com"}"#);
        assert!(!whole.missing_key());
        assert!(keyless(r#"{"id":" ","recipientAddress":"r@contoso.com"}"#).missing_key());
    }
}
