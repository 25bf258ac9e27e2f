//! A local HTTP server that behaves like the Microsoft identity platform token endpoint and the
//! Microsoft Graph message trace list API.
//!
//! Exists so the product can be tested, demonstrated and benchmarked without a tenant: it
//! follows the documented contract (client-credentials tokens with AADSTS-shaped errors;
//! `GET /v1.0/admin/exchange/tracing/messageTraces` with `$filter`, `$top`, `$skiptoken`, newest
//! first, `@odata.nextLink`), records every request and can inject faults on demand.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::{AbortHandle, JoinSet};

mod reporting;

pub use reporting::{
    REPORTING_ORGANIZATION, REPORTING_PATH, REPORTING_SCOPE, ReportingFormat, reporting_error_body,
};

use crate::records::GraphRecord;
use crate::util::{
    RespBody, cut_body, full, parse_pairs, percent_decode, percent_encode, random_hex, uuid,
};

/// Path of the message trace collection, relative to the Graph base URL.
pub const MESSAGE_TRACES_PATH: &str = "/v1.0/admin/exchange/tracing/messageTraces";
/// Largest `$top` Graph accepts.
pub const MAX_TOP: usize = 5000;
/// `$top` when none is given.
pub const DEFAULT_TOP: usize = 1000;
/// Longest query window Graph accepts.
pub const MAX_WINDOW: TimeDelta = TimeDelta::days(10);
/// How far back Graph keeps message trace data.
pub const LOOKBACK: TimeDelta = TimeDelta::days(90);

const GRAPH_CONTENT_TYPE: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// What the fake tenant knows: the one registered application and the records it serves.
#[derive(Clone, Debug)]
pub struct GraphServerConfig {
    /// Tenant id accepted in the token path.
    pub tenant_id: String,
    /// The registered application (client) id.
    pub client_id: String,
    /// The application's client secret.
    pub client_secret: String,
    /// Message trace records the tenant has.
    pub records: Vec<GraphRecord>,
}

/// One request the server answered, for assertions in tests.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// The query string, percent-decoded (`+` as space).
    pub query: String,
    /// Status code answered (0 while the request is still being handled).
    pub status: u16,
}

/// A fault to inject; each one applies to exactly one upcoming request of its target.
#[derive(Clone, Debug)]
pub enum Fault {
    /// next messageTraces request answers with this status and raw body, with an optional
    /// Retry-After header (seconds)
    TraceStatus {
        /// HTTP status.
        status: u16,
        /// Raw body (sent as application/json).
        body: String,
        /// Retry-After header value in seconds.
        retry_after: Option<u64>,
    },
    /// next token request answers with this status and body
    TokenStatus {
        /// HTTP status.
        status: u16,
        /// Raw body (sent as application/json).
        body: String,
    },
    /// next messageTraces page is cut in the middle of its JSON body (status 200): the headers
    /// announce the full Content-Length, half of the body is sent, then the connection is closed
    TruncatedPage,
    /// next messageTraces request sleeps this long before answering normally
    Delay(Duration),
    /// the nextLink (skiptoken) of the current paging sequence stops working: the next request
    /// that carries a $skiptoken gets 400 with a Graph error body (code "BadRequest"), and every
    /// skiptoken issued before it stays invalid
    ExpireSkipToken,
}

impl Fault {
    fn targets_trace(&self) -> bool {
        !matches!(self, Fault::TokenStatus { .. })
    }
}

#[derive(Clone, Debug)]
struct Skip {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    top: usize,
    offset: usize,
    generation: u64,
}

