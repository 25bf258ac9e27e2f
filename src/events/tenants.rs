//! The lines of a many-tenant deployment: the dispatch of the tenants' ticks, and a failure
//! that could not be recorded in a tenant's checkpoint.

use crate::events::Event;

/// A scheduled event started the tenants' ticks.
pub struct Dispatched<'a> {
    /// `s3://bucket/key` of the registry.
    pub registry: &'a str,
    /// Tenants listed.
    pub tenants: usize,
    /// Ticks started.
    pub dispatched: usize,
    /// Tenants skipped as disabled.
    pub disabled: usize,
    /// The tenants whose tick could not be started.
    pub failed: &'a [&'a str],
    /// Wall time of the fan-out.
    pub duration_ms: u64,
}

impl Event for Dispatched<'_> {
    const NAME: &'static str = "dispatch";
    fn emit(&self) {
        tracing::info!(event = Self::NAME, registry = self.registry, tenants = self.tenants,
            dispatched = self.dispatched, disabled = self.disabled, failed = self.failed.len(),
            failed_tenants = ?self.failed, duration_ms = self.duration_ms, "tenant ticks dispatched");
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
