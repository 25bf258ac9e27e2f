//! Skip tokens shaped like Microsoft's: `$skiptoken` is the standard base64 (with padding) of a
//! JSON object that says where the next page starts, e.g.
//! `{"StartDate":"2026-03-26T15:43:20.2718704Z","EndDate":"2026-03-28T13:04:13.0580000Z",
//! "StartingRecipientAddress":"user@example.com","StartingMessageTraceId":"…","ResultSize":"1000"}`,
//! percent-encoded in the nextLink.
//!
//! Exists so the product meets the tokens it will meet in production, including the
//! double-encoded ones Graph is known to issue (every date and address wrapped in extra literal
//! quotes, elastic/integrations#18134), which the product must repair before following them.

use std::cmp::Reverse;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::stored::tick;
use crate::records::{GraphRecord, graph_time};

/// The fields of a skip token's JSON object, in the order the server writes them. The first
/// two are dates with 7 fractional digits and `Z`; `StartDate` is the query's start, `EndDate`
/// the `receivedDateTime` of the first record of the next page (newest first, so the next page
/// holds records up to it); `StartingRecipientAddress` and `StartingMessageTraceId` that
/// record's recipient and id; `ResultSize` the page size (`$top`) as a decimal string.
pub const SKIPTOKEN_FIELDS: [&str; 5] = [
    "StartDate",
    "EndDate",
    "StartingRecipientAddress",
    "StartingMessageTraceId",
    "ResultSize",
];

/// Where a page starts: the decoded content of a skip token.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Cursor {
    /// The query's start (`StartDate`), at Graph's resolution.
    pub start: DateTime<Utc>,
    /// `receivedDateTime` of the first record of the page (`EndDate`).
    pub at: DateTime<Utc>,
    /// That record's recipient.
    pub recipient: String,
    /// That record's id (empty: the first record at `at` for `recipient`).
    pub id: String,
    /// `$top` of the query.
    pub top: usize,
}

impl Cursor {
    /// The cursor of a page of the query starting at `start` whose first record is `first`.
    pub fn at_record(start: DateTime<Utc>, first: &GraphRecord, top: usize) -> Cursor {
        Cursor {
            start: tick(start),
            at: tick(first.received_date_time),
            recipient: first.recipient_address.clone(),
            id: first.id.clone(),
            top,
        }
    }

    /// Its position in the page order of [`super::stored::order_key`]: a record belongs to this
    /// page or a later one when its key is not less than this.
    pub fn key(&self) -> (Reverse<DateTime<Utc>>, &str, &str) {
        (Reverse(self.at), self.id.as_str(), self.recipient.as_str())
    }
}

/// The JSON inside the base64.
#[derive(Serialize, Deserialize)]
struct Wire {
    #[serde(rename = "StartDate")]
    start_date: String,
    #[serde(rename = "EndDate")]
    end_date: String,
    #[serde(rename = "StartingRecipientAddress")]
    starting_recipient_address: String,
    #[serde(rename = "StartingMessageTraceId", default)]
    starting_message_trace_id: String,
    #[serde(rename = "ResultSize")]
    result_size: String,
}

/// The `$skiptoken` value (before percent-encoding) for `cursor`. `double_encoded` wraps the
/// dates, the address and the id in extra literal quotes, as Graph sometimes does; the
/// `ResultSize` stays as it is, as in the tokens seen in elastic/integrations#18134.
pub(super) fn encode(cursor: &Cursor, double_encoded: bool) -> String {
    let q = |s: String| {
        if double_encoded {
            format!("\"{s}\"")
        } else {
            s
        }
    };
    let wire = Wire {
        start_date: q(graph_time(&cursor.start)),
        end_date: q(graph_time(&cursor.at)),
        starting_recipient_address: q(cursor.recipient.clone()),
        starting_message_trace_id: q(cursor.id.clone()),
        result_size: cursor.top.to_string(),
    };
    // Serializing a struct of strings cannot fail.
    STANDARD.encode(serde_json::to_vec(&wire).unwrap_or_default())
}

/// Why a skip token was refused.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum TokenError {
    /// Not base64 of the JSON object.
    Malformed,
    /// A value wrapped in extra quotes (a double-encoded token followed as is).
    Quoted {
        parameter: &'static str,
        value: String,
    },
    /// A value that does not parse.
    Invalid {
        parameter: &'static str,
        value: String,
    },
}