struct State {
    tenant_id: String,
    client_id: String,
    client_secret: String,
    /// Sorted newest first (ties: id, then recipient).
    records: Vec<GraphRecord>,
    requests: Vec<RecordedRequest>,
    faults: VecDeque<Fault>,
    /// Issued access tokens and the scope each was issued for.
    tokens: HashMap<String, String>,
    issued_log: Vec<String>,
    /// The Reporting Web Service stand-in's settings.
    reporting: reporting::ReportingSettings,
    tokens_issued: usize,
    skiptokens: HashMap<String, Skip>,
    generation: u64,
    log: bool,
    throttle: Option<(usize, Duration)>,
    trace_times: VecDeque<Instant>,
    app_certs: Vec<AppCert>,
    /// Set by [`GraphServer::prerender`]: pages are served from here instead of `records`.
    rendered: Option<Rendered>,
}

/// Every record rendered once as JSON, newest first: a page is one copy of a contiguous byte
/// range, so serving a 5000-record page costs a few milliseconds and the server is never what
/// a benchmark measures.
struct Rendered {
    /// `receivedDateTime` of each record, newest first.
    times: Vec<DateTime<Utc>>,
    /// The records' JSON objects, each followed by a comma.
    json: Vec<u8>,
    /// Where each record starts in `json`, plus the end of the last one.
    starts: Vec<usize>,
}

impl Rendered {
    fn new(records: &[GraphRecord]) -> Rendered {
        let mut json = Vec::new();
        let mut starts = Vec::with_capacity(records.len() + 1);
        for r in records {
            starts.push(json.len());
            if serde_json::to_writer(&mut json, r).is_err() {
                // A record is plain strings and numbers: never happens; keep the array valid.
                json.extend_from_slice(b"{}");
            }
            json.push(b',');
        }
        starts.push(json.len());
        Rendered {
            times: records.iter().map(|r| r.received_date_time).collect(),
            json,
            starts,
        }
    }

    /// The matching records `[first, last)` of the query `start..=end`.
    fn matching(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> (usize, usize) {
        let first = self.times.partition_point(|t| *t > end);
        let last = self.times.partition_point(|t| *t >= start).max(first);
        (first, last)
    }

    /// The records `[from, to)` as the inside of a JSON array.
    fn slice(&self, from: usize, to: usize) -> &[u8] {
        if from >= to {
            return b"";
        }
        // Without the comma after the last record.
        &self.json[self.starts[from]..self.starts[to] - 1]
    }
}

/// A certificate registered on the application (certificate credential).
struct AppCert {
    der: Vec<u8>,
    x5t: String,
    x5t_s256: String,
}

struct Shared {
    url: String,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running Graph stand-in; dropping it stops the server and every open connection.
pub struct GraphServer {
    shared: Arc<Shared>,
    task: AbortHandle,
}

impl Drop for GraphServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn sort_newest_first(records: &mut [GraphRecord]) {
    records.sort_by(|a, b| {
        b.received_date_time
            .cmp(&a.received_date_time)
            .then_with(|| a.id.cmp(&b.id))
            .then_with(|| a.recipient_address.cmp(&b.recipient_address))
    });
}

impl GraphServer {
    /// Starts the server on 127.0.0.1 with an OS-chosen port.
    pub async fn start(config: GraphServerConfig) -> std::io::Result<GraphServer> {
        Self::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts the server on `addr` (the CLI's `--listen`).
    pub async fn start_on(
        config: GraphServerConfig,
        addr: SocketAddr,
    ) -> std::io::Result<GraphServer> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let mut records = config.records;
        sort_newest_first(&mut records);
        let shared = Arc::new(Shared {
            url: format!("http://{local}"),
            state: Mutex::new(State {
                tenant_id: config.tenant_id,
                client_id: config.client_id,
                client_secret: config.client_secret,
                records,
                requests: Vec::new(),
                faults: VecDeque::new(),
                tokens: HashMap::new(),
                issued_log: Vec::new(),
                reporting: reporting::ReportingSettings::default(),
                tokens_issued: 0,
                skiptokens: HashMap::new(),
                generation: 0,
                log: false,
                throttle: None,
                trace_times: VecDeque::new(),
                app_certs: Vec::new(),
                rendered: None,
            }),
        });
        let accept_shared = shared.clone();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            let shared = accept_shared.clone();
                            conns.spawn(async move {
                                let service = service_fn(move |req| handle(req, shared.clone()));
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            });
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    },
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        Ok(GraphServer {
            shared,
            task: task.abort_handle(),
        })
    }

