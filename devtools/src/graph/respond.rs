//! The answers every endpoint of the Graph stand-in builds: a response with a status, body and
//! content type, a JSON response, a Graph error body and an AADSTS error body.
//!
//! Exists so the endpoints, the faults and the certificate checks answer in the services' own
//! shapes without depending on the router or on each other.

use chrono::Utc;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use crate::util::{RespBody, full, uuid};

/// A response of the stand-in.
pub(super) type Resp = Response<RespBody>;

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

/// An AADSTS error body as Entra ID writes it.
pub(super) fn aadsts(status: u16, error: &str, code: u32, description: &str) -> Resp {
    let now = Utc::now();
    let trace_id = uuid();
    let correlation_id = uuid();
    let timestamp = now.format("%Y-%m-%d %H:%M:%SZ").to_string();
    json_response(
        status,
        &json!({
            "error": error,
            "error_description": format!(
                "AADSTS{code}: {description} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}"
            ),
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}
