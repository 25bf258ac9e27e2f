//! The Reporting Web Service `MessageTrace` report on the same local server as the Graph
//! stand-in: `GET /ecp/reportingwebservice/reporting.svc/MessageTrace` with
//! `$filter=StartDate eq datetime'S' and EndDate eq datetime'E'`.
//!
//! Exists so the product's `TRACE_API=reporting` path can be tested without a tenant, with the
//! shapes the service is known to return: JSON light (`value`, relative `odata.nextLink`) and
//! verbose JSON (`d.results` + `d.__next`, or a bare `d` array) with `/Date(ms)/` dates; rows in
//! no particular order; `null` fields; the 10-day lookback; tokens only for the Exchange Online
//! scope; OData error bodies (e.g. 403 "No permission to access the report").

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use hyper::Method;
use serde_json::{Value, json};

use super::call::Call;
use super::faults::{Fault, status_fault};
use super::identity::{BearerError, bearer_tenant};
use super::reporting_state::ReportingFormat;
use super::respond::{Resp, raw_response};
use super::state::TenantState;
use crate::records::GraphRecord;
use crate::util::percent_encode;

/// Path of the report.
pub const REPORTING_PATH: &str = "/ecp/reportingwebservice/reporting.svc/MessageTrace";
/// The only token scope the report accepts (Exchange Online, global cloud).
pub const REPORTING_SCOPE: &str = "https://outlook.office365.com/.default";
/// The `Organization` of every row.
pub const REPORTING_ORGANIZATION: &str = "contoso.onmicrosoft.com";
/// How far back the report serves rows.
pub const REPORTING_LOOKBACK: TimeDelta = TimeDelta::days(10);

const JSON_LIGHT: &str = "application/json;odata=minimalmetadata;streaming=true;charset=utf-8";
const JSON_VERBOSE: &str = "application/json;odata=verbose;charset=utf-8";

/// An OData error body as the Reporting Web Service writes it, e.g. for a 403
/// `reporting_error_body("No permission to access the report for the organization.")`.
pub fn reporting_error_body(message: &str) -> String {
    json!({"odata.error": {"code": "", "message": {"lang": "en-US", "value": message}}}).to_string()
}

fn error(status: u16, message: &str) -> Resp {
    raw_response(
        status,
        reporting_error_body(message),
        "application/json;charset=utf-8",
    )
}