    /// Base URL, `http://127.0.0.1:PORT`: used as both LOGIN_URL and GRAPH_URL.
    pub fn url(&self) -> String {
        self.shared.url.clone()
    }

    /// Replaces the tenant's records (e.g. records that "arrive late").
    pub fn set_records(&self, mut records: Vec<GraphRecord>) {
        sort_newest_first(&mut records);
        let mut st = self.shared.lock();
        st.records = records;
        st.rendered = None;
    }

    /// Renders every record's JSON once and serves pages from that from now on (for
    /// benchmarks: a page is then a memory copy, not 5000 serializations). The records are
    /// kept only in their rendered form; [`GraphServer::set_records`] goes back to rendering
    /// per request. Returns the average size of a record's JSON in bytes.
    pub fn prerender(&self) -> usize {
        let mut st = self.shared.lock();
        let records = std::mem::take(&mut st.records);
        let rendered = Rendered::new(&records);
        drop(records);
        let average = rendered.json.len() / rendered.times.len().max(1);
        st.rendered = Some(rendered);
        average
    }

    /// Number of messageTraces requests answered so far (any status).
    pub fn trace_requests(&self) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.path == MESSAGE_TRACES_PATH)
            .count()
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Queues a fault; each fault applies to exactly one upcoming request of its target.
    pub fn inject(&self, fault: Fault) {
        self.shared.lock().faults.push_back(fault);
    }

    /// Number of access tokens issued.
    pub fn tokens_issued(&self) -> usize {
        self.shared.lock().tokens_issued
    }

    /// Every access token issued (still valid or revoked), so a test can prove none of them
    /// reached a log line, an error or a summary.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.shared.lock().issued_log.clone()
    }

    /// Number of faults injected but not yet applied.
    pub fn pending_faults(&self) -> usize {
        self.shared.lock().faults.len()
    }

    /// Logs each request to stderr (the CLI turns this on).
    pub fn set_log(&self, on: bool) {
        self.shared.lock().log = on;
    }

    /// Enforces Graph's throttling: more than `limit` messageTraces requests within `window`
    /// answer 429 with Retry-After (the real limit is 100 per 5 minutes per tenant).
    /// `None` turns throttling off (the default).
    pub fn set_throttle(&self, throttle: Option<(usize, Duration)>) {
        self.shared.lock().throttle = throttle;
    }

    /// Registers a certificate credential on the application (PEM, e.g.
    /// [`crate::pki::AppCredential::cert_pem`]): token requests may then authenticate with an
    /// RS256/PS256 client assertion signed by its key, referenced by `x5t` or `x5t#S256`.
    pub fn add_client_certificate(&self, cert_pem: &str) -> Result<(), crate::pki::PkiError> {
        let mut certs = crate::pki::parse_certs(cert_pem)?;
        let der = certs.remove(0).to_vec();
        let cert = AppCert {
            x5t: crate::pki::thumbprint(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &der),
            x5t_s256: crate::pki::thumbprint(&aws_lc_rs::digest::SHA256, &der),
            der,
        };
        self.shared.lock().app_certs.push(cert);
        Ok(())
    }

    /// Makes every issued access token invalid (as if they had expired).
    pub fn revoke_tokens(&self) {
        self.shared.lock().tokens.clear();
    }
}

type Resp = Response<RespBody>;

fn json_response(status: u16, body: &Value) -> Resp {
    raw_response(status, body.to_string(), "application/json; charset=utf-8")
}

fn raw_response(status: u16, body: String, content_type: &str) -> Resp {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(CONTENT_TYPE, v);
    }
    resp
}

