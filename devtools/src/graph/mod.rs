//! A local HTTP server that behaves like the Microsoft identity platform token endpoint, the
//! Microsoft Graph message trace API (the list and a delivery's details) and the Reporting Web
//! Service `MessageTrace` report, for one tenant or several at once.
//!
//! Exists so the product can be tested, demonstrated and benchmarked without a tenant: it
//! follows the documented contract (client-credentials tokens with AADSTS-shaped errors;
//! `GET /v1.0/admin/exchange/tracing/messageTraces` with `$filter`, `$top`, `$skiptoken`, newest
//! first, `@odata.nextLink`), records every request and can inject the faults real services
//! have, on demand.
//!
//! The code is split by concern, each file using only the ones listed before it:
//! - `respond.rs`: the response shapes (Graph errors, AADSTS errors); `gzip.rs`: compressed
//!   answers;
//!   `stored.rs`: a stored record and the page order; `filter.rs`: the `$filter` grammar;
//! - `skiptoken.rs`, `rendered.rs`: Microsoft-shaped skip tokens and prerendered pages;
//! - `faults.rs`: the [`Fault`]s and the persistent nextLink faults; `assertion.rs`:
//!   certificate client assertions; `reporting_state.rs`: a tenant's report settings;
//! - `state.rs`: what the server knows (tenants, records, the fault queue, tokens, the request
//!   log); `call.rs`: one request as an endpoint sees it;
//! - `identity.rs`: the token endpoint, client secrets, and which tenant a bearer token is for;
//!   `paging.rs`: the message trace API (`$filter`, `$top`, newest-first pages, the 10-day and
//!   90-day limits); `evolvable.rs`: the `Prefer` rule for evolvable statuses; `details.rs`: a
//!   delivery's details (`getDetailsByRecipient`); `reporting.rs`: the Reporting Web Service;
//! - `server.rs`: the accept loop and the router; `tenant.rs`: [`TenantHandle`], the
//!   per-tenant controls.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

mod assertion;
mod call;
mod details;
mod evolvable;
mod faults;
mod filter;
mod gzip;
mod identity;
mod paging;
mod rendered;
mod reporting;
mod reporting_state;
mod respond;
mod server;
mod skiptoken;
mod state;
mod stored;
mod tenant;

pub use details::detail_rows;
pub use evolvable::UNKNOWN_FUTURE_VALUE;
pub use faults::{Fault, INVALID_STARTING_RECIPIENT};
pub use reporting::{
    REPORTING_ORGANIZATION, REPORTING_PATH, REPORTING_SCOPE, reporting_error_body,
};
pub use reporting_state::ReportingFormat;
pub use skiptoken::SKIPTOKEN_FIELDS;
pub use tenant::TenantHandle;

use crate::records::GraphRecord;
use state::{Shared, State};

/// Path of the message trace collection, relative to the Graph base URL.
pub const MESSAGE_TRACES_PATH: &str = "/v1.0/admin/exchange/tracing/messageTraces";

/// Whether a request path is a delivery's details (`…/messageTraces/{id}/getDetailsByRecipient(…)`).
pub fn is_details_path(path: &str) -> bool {
    path.starts_with(MESSAGE_TRACES_PATH) && path.contains("/getDetailsByRecipient(")
}
/// Largest `$top` Graph accepts.
pub const MAX_TOP: usize = 5000;
/// `$top` when none is given.
pub const DEFAULT_TOP: usize = 1000;
/// Longest query window Graph accepts.
pub const MAX_WINDOW: TimeDelta = TimeDelta::days(10);
/// How far back Graph keeps message trace data.
pub const LOOKBACK: TimeDelta = TimeDelta::days(90);

