//! The lines of a many-tenant deployment: the dispatch of the tenants' ticks, and a failure
//! that could not be recorded in a tenant's checkpoint.

use chrono::Utc;

use crate::events::Event;
use crate::events::metrics::{Dimensions, DispatchCounts};

/// A scheduled event started the tenants' ticks: the line, then the EMF document of
/// `TenantsDispatched`, `DispatchFailed` and `RegistryErrors`.
pub struct Dispatched<'a> {
    /// `s3://bucket/key` of the registry.
    pub registry: &'a str,
    /// Entries listed, valid or not.
    pub tenants: usize,
    /// Ticks started, not started, and invalid entries, with the wall time.
    pub counts: DispatchCounts,
    /// Tenants skipped as disabled.
    pub disabled: usize,
    /// The invalid entries' names.
    pub invalid: &'a [&'a str],
    /// The tenants whose tick could not be started.
    pub failed: &'a [&'a str],
    /// Invocations retried.
    pub retries: u32,
    /// The function and the API (the metrics' dimensions).
    pub dimensions: Dimensions<'a>,
}

impl Event for Dispatched<'_> {
    const NAME: &'static str = "dispatch";
    fn emit(&self) {
        let c = self.counts;
        println!(
            "{}",
            crate::events::metrics::dispatch_emf(&self.dimensions, c, Utc::now())
        );
        tracing::info!(event = Self::NAME, registry = self.registry, tenants = self.tenants,
            dispatched = c.dispatched, disabled = self.disabled,
            invalid = c.registry_errors, invalid_entries = ?self.invalid, failed = c.failed,
            failed_tenants = ?self.failed, retries = self.retries, duration_ms = c.duration_ms,
            "tenant ticks dispatched");
    }
}

/// A registry entry cannot run (it is not dispatched; the others are).
pub struct EntryInvalid<'a> {
    /// `s3://bucket/key` of the registry.
    pub registry: &'a str,
    /// Its position in `tenants`, from 0.
    pub index: usize,
    /// Its name as written.
    pub name: &'a str,
    /// What is wrong.
    pub problem: &'a str,
}

impl Event for EntryInvalid<'_> {
    const NAME: &'static str = "registry_entry_invalid";
    fn emit(&self) {
        tracing::error!(
            event = Self::NAME,
            registry = self.registry,
            index = self.index,
            name = self.name,
            problem = self.problem,
            "a tenant registry entry cannot run; the other tenants were dispatched"
        );
    }
}

/// A registry field this version does not read: accepted, not used.
pub struct FieldUnknown<'a> {
    /// `s3://bucket/key` of the registry.
    pub registry: &'a str,
    /// The entry's position (`None`: beside `tenants`).
    pub index: Option<usize>,
    /// The entry's name.
    pub name: &'a str,
    pub field: &'a str,
}

impl Event for FieldUnknown<'_> {
    const NAME: &'static str = "registry_unknown_field";
    fn emit(&self) {
        tracing::warn!(event = Self::NAME, registry = self.registry, index = ?self.index,
            name = self.name, field = self.field,
            "the tenant registry has a field this version does not read: ignored (a typo?)");
    }
}

/// A tenant's tick could not be started after retries.
pub struct NotStarted<'a> {
    pub tenant: &'a str,
    /// Attempts made.
    pub attempts: u32,
    /// The last refusal.
    pub error: &'a str,
}

impl Event for NotStarted<'_> {
    const NAME: &'static str = "dispatch_not_started";
    fn emit(&self) {
        tracing::error!(
            event = Self::NAME,
            tenant = self.tenant,
            attempts = self.attempts,
            error = self.error,
            "a tenant's tick could not be started; it is tried again at the next scheduled event"
        );
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
    pub error: &'a dyn std::fmt::Display,
}

impl Event for LastErrorNotRecorded<'_> {
    const NAME: &'static str = "last_error_not_recorded";
    fn emit(&self) {
        tracing::warn!(event = Self::NAME, key = self.key, error = %self.error,
            "could not record the failure in the tenant's checkpoint");
    }
}