async fn handle(req: Request<Incoming>, shared: Arc<Shared>) -> Result<Resp, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let index = {
        let mut st = shared.lock();
        st.requests.push(RecordedRequest {
            method: method.to_string(),
            path: path.clone(),
            query: percent_decode(&raw_query),
            status: 0,
        });
        st.requests.len() - 1
    };
    let client_request_id = req
        .headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(uuid);
    let auth = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };

    let segments: Vec<&str> = path.split('/').collect();
    let mut resp = if segments.len() == 5
        && segments[2] == "oauth2"
        && segments[3] == "v2.0"
        && segments[4] == "token"
    {
        token(&shared, &method, segments[1], &body)
    } else if path == REPORTING_PATH {
        reporting::message_trace(&shared, &method, &raw_query, auth.as_deref()).await
    } else if path == MESSAGE_TRACES_PATH {
        message_traces(
            &shared,
            &method,
            &raw_query,
            auth.as_deref(),
            &client_request_id,
        )
        .await
    } else {
        graph_error(
            404,
            "ResourceNotFound",
            &format!(
                "Resource not found for the segment '{}'.",
                segments.last().unwrap_or(&"")
            ),
            &client_request_id,
        )
    };
    let request_id = uuid();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&client_request_id) {
        resp.headers_mut().insert("client-request-id", v);
    }
    let status = resp.status().as_u16();
    let mut st = shared.lock();
    if let Some(r) = st.requests.get_mut(index) {
        r.status = status;
    }
    if st.log {
        eprintln!(
            "{} {method} {path}{}{} -> {status}",
            Utc::now().format("%H:%M:%S%.3f"),
            if raw_query.is_empty() { "" } else { "?" },
            percent_decode(&raw_query)
        );
    }
    Ok(resp)
}

// ---------------------------------------------------------------- token endpoint

fn aadsts(status: u16, error: &str, code: u32, description: &str) -> Resp {
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

fn token(shared: &Shared, method: &Method, tenant: &str, body: &[u8]) -> Resp {
    let mut st = shared.lock();
    if let Some(i) = st.faults.iter().position(|f| !f.targets_trace())
        && let Some(Fault::TokenStatus { status, body }) = st.faults.remove(i)
    {
        return raw_response(status, body, "application/json; charset=utf-8");
    }
    if tenant != st.tenant_id {
        return aadsts(
            400,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
            ),
        );
    }
    if method != Method::POST {
        return aadsts(
            400,
            "invalid_request",
            900561,
            "The endpoint only accepts POST requests. Received a GET request.",
        );
    }
    let form: HashMap<String, String> = parse_pairs(&String::from_utf8_lossy(body))
        .into_iter()
        .collect();
    let missing = |name: &str| {
        aadsts(
            400,
            "invalid_request",
            900144,
            &format!("The request body must contain the following parameter: '{name}'."),
        )
    };
    let Some(grant_type) = form.get("grant_type") else {
        return missing("grant_type");
    };
    if grant_type != "client_credentials" {
        return aadsts(
            400,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant_type}'."),
        );
    }
    let Some(client_id) = form.get("client_id") else {
        return missing("client_id");
    };
    if *client_id != st.client_id {
        return aadsts(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        );
    }
    let Some(scope) = form.get("scope") else {
        return aadsts(
            400,
            "invalid_scope",
            70011,
            "The provided request must include a 'scope' input parameter.",
        );
    };
    if scope.split(' ').filter(|s| !s.is_empty()).count() != 1 || !scope.ends_with("/.default") {
        return aadsts(
            400,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        );
    }
    if form.contains_key("client_assertion") || form.contains_key("client_assertion_type") {
        let audience = format!("{}/{tenant}/oauth2/v2.0/token", shared.url);
        if let Err(resp) = check_assertion(&st, &form, &audience, client_id) {
            return *resp;
        }
        return issue_token(&mut st, scope.clone());
    }
    let Some(secret) = form.get("client_secret") else {
        return aadsts(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
    };
    if *secret != st.client_secret {
        return aadsts(
            401,
            "invalid_client",
            7000215,
            &format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        );
    }
    issue_token(&mut st, scope.clone())
}

