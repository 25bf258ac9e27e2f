//! `GET /v1.0/admin/exchange/tracing/messageTraces`: the bearer token picks the tenant, then
//! faults, throttling, `$filter` (both bounds, at most 10 days, not older than 90 days), `$top`
//! (1..5000), `$skiptoken`, and newest-first pages with an `@odata.nextLink` while more remain,
//! gzip-compressed when the request accepts it.
//!
//! Exists so the product's paging is tested against the contract of the real API, including
//! records that appear late and skip tokens that break.

use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Response};
use serde_json::json;

use super::call::Call;
use super::evolvable::{as_served, includes_unknown_members};
use super::faults::{Fault, refused_next_link, status_fault};
use super::filter::parse_filter;
use super::gzip;
use super::identity::{BearerError, bearer_tenant};
use super::respond::{Resp, bad_request, graph_error};
use super::skiptoken::{self, Cursor};
use super::state::TenantState;
use super::stored::tick;
use super::{DEFAULT_TOP, LOOKBACK, MAX_TOP, MAX_WINDOW, MESSAGE_TRACES_PATH};
use crate::util::{cut_body, full, percent_encode};

const GRAPH_CONTENT_TYPE: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// The 401 for a request without a valid token.
pub(super) fn unauthorized(error: BearerError, crid: &str) -> Resp {
    let message = match error {
        BearerError::Missing => "Access token is empty.",
        BearerError::Unknown => {
            "Access token validation failure. The token is not one this tenant issued, or it has expired."
        }
    };
    graph_error(401, "InvalidAuthenticationToken", message, crid)
}

/// The 405 for a method other than GET (the message trace API is read-only).
pub(super) fn not_get(call: &Call<'_>) -> Option<Resp> {
    (call.method != Method::GET).then(|| {
        graph_error(
            405,
            "Request_BadRequest",
            &format!("The HTTP method '{}' is not allowed.", call.method),
            &call.crid,
        )
    })
}

/// What a fault leaves to do.
enum FaultOutcome {
    /// Answer this instead.
    Answer(Resp),
    /// Answer normally, but cut the body in half.
    Truncate,
    /// Answer normally.
    Proceed,
}

/// Takes and applies the tenant's next fault for a messageTraces request.
async fn apply_fault(call: &Call<'_>, tenant: usize, has_skiptoken: bool) -> FaultOutcome {
    match call.shared.take_trace_fault(tenant, has_skiptoken) {
        Some(Fault::TraceStatus {
            status,
            body,
            retry_after,
        }) => FaultOutcome::Answer(status_fault(status, body, retry_after)),
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            FaultOutcome::Proceed
        }
        Some(Fault::TruncatedPage) => FaultOutcome::Truncate,
        Some(Fault::ExpireSkipToken) => FaultOutcome::Answer(bad_request(
            "The skip token is invalid or expired. Restart the query without $skiptoken.",
            &call.crid,
        )),
        Some(Fault::TokenStatus { .. }) | None => FaultOutcome::Proceed,
    }
}

/// Graph's throttling: a 429 with Retry-After once the tenant's limit is reached (list and
/// detail calls count alike).
pub(super) fn throttled(tenant: &mut TenantState, crid: &str) -> Option<Resp> {
    let (limit, window) = tenant.throttle?;
    let now = Instant::now();
    while tenant
        .trace_times
        .front()
        .is_some_and(|t| now.duration_since(*t) >= window)
    {
        tenant.trace_times.pop_front();
    }
    if tenant.trace_times.len() < limit {
        tenant.trace_times.push_back(now);
        return None;
    }
    let retry = tenant
        .trace_times
        .front()
        .map(|t| window.saturating_sub(now.duration_since(*t)).as_secs() + 1)
        .unwrap_or(1);
    let mut resp = graph_error(
        429,
        "TooManyRequests",
        "Too many requests. The message trace API accepts at most 100 requests per 5 minutes per tenant.",
        crid,
    );
    resp.headers_mut()
        .insert("retry-after", HeaderValue::from(retry));
    Some(resp)
}

/// A validated query: its filter, bounds, page size and, when following a nextLink, where the
/// page starts.
struct Query {
    filter: String,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    top: usize,
    cursor: Option<Cursor>,
}

/// Validates `$filter` and `$top` (the skip token is checked against the tenant later).
fn parse_query(call: &Call<'_>) -> Result<Query, String> {
    let filter = call.param("$filter").ok_or(
        "The $filter query option is required: receivedDateTime ge <start> and receivedDateTime le <end>.",
    )?;
    let (start, end) = parse_filter(&filter)?;
    if start > end {
        return Err(format!(
            "Invalid filter clause: the start of the query window ({start:?}) is later than its end ({end:?})."
        ));
    }
    if end - start > MAX_WINDOW {
        return Err(format!(
            "The query window cannot exceed 10 days (requested {start:?} to {end:?})."
        ));
    }
    if start < Utc::now() - LOOKBACK {
        return Err(format!(
            "Message trace data is available for the last 90 days only; the start {start:?} is older than that."
        ));
    }
    let top = match call.param("$top") {
        None => DEFAULT_TOP,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_TOP).contains(&n) => n,
            _ => {
                return Err(format!(
                    "Invalid $top value '{v}': it must be an integer between 1 and {MAX_TOP}."
                ));
            }
        },
    };
    Ok(Query {
        filter,
        start,
        end,
        top,
        cursor: None,
    })
}