/// What one fake tenant knows: its id, the one registered application and the records it
/// serves. Several tenants may share a client id and secret (a multi-tenant app consented in
/// each of them, as an MSSP's is): the tenant in the token path decides.
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
    /// The tenant the request was for: the tenant in a token request's path when the server
    /// knows it, the tenant its bearer token was issued for otherwise (`None` without a valid
    /// token).
    pub tenant: Option<String>,
    /// The request's `Accept-Encoding` header.
    pub accept_encoding: Option<String>,
    /// The request's `Prefer` header.
    pub prefer: Option<String>,
    /// The answer's `Content-Encoding` (`gzip` when the body was compressed).
    pub content_encoding: Option<String>,
    /// Bytes of the answer's body as sent (compressed when it was); 0 while being handled.
    pub body_bytes: u64,
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

impl GraphServer {
    /// Starts a one-tenant server on 127.0.0.1 with an OS-chosen port.
    pub async fn start(config: GraphServerConfig) -> std::io::Result<GraphServer> {
        Self::start_tenants(vec![config]).await
    }

    /// Starts a one-tenant server on `addr` (the CLI's `--listen`).
    pub async fn start_on(
        config: GraphServerConfig,
        addr: SocketAddr,
    ) -> std::io::Result<GraphServer> {
        Self::start_tenants_on(vec![config], addr).await
    }

    /// Starts one server that serves several tenants at once, on 127.0.0.1 with an OS-chosen
    /// port. Each tenant has its own credentials, certificates, records, faults and throttle;
    /// a token is issued for the tenant in the token path, and messageTraces (and report)
    /// requests are answered from the records of the tenant their token was issued for, as
    /// Graph does. Reach a tenant's controls with [`GraphServer::tenant`]. Fails when the list
    /// is empty or names a tenant id twice.
    pub async fn start_tenants(configs: Vec<GraphServerConfig>) -> std::io::Result<GraphServer> {
        Self::start_tenants_on(configs, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// [`GraphServer::start_tenants`] on `addr`.
    pub async fn start_tenants_on(
        configs: Vec<GraphServerConfig>,
        addr: SocketAddr,
    ) -> std::io::Result<GraphServer> {
        let state = State::new(configs)
            .map_err(|message| std::io::Error::new(std::io::ErrorKind::InvalidInput, message))?;
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let shared = Arc::new(Shared::new(format!("http://{local}"), state));
        let task = tokio::spawn(server::accept_loop(listener, shared.clone()));
        Ok(GraphServer {
            shared,
            task: task.abort_handle(),
        })
    }

    /// Base URL, `http://127.0.0.1:PORT`: used as LOGIN_URL, GRAPH_URL and REPORTING_URL.
    pub fn url(&self) -> String {
        self.shared.url.clone()
    }

    /// The controls of the tenant `tenant_id` (records, faults, counters), or `None` when the
    /// server does not serve it.
    pub fn tenant(&self, tenant_id: &str) -> Option<TenantHandle<'_>> {
        let index = self.shared.lock().tenant_index(tenant_id)?;
        Some(TenantHandle::new(&self.shared, index))
    }

    /// The ids of every tenant served, in the order they were given.
    pub fn tenant_ids(&self) -> Vec<String> {
        let st = self.shared.lock();
        st.tenants.iter().map(|t| t.tenant_id.clone()).collect()
    }

    /// The first (for [`GraphServer::start`], the only) tenant's controls. The per-tenant
    /// methods of `GraphServer` below act on this tenant.
    pub fn first_tenant(&self) -> TenantHandle<'_> {
        TenantHandle::new(&self.shared, 0)
    }

