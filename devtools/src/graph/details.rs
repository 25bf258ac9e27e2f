//! `GET /v1.0/admin/exchange/tracing/messageTraces/{id}/getDetailsByRecipient(recipientAddress='…')`:
//! the per-recipient events of one delivery, in the same per-tenant throttle as the list
//! calls.
//!
//! Exists so the product's delivery details are tested against the contract of the real API:
//! the OData-quoted address in a path segment, realistic rows for each status (`Receive`,
//! `Submit`, `Fail` with an NDR, `Deliver` to the Junk folder, `Quarantine` with its data),
//! 404 for a delivery the tenant does not have, 429 once the quota is spent; gzip-compressed
//! when the request accepts it, like a page of records.

use chrono::{DateTime, TimeDelta, Utc};
use hyper::Response;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use serde_json::{Value, json};

use super::MESSAGE_TRACES_PATH;
use super::call::Call;
use super::gzip;
use super::identity::bearer_tenant;
use super::paging::{not_get, throttled, unauthorized};
use super::respond::{Resp, bad_request, graph_error};
use crate::records::{GraphRecord, graph_time};
use crate::util::{full, percent_decode_path};

/// The id and recipient of a details path below `messageTraces/`: `{id}/getDetailsByRecipient(recipientAddress='…')`,
/// percent-decoded, the address an OData string literal (`''` is one quote).
pub(super) fn parse_details_path(rest: &str) -> Result<(String, String), String> {
    let (id, call) = rest
        .split_once('/')
        .ok_or("Resource not found for the segment 'messageTraces'.")?;
    let id = percent_decode_path(id);
    let call = percent_decode_path(call);
    let literal = call
        .strip_prefix("getDetailsByRecipient(recipientAddress=")
        .and_then(|c| c.strip_suffix(')'))
        .ok_or_else(|| format!("Resource not found for the segment '{call}'."))?;
    let inner = literal
        .strip_prefix('\'')
        .and_then(|l| l.strip_suffix('\''))
        .ok_or("Syntax error: the recipientAddress parameter must be a string literal in single quotes.")?;
    // Inside the literal a quote is written twice; a single one ends it too early.
    let mut address = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\'' && chars.next() != Some('\'') {
            return Err(format!(
                "Syntax error at position {}: a single quote in a string literal must be doubled.",
                address.len()
            ));
        }
        address.push(c);
    }
    Ok((id, address))
}

/// `GET …/messageTraces/{id}/getDetailsByRecipient(recipientAddress='…')`.
pub(super) async fn details_by_recipient(call: &mut Call<'_>, rest: &str) -> Resp {
    let tenant = match bearer_tenant(call) {
        Ok((tenant, _scope)) => tenant,
        Err(e) => return unauthorized(e, &call.crid),
    };
    if let Some(refused) = not_get(call) {
        return refused;
    }
    let (id, recipient) = match parse_details_path(rest) {
        Ok(found) => found,
        Err(message) if message.starts_with("Resource") => {
            return graph_error(404, "ResourceNotFound", &message, &call.crid);
        }
        Err(message) => return bad_request(&message, &call.crid),
    };
    let mut st = call.shared.lock();
    let t = &mut st.tenants[tenant];
    if let Some(resp) = throttled(t, &call.crid) {
        return resp;
    }
    let now = Utc::now();
    let found = t
        .records
        .iter()
        .find(|s| s.visible(now) && s.record.id == id && s.record.recipient_address == recipient);
    let Some(stored) = found else {
        return graph_error(
            404,
            "ResourceNotFound",
            &format!("No message trace {id} with that recipient in this tenant."),
            &call.crid,
        );
    };
    let rows = detail_rows(&stored.record);
    drop(st);
    let context = format!(
        "{}/v1.0/$metadata#Collection(microsoft.graph.exchangeMessageTraceDetail)",
        call.shared.url
    );
    let body = json!({ "@odata.context": context, "value": rows }).to_string();
    let mut resp = gzip::respond(call.gzip(), body.into_bytes(), |body| {
        Response::new(full(body))
    });
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json;odata.metadata=minimal;charset=utf-8"),
    );
    resp
}

