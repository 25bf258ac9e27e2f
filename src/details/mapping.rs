//! A detail row as Devo receives it: the Reporting Web Service's `MessageTraceDetail` field
//! names, keyed like the trace line (`MessageTraceId` + `RecipientAddress`) so that a query
//! joins the two. Pure.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::trace::detail::{DetailCandidate, DetailRow};
use crate::trace::record::reporting_time;

/// The Reporting Web Service `MessageTraceDetail` shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MessageTraceDetail<'a> {
    /// The tenant id, as on the trace line.
    pub organization: &'a str,
    /// The Message-ID header (the row's, else the trace record's).
    pub message_id: Option<&'a str>,
    /// The trace line's `MessageTraceId`.
    pub message_trace_id: &'a str,
    /// When the event happened, `yyyy-MM-ddTHH:mm:ss.fffffff` in UTC like the trace line's
    /// `Received`; `null` when Graph sent no readable time.
    pub date: Option<String>,
    /// `Receive`, `Submit`, `Deliver`, `Fail`, `Quarantine`, …
    pub event: Option<&'a str>,
    /// What was done at the event.
    pub action: Option<&'a str>,
    /// Graph's `description`: the NDR, the rule, the folder.
    pub detail: Option<&'a str>,
    /// Graph's `data`: the event's XML.
    pub data: Option<&'a str>,
    /// The trace line's `SenderAddress`.
    pub sender_address: Option<&'a str>,
    /// The trace line's `RecipientAddress`.
    pub recipient_address: &'a str,
}

/// Maps one detail row of `delivery` of the tenant `organization`.
pub fn to_detail<'a>(
    row: &'a DetailRow,
    delivery: &'a DetailCandidate,
    organization: &'a str,
) -> MessageTraceDetail<'a> {
    MessageTraceDetail {
        organization,
        message_id: row.message_id.as_deref().or(delivery.message_id.as_deref()),
        message_trace_id: &delivery.id,
        date: row.date_time.map(reporting_time),
        event: row.event.as_deref(),
        action: row.action.as_deref(),
        detail: row.description.as_deref(),
        data: row.data.as_deref(),
        sender_address: delivery.sender.as_deref(),
        recipient_address: &delivery.recipient,
    }
}

/// The time of the row's Devo line: the event's, or the message's receipt when Graph sent no
/// readable time.
pub fn line_time(row: &DetailRow, delivery: &DetailCandidate) -> DateTime<Utc> {
    row.date_time.unwrap_or(delivery.received)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    fn delivery() -> DetailCandidate {
        DetailCandidate {
            id: "7e3b2b2e-1b5e-4b17-80cc-2af6c1d9a3b1".into(),
            recipient: "o'brien@contoso.com".into(),
            sender: Some("billing@fabrikam.com".into()),
            message_id: Some("<trace@x>".into()),
            status: "failed".into(),
            received: Utc.with_ymd_and_hms(2026, 11, 24, 10, 30, 0).unwrap(),
        }
    }

    #[test]
    fn a_row_keeps_the_reporting_field_names_and_the_trace_lines_keys() {
        let body = br#"{"value":[{"id":"7e3b2b2e-1b5e-4b17-80cc-2af6c1d9a3b1","messageId":"<d9@contoso.com>",
            "dateTime":"2026-11-24T10:30:05.1234567Z","event":"Fail","action":"",
            "description":"Reason: [{LED=550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup}]",
            "data":"<root><MEP Name=\"Connector\" String=\"Outbound\" /></root>"}]}"#;
        let (rows, _) = crate::trace::detail::parse_details(body).unwrap();
        let d = delivery();
        let json = serde_json::to_value(to_detail(&rows[0], &d, "tenant-1")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "Organization": "tenant-1", "MessageId": "<d9@contoso.com>",
                "MessageTraceId": "7e3b2b2e-1b5e-4b17-80cc-2af6c1d9a3b1",
                "Date": "2026-11-24T10:30:05.1234567", "Event": "Fail", "Action": "",
                "Detail": "Reason: [{LED=550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup}]",
                "Data": "<root><MEP Name=\"Connector\" String=\"Outbound\" /></root>",
                "SenderAddress": "billing@fabrikam.com", "RecipientAddress": "o'brien@contoso.com"
            })
        );
        let text = serde_json::to_string(&to_detail(&rows[0], &d, "tenant-1")).unwrap();
        let names = [
            "Organization",
            "MessageId",
            "MessageTraceId",
            "Date",
            "Event",
            "Action",
            "Detail",
            "Data",
            "SenderAddress",
            "RecipientAddress",
        ];
        let at: Vec<usize> = names
            .iter()
            .map(|n| text.find(&format!("\"{n}\":")).unwrap())
            .collect();
        assert!(
            at.windows(2).all(|w| w[0] < w[1]),
            "in the Reporting Web Service's order: {text}"
        );
        assert_eq!(line_time(&rows[0], &d), rows[0].date_time.unwrap());
    }

    #[test]
    fn a_row_without_a_time_or_message_id_takes_the_trace_records() {
        let (rows, _) =
            crate::trace::detail::parse_details(br#"{"value":[{"event":"Receive"}]}"#).unwrap();
        let d = delivery();
        let m = to_detail(&rows[0], &d, "t");
        assert_eq!((m.message_id, m.date), (Some("<trace@x>"), None));
        assert_eq!(line_time(&rows[0], &d), d.received);
    }

    proptest! {
        #[test]
        fn any_row_becomes_one_line_of_json_joinable_to_its_trace_line(
            event in ".{0,40}", description in ".{0,200}", data in ".{0,200}",
            recipient in "[a-z'+.]{1,20}@[a-z]{1,10}\\.com", id in "[0-9a-f-]{1,36}",
        ) {
            let row = DetailRow {
                id: None, message_id: None, date_time: None,
                event: Some(event), action: None, description: Some(description), data: Some(data),
            };
            let d = DetailCandidate { recipient: recipient.clone(), id: id.clone(), ..delivery() };
            let mut line = Vec::new();
            crate::devo::frame_line(&mut line, line_time(&row, &d), "h", "my.app.office365.messagetracedetail", &to_detail(&row, &d, "t")).unwrap();
            let text = String::from_utf8(line).unwrap();
            prop_assert_eq!(text.matches('\n').count(), 1);
            prop_assert!(text.ends_with('\n'));
            let json: serde_json::Value = serde_json::from_str(text.split_once(": ").unwrap().1).unwrap();
            prop_assert_eq!(&json["MessageTraceId"], &serde_json::json!(id));
            prop_assert_eq!(&json["RecipientAddress"], &serde_json::json!(recipient));
        }
    }
}
