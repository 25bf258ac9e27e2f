//! One stored message trace record ([`Stored`]) and the order pages are served in: newest first
//! at Graph's 100 ns resolution ([`tick`]), then id, then recipient ([`order_key`]).
//!
//! Exists so the tenant state, the skip token cursors and the prerendered pages share one
//! definition of the page order.

use std::cmp::Reverse;

use chrono::{DateTime, TimeDelta, Utc};

use crate::records::GraphRecord;

/// One message trace record and when Microsoft exposes it.
pub(super) struct Stored {
    pub record: GraphRecord,
    /// `None`: visible from the start; otherwise hidden from every query before this instant.
    pub visible_from: Option<DateTime<Utc>>,
}

impl Stored {
    /// Whether a query made at `now` sees the record.
    pub fn visible(&self, now: DateTime<Utc>) -> bool {
        self.visible_from.is_none_or(|t| t <= now)
    }
}

/// Truncates to Graph's 100 ns resolution (what a client sees of `receivedDateTime`).
pub(super) fn tick(t: DateTime<Utc>) -> DateTime<Utc> {
    t - TimeDelta::nanoseconds(i64::from(t.timestamp_subsec_nanos() % 100))
}

/// The order of pages: newest first (at Graph's resolution), then id, then recipient. Skip
/// token cursors name a position in this order.
pub(super) fn order_key(r: &GraphRecord) -> (Reverse<DateTime<Utc>>, &str, &str) {
    (
        Reverse(tick(r.received_date_time)),
        r.id.as_str(),
        r.recipient_address.as_str(),
    )
}