/// The detail rows Graph gives for `record`, by its status: `Submit` for a sender of the
/// tenant (contoso.com), `Receive` always, then what happened to the delivery.
pub fn detail_rows(record: &GraphRecord) -> Vec<Value> {
    let internal = record.sender_address.ends_with("@contoso.com");
    let server = "SA1PR12MB6727.namprd12.prod.outlook.com";
    let mut events: Vec<(&str, String, String)> = Vec::new();
    if internal {
        events.push((
            "Submit",
            format!("The message was submitted by {}.", record.sender_address),
            format!("<root><MEP Name=\"ClientName\" String=\"{server}\" /></root>"),
        ));
    }
    events.push((
        "Receive",
        format!("Message received by: {server}"),
        format!(
            "<root><MEP Name=\"MessageSize\" Integer=\"{}\" /><MEP Name=\"ClientIP\" String=\"{}\" /></root>",
            record.size,
            record.from_ip.as_deref().unwrap_or("")
        ),
    ));
    if let Some((event, description, data)) = outcome(&record.status) {
        events.push((event, description.to_owned(), data.to_owned()));
    }
    events
        .into_iter()
        .enumerate()
        .map(|(i, (event, description, data))| {
            let at = record.received_date_time + TimeDelta::seconds(i as i64 + 1);
            row(record, at, event, &description, &data)
        })
        .collect()
}

/// The last event of a delivery in `status`: its name, description and data (none while its
/// status is being determined).
fn outcome(status: &str) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match status.to_ascii_lowercase().as_str() {
        "failed" => (
            "Fail",
            "Reason: [{LED=550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup};{MSG=};{FQDN=};{IP=};{LRT=}]. OutboundProxyTargetIP: . OutboundProxyTargetHostName: ",
            "<root><MEP Name=\"DeliveryPriority\" String=\"Normal\" /><MEP Name=\"RecipientStatus\" String=\"550 5.1.10 RESOLVER.ADR.RecipientNotFound\" /></root>",
        ),
        "filteredasspam" => (
            "Deliver",
            "The message was delivered to the Junk Email folder.",
            "<root><MEP Name=\"DeliveryFolder\" String=\"Junk Email\" /><MEP Name=\"SCL\" Integer=\"5\" /></root>",
        ),
        "quarantined" => (
            "Quarantine",
            "The message was quarantined as high confidence phishing.",
            "<root><MEP Name=\"QuarantineReason\" String=\"HighConfPhish\" /><MEP Name=\"Policy\" String=\"Default\" /><MEP Name=\"Action\" String=\"Quarantine\" /></root>",
        ),
        "pending" => (
            "Defer",
            "The message was deferred: 451 4.4.0 DNS query failed. It will be retried.",
            "<root><MEP Name=\"RetryCount\" Integer=\"1\" /></root>",
        ),
        "expanded" => (
            "Expand",
            "The distribution group was expanded to its members.",
            "<root><MEP Name=\"MemberCount\" Integer=\"12\" /></root>",
        ),
        "recalled" => (
            "Recall",
            "The sender recalled the message.",
            "<root><MEP Name=\"RecallStatus\" String=\"Success\" /></root>",
        ),
        "gettingstatus" => return None,
        _ => (
            "Deliver",
            "The message was successfully delivered.",
            "<root><MEP Name=\"DeliveryFolder\" String=\"Inbox\" /></root>",
        ),
    })
}

fn row(
    record: &GraphRecord,
    at: DateTime<Utc>,
    event: &str,
    description: &str,
    data: &str,
) -> Value {
    json!({
        "id": record.id,
        "messageId": record.message_id,
        "dateTime": graph_time(&at),
        "event": event,
        "action": "",
        "description": description,
        "data": data,
    })
}

/// Whether `path` names a details call (below the message trace collection), and the part
/// after `messageTraces/`.
pub(super) fn details_path(path: &str) -> Option<&str> {
    path.strip_prefix(MESSAGE_TRACES_PATH)?.strip_prefix('/')
}
