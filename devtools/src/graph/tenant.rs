//! [`TenantHandle`]: the controls of one tenant of a [`super::GraphServer`] — its records
//! (replaced, exposed late, statuses changed), its faults and throttle, its certificates and
//! what it was asked.
//!
//! Exists so a test with many tenants can give each its own data and failures, and assert on
//! each one alone.

use std::sync::MutexGuard;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::assertion::AppCert;
use super::faults::Fault;
use super::rendered::Rendered;
use super::reporting_state::ReportingFormat;
use super::state::{Shared, State, TenantState};
use super::{MESSAGE_TRACES_PATH, RecordedRequest};
use crate::records::GraphRecord;

/// One tenant of a running [`super::GraphServer`], from [`super::GraphServer::tenant`] or
/// [`super::GraphServer::first_tenant`].
#[derive(Clone, Copy)]
pub struct TenantHandle<'a> {
    shared: &'a Shared,
    index: usize,
}

/// The state locked, and this tenant in it.
struct Locked<'a> {
    guard: MutexGuard<'a, State>,
    index: usize,
}

impl std::ops::Deref for Locked<'_> {
    type Target = TenantState;
    fn deref(&self) -> &TenantState {
        &self.guard.tenants[self.index]
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut TenantState {
        &mut self.guard.tenants[self.index]
    }
}

impl<'a> TenantHandle<'a> {
    pub(super) fn new(shared: &'a Shared, index: usize) -> TenantHandle<'a> {
        TenantHandle { shared, index }
    }

    fn lock(&self) -> Locked<'a> {
        Locked {
            guard: self.shared.lock(),
            index: self.index,
        }
    }

    /// The tenant id.
    pub fn id(&self) -> String {
        self.lock().tenant_id.clone()
    }

    /// Replaces the tenant's records, all visible at once (drops any prerendered form).
    pub fn set_records(&self, records: Vec<GraphRecord>) {
        self.lock().set_records(records);
    }

    /// Adds a record that Microsoft "exposes late": queries made before `visible_from` do not
    /// see it (whatever its `receivedDateTime`), queries from then on do. Goes back to
    /// rendering pages per request if the records were prerendered.
    pub fn add_late_record(&self, record: GraphRecord, visible_from: DateTime<Utc>) {
        let mut t = self.lock();
        unrender(&mut t);
        t.add_late_record(record, visible_from);
    }

    /// Changes the status (`status`, Graph's delivery status: delivered, failed, pending, …) of
    /// the record with this id and recipient, as Microsoft does when a message's delivery
    /// progresses between two queries. Returns whether such a record exists.
    pub fn set_status(&self, id: &str, recipient: &str, status: &str) -> bool {
        let mut t = self.lock();
        unrender(&mut t);
        let found = t
            .records
            .iter_mut()
            .find(|s| s.record.id == id && s.record.recipient_address == recipient);
        match found {
            Some(s) => {
                s.record.status = status.to_string();
                true
            }
            None => false,
        }
    }

    /// The tenant's records as they are now (visible or not yet), in page order (newest
    /// first). Empty while prerendered.
    pub fn records(&self) -> Vec<GraphRecord> {
        let t = self.lock();
        t.records.iter().map(|s| s.record.clone()).collect()
    }

    /// Renders every record's JSON once and serves pages from that from now on (for
    /// benchmarks: a page is then a memory copy, not 5000 serializations). The records are
    /// kept only in their rendered form, all visible; [`TenantHandle::set_records`] goes back
    /// to rendering per request. Returns the average size of a record's JSON in bytes.
    pub fn prerender(&self) -> usize {
        let mut t = self.lock();
        let rendered = Rendered::new(&t.records);
        t.records = Vec::new();
        let average = rendered.average_size();
        t.rendered = Some(rendered);
        average
    }

    /// Queues a fault; each fault applies to exactly one upcoming request of its target, for
    /// this tenant.
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    /// Number of faults injected but not yet applied.
    pub fn pending_faults(&self) -> usize {
        self.lock().faults.len()
    }

    /// Persistent fault (until switched off): every messageTraces request that carries a
    /// `$skiptoken` answers 400 `{"error":{"code":"BadRequest","message":"|System.ArgumentException|Invalid starting recipient address",…}}`
    /// (elastic/integrations#18985); first pages (no skip token) keep working.
    pub fn set_refuse_next_links(&self, on: bool) {
        self.lock().next_links.refuse = on;
    }

