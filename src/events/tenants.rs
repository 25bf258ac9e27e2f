//! The lines of a many-tenant deployment: the dispatch of the tenants' ticks, and a failure
//! that could not be recorded in a tenant's checkpoint.

use chrono::Utc;

use crate::events::Event;
use crate::metrics::{Dimensions, DispatchCounts};
use crate::tenants::dispatch::{DispatchSummary, Failure};
use crate::tenants::registry::{Invalid, UnknownField};

/// A scheduled event started the tenants' ticks: the line, then the EMF document of
/// `TenantsDispatched`, `DispatchFailed` and `RegistryErrors`.
pub struct Dispatched<'a> {
    /// `s3://bucket/key` of the registry.
    pub registry: &'a str,
    /// What the dispatch did.
    pub summary: &'a DispatchSummary,
    /// The function and the API (the metrics' dimensions).
    pub dimensions: Dimensions<'a>,
}

impl Event for Dispatched<'_> {
    const NAME: &'static str = "dispatch";
    fn emit(&self) {
        let s = self.summary;
        println!(
            "{}",
            crate::metrics::dispatch_emf(
                &self.dimensions,
                DispatchCounts {
                    dispatched: s.dispatched.len(),
                    failed: s.failed.len(),
                    registry_errors: s.invalid.len(),
                    duration_ms: s.duration_ms,
                },
                Utc::now()
            )
        );
        let failed: Vec<&str> = s.failed.iter().map(|f| f.tenant.as_str()).collect();
        let invalid: Vec<&str> = s.invalid.iter().map(|i| i.name.as_str()).collect();
        tracing::info!(event = Self::NAME, registry = self.registry, tenants = s.tenants,
            dispatched = s.dispatched.len(), disabled = s.disabled.len(),
            invalid = s.invalid.len(), invalid_entries = ?invalid, failed = s.failed.len(),
            failed_tenants = ?failed, retries = s.retries, duration_ms = s.duration_ms,
            "tenant ticks dispatched");
    }
}

/// A registry entry cannot run (it is not dispatched; the others are).
pub struct EntryInvalid<'a> {
    /// `s3://bucket/key` of the registry.
    pub registry: &'a str,
    /// The entry.
    pub entry: &'a Invalid,
}

impl Event for EntryInvalid<'_> {
    const NAME: &'static str = "registry_entry_invalid";
    fn emit(&self) {
        let e = self.entry;
        tracing::error!(event = Self::NAME, registry = self.registry, index = e.index,
            name = %e.name, problem = %e.problem,
            "a tenant registry entry cannot run; the other tenants were dispatched");
    }
}

/// A registry field this version does not read: accepted, not used.
pub struct FieldUnknown<'a> {
    /// `s3://bucket/key` of the registry.
    pub registry: &'a str,
    /// The field and its entry.
    pub field: &'a UnknownField,
}

impl Event for FieldUnknown<'_> {
    const NAME: &'static str = "registry_unknown_field";
    fn emit(&self) {
        let f = self.field;
        tracing::warn!(event = Self::NAME, registry = self.registry, index = ?f.index,
            name = %f.name, field = %f.field,
            "the tenant registry has a field this version does not read: ignored (a typo?)");
    }
}

/// A tenant's tick could not be started after retries.
pub struct NotStarted<'a> {
    /// The tenant and why.
    pub failure: &'a Failure,
}

impl Event for NotStarted<'_> {
    const NAME: &'static str = "dispatch_not_started";
    fn emit(&self) {
        let f = self.failure;
        tracing::error!(event = Self::NAME, tenant = %f.tenant, attempts = f.attempts,
            error = %f.error, "a tenant's tick could not be started; it is tried again at the next scheduled event");
    }
}

/// The registry lists no tenant: nothing was dispatched.
pub struct NoTenants<'a> {
    /// `s3://bucket/key` of the registry.
    pub registry: &'a str,
}

impl Event for NoTenants<'_> {
    const NAME: &'static str = "no_tenants";
    fn emit(&self) {
        tracing::warn!(
            event = Self::NAME,
            registry = self.registry,
            "the tenant registry lists no tenant: nothing dispatched"
        );
    }
}

/// The dispatch failed (the registry, or ticks that could not be started).
pub struct DispatchFailed<'a> {
    /// The failure's stable `errorType`.
    pub error_type: &'a str,
    /// The failure.
    pub error: &'a dyn std::fmt::Display,
}

impl Event for DispatchFailed<'_> {
    const NAME: &'static str = "dispatch_failed";
    fn emit(&self) {
        tracing::error!(event = Self::NAME, error_type = self.error_type, error = %self.error, "dispatch failed");
    }
}

/// A tenant's failure could not be written as its last error (`tenants list` will not show it).
pub struct LastErrorNotRecorded<'a> {
    /// The checkpoint's key.
    pub key: &'a str,
    /// Why.
    pub error: &'a dyn std::fmt::Display,
}

impl Event for LastErrorNotRecorded<'_> {
    const NAME: &'static str = "last_error_not_recorded";
    fn emit(&self) {
        tracing::warn!(event = Self::NAME, key = self.key, error = %self.error,
            "could not record the failure in the tenant's checkpoint");
    }
}
