//! The HTTP side of the Graph stand-in: the accept loop, the router and the request log.
//!
//! Exists so the endpoints (identity, message traces, report) only decide what to answer, and
//! every request is recorded and logged the same way.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use http_body_util::BodyExt;
use hyper::body::Body as _;
use hyper::body::Incoming;
use hyper::header::{ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, HeaderValue};
use hyper::{Method, Request};
use tokio::net::TcpListener;

use super::call::Call;
use super::respond::{Resp, graph_error};
use super::state::Shared;
use super::{
    MESSAGE_TRACES_PATH, REPORTING_PATH, RecordedRequest, details, identity, paging, reporting,
};
use crate::util::{percent_decode, serve_http, uuid};

/// Accepts connections until the server is dropped (the task is aborted).
pub(super) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    serve_http(listener, move |req| handle(req, shared.clone())).await;
}

fn header(req: &Request<Incoming>, name: impl hyper::header::AsHeaderName) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn handle(req: Request<Incoming>, shared: Arc<Shared>) -> Result<Resp, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let accept_encoding = header(&req, ACCEPT_ENCODING);
    let prefer = header(&req, "prefer");
    let headers = (&accept_encoding, &prefer);
    let index = record_request(&shared, &method, &path, &raw_query, headers);
    let crid = header(&req, "client-request-id").unwrap_or_else(uuid);
    let auth = header(&req, AUTHORIZATION);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let mut call = Call {
        shared: &shared,
        method,
        raw_query,
        auth,
        prefer,
        crid,
        accept_encoding,
        body,
        tenant: None,
    };
    let mut resp = route(&mut call, &path).await;
    if let Ok(v) = HeaderValue::from_str(&uuid()) {
        resp.headers_mut().insert("request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&call.crid) {
        resp.headers_mut().insert("client-request-id", v);
    }
    finish_request(&call, index, &path, &resp);
    Ok(resp)
}

/// Dispatches on the path.
async fn route(call: &mut Call<'_>, path: &str) -> Resp {
    let segments: Vec<&str> = path.split('/').collect();
    if let [_, tenant, "oauth2", "v2.0", "token"] = segments.as_slice() {
        identity::token(call, tenant)
    } else if path == REPORTING_PATH {
        reporting::message_trace(call).await
    } else if path == MESSAGE_TRACES_PATH {
        paging::message_traces(call).await
    } else if let Some(rest) = details::details_path(path) {
        details::details_by_recipient(call, rest).await
    } else {
        graph_error(
            404,
            "ResourceNotFound",
            &format!(
                "Resource not found for the segment '{}'.",
                segments.last().unwrap_or(&"")
            ),
            &call.crid,
        )
    }
}

/// Adds the request to the log (status 0 until answered); returns its index.
fn record_request(
    shared: &Shared,
    method: &Method,
    path: &str,
    raw_query: &str,
    (accept_encoding, prefer): (&Option<String>, &Option<String>),
) -> usize {
    let mut st = shared.lock();
    st.requests.push(RecordedRequest {
        method: method.to_string(),
        path: path.to_string(),
        query: percent_decode(raw_query),
        status: 0,
        tenant: None,
        accept_encoding: accept_encoding.clone(),
        prefer: prefer.clone(),
        content_encoding: None,
        body_bytes: 0,
    });
    st.requests.len() - 1
}

/// Records the answer (status, tenant, body size and encoding) and logs the request when
/// logging is on, with the bytes its body took (`scripts/bench` reads them).
fn finish_request(call: &Call<'_>, index: usize, path: &str, resp: &Resp) {
    let status = resp.status().as_u16();
    let encoding = resp
        .headers()
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = resp.body().size_hint().exact().unwrap_or(0);
    let mut st = call.shared.lock();
    let tenant = call
        .tenant
        .and_then(|i| st.tenants.get(i))
        .map(|t| t.tenant_id.clone());
    if let Some(r) = st.requests.get_mut(index) {
        r.status = status;
        r.tenant = tenant;
        r.content_encoding = encoding.clone();
        r.body_bytes = bytes;
    }
    if st.log {
        eprintln!(
            "{} {} {path}{}{} -> {status} ({bytes} bytes{})",
            Utc::now().format("%H:%M:%S%.3f"),
            call.method,
            if call.raw_query.is_empty() { "" } else { "?" },
            percent_decode(&call.raw_query),
            encoding.map(|e| format!(", {e}")).unwrap_or_default()
        );
    }
}