    /// Number of messageTraces requests answered so far (any status, every tenant).
    pub fn trace_requests(&self) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.path == MESSAGE_TRACES_PATH)
            .count()
    }

    /// Number of getDetailsByRecipient requests answered so far (any status, every tenant).
    pub fn detail_requests(&self) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| is_details_path(&r.path))
            .count()
    }

    /// Every request so far (every tenant), in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Number of access tokens issued (every tenant).
    pub fn tokens_issued(&self) -> usize {
        self.shared.lock().issued_log.len()
    }

    /// Every access token issued (still valid or revoked, every tenant), so a test can prove
    /// none of them reached a log line, an error or a summary.
    pub fn issued_tokens(&self) -> Vec<String> {
        let st = self.shared.lock();
        st.issued_log.iter().map(|(_, t)| t.clone()).collect()
    }

    /// Makes every issued access token invalid (as if they had expired), for every tenant.
    pub fn revoke_tokens(&self) {
        self.shared.lock().tokens.clear();
    }

    /// Logs each request to stderr (the CLI turns this on).
    pub fn set_log(&self, on: bool) {
        self.shared.lock().log = on;
    }

    /// Whether message trace pages are gzip-compressed for requests whose `Accept-Encoding`
    /// allows it (on by default, as Graph does; off to measure what compression saves).
    pub fn set_gzip(&self, on: bool) {
        self.shared.lock().gzip = on;
    }

    /// The first tenant's [`TenantHandle::set_records`].
    pub fn set_records(&self, records: Vec<GraphRecord>) {
        self.first_tenant().set_records(records);
    }

    /// The first tenant's [`TenantHandle::prerender`].
    pub fn prerender(&self) -> usize {
        self.first_tenant().prerender()
    }

    /// The first tenant's [`TenantHandle::inject`].
    pub fn inject(&self, fault: Fault) {
        self.first_tenant().inject(fault);
    }

    /// The first tenant's [`TenantHandle::pending_faults`].
    pub fn pending_faults(&self) -> usize {
        self.first_tenant().pending_faults()
    }

    /// The first tenant's [`TenantHandle::set_refuse_next_links`].
    pub fn set_refuse_next_links(&self, on: bool) {
        self.first_tenant().set_refuse_next_links(on);
    }

    /// The first tenant's [`TenantHandle::set_double_encoded_skip_tokens`].
    pub fn set_double_encoded_skip_tokens(&self, on: bool) {
        self.first_tenant().set_double_encoded_skip_tokens(on);
    }

    /// The first tenant's [`TenantHandle::set_page_latency`].
    pub fn set_page_latency(&self, latency: Duration) {
        self.first_tenant().set_page_latency(latency);
    }

    /// The first tenant's [`TenantHandle::set_throttle`].
    pub fn set_throttle(&self, throttle: Option<(usize, Duration)>) {
        self.first_tenant().set_throttle(throttle);
    }

    /// The first tenant's [`TenantHandle::spend_quota`].
    pub fn spend_quota(&self, requests: usize) {
        self.first_tenant().spend_quota(requests);
    }

    /// The first tenant's [`TenantHandle::add_client_certificate`].
    pub fn add_client_certificate(&self, cert_pem: &str) -> Result<(), crate::pki::PkiError> {
        self.first_tenant().add_client_certificate(cert_pem)
    }

    /// The first tenant's [`TenantHandle::add_late_record`].
    pub fn add_late_record(
        &self,
        record: GraphRecord,
        visible_from: chrono::DateTime<chrono::Utc>,
    ) {
        self.first_tenant().add_late_record(record, visible_from);
    }

    /// The first tenant's [`TenantHandle::set_status`].
    pub fn set_status(&self, id: &str, recipient: &str, status: &str) -> bool {
        self.first_tenant().set_status(id, recipient, status)
    }

    /// After `after`, applies `changes` (`(id, recipient, new status)`) with
    /// [`GraphServer::set_status`], logging each to stderr, then never returns (for a
    /// `select!` beside the server's lifetime).
    pub async fn set_statuses_after(
        &self,
        after: std::time::Duration,
        changes: &[(String, String, String)],
    ) {
        if !changes.is_empty() {
            tokio::time::sleep(after).await;
            for (id, recipient, to) in changes {
                self.set_status(id, recipient, to);
                eprintln!("status of {id}|{recipient} changed to {to}");
            }
        }
        std::future::pending::<()>().await
    }

    /// The first tenant's [`TenantHandle::set_reporting_format`].
    pub fn set_reporting_format(&self, format: ReportingFormat) {
        self.first_tenant().set_reporting_format(format);
    }

    /// The first tenant's [`TenantHandle::set_reporting_page_size`].
    pub fn set_reporting_page_size(&self, rows: usize) {
        self.first_tenant().set_reporting_page_size(rows);
    }
}
