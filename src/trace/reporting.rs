//! The legacy Reporting Web Service `MessageTrace` report, page by page: kept for tenants and
//! national clouds that do not have Graph message trace.
//!
//! `GET {reporting}/ecp/reportingwebservice/reporting.svc/MessageTrace?$filter=StartDate eq
//! datetime'S' and EndDate eq datetime'E'`. The service answers OData "JSON light" (`value`,
//! relative `odata.nextLink`) or "verbose" JSON (`d.results` + `d.__next`, or a bare `d`
//! array), with dates as `yyyy-MM-ddTHH:mm:ss.fffffff` (UTC, no zone) or `/Date(ms)/`. Records
//! come in no specified order; each one is passed to Devo as received.

use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Utc};
use governor::DefaultDirectRateLimiter;
use serde_json::Value;

use crate::trace::auth::TokenSource;
use crate::trace::error::TraceError;
use crate::trace::fetch::{NoGate, PageRules, Spent, get_page, rate_limiter};
use crate::trace::http::Budget;
use crate::trace::origin::Origin;
use crate::trace::page::{SourcePage, TraceRecord};
use crate::trace::record::{record_key, reporting_time};
use crate::trace::row::{ReportingRecord, field_text};
use crate::window::Window;

/// Path of the report below the reporting host.
pub const MESSAGE_TRACE_PATH: &str = "/ecp/reportingwebservice/reporting.svc/MessageTrace";

/// Date fields that verbose JSON writes as `/Date(ms)/` and that are rewritten in the
/// seven-digit form of JSON light, so Devo's parser reads one format.
const DATE_FIELDS: [&str; 3] = ["Received", "StartDate", "EndDate"];

/// Parses a Reporting Web Service date: `2026-11-24T10:15:30.1234567` (UTC, no zone),
/// the same with `Z` or an offset, or `/Date(1732443330123)/` (ms since the epoch, optionally
/// followed by an offset such as `+0000`, which does not change the instant).
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Some(inner) = text
        .strip_prefix("/Date(")
        .and_then(|rest| rest.strip_suffix(")/"))
    {
        let digits_end = inner
            .char_indices()
            .skip(1)
            .find(|(_, c)| *c == '+' || *c == '-')
            .map_or(inner.len(), |(i, _)| i);
        let ms: i64 = inner[..digits_end].parse().ok()?;
        return DateTime::from_timestamp_millis(ms);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

/// Resolves an `odata.nextLink` (relative to `{reporting}/ecp/`, or absolute) to a URL.
pub fn resolve_next_link(base: &str, link: &str) -> Option<String> {
    let ecp = reqwest::Url::parse(&format!("{}/ecp/", base.trim_end_matches('/'))).ok()?;
    ecp.join(link).ok().map(String::from)
}

/// Turns one row into a record; only a row that is not an object is refused.
fn to_record(row: Value) -> Result<ReportingRecord, String> {
    let Value::Object(mut fields) = row else {
        return Err("a row is not a JSON object".into());
    };
    fields.remove("__metadata");
    for name in DATE_FIELDS {
        if let Some(Value::String(text)) = fields.get(name)
            && text.starts_with("/Date(")
            && let Some(t) = parse_time(text)
        {
            fields.insert(name.to_owned(), Value::String(reporting_time(t)));
        }
    }
    // Lenient like the Graph record: an odd value never blocks a window.
    let received = fields
        .get("Received")
        .and_then(Value::as_str)
        .and_then(parse_time);
    Ok(ReportingRecord {
        key: record_key(
            &field_text(&fields, "MessageTraceId"),
            &field_text(&fields, "RecipientAddress"),
        ),
        received,
        fields,
    })
}

/// Parses a 200 body in JSON light or verbose form into rows and the raw next link. An empty
/// page ends the report whatever link it carries.
pub fn parse_page(body: &[u8]) -> Result<(Vec<ReportingRecord>, Option<String>), String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let (rows, next) = match doc {
        Value::Object(mut top) => match top.remove("d") {
            Some(Value::Array(rows)) => (rows, None),
            Some(Value::Object(mut d)) => (
                match d.remove("results") {
                    Some(Value::Array(rows)) => rows,
                    _ => return Err("\"d\" has no \"results\" array".into()),
                },
                d.remove("__next"),
            ),
            Some(_) => return Err("\"d\" is neither an array nor an object".into()),
            None => (
                match top.remove("value") {
                    Some(Value::Array(rows)) => rows,
                    _ => return Err("no \"value\" array and no \"d\"".into()),
                },
                top.remove("odata.nextLink")
                    .or_else(|| top.remove("@odata.nextLink")),
            ),
        },
        _ => return Err("the body is not a JSON object".into()),
    };
    let records = rows
        .into_iter()
        .map(to_record)
        .collect::<Result<Vec<_>, _>>()?;
    let next = match next {
        Some(Value::String(link)) if !records.is_empty() && !link.is_empty() => Some(link),
        _ => None,
    };
    Ok((records, next))
}

