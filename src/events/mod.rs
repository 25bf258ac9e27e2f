//! Every log line the function writes, as a typed event: its `emit()` writes one JSON line
//! with a stable `event` name (what Logs Insights queries, metric filters and the docs rely on)
//! and, for the tick's last line, the metrics. The names are defined here and nowhere else.

pub mod audit;
pub mod cutover;
pub mod details;
pub mod health;
pub mod lease;
pub mod ledger;
pub(crate) mod metrics;
pub mod microsoft;
pub mod plan;
pub mod relay;
pub mod tenants;
pub mod tick;
pub mod window;

/// A log event.
pub trait Event {
    /// The stable name: the line's `event` field.
    const NAME: &'static str;

    /// Writes the line (and what it measures).
    fn emit(&self);
}

/// Milliseconds of `d`, saturating.
pub(crate) fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Every event name: each is unique and documented in docs/operations.md.
#[cfg(test)]
const NAMES: &[&str] = &[
    health::StatusNotSent::NAME,
    lease::Held::NAME,
    lease::Duplicate::NAME,
    lease::TakenOver::NAME,
    lease::Lost::NAME,
    lease::ReleaseFailed::NAME,
    ledger::LedgerMissing::NAME,
    plan::ResetApplied::NAME,
    plan::SpanSkipped::NAME,
    plan::WindowSplit::NAME,
    window::WindowFinished::NAME,
    window::WindowFailed::NAME,
    window::OddRecords::NAME,
    window::PagePulled::NAME,
    window::OutOfTime::NAME,
    window::NextLinkRefused::NAME,
    relay::DevoRetry::NAME,
    relay::IdleClosed::NAME,
    relay::EndedWhileIdle::NAME,
    relay::ConfirmStep::NAME,
    relay::StopWriting::NAME,
    microsoft::Retry::NAME,
    microsoft::BudgetWait::NAME,
    microsoft::SkipTokenRepaired::NAME,
    microsoft::QuotaContention::NAME,
    details::DetailsFinished::NAME,
    details::DetailFetchFailed::NAME,
    details::DetailsDropped::NAME,
    tick::TickFinished::NAME,
    tick::TickFailed::NAME,
    tick::NoDeadline::NAME,
    tenants::Dispatched::NAME,
    tenants::NoTenants::NAME,
    tenants::EntryInvalid::NAME,
    tenants::FieldUnknown::NAME,
    tenants::NotStarted::NAME,
    tenants::DispatchFailed::NAME,
    tenants::LastErrorNotRecorded::NAME,
    audit::HourAudited::NAME,
    audit::Repaired::NAME,
    audit::AuditFailed::NAME,
    audit::QueryRetry::NAME,
    cutover::CutoverOverlap::NAME,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_is_documented_for_the_operator() {
        let docs = include_str!("../../docs/operations.md");
        let missing: Vec<&str> = NAMES
            .iter()
            .copied()
            .filter(|name| !docs.contains(&format!("`{name}`")))
            .collect();
        assert!(
            missing.is_empty(),
            "docs/operations.md does not name {missing:?}"
        );
    }

    #[test]
    fn names_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for name in NAMES {
            assert!(seen.insert(name), "{name} twice");
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
        }
    }
}