fn issue_token(st: &mut State, scope: String) -> Resp {
    let access_token = format!(
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.{}.{}",
        random_hex(24),
        random_hex(16)
    );
    st.tokens.insert(access_token.clone(), scope);
    st.issued_log.push(access_token.clone());
    st.tokens_issued += 1;
    json_response(
        200,
        &json!({
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": access_token,
        }),
    )
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Validates a certificate client assertion like Entra ID does, as far as tests need it.
fn check_assertion(
    st: &State,
    form: &HashMap<String, String>,
    audience: &str,
    client_id: &str,
) -> Result<(), Box<Resp>> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let assertion_type = form
        .get("client_assertion_type")
        .map(String::as_str)
        .unwrap_or("");
    if assertion_type != JWT_BEARER {
        return Err(Box::new(aadsts(
            400,
            "invalid_request",
            50027,
            &format!(
                "Invalid client_assertion_type '{assertion_type}': it must be '{JWT_BEARER}'."
            ),
        )));
    }
    let malformed = |why: &str| {
        Box::new(aadsts(
            400,
            "invalid_request",
            50027,
            &format!("JWT token is invalid or malformed: {why}."),
        ))
    };
    let assertion = form
        .get("client_assertion")
        .ok_or_else(|| malformed("client_assertion is missing"))?;
    let parts: Vec<&str> = assertion.split('.').collect();
    if parts.len() != 3 {
        return Err(malformed("a JWT has three dot-separated parts"));
    }
    let decode_json =
        |part: &str| -> Option<Value> { serde_json::from_slice(&B64.decode(part).ok()?).ok() };
    let header =
        decode_json(parts[0]).ok_or_else(|| malformed("the header is not base64url JSON"))?;
    let claims =
        decode_json(parts[1]).ok_or_else(|| malformed("the payload is not base64url JSON"))?;
    let signature = B64
        .decode(parts[2])
        .map_err(|_| malformed("the signature is not base64url"))?;
    let s256 = header["x5t#S256"].as_str();
    let sha1 = header["x5t"].as_str();
    let Some(cert) = st
        .app_certs
        .iter()
        .find(|c| Some(c.x5t_s256.as_str()) == s256 || Some(c.x5t.as_str()) == sha1)
    else {
        return Err(Box::new(aadsts(
            401,
            "invalid_client",
            700027,
            &format!(
                "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{}']",
                s256.or(sha1).unwrap_or("none (no x5t or x5t#S256 header)")
            ),
        )));
    };
    let alg: &dyn rustls_pki_types::SignatureVerificationAlgorithm = match header["alg"].as_str() {
        Some("RS256") => webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256,
        Some("PS256") => webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        other => {
            return Err(Box::new(aadsts(
                401,
                "invalid_client",
                700027,
                &format!(
                    "Client assertion contains an unsupported signing algorithm {other:?} (use RS256 or PS256)."
                ),
            )));
        }
    };
    let der = rustls_pki_types::CertificateDer::from(cert.der.as_slice());
    let verified = webpki::EndEntityCert::try_from(&der).ok().map(|ee| {
        ee.verify_signature(
            alg,
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &signature,
        )
        .is_ok()
    });
    if verified != Some(true) {
        return Err(Box::new(aadsts(
            401,
            "invalid_client",
            700027,
            "Client assertion failed signature validation.",
        )));
    }
    if claims["aud"].as_str() != Some(audience) {
        return Err(Box::new(aadsts(
            401,
            "invalid_client",
            700023,
            &format!(
                "Client assertion audience claim does not match Realm issuer: 'aud' must be '{audience}'."
            ),
        )));
    }
    if claims["iss"].as_str() != Some(client_id) || claims["sub"].as_str() != Some(client_id) {
        return Err(Box::new(aadsts(
            401,
            "invalid_client",
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter: 'iss' and 'sub' must be the client id.",
        )));
    }
    let now = Utc::now().timestamp();
    let exp = claims["exp"].as_i64();
    let nbf = claims["nbf"].as_i64().unwrap_or(now);
    if exp.is_none_or(|e| e <= now) || nbf > now + 300 {
        return Err(Box::new(aadsts(
            400,
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range.",
        )));
    }
    if claims["jti"].as_str().is_none_or(str::is_empty) {
        return Err(malformed("the 'jti' claim is required"));
    }
    Ok(())
}