/// The message of an OData error body (`odata.error` or `error`, `message.value` or `message`).
fn error_message(body: &[u8]) -> (String, String) {
    let doc: Value = serde_json::from_slice(body).unwrap_or_default();
    let error = doc.get("odata.error").or_else(|| doc.get("error"));
    let code = error
        .and_then(|e| e.get("code"))
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .unwrap_or("-")
        .to_owned();
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(|m| m.get("value").or(Some(m)))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned());
    (code, message)
}

/// What to do about a Reporting Web Service error status.
pub fn reporting_hint(status: u16, message: &str) -> &'static str {
    match status {
        403 if message.to_ascii_lowercase().contains("no permission") => {
            " (the app lacks a reader role for the report: assign the Entra ID role Global Reader (or Security Reader, or Exchange Administrator) to the app's service principal, besides the application permission ReportingWebService.Read.All of Office 365 Exchange Online with admin consent)"
        }
        403 => {
            " (grant the application permission ReportingWebService.Read.All of Office 365 Exchange Online with admin consent, and assign the app the Entra ID role Global Reader)"
        }
        401 => {
            " (the access token was refused: check tenant_id and client_id in the secret, and CLOUD / REPORTING_URL: the token's resource must be the cloud's Exchange Online host)"
        }
        400 => {
            " (the query was refused: check the window bounds above; the Reporting Web Service serves the last 10 days)"
        }
        404 => " (check REPORTING_URL / CLOUD: the MessageTrace report was not found)",
        429 => " (throttled: lower REQUESTS_PER_SECOND or the schedule's rate)",
        _ => "",
    }
}

/// A Reporting Web Service client: the reporting host, the token scope and the request rate.
#[derive(Clone)]
pub struct ReportingClient {
    http: reqwest::Client,
    base: String,
    scope: String,
    origin: Origin,
    limiter: Arc<DefaultDirectRateLimiter>,
}

impl std::fmt::Debug for ReportingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportingClient")
            .field("base", &self.base)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// Formats a query bound as an OData v2 `datetime'…'` literal (UTC, no zone).
pub fn query_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

