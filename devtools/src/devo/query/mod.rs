//! A local stand-in for Devo's Query API (`POST {base}/query`), answering the LINQ the product
//! sends from what the Devo-like listener holds ([`DevoListener::held_lines`]: the lines that
//! arrived and were not lost, and lines another collector wrote).
//!
//! Exists so the audit can be tested and demonstrated end to end: a token check answered like
//! Devo (401; 403 "Access not allowed for table" for a table outside the token's scope),
//! `limit`/`offset` pages, and the faults a real Query API has (429, 5xx). `linq.rs` parses and
//! runs the queries, `table.rs` turns a received line into a row. Binds 127.0.0.1; stops when
//! dropped.

pub mod linq;
pub mod table;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{TimeZone, Utc};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

use super::{DevoListener, Shared as ListenerShared, lock};
use crate::util::{RespBody, full, random_hex, serve_http};

/// The path of the query endpoint; the product's `DEVO_QUERY_URL` is the part before `/query`.
pub const QUERY_PATH: &str = "/search/query";
/// The largest request body read.
const MAX_BODY: usize = 1024 * 1024;

/// One query as received, for assertions (the token is never kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryLog {
    /// The LINQ.
    pub query: String,
    /// `from`, UTC seconds.
    pub from: i64,
    /// `to`, UTC seconds.
    pub to: i64,
    /// `limit`, if given.
    pub limit: Option<u64>,
    /// `offset`, if given.
    pub offset: Option<u64>,
    /// The HTTP status answered.
    pub status: u16,
}

struct State {
    token: String,
    tables: Option<Vec<String>>,
    fail_next: Vec<u16>,
    log: Vec<QueryLog>,
    /// Rows parsed from the first `parsed` held lines (held lines are only appended).
    parsed: usize,
    rows: Vec<table::Row>,
}

/// A running Query API stand-in; dropping it stops it.
pub struct DevoQueryApi {
    state: Arc<Mutex<State>>,
    address: SocketAddr,
    task: AbortHandle,
}

impl Drop for DevoQueryApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Deserialize)]
struct Body {
    query: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
    mode: Option<Value>,
    limit: Option<u64>,
    offset: Option<u64>,
}

impl DevoQueryApi {
    /// Starts on 127.0.0.1 with an OS-chosen port, reading what `listener` holds, accepting
    /// `token` only.
    pub async fn start(listener: &DevoListener, token: &str) -> std::io::Result<DevoQueryApi> {
        Self::start_on(listener, SocketAddr::from(([127, 0, 0, 1], 0)), token).await
    }

    /// Starts on `addr` (the CLI's `--query-listen`).
    pub async fn start_on(
        listener: &DevoListener,
        addr: SocketAddr,
        token: &str,
    ) -> std::io::Result<DevoQueryApi> {
        let tcp = TcpListener::bind(addr).await?;
        let address = tcp.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            token: token.to_owned(),
            tables: None,
            fail_next: Vec::new(),
            log: Vec::new(),
            parsed: 0,
            rows: Vec::new(),
        }));
        let (st, held) = (state.clone(), listener.shared.clone());
        let task = tokio::spawn(async move {
            serve_http(tcp, move |req| handle(req, st.clone(), held.clone())).await;
        });
        Ok(DevoQueryApi {
            state,
            address,
            task: task.abort_handle(),
        })
    }

    /// The product's `DEVO_QUERY_URL`: `http://127.0.0.1:PORT/search`.
    pub fn url(&self) -> String {
        format!("http://{}/search", self.address)
    }

    /// The queries received so far, in order.
    pub fn queries(&self) -> Vec<QueryLog> {
        lock(&self.state).log.clone()
    }

    /// Restricts the token to `tables` (`None`: every table); a query of another table is
    /// answered 403 "Access not allowed for table '…'", as Devo answers.
    pub fn allow_tables(&self, tables: Option<Vec<String>>) {
        lock(&self.state).tables = tables;
    }

    /// fault: the next queries with a valid token are answered with these statuses in turn
    /// (e.g. `[429, 503]`), with a Devo-like error body and no result.
    pub fn fail_next(&self, statuses: &[u16]) {
        lock(&self.state).fail_next.extend_from_slice(statuses);
    }
}