// ---------------------------------------------------------------- message traces

fn graph_error(status: u16, code: &str, message: &str, client_request_id: &str) -> Resp {
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

fn bad_request(message: &str, crid: &str) -> Resp {
    graph_error(400, "BadRequest", message, crid)
}

/// Parses `receivedDateTime ge S and receivedDateTime le E` (clauses in either order).
fn parse_filter(filter: &str) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let expected =
        "expected 'receivedDateTime ge <DateTimeOffset> and receivedDateTime le <DateTimeOffset>'";
    let tokens: Vec<&str> = filter.split_whitespace().collect();
    let mut ge = None;
    let mut le = None;
    let mut i = 0;
    while i < tokens.len() {
        if i > 0 {
            if tokens[i] != "and" {
                return Err(format!(
                    "Invalid filter clause: {expected}, found '{}' in '{filter}'.",
                    tokens[i]
                ));
            }
            i += 1;
        }
        let clause = tokens.get(i..i + 3).ok_or_else(|| {
            format!("Invalid filter clause: {expected}; the filter '{filter}' ends early.")
        })?;
        if clause[0] != "receivedDateTime" {
            return Err(format!(
                "Invalid filter clause: property '{}' is not supported in a range filter; {expected}.",
                clause[0]
            ));
        }
        let value = DateTime::parse_from_rfc3339(clause[2])
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                format!(
                    "Invalid filter clause: '{}' is not a valid DateTimeOffset (write it unquoted, e.g. 2026-11-24T10:00:00Z).",
                    clause[2]
                )
            })?;
        let slot = match clause[1] {
            "ge" => &mut ge,
            "le" => &mut le,
            op => {
                return Err(format!(
                    "Invalid filter clause: operator '{op}' is not supported on receivedDateTime (only ge and le)."
                ));
            }
        };
        if slot.replace(value).is_some() {
            return Err(format!(
                "Invalid filter clause: receivedDateTime {} appears twice.",
                clause[1]
            ));
        }
        i += 3;
    }
    match (ge, le) {
        (Some(s), Some(e)) => Ok((s, e)),
        _ => Err(format!(
            "Invalid filter clause: both bounds are required (receivedDateTime ge <start> and receivedDateTime le <end>), got '{filter}'."
        )),
    }
}

/// The answer of a [`Fault::TraceStatus`]: the status, the raw body and `Retry-After`.
fn status_fault(status: u16, body: String, retry_after: Option<u64>) -> Resp {
    let mut resp = raw_response(status, body, "application/json; charset=utf-8");
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert("retry-after", HeaderValue::from(secs));
    }
    resp
}

/// The next fault for a message trace request (an expired skip token only applies to a request
/// that carries one).
fn take_trace_fault(shared: &Shared, has_skiptoken: bool) -> Option<Fault> {
    let mut st = shared.lock();
    let pos = st
        .faults
        .iter()
        .position(|f| f.targets_trace() && (has_skiptoken || !matches!(f, Fault::ExpireSkipToken)));
    pos.and_then(|i| st.faults.remove(i))
}

