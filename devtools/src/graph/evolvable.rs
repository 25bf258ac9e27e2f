//! The `Prefer: include-unknown-enum-members` rule: Graph writes a member of an evolvable enum
//! added after `unknownFutureValue` (the status `recalled`) only for a client that asks for it.
//!
//! Exists so the product is tested against the rule: without the header it would read a
//! recalled message as `unknownFutureValue`.

use crate::records::GraphRecord;

/// The status Graph writes for a member of an evolvable enum the client did not ask for with
/// `Prefer: include-unknown-enum-members`.
pub const UNKNOWN_FUTURE_VALUE: &str = "unknownFutureValue";

/// The evolvable members of `exchangeMessageTraceStatus` (after `unknownFutureValue`).
const EVOLVABLE: [&str; 1] = ["recalled"];

/// Whether a request's `Prefer` header asks for the evolvable enum members.
pub(super) fn includes_unknown_members(prefer: Option<&str>) -> bool {
    prefer.is_some_and(|p| {
        p.split(',').any(|v| {
            v.trim()
                .eq_ignore_ascii_case("include-unknown-enum-members")
        })
    })
}

/// `record` as the client sees it: an evolvable status is `unknownFutureValue` unless the
/// client asked for the evolvable members.
pub(super) fn as_served(record: &GraphRecord, include_unknown: bool) -> Option<GraphRecord> {
    let evolvable = EVOLVABLE
        .iter()
        .any(|s| s.eq_ignore_ascii_case(&record.status));
    (evolvable && !include_unknown).then(|| GraphRecord {
        status: UNKNOWN_FUTURE_VALUE.to_owned(),
        ..record.clone()
    })
}