impl TokenError {
    /// The Graph error message for it, worded like the cmdlet errors Graph passes through.
    pub fn message(&self) -> String {
        match self {
            TokenError::Malformed => "The skip token is invalid or expired.".into(),
            TokenError::Quoted { parameter, value } | TokenError::Invalid { parameter, value } => {
                let (to_type, why) = match *parameter {
                    "StartDate" | "EndDate" => (
                        "System.DateTime",
                        "String was not recognized as a valid DateTime.",
                    ),
                    "StartingRecipientAddress" => (
                        "Microsoft.Exchange.Data.SmtpAddress",
                        "The email address is not valid.",
                    ),
                    "StartingMessageTraceId" => (
                        "System.Guid",
                        "Guid should contain 32 digits with 4 dashes.",
                    ),
                    _ => ("System.Int32", "Input string was not in a correct format."),
                };
                format!(
                    "Cannot process argument transformation on parameter '{parameter}'. Cannot convert value \"{value}\" to type \"{to_type}\". Error: \"{why}\""
                )
            }
        }
    }
}

fn quoted(value: &str) -> bool {
    value.len() >= 2 && value.starts_with('"') && value.ends_with('"')
}

/// Decodes a `$skiptoken` value (already percent-decoded).
pub(super) fn decode(token: &str) -> Result<Cursor, TokenError> {
    let bytes = STANDARD
        .decode(token.trim())
        .map_err(|_| TokenError::Malformed)?;
    let wire: Wire = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    let fields = [
        ("StartDate", &wire.start_date),
        ("EndDate", &wire.end_date),
        ("StartingRecipientAddress", &wire.starting_recipient_address),
        ("StartingMessageTraceId", &wire.starting_message_trace_id),
        ("ResultSize", &wire.result_size),
    ];
    if let Some((parameter, value)) = fields.iter().find(|(_, v)| quoted(v)) {
        return Err(TokenError::Quoted {
            parameter,
            value: (*value).clone(),
        });
    }
    let date = |parameter: &'static str, value: &str| {
        DateTime::parse_from_rfc3339(value)
            .map(|t| tick(t.with_timezone(&Utc)))
            .map_err(|_| TokenError::Invalid {
                parameter,
                value: value.to_string(),
            })
    };
    let top = wire
        .result_size
        .parse::<usize>()
        .map_err(|_| TokenError::Invalid {
            parameter: "ResultSize",
            value: wire.result_size.clone(),
        })?;
    Ok(Cursor {
        start: date("StartDate", &wire.start_date)?,
        at: date("EndDate", &wire.end_date)?,
        recipient: wire.starting_recipient_address,
        id: wire.starting_message_trace_id,
        top,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor() -> Cursor {
        let t = |s| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        Cursor {
            start: t("2026-03-26T15:43:20.2718704Z"),
            at: t("2026-03-28T13:04:13.058Z"),
            recipient: "user@example.com".into(),
            id: "0f2c6a34-1111-4222-8333-444455556666".into(),
            top: 1000,
        }
    }

    #[test]
    fn round_trip_and_microsoft_shape() {
        let c = cursor();
        let token = encode(&c, false);
        assert_eq!(decode(&token), Ok(c.clone()));
        let json: serde_json::Value =
            serde_json::from_slice(&STANDARD.decode(&token).unwrap()).unwrap();
        assert_eq!(json["StartDate"], "2026-03-26T15:43:20.2718704Z");
        assert_eq!(json["EndDate"], "2026-03-28T13:04:13.0580000Z");
        assert_eq!(json["StartingRecipientAddress"], "user@example.com");
        assert_eq!(json["ResultSize"], "1000");
        // Microsoft's four fields alone are enough.
        let four = STANDARD.encode(
            r#"{"StartDate":"2026-03-26T15:43:20.2718704Z","EndDate":"2026-03-28T13:04:13.0580000Z","StartingRecipientAddress":"user@example.com","ResultSize":"1000"}"#,
        );
        assert_eq!(decode(&four).unwrap().id, "");
    }

    #[test]
    fn double_encoded_is_refused_naming_start_date() {
        let token = encode(&cursor(), true);
        let json: serde_json::Value =
            serde_json::from_slice(&STANDARD.decode(&token).unwrap()).unwrap();
        assert_eq!(json["StartDate"], "\"2026-03-26T15:43:20.2718704Z\"");
        assert_eq!(json["ResultSize"], "1000");
        let err = decode(&token).unwrap_err();
        assert!(
            err.message()
                .starts_with("Cannot process argument transformation on parameter 'StartDate'."),
            "{}",
            err.message()
        );
        assert_eq!(decode("not base64!"), Err(TokenError::Malformed));
    }
}