async fn message_traces(
    shared: &Shared,
    method: &Method,
    raw_query: &str,
    auth: Option<&str>,
    crid: &str,
) -> Resp {
    let params = parse_pairs(raw_query);
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let skiptoken = param("$skiptoken");

    // Fault selection.
    let fault = take_trace_fault(shared, skiptoken.is_some());
    let mut truncate = false;
    match fault {
        Some(Fault::TraceStatus {
            status,
            body,
            retry_after,
        }) => return status_fault(status, body, retry_after),
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::TruncatedPage) => truncate = true,
        Some(Fault::ExpireSkipToken) => {
            let mut st = shared.lock();
            st.generation += 1;
            st.skiptokens.clear();
            return bad_request(
                "The skip token is invalid or expired. Restart the query without $skiptoken.",
                crid,
            );
        }
        Some(Fault::TokenStatus { .. }) | None => {}
    }

    let mut st = shared.lock();
    let token = auth.and_then(|a| a.strip_prefix("Bearer ")).map(str::trim);
    match token {
        None | Some("") => {
            return graph_error(
                401,
                "InvalidAuthenticationToken",
                "Access token is empty.",
                crid,
            );
        }
        Some(t) if !st.tokens.contains_key(t) => {
            return graph_error(
                401,
                "InvalidAuthenticationToken",
                "Access token validation failure. The token is not one this tenant issued, or it has expired.",
                crid,
            );
        }
        Some(_) => {}
    }
    if method != Method::GET {
        return graph_error(
            405,
            "Request_BadRequest",
            &format!("The HTTP method '{method}' is not allowed."),
            crid,
        );
    }
    if let Some((limit, window)) = st.throttle {
        let now = Instant::now();
        while st
            .trace_times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            st.trace_times.pop_front();
        }
        if st.trace_times.len() >= limit {
            let retry = st
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
            return resp;
        }
        st.trace_times.push_back(now);
    }

    let Some(filter) = param("$filter") else {
        return bad_request(
            "The $filter query option is required: receivedDateTime ge <start> and receivedDateTime le <end>.",
            crid,
        );
    };
    let (start, end) = match parse_filter(&filter) {
        Ok(b) => b,
        Err(msg) => return bad_request(&msg, crid),
    };
    if start > end {
        return bad_request(
            &format!(
                "Invalid filter clause: the start of the query window ({start:?}) is later than its end ({end:?})."
            ),
            crid,
        );
    }
    if end - start > MAX_WINDOW {
        return bad_request(
            &format!("The query window cannot exceed 10 days (requested {start:?} to {end:?})."),
            crid,
        );
    }
    if start < Utc::now() - LOOKBACK {
        return bad_request(
            &format!(
                "Message trace data is available for the last 90 days only; the start {start:?} is older than that."
            ),
            crid,
        );
    }
    let top = match param("$top") {
        None => DEFAULT_TOP,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_TOP).contains(&n) => n,
            _ => {
                return bad_request(
                    &format!(
                        "Invalid $top value '{v}': it must be an integer between 1 and {MAX_TOP}."
                    ),
                    crid,
                );
            }
        },
    };
    let offset = match &skiptoken {
        None => 0,
        Some(tok) => match st.skiptokens.get(tok) {
            Some(s)
                if s.generation == st.generation
                    && s.start == start
                    && s.end == end
                    && s.top == top =>
            {
                s.offset
            }
            Some(_) => {
                return bad_request(
                    "The skip token is invalid or expired: it does not belong to this query ($filter and $top must stay the same).",
                    crid,
                );
            }
            None => return bad_request("The skip token is invalid or expired.", crid),
        },
    };

    if st.rendered.is_some() {
        return rendered_page(shared, &mut st, start, end, top, offset, &filter);
    }
    let matching: Vec<&GraphRecord> = st
        .records
        .iter()
        .filter(|r| r.received_date_time >= start && r.received_date_time <= end)
        .collect();
    let page: Vec<&GraphRecord> = matching.iter().skip(offset).take(top).copied().collect();
    let next_offset = offset + page.len();
    let mut body = json!({
        "@odata.context": format!("{}/v1.0/$metadata#admin/exchange/tracing/messageTraces", shared.url),
        "value": page,
    });
    if next_offset < matching.len() {
        let tok = issue_skiptoken(&mut st, start, end, top, next_offset);
        body["@odata.nextLink"] = Value::String(format!(
            "{}{MESSAGE_TRACES_PATH}?$filter={}&$top={top}&$skiptoken={tok}",
            shared.url,
            percent_encode(&filter)
        ));
    }
    drop(st);
    let text = body.to_string();
    if truncate {
        let len = text.len();
        let half = Bytes::from(text).slice(..len / 2);
        let mut resp = Response::new(cut_body(half));
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(GRAPH_CONTENT_TYPE));
        resp.headers_mut()
            .insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(len));
        return resp;
    }
    raw_response(200, text, GRAPH_CONTENT_TYPE)
}