    /// Persistent fault (until switched off): the nextLinks issued from now on carry a
    /// double-encoded skip token (dates, address and id wrapped in extra literal quotes,
    /// elastic/integrations#18134). Followed as is, such a link answers 400 "Cannot process
    /// argument transformation on parameter 'StartDate'. …"; repaired (quotes stripped,
    /// re-encoded as devtools/README.md describes) it serves the right page.
    pub fn set_double_encoded_skip_tokens(&self, on: bool) {
        self.lock().next_links.double_encode = on;
    }

    /// Persistent (until set to zero): every messageTraces or report request of this tenant
    /// waits `latency` before its answer, like a slow page of the real API. A one-shot
    /// [`Fault`] queued for a request applies instead.
    pub fn set_page_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Enforces Graph's throttling for this tenant: more than `limit` messageTraces requests
    /// (list and getDetailsByRecipient alike) within `window` answer 429 with Retry-After (the real limit is 100 per 5 minutes per
    /// tenant). `None` turns throttling off (the default).
    pub fn set_throttle(&self, throttle: Option<(usize, Duration)>) {
        let mut t = self.lock();
        t.throttle = throttle;
        t.trace_times.clear();
    }

    /// Another application of the tenant spends `requests` of its message trace quota now,
    /// within the throttle of [`TenantHandle::set_throttle`] (set it first: it starts a fresh
    /// window): this function's requests meet a 429 however few it sent itself, as when another
    /// tool reads the same tenant.
    pub fn spend_quota(&self, requests: usize) {
        let now = std::time::Instant::now();
        self.lock()
            .trace_times
            .extend(std::iter::repeat_n(now, requests));
    }

    /// Registers a certificate credential on the tenant's application (PEM, e.g.
    /// [`crate::pki::AppCredential::cert_pem`]): token requests may then authenticate with an
    /// RS256/PS256 client assertion signed by its key, referenced by `x5t` or `x5t#S256`.
    pub fn add_client_certificate(&self, cert_pem: &str) -> Result<(), crate::pki::PkiError> {
        let cert = AppCert::from_pem(cert_pem)?;
        self.lock().app_certs.push(cert);
        Ok(())
    }

    /// Chooses the JSON form of the tenant's Reporting Web Service answers (JSON light by
    /// default).
    pub fn set_reporting_format(&self, format: ReportingFormat) {
        self.lock().reporting.format = format;
    }

    /// Rows per Reporting Web Service page (50 by default; the bare verbose form ignores it).
    pub fn set_reporting_page_size(&self, rows: usize) {
        self.lock().reporting.page_size = rows.max(1);
    }

    /// Every request made for this tenant (token requests to its path, API requests with a
    /// token issued for it), in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        let t = self.lock();
        let id = t.tenant_id.clone();
        t.guard
            .requests
            .iter()
            .filter(|r| r.tenant.as_deref() == Some(id.as_str()))
            .cloned()
            .collect()
    }

    /// Number of messageTraces requests answered for this tenant (any status).
    pub fn trace_requests(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.path == MESSAGE_TRACES_PATH)
            .count()
    }

    /// Number of getDetailsByRecipient requests answered for this tenant (any status).
    pub fn detail_requests(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| super::is_details_path(&r.path))
            .count()
    }

    /// Number of access tokens issued for this tenant.
    pub fn tokens_issued(&self) -> usize {
        let t = self.lock();
        t.guard
            .issued_log
            .iter()
            .filter(|(i, _)| *i == self.index)
            .count()
    }

    /// Makes every access token issued for this tenant invalid (as if they had expired).
    pub fn revoke_tokens(&self) {
        let mut t = self.lock();
        let index = self.index;
        t.guard.tokens.retain(|_, issued| issued.tenant != index);
    }
}

/// Turns prerendered records back into records served per request.
fn unrender(t: &mut TenantState) {
    if let Some(rendered) = t.rendered.take() {
        let records = (0..rendered.len())
            .filter_map(|i| rendered.record(i))
            .collect();
        t.set_records(records);
    }
}
