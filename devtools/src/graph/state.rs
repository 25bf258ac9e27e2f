//! What the Graph stand-in knows, behind one lock: the tenants (credentials, certificates,
//! records, faults, switches), the access tokens it issued and the log of requests.
//!
//! Exists so every concern (identity, paging, faults, reporting) reads and changes the same
//! state the same way, and so a tenant's data is only ever reached through the tenant a token
//! was issued for.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::assertion::AppCert;
use super::faults::{Fault, NextLinkFaults};
use super::rendered::Rendered;
use super::reporting_state::ReportingState;
use super::skiptoken::Cursor;
use super::stored::{Stored, order_key, tick};
use super::{GraphServerConfig, RecordedRequest};
use crate::records::GraphRecord;

/// The state and the server's base URL, shared by the accept loop and every handle.
pub(super) struct Shared {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Mutex<State>,
}

impl Shared {
    pub fn new(url: String, state: State) -> Shared {
        Shared {
            url,
            state: Mutex::new(state),
        }
    }

    /// The state; a panic elsewhere while it was held does not make it unusable.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the tenant's next fault for a message trace or report request (an expired skip
    /// token only applies to a request that carries one, and then expires every token issued so
    /// far); without one, the tenant's page latency as a delay. The lock is released before the
    /// fault is returned.
    pub fn take_trace_fault(&self, tenant: usize, has_skiptoken: bool) -> Option<Fault> {
        let mut st = self.lock();
        let tenant = &mut st.tenants[tenant];
        let pos = tenant.faults.iter().position(|f| {
            f.targets_trace() && (has_skiptoken || !matches!(f, Fault::ExpireSkipToken))
        });
        let fault = pos
            .and_then(|i| tenant.faults.remove(i))
            .or_else(|| (!tenant.latency.is_zero()).then_some(Fault::Delay(tenant.latency)));
        if matches!(fault, Some(Fault::ExpireSkipToken)) {
            tenant.cursors.clear();
            tenant.reporting.expire_skip_tokens();
        }
        fault
    }
}

/// An access token the server issued: for which tenant and which scope.
pub(super) struct IssuedToken {
    /// Index into [`State::tenants`].
    pub tenant: usize,
    /// The `scope` it was requested for, e.g. `https://graph.microsoft.com/.default`.
    pub scope: String,
}

/// Everything behind the lock.
pub(super) struct State {
    /// The tenants, in the order they were configured.
    pub tenants: Vec<TenantState>,
    /// Valid access tokens.
    pub tokens: HashMap<String, IssuedToken>,
    /// Every access token ever issued, valid or not, with the tenant it was issued for.
    pub issued_log: Vec<(usize, String)>,
    /// Every request, in arrival order.
    pub requests: Vec<RecordedRequest>,
    /// Log requests to stderr.
    pub log: bool,
    /// Compress message trace pages for requests that accept gzip.
    pub gzip: bool,
}

impl State {
    /// The state for `configs`; an error (a sentence) when there is no tenant or one appears
    /// twice.
    pub fn new(configs: Vec<GraphServerConfig>) -> Result<State, String> {
        if configs.is_empty() {
            return Err("the Graph stand-in needs at least one tenant".into());
        }
        let mut seen = HashSet::new();
        for c in &configs {
            if !seen.insert(c.tenant_id.clone()) {
                return Err(format!(
                    "tenant '{}' is configured twice: give each tenant its own id",
                    c.tenant_id
                ));
            }
        }
        Ok(State {
            tenants: configs.into_iter().map(TenantState::new).collect(),
            tokens: HashMap::new(),
            issued_log: Vec::new(),
            requests: Vec::new(),
            log: false,
            gzip: true,
        })
    }

    /// Index of the tenant `tenant_id`.
    pub fn tenant_index(&self, tenant_id: &str) -> Option<usize> {
        self.tenants.iter().position(|t| t.tenant_id == tenant_id)
    }
}