fn answer(status: u16, body: &Value) -> Response<RespBody> {
    let mut resp = Response::new(full(Bytes::from(body.to_string())));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn error(status: u16, msg: &str) -> Response<RespBody> {
    answer(
        status,
        &json!({"timestamp": Utc::now().timestamp_millis(), "cid": random_hex(6), "msg": msg, "status": status}),
    )
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
    held: Arc<ListenerShared>,
) -> Result<Response<RespBody>, Infallible> {
    if req.method() != Method::POST || req.uri().path() != QUERY_PATH {
        return Ok(error(404, "Not found"));
    }
    let auth = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(error(413, "Request body too large")),
    };
    let body: Body = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) => return Ok(error(400, &format!("Invalid request body: {e}"))),
    };
    let mut st = lock(&state);
    let resp = respond(&mut st, &held, auth.as_deref(), &body);
    st.log.push(QueryLog {
        query: body.query.clone().unwrap_or_default(),
        from: body.from.unwrap_or_default(),
        to: body.to.unwrap_or_default(),
        limit: body.limit,
        offset: body.offset,
        status: resp.status().as_u16(),
    });
    Ok(resp)
}

fn respond(
    st: &mut State,
    held: &ListenerShared,
    auth: Option<&str>,
    body: &Body,
) -> Response<RespBody> {
    if auth != Some(format!("Bearer {}", st.token).as_str()) {
        return error(401, "Unauthorized: the token is not valid");
    }
    if !st.fail_next.is_empty() {
        let status = st.fail_next.remove(0);
        return error(
            status,
            if status == 429 {
                "Too many requests"
            } else {
                "Internal error"
            },
        );
    }
    let (Some(text), Some(from)) = (&body.query, body.from) else {
        return error(400, "Either query or queryId, and from, are required");
    };
    if body.mode.as_ref().is_some_and(|m| m["type"] != "json") {
        return error(400, "This stand-in answers mode.type json only");
    }
    let query = match linq::parse(text) {
        Ok(q) => q,
        Err(e) => return error(400, &format!("Error parsing query: {e}")),
    };
    if st
        .tables
        .as_ref()
        .is_some_and(|t| !t.contains(&query.table))
    {
        return error(
            403,
            &format!("Access not allowed for table '{}'", query.table),
        );
    }
    let seconds = |s: i64| Utc.timestamp_opt(s, 0).single();
    let (Some(from), Some(to)) = (
        seconds(from),
        seconds(body.to.unwrap_or(i64::from(i32::MAX))),
    ) else {
        return error(400, "from and to are UTC seconds");
    };
    refresh(st, held);
    let all = query.run(&st.rows, from, to);
    let offset = usize::try_from(body.offset.unwrap_or(0)).unwrap_or(usize::MAX);
    let limit = usize::try_from(body.limit.unwrap_or(u64::MAX)).unwrap_or(usize::MAX);
    let page: Vec<Value> = all.into_iter().skip(offset).take(limit).collect();
    ok(&page)
}

/// A result, after Devo's keep-alive spaces.
fn ok(rows: &[Value]) -> Response<RespBody> {
    let body = json!({"msg": "", "status": 0, "timestamp": Utc::now().timestamp_millis(), "cid": random_hex(6), "object": rows});
    let mut resp = Response::new(full(Bytes::from(format!("    {body}"))));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// Parses the held lines not yet parsed.
fn refresh(st: &mut State, held: &ListenerShared) {
    let lines = lock(&held.held);
    for line in &lines[st.parsed.min(lines.len())..] {
        if let Some(row) = table::parse_line(line) {
            st.rows.push(row);
        }
    }
    st.parsed = lines.len();
}
