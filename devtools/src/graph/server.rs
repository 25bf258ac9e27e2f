//! The HTTP side of the Graph stand-in: the accept loop, the router, the request log and the
//! response helpers every endpoint uses.
//!
//! Exists so the endpoints (identity, message traces, report) only decide what to answer, and
//! every request is recorded and logged the same way.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::state::Shared;
use super::{MESSAGE_TRACES_PATH, REPORTING_PATH, RecordedRequest, identity, paging, reporting};
use crate::util::{RespBody, full, parse_pairs, percent_decode, serve_http, uuid};

/// A response of the stand-in.
pub(super) type Resp = Response<RespBody>;

/// Accepts connections until the server is dropped (the task is aborted).
pub(super) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    serve_http(listener, move |req| handle(req, shared.clone())).await;
}

/// One request, as the endpoints see it.
pub(super) struct Call<'a> {
    pub shared: &'a Shared,
    pub method: Method,
    /// The raw (still percent-encoded) query.
    pub raw_query: String,
    /// The `Authorization` header.
    pub auth: Option<String>,
    /// The `client-request-id` header, or a new id.
    pub crid: String,
    pub body: Bytes,
    /// Set by the endpoint: the tenant (index) the request was for.
    pub tenant: Option<usize>,
}

impl Call<'_> {
    /// The decoded value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<String> {
        parse_pairs(&self.raw_query)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The bearer token, if the request carries a non-empty one.
    pub fn bearer(&self) -> Option<&str> {
        self.auth
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }
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
    let index = record_request(&shared, &method, &path, &raw_query);
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
        crid,
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
    finish_request(&call, index, &path, resp.status().as_u16());
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
fn record_request(shared: &Shared, method: &Method, path: &str, raw_query: &str) -> usize {
    let mut st = shared.lock();
    st.requests.push(RecordedRequest {
        method: method.to_string(),
        path: path.to_string(),
        query: percent_decode(raw_query),
        status: 0,
        tenant: None,
    });
    st.requests.len() - 1
}

/// Records the answer (status, tenant) and logs the request when logging is on.
fn finish_request(call: &Call<'_>, index: usize, path: &str, status: u16) {
    let mut st = call.shared.lock();
    let tenant = call
        .tenant
        .and_then(|i| st.tenants.get(i))
        .map(|t| t.tenant_id.clone());
    if let Some(r) = st.requests.get_mut(index) {
        r.status = status;
        r.tenant = tenant;
    }
    if st.log {
        eprintln!(
            "{} {} {path}{}{} -> {status}",
            Utc::now().format("%H:%M:%S%.3f"),
            call.method,
            if call.raw_query.is_empty() { "" } else { "?" },
            percent_decode(&call.raw_query)
        );
    }
}

/// A JSON response.
pub(super) fn json_response(status: u16, body: &Value) -> Resp {
    raw_response(status, body.to_string(), "application/json; charset=utf-8")
}

/// A response with this status, body and content type.
pub(super) fn raw_response(status: u16, body: String, content_type: &str) -> Resp {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(CONTENT_TYPE, v);
    }
    resp
}

/// A Graph error body: `{"error":{"code","message","innerError":{date,request-id,client-request-id}}}`.
pub(super) fn graph_error(status: u16, code: &str, message: &str, client_request_id: &str) -> Resp {
    json_response(
        status,
        &json!({
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
                    "request-id": uuid(),
                    "client-request-id": client_request_id,
                }
            }
        }),
    )
}

/// A Graph 400 with code `BadRequest`.
pub(super) fn bad_request(message: &str, crid: &str) -> Resp {
    graph_error(400, "BadRequest", message, crid)
}