impl ReportingClient {
    /// A client for the reporting host `base` whose tokens are for `scope`.
    pub fn new(
        http: reqwest::Client,
        base: &str,
        scope: &str,
        requests_per_second: u32,
    ) -> ReportingClient {
        ReportingClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            scope: scope.to_owned(),
            origin: Origin::of(base, "REPORTING_URL"),
            limiter: rate_limiter(requests_per_second),
        }
    }

    /// The token scope: the cloud's Exchange Online resource.
    pub fn scope(&self) -> String {
        self.scope.clone()
    }

    /// The first page of a window: `StartDate eq datetime'start' and EndDate eq datetime'end'`.
    pub fn first_page_url(&self, window: &Window) -> String {
        let filter = format!(
            "StartDate eq datetime'{}' and EndDate eq datetime'{}'",
            query_time(window.start),
            query_time(window.query_end())
        );
        match reqwest::Url::parse(&format!("{}{MESSAGE_TRACE_PATH}", self.base)) {
            Ok(mut url) => {
                url.query_pairs_mut().append_pair("$filter", &filter);
                url.to_string()
            }
            // The base was validated as a URL when the configuration was read.
            Err(_) => format!("{}{MESSAGE_TRACE_PATH}", self.base),
        }
    }

    /// Fetches one page, with retries within the budget.
    pub async fn page(
        &self,
        url: &str,
        tokens: &mut TokenSource,
        budget: &Budget,
        what: &str,
        spent: &mut Spent,
    ) -> Result<SourcePage, TraceError> {
        let rules = PageRules {
            http: &self.http,
            limiter: &self.limiter,
            api: "reporting",
            origin: &self.origin,
            parse: parse_page,
            headers: &[],
            wait_when_throttled: true,
            refusal: |status, body: &[u8]| {
                let (code, message) = error_message(body);
                TraceError::Api {
                    api: "reporting",
                    what: what.to_owned(),
                    status,
                    hint: reporting_hint(status, &message),
                    code,
                    message,
                }
            },
        };
        let fetched = get_page(&rules, url, tokens, budget, what, &mut NoGate, spent).await?;
        let (records, next) = fetched.value;
        Ok(SourcePage {
            records: records.into_iter().map(TraceRecord::Reporting).collect(),
            next_link: next.and_then(|link| resolve_next_link(&self.base, &link)),
            bytes: fetched.bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    #[test]
    fn dates_in_every_form_the_service_writes() {
        let t = Utc.with_ymd_and_hms(2026, 11, 24, 10, 15, 30).unwrap()
            + chrono::Duration::nanoseconds(123_456_700);
        assert_eq!(parse_time("2026-11-24T10:15:30.1234567"), Some(t));
        assert_eq!(parse_time("2026-11-24T10:15:30.1234567Z"), Some(t));
        assert_eq!(
            parse_time("2026-11-24T11:15:30.1234567+01:00"),
            Some(t),
            "an offset is honoured"
        );
        assert_eq!(
            parse_time("2026-11-24T10:15:30"),
            Some(t - chrono::Duration::nanoseconds(123_456_700))
        );
        let ms = Utc.with_ymd_and_hms(2026, 11, 24, 10, 15, 30).unwrap()
            + chrono::Duration::milliseconds(123);
        assert_eq!(
            parse_time(&format!("/Date({})/", ms.timestamp_millis())),
            Some(ms)
        );
        assert_eq!(
            parse_time(&format!("/Date({}+0000)/", ms.timestamp_millis())),
            Some(ms)
        );
        assert_eq!(
            parse_time("/Date(-1000)/"),
            DateTime::from_timestamp_millis(-1000)
        );
        assert_eq!(parse_time("24/11/2026"), None);
        assert_eq!(parse_time("/Date(abc)/"), None);
    }

    #[test]
    fn next_links_resolve_against_ecp() {
        let base = "https://reports.office365.com";
        assert_eq!(
            resolve_next_link(
                base,
                "reportingwebservice/reporting.svc/MessageTrace?$skiptoken=5"
            )
            .as_deref(),
            Some(
                "https://reports.office365.com/ecp/reportingwebservice/reporting.svc/MessageTrace?$skiptoken=5"
            )
        );
        assert_eq!(
            resolve_next_link("http://127.0.0.1:9/", "https://other.example/x?y=1").as_deref(),
            Some("https://other.example/x?y=1"),
            "an absolute link is followed whole"
        );
        assert_eq!(
            resolve_next_link(
                base,
                "/ecp/reportingwebservice/reporting.svc/MessageTrace?a=1"
            )
            .as_deref(),
            Some(
                "https://reports.office365.com/ecp/reportingwebservice/reporting.svc/MessageTrace?a=1"
            )
        );
    }

    fn row(received: Value) -> Value {
        json!({"__metadata": {"uri": "x"}, "Organization": "contoso.onmicrosoft.com", "MessageId": null,
            "Received": received, "SenderAddress": "s@contoso.com", "RecipientAddress": "r@contoso.com",
            "Subject": null, "Status": "Delivered", "ToIP": null, "FromIP": "203.0.113.5", "Size": 12,
            "MessageTraceId": "4c0e-1", "StartDate": "/Date(1795996800000)/", "EndDate": "/Date(1796018400000)/",
            "Index": 0, "FutureField": {"nested": [1, 2]}})
    }

    #[test]
    fn json_light_and_both_verbose_forms_parse() {
        let light = json!({"odata.metadata": "m", "value": [row(json!("2026-11-24T10:15:30.1234567"))],
            "odata.nextLink": "reportingwebservice/reporting.svc/MessageTrace?$skiptoken=1"});
        let (records, next) = parse_page(light.to_string().as_bytes()).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].key, "4c0e-1|r@contoso.com");
        assert_eq!(
            next.as_deref(),
            Some("reportingwebservice/reporting.svc/MessageTrace?$skiptoken=1")
        );
        let fields = &records[0].fields;
        assert_eq!(
            fields["FutureField"],
            json!({"nested": [1, 2]}),
            "unknown fields pass"
        );
        assert_eq!(fields["MessageId"], Value::Null);
        assert!(!fields.contains_key("__metadata"));
        assert_eq!(fields["StartDate"], json!("2026-11-30T00:00:00.0000000"));

        let verbose =
            json!({"d": {"results": [row(json!("/Date(1795515330123)/"))], "__next": "n"}});
        let (records, next) = parse_page(verbose.to_string().as_bytes()).unwrap();
        assert_eq!(next.as_deref(), Some("n"));
        assert_eq!(
            records[0].fields["Received"],
            json!("2026-11-24T10:15:30.1230000")
        );
        assert_eq!(
            records[0].received.map(|t| t.timestamp_millis()),
            Some(1_795_515_330_123)
        );

        let bare =
            json!({"d": [row(json!("2026-11-24T10:15:30")), row(json!("2026-11-24T10:15:31"))]});
        let (records, next) = parse_page(bare.to_string().as_bytes()).unwrap();
        assert_eq!((records.len(), next), (2, None));
    }

    #[test]
    fn an_empty_page_ends_the_report_and_odd_rows_still_pass() {
        let empty = json!({"value": [], "odata.nextLink": "again"});
        let (records, next) = parse_page(empty.to_string().as_bytes()).unwrap();
        assert!(records.is_empty() && next.is_none());
        let no_date = json!({"value": [{"MessageTraceId": 7, "Received": null}]});
        let (records, _) = parse_page(no_date.to_string().as_bytes()).unwrap();
        assert_eq!(
            (records[0].key.as_str(), records[0].received),
            ("7|", None),
            "an odd row is still sent"
        );
        assert!(parse_page(b"<feed/>").is_err());
        assert!(parse_page(br#"{"value":[1]}"#).is_err());
    }

    #[test]
    fn rows_without_an_id_or_recipient_are_keyed_by_what_they_say_not_by_the_query() {
        let keyless = |subject: &str, start: &str, index: u64| {
            let mut row = row(json!("2026-11-24T10:15:30"));
            row["RecipientAddress"] = Value::Null;
            row["Subject"] = json!(subject);
            row["StartDate"] = json!(start);
            row["Index"] = json!(index);
            to_record(row).unwrap()
        };
        let a = keyless("a", "2026-11-24T00:00:00", 0);
        let b = keyless("b", "2026-11-24T00:00:00", 1);
        assert!(a.missing_key() && b.missing_key());
        assert_eq!(a.key, b.key, "the reported identity alone would fold them");
        assert_ne!(a.content_key(), b.content_key());
        let a_again = keyless("a", "2026-11-24T06:00:00", 7);
        assert_eq!(
            a.content_key(),
            a_again.content_key(),
            "the same row pulled by another query keeps its key"
        );
        assert!(
            !to_record(row(json!("2026-11-24T10:15:30")))
                .unwrap()
                .missing_key()
        );
    }

    #[test]
    fn first_page_url_and_the_missing_role() {
        let client = ReportingClient::new(
            reqwest::Client::new(),
            "https://reports.office365.com/",
            "https://outlook.office365.com/.default",
            1,
        );
        let start = Utc.with_ymd_and_hms(2026, 11, 24, 0, 0, 0).unwrap();
        let window = Window {
            start,
            end: start + chrono::Duration::hours(6),
            resume: None,
        };
        let url = reqwest::Url::parse(&client.first_page_url(&window)).unwrap();
        assert_eq!(url.path(), MESSAGE_TRACE_PATH);
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            [(
                "$filter".to_owned(),
                "StartDate eq datetime'2026-11-24T00:00:00' and EndDate eq datetime'2026-11-24T06:00:00'".to_owned()
            )]
        );
        let (code, message) = error_message(
            br#"{"odata.error":{"code":"","message":{"lang":"en-US","value":"No permission to access the report for the organization."}}}"#,
        );
        assert_eq!(code, "-");
        assert!(reporting_hint(403, &message).contains("Global Reader"));
    }
}