/// Parses `datetime'…'`: `yyyy-MM-ddTHH:mm:ss[.fffffff]`, UTC (a `Z` is tolerated).
fn parse_datetime_literal(text: &str) -> Option<DateTime<Utc>> {
    let inner = text.strip_prefix("datetime'")?.strip_suffix('\'')?;
    NaiveDateTime::parse_from_str(inner.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

/// Parses `StartDate eq datetime'S' and EndDate eq datetime'E'`.
fn parse_filter(filter: &str) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let words: Vec<&str> = filter.split_whitespace().collect();
    match words.as_slice() {
        ["StartDate", "eq", start, "and", "EndDate", "eq", end] => Ok((
            parse_datetime_literal(start)
                .ok_or_else(|| format!("Invalid StartDate value {start}."))?,
            parse_datetime_literal(end).ok_or_else(|| format!("Invalid EndDate value {end}."))?,
        )),
        _ => Err(format!(
            "The query filter '{filter}' is not supported: use StartDate eq datetime'…' and EndDate eq datetime'…'."
        )),
    }
}

/// Seven fractional digits, no zone (JSON light).
fn light_time(t: DateTime<Utc>) -> String {
    let ticks = t.timestamp_subsec_nanos() / 100;
    format!("{}.{ticks:07}", t.format("%Y-%m-%dT%H:%M:%S"))
}

fn verbose_time(t: DateTime<Utc>) -> String {
    format!("/Date({})/", t.timestamp_millis())
}

/// A stable order unrelated to time: the report's order is unspecified.
fn scramble(r: &GraphRecord) -> u64 {
    r.id.bytes()
        .chain(r.recipient_address.bytes())
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

fn row(
    r: &GraphRecord,
    index: usize,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    format: ReportingFormat,
    base: &str,
) -> Value {
    let time = |t| match format {
        ReportingFormat::Light => light_time(t),
        ReportingFormat::Verbose | ReportingFormat::VerboseBare => verbose_time(t),
    };
    let mut status = r.status.clone();
    if let Some(first) = status.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    let mut row = json!({
        "Organization": REPORTING_ORGANIZATION,
        "MessageId": r.message_id,
        "Received": time(r.received_date_time),
        "SenderAddress": r.sender_address,
        "RecipientAddress": r.recipient_address,
        "Subject": r.subject,
        "Status": status,
        "ToIP": r.to_ip,
        "FromIP": r.from_ip,
        "Size": r.size,
        "MessageTraceId": r.id,
        "StartDate": time(start),
        "EndDate": time(end),
        "Index": index,
    });
    if format != ReportingFormat::Light {
        row["__metadata"] = json!({
            "id": format!("{base}/ecp/ReportingWebService/Reporting.svc/MessageTrace({index})"),
            "uri": format!("{base}/ecp/ReportingWebService/Reporting.svc/MessageTrace({index})"),
            "type": "TenantReporting.MessageTrace",
        });
    }
    row
}

/// Authenticates (a token for [`REPORTING_SCOPE`]) and applies the tenant's next fault;
/// returns the tenant or the answer to give instead.
async fn admit(call: &mut Call<'_>, has_skiptoken: bool) -> Result<usize, Resp> {
    let tenant = match bearer_tenant(call) {
        Ok((tenant, scope)) if scope == REPORTING_SCOPE => tenant,
        Ok((_, scope)) => {
            return Err(error(
                401,
                &format!(
                    "The access token was issued for '{scope}'; the report requires '{REPORTING_SCOPE}' (Office 365 Exchange Online)."
                ),
            ));
        }
        Err(BearerError::Missing | BearerError::Unknown) => {
            return Err(error(
                401,
                "The access token is missing, expired or not one this tenant issued.",
            ));
        }
    };
    match call.shared.take_trace_fault(tenant, has_skiptoken) {
        Some(Fault::TraceStatus {
            status,
            body,
            retry_after,
        }) => Err(status_fault(status, body, retry_after)),
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            Ok(tenant)
        }
        Some(Fault::ExpireSkipToken) => Err(error(400, "The skip token is invalid or expired.")),
        Some(Fault::TruncatedPage | Fault::TokenStatus { .. }) | None => Ok(tenant),
    }
}

/// Validates `$filter`: the bounds, in order, within the lookback; the error is the message
/// of a 400.
fn query_bounds(call: &Call<'_>) -> Result<(String, DateTime<Utc>, DateTime<Utc>), String> {
    let filter = call
        .param("$filter")
        .ok_or("The MessageTrace report requires $filter with StartDate and EndDate.")?;
    let (start, end) = parse_filter(&filter)?;
    if start > end {
        return Err("StartDate is later than EndDate.".into());
    }
    if start < Utc::now() - REPORTING_LOOKBACK {
        return Err(format!(
            "Message trace data is available for the last 10 days only; StartDate {} is older than that.",
            light_time(start)
        ));
    }
    Ok((filter, start, end))
}

/// `GET /ecp/reportingwebservice/reporting.svc/MessageTrace`.
pub(super) async fn message_trace(call: &mut Call<'_>) -> Resp {
    let skiptoken = call.param("$skiptoken");
    let tenant = match admit(call, skiptoken.is_some()).await {
        Ok(tenant) => tenant,
        Err(resp) => return resp,
    };
    if call.method != Method::GET {
        return error(
            405,
            &format!("The HTTP method '{}' is not allowed.", call.method),
        );
    }
    let (filter, start, end) = match query_bounds(call) {
        Ok(bounds) => bounds,
        Err(message) => return error(400, &message),
    };
    let mut st = call.shared.lock();
    let t = &mut st.tenants[tenant];
    let offset = match &skiptoken {
        None => 0,
        Some(tok) => match t.reporting.offset(tok, start, end) {
            Some(offset) => offset,
            None => return error(400, "The skip token is invalid or expired."),
        },
    };
    let (rows, next) = page_rows(t, start, end, offset, &filter, &call.shared.url);
    let format = t.reporting.format;
    drop(st);
    answer(format, rows, next, &call.shared.url)
}

/// The page's rows and, when more remain, the relative nextLink (its skip token registered).
fn page_rows(
    t: &mut TenantState,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    offset: usize,
    filter: &str,
    base: &str,
) -> (Vec<Value>, Option<String>) {
    let format = t.reporting.format;
    let mut matching: Vec<&GraphRecord> = t.visible_in(start, end, Utc::now(), None).collect();
    matching.sort_by_key(|r| scramble(r));
    let take = match format {
        ReportingFormat::VerboseBare => usize::MAX,
        _ => t.reporting.page_size,
    };
    let rows: Vec<Value> = matching
        .iter()
        .enumerate()
        .skip(offset)
        .take(take)
        .map(|(i, r)| row(r, i, start, end, format, base))
        .collect();
    let next_offset = offset + rows.len();
    let more = next_offset < matching.len();
    let next = more.then(|| {
        let tok = t.reporting.issue(start, end, next_offset);
        format!(
            "reportingwebservice/reporting.svc/MessageTrace?$filter={}&$skiptoken={tok}",
            percent_encode(filter)
        )
    });
    (rows, next)
}

/// The body in the configured form.
fn answer(format: ReportingFormat, rows: Vec<Value>, next: Option<String>, base: &str) -> Resp {
    let (body, content_type) = match format {
        ReportingFormat::Light => {
            let mut body = json!({
                "odata.metadata": format!("{base}/ecp/ReportingWebService/Reporting.svc/$metadata#MessageTrace"),
                "value": rows,
            });
            if let Some(link) = next {
                body["odata.nextLink"] = Value::String(link);
            }
            (body, JSON_LIGHT)
        }
        ReportingFormat::Verbose => {
            let mut d = json!({ "results": rows });
            if let Some(link) = next {
                d["__next"] = Value::String(format!("{base}/ecp/{link}"));
            }
            (json!({ "d": d }), JSON_VERBOSE)
        }
        ReportingFormat::VerboseBare => (json!({ "d": rows }), JSON_VERBOSE),
    };
    raw_response(200, body.to_string(), content_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_and_dates() {
        let (s, e) = parse_filter(
            "StartDate eq datetime'2026-11-24T10:00:00' and EndDate eq datetime'2026-11-24T11:00:00.1234567'",
        )
        .unwrap();
        assert!(s < e);
        assert_eq!(light_time(e), "2026-11-24T11:00:00.1234567");
        assert!(parse_filter("receivedDateTime ge 2026-11-24T10:00:00Z").is_err());
        assert!(
            parse_filter("StartDate eq '2026-11-24' and EndDate eq datetime'2026-11-24T11:00:00'")
                .is_err()
        );
        assert_eq!(verbose_time(s), format!("/Date({})/", s.timestamp_millis()));
    }
}