/// One tenant: its application, its records, its faults.
pub(super) struct TenantState {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// Certificates registered on the application.
    pub app_certs: Vec<AppCert>,
    /// Sorted newest first, see [`order_key`].
    pub records: Vec<Stored>,
    /// Set by prerendering: pages are served from here instead of `records`.
    pub rendered: Option<Rendered>,
    /// One-shot faults, in order.
    pub faults: VecDeque<Fault>,
    /// The persistent nextLink faults.
    pub next_links: NextLinkFaults,
    /// Graph's throttling: at most `limit` messageTraces requests per `window`.
    pub throttle: Option<(usize, Duration)>,
    /// How long every messageTraces or report request waits before its answer (a slow API).
    pub latency: Duration,
    /// When the messageTraces requests inside the throttle window arrived.
    pub trace_times: VecDeque<Instant>,
    /// The skip tokens issued and still valid (as decoded cursors: a repaired token that
    /// decodes to the same cursor is the same token).
    pub cursors: HashSet<Cursor>,
    /// The Reporting Web Service's settings and skip tokens.
    pub reporting: ReportingState,
}

impl TenantState {
    fn new(config: GraphServerConfig) -> TenantState {
        let mut tenant = TenantState {
            tenant_id: config.tenant_id,
            client_id: config.client_id,
            client_secret: config.client_secret,
            app_certs: Vec::new(),
            records: Vec::new(),
            rendered: None,
            faults: VecDeque::new(),
            next_links: NextLinkFaults::default(),
            throttle: None,
            latency: Duration::ZERO,
            trace_times: VecDeque::new(),
            cursors: HashSet::new(),
            reporting: ReportingState::default(),
        };
        tenant.set_records(config.records);
        tenant
    }

    /// The next [`Fault::TokenStatus`] of the tenant: its status and body.
    pub fn take_token_fault(&mut self) -> Option<(u16, String)> {
        let i = self.faults.iter().position(|f| !f.targets_trace())?;
        match self.faults.remove(i) {
            Some(Fault::TokenStatus { status, body }) => Some((status, body)),
            _ => None,
        }
    }

    /// Replaces the records (all visible at once) and drops any prerendered form.
    pub fn set_records(&mut self, records: Vec<GraphRecord>) {
        self.records = records
            .into_iter()
            .map(|record| Stored {
                record,
                visible_from: None,
            })
            .collect();
        self.records
            .sort_by(|a, b| order_key(&a.record).cmp(&order_key(&b.record)));
        self.rendered = None;
    }

    /// Adds one record that queries see only from `visible_from` on.
    pub fn add_late_record(&mut self, record: GraphRecord, visible_from: DateTime<Utc>) {
        let key = order_key(&record);
        let at = self.records.partition_point(|s| order_key(&s.record) < key);
        self.records.insert(
            at,
            Stored {
                record,
                visible_from: Some(visible_from),
            },
        );
    }

    /// Records visible at `now` whose `receivedDateTime` is in `start..=end`, newest first,
    /// from `cursor` on (the whole query without one).
    pub fn visible_in<'a>(
        &'a self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        now: DateTime<Utc>,
        cursor: Option<&Cursor>,
    ) -> impl Iterator<Item = &'a GraphRecord> + 'a {
        let newest = Reverse(tick(end));
        let from = match cursor {
            Some(c) => self
                .records
                .partition_point(|s| order_key(&s.record) < c.key()),
            None => self
                .records
                .partition_point(|s| Reverse(tick(s.record.received_date_time)) < newest),
        };
        let oldest = tick(start);
        self.records[from..]
            .iter()
            .take_while(move |s| tick(s.record.received_date_time) >= oldest)
            .filter(move |s| {
                s.visible(now)
                    && s.record.received_date_time >= start
                    && s.record.received_date_time <= end
            })
            .map(|s| &s.record)
    }
}