/// Decodes a skip token and checks that the tenant issued it for this query.
fn check_skiptoken(tenant: &TenantState, token: &str, q: &Query) -> Result<Cursor, String> {
    let cursor = skiptoken::decode(token).map_err(|e| e.message())?;
    if cursor.start != tick(q.start) || cursor.top != q.top || cursor.at > q.end {
        return Err("The skip token is invalid or expired: it does not belong to this query ($filter and $top must stay the same).".into());
    }
    if !tenant.cursors.contains(&cursor) {
        return Err("The skip token is invalid or expired.".into());
    }
    Ok(cursor)
}

/// `GET /v1.0/admin/exchange/tracing/messageTraces`.
pub(super) async fn message_traces(call: &mut Call<'_>) -> Resp {
    let tenant = match bearer_tenant(call) {
        Ok((tenant, _scope)) => tenant,
        Err(e) => return unauthorized(e, &call.crid),
    };
    let skiptoken = call.param("$skiptoken");
    let truncate = match apply_fault(call, tenant, skiptoken.is_some()).await {
        FaultOutcome::Answer(resp) => return resp,
        FaultOutcome::Truncate => true,
        FaultOutcome::Proceed => false,
    };
    if let Some(refused) = not_get(call) {
        return refused;
    }
    let mut st = call.shared.lock();
    let t = &mut st.tenants[tenant];
    if let Some(resp) = throttled(t, &call.crid) {
        return resp;
    }
    if skiptoken.is_some() && t.next_links.refuse {
        return refused_next_link(&call.crid);
    }
    let mut query = match parse_query(call) {
        Ok(q) => q,
        Err(message) => return bad_request(&message, &call.crid),
    };
    if let Some(token) = &skiptoken {
        match check_skiptoken(t, token, &query) {
            Ok(cursor) => query.cursor = Some(cursor),
            Err(message) => return bad_request(&message, &call.crid),
        }
    }
    let include_unknown = includes_unknown_members(call.prefer.as_deref());
    let body = page(t, &query, &call.shared.url, include_unknown);
    drop(st);
    let mut resp = gzip::respond(call.gzip(), body, |body| {
        if truncate {
            truncated(body)
        } else {
            Response::new(full(body))
        }
    });
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(GRAPH_CONTENT_TYPE));
    resp
}

/// A 200 whose headers announce the whole body but only half of it is sent.
fn truncated(body: Vec<u8>) -> Resp {
    let len = body.len();
    let half = Bytes::from(body).slice(..len / 2);
    let mut resp = Response::new(cut_body(half));
    resp.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

/// The page's JSON body (an evolvable status only if `include_unknown`); registers the skip
/// token of its nextLink, if any.
fn page(t: &mut TenantState, q: &Query, url: &str, include_unknown: bool) -> Vec<u8> {
    let mut body = Vec::with_capacity(64 * 1024);
    body.extend_from_slice(b"{\"@odata.context\":");
    let context = format!("{url}/v1.0/$metadata#admin/exchange/tracing/messageTraces");
    body.extend_from_slice(json!(context).to_string().as_bytes());
    body.extend_from_slice(b",\"value\":[");
    let next = if t.rendered.is_some() {
        rendered_records(t, q, &mut body)
    } else {
        page_records(t, q, &mut body, include_unknown)
    };
    body.push(b']');
    if let Some(cursor) = next {
        let token = skiptoken::encode(&cursor, t.next_links.double_encode);
        t.cursors.insert(cursor);
        let link = format!(
            "{url}{MESSAGE_TRACES_PATH}?$filter={}&$top={}&$skiptoken={}",
            percent_encode(&q.filter),
            q.top,
            percent_encode(&token)
        );
        body.extend_from_slice(b",\"@odata.nextLink\":");
        body.extend_from_slice(json!(link).to_string().as_bytes());
    }
    body.push(b'}');
    body
}

/// Writes the page's records (the inside of the JSON array) to `out`, from the records
/// visible now; returns the cursor of the next page.
fn page_records(
    t: &TenantState,
    q: &Query,
    out: &mut Vec<u8>,
    include_unknown: bool,
) -> Option<Cursor> {
    let mut page: Vec<_> = t
        .visible_in(q.start, q.end, Utc::now(), q.cursor.as_ref())
        .take(q.top + 1)
        .collect();
    let next = if page.len() > q.top {
        page.pop().map(|r| Cursor::at_record(q.start, r, q.top))
    } else {
        None
    };
    for (i, r) in page.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let served = as_served(r, include_unknown);
        if serde_json::to_writer(&mut *out, served.as_ref().unwrap_or(r)).is_err() {
            // A record is plain strings and numbers: never happens; keep the array valid.
            out.extend_from_slice(b"{}");
        }
    }
    next
}

/// [`page_records`] from the prerendered records.
fn rendered_records(t: &TenantState, q: &Query, out: &mut Vec<u8>) -> Option<Cursor> {
    let rendered = t.rendered.as_ref()?;
    let (first, last) = rendered.matching(q.start, q.end);
    let from = match &q.cursor {
        Some(c) => rendered.position(c).clamp(first, last),
        None => first,
    };
    let to = (from + q.top).min(last);
    out.reserve(rendered.size(from, to));
    out.extend_from_slice(rendered.slice(from, to));
    if to < last {
        rendered
            .record(to)
            .map(|r| Cursor::at_record(q.start, &r, q.top))
    } else {
        None
    }
}
