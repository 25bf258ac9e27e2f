//! A local stand-in for Lambda's `Invoke` API, for the dispatcher of a many-tenant deployment.
//!
//! Exists so that the dispatcher's real AWS SDK calls can be tested and benchmarked without
//! AWS: point `AWS_ENDPOINT_URL_LAMBDA` (or a client's endpoint) at [`InvokeServer::url`]. It
//! answers `POST /2015-03-31/functions/{name}/invocations` with `202 Accepted` for
//! `X-Amz-Invocation-Type: Event`, as Lambda queues an asynchronous invocation, and records each
//! payload; other invocation types are refused. It records at most [`MAX_RECORDED`]
//! invocations (then answers 429, as a throttled Lambda does), binds 127.0.0.1 only and stops
//! when dropped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

use crate::util::{RespBody, full, percent_decode, serve_http};

/// Invocations recorded before the stand-in answers 429 to every further one.
pub const MAX_RECORDED: usize = 100_000;

/// One accepted invocation.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedInvoke {
    /// The function name or ARN as sent (percent-decoded).
    pub function: String,
    /// The JSON payload (a string value when it was not JSON).
    pub payload: Value,
}

#[derive(Default)]
struct State {
    accepted: Mutex<Vec<RecordedInvoke>>,
    refuse: Mutex<Option<String>>,
    faults: Mutex<Faults>,
}

/// The faults a real Lambda `Invoke` has, set by the test.
#[derive(Default)]
struct Faults {
    /// Each distinct payload is answered 429 this many times before it is accepted.
    throttle_first: usize,
    /// Payloads containing the text are answered with the status (a 5xx), always.
    failing: Option<(String, u16)>,
    /// Attempts seen per payload.
    attempts: std::collections::HashMap<String, usize>,
}

/// The running stand-in.
pub struct InvokeServer {
    url: String,
    state: Arc<State>,
    task: AbortHandle,
}

impl Drop for InvokeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl InvokeServer {
    /// Starts on 127.0.0.1 with an OS-chosen port.
    pub async fn start() -> std::io::Result<InvokeServer> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts on `addr`.
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<InvokeServer> {
        let listener = TcpListener::bind(addr).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(State::default());
        let shared = state.clone();
        let task = tokio::spawn(serve_http(listener, move |req| {
            let state = shared.clone();
            async move { Ok::<_, Infallible>(handle(req, &state).await) }
        }));
        Ok(InvokeServer {
            url,
            state,
            task: task.abort_handle(),
        })
    }

    /// `http://127.0.0.1:PORT`: the value of `AWS_ENDPOINT_URL_LAMBDA`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The invocations accepted so far, in arrival order.
    pub fn invocations(&self) -> Vec<RecordedInvoke> {
        self.accepted().clone()
    }

    /// The payloads accepted so far, in arrival order.
    pub fn payloads(&self) -> Vec<Value> {
        self.accepted().iter().map(|i| i.payload.clone()).collect()
    }

    /// How many invocations were accepted.
    pub fn count(&self) -> usize {
        self.accepted().len()
    }

    /// Answers 429 TooManyRequestsException to every payload containing `needle` (`None`:
    /// accept all), to test a dispatch that cannot start some ticks.
    pub fn refuse_containing(&self, needle: Option<&str>) {
        *self.state.refuse.lock().unwrap_or_else(|e| e.into_inner()) = needle.map(str::to_owned);
    }

    /// Answers 429 TooManyRequestsException to the first `n` attempts of each distinct payload
    /// (then accepts it), as a Lambda whose `Invoke` rate is exceeded for a moment.
    pub fn throttle_first(&self, n: usize) {
        self.faults().throttle_first = n;
    }

    /// Answers `status` (a 5xx, as Lambda's `ServiceException`) to every payload containing
    /// `needle`, for as long as it is set (`None`: no failure).
    pub fn fail_containing(&self, needle: Option<(&str, u16)>) {
        self.faults().failing = needle.map(|(n, s)| (n.to_owned(), s));
    }

    /// Every request received, accepted or not, per payload (as its JSON text).
    pub fn attempts(&self) -> std::collections::HashMap<String, usize> {
        self.faults().attempts.clone()
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.state.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn accepted(&self) -> std::sync::MutexGuard<'_, Vec<RecordedInvoke>> {
        self.state
            .accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response<RespBody> {
    let mut resp = Response::new(full(json!({ "message": message }).to_string()));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(kind) {
        resp.headers_mut().insert("x-amzn-errortype", v);
    }
    resp
}

async fn handle(req: Request<Incoming>, state: &State) -> Response<RespBody> {
    let path = req.uri().path().to_owned();
    let function = path
        .strip_prefix("/2015-03-31/functions/")
        .and_then(|rest| rest.strip_suffix("/invocations"))
        .map(percent_decode);
    let invocation_type = req
        .headers()
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("RequestResponse")
        .to_owned();
    let (Some(function), true) = (function, req.method() == Method::POST) else {
        return error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("no route for {path}"),
        );
    };
    if invocation_type != "Event" {
        let message = format!(
            "this stand-in answers only X-Amz-Invocation-Type: Event, not {invocation_type}"
        );
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            &message,
        );
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let payload = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    let refused = state
        .refuse
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let text = payload.to_string();
    if let Some(status) = fault(state, &text) {
        return status;
    }
    let mut accepted = state.accepted.lock().unwrap_or_else(|e| e.into_inner());
    let throttled = refused.is_some_and(|needle| text.contains(&needle));
    if throttled || accepted.len() >= MAX_RECORDED {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequestsException",
            "Rate Exceeded.",
        );
    }
    accepted.push(RecordedInvoke { function, payload });
    let mut resp = Response::new(full(""));
    *resp.status_mut() = StatusCode::ACCEPTED;
    resp
}

/// Counts the attempt and answers the fault set for `text`, if any.
fn fault(state: &State, text: &str) -> Option<Response<RespBody>> {
    let mut faults = state.faults.lock().unwrap_or_else(|e| e.into_inner());
    let attempt = {
        let n = faults.attempts.entry(text.to_owned()).or_default();
        *n += 1;
        *n
    };
    if let Some((needle, status)) = &faults.failing
        && text.contains(needle.as_str())
    {
        let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Some(error(
            status,
            "ServiceException",
            "Lambda was unable to process the request.",
        ));
    }
    (attempt <= faults.throttle_first).then(|| {
        error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequestsException",
            "Rate Exceeded.",
        )
    })
}