/// Registers a skip token for the page after `offset` of the query.
fn issue_skiptoken(
    st: &mut State,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    top: usize,
    offset: usize,
) -> String {
    let mut raw = offset.to_be_bytes().to_vec();
    let mut nonce = [0u8; 12];
    crate::util::random_bytes(&mut nonce);
    raw.extend_from_slice(&nonce);
    let tok = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let generation = st.generation;
    st.skiptokens.insert(
        tok.clone(),
        Skip {
            start,
            end,
            top,
            offset,
            generation,
        },
    );
    tok
}

/// A page served from [`Rendered`]: the same body as the per-request path, assembled from
/// pre-rendered bytes.
fn rendered_page(
    shared: &Shared,
    st: &mut State,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    top: usize,
    offset: usize,
    filter: &str,
) -> Resp {
    let Some(rendered) = st.rendered.as_ref() else {
        return graph_error(500, "InternalServerError", "no rendered records", "-");
    };
    let (first, last) = rendered.matching(start, end);
    let from = (first + offset).min(last);
    let to = (from + top).min(last);
    let mut body = Vec::with_capacity(rendered.starts[to] - rendered.starts[from] + 512);
    body.extend_from_slice(b"{\"@odata.context\":");
    let context = format!(
        "{}/v1.0/$metadata#admin/exchange/tracing/messageTraces",
        shared.url
    );
    body.extend_from_slice(json!(context).to_string().as_bytes());
    body.extend_from_slice(b",\"value\":[");
    body.extend_from_slice(rendered.slice(from, to));
    body.push(b']');
    if to < last {
        let next_offset = offset + (to - from);
        let tok = issue_skiptoken(st, start, end, top, next_offset);
        let link = format!(
            "{}{MESSAGE_TRACES_PATH}?$filter={}&$top={top}&$skiptoken={tok}",
            shared.url,
            percent_encode(filter)
        );
        body.extend_from_slice(b",\"@odata.nextLink\":");
        body.extend_from_slice(json!(link).to_string().as_bytes());
    }
    body.push(b'}');
    let mut resp = Response::new(full(body));
    if let Ok(v) = HeaderValue::from_str(GRAPH_CONTENT_TYPE) {
        resp.headers_mut().insert(CONTENT_TYPE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_parsing() {
        let (s, e) = parse_filter("receivedDateTime ge 2026-11-24T10:00:00Z and receivedDateTime le 2026-11-24T11:00:00.1234567Z").unwrap();
        assert!(s < e);
        assert!(parse_filter("receivedDateTime le 2026-11-24T11:00:00Z and receivedDateTime ge 2026-11-24T10:00:00Z").is_ok());
        assert!(
            parse_filter("receivedDateTime ge 2026-11-24T10:00:00Z")
                .unwrap_err()
                .contains("both bounds")
        );
        assert!(parse_filter("receivedDateTime ge '2026-11-24T10:00:00Z' and receivedDateTime le 2026-11-24T11:00:00Z").is_err());
        assert!(parse_filter("receivedDateTime gt 2026-11-24T10:00:00Z and receivedDateTime le 2026-11-24T11:00:00Z").is_err());
        assert!(parse_filter("status eq 'delivered'").is_err());
        assert!(parse_filter("receivedDateTime ge 2026-11-24T10:00:00Z or receivedDateTime le 2026-11-24T11:00:00Z").is_err());
    }
}
