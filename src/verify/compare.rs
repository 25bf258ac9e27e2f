//! One hour compared: what Microsoft lists against what Devo holds (pure).
//!
//! A record is its key, `MessageTraceId|RecipientAddress` — the identity the product uses
//! everywhere. Microsoft lists each record once, with its current status. Devo may hold several
//! lines of one record: the reconciliation pass sends a record again when its status changed
//! (`Pending`, then `Delivered`), and a cut delivery may repeat a line. So both sides are
//! counted in distinct keys: **missing** are Microsoft's keys Devo has no line of, **extra**
//! are Devo's keys Microsoft does not list (another collector's lines under this hostname, or
//! records Microsoft no longer shows), and **stale** are keys Devo holds only with other
//! statuses than Microsoft's current one (a status line that was lost, or a status that changed
//! after the reconciliation pass). `--repair` sends the missing and the stale records.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ledger::Fingerprint;
use crate::trace::record::record_key;

/// One hour's comparison: a row of the audit's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HourAudit {
    /// The hour's start.
    pub hour: DateTime<Utc>,
    /// Distinct records Microsoft lists in the hour.
    pub microsoft: u64,
    /// Distinct records Devo holds in the hour.
    pub devo: u64,
    /// Devo's lines in the hour (status changes and repeats make it exceed `devo`).
    pub devo_lines: u64,
    /// Microsoft's records of which Devo has no line.
    pub missing: u64,
    /// Devo's records that Microsoft does not list.
    pub extra: u64,
    /// Records Devo holds only with another status than Microsoft's current one.
    pub stale: u64,
    /// Microsoft's records without an id or recipient (sent keyed by content; not compared).
    pub unkeyed: u64,
}

impl HourAudit {
    /// Whether Devo holds every record Microsoft lists, in its current status.
    pub fn clean(&self) -> bool {
        self.missing == 0 && self.stale == 0
    }
}

/// One record of either side: the fingerprint of its key and status (8 + 4 bytes, as the ledger
/// keeps them), so an hour of a large tenant is compared in a few megabytes.
pub fn fingerprint(trace_id: &str, recipient: &str, status: Option<&str>) -> Fingerprint {
    Fingerprint::of(&record_key(trace_id, recipient), status)
}

/// Compares Microsoft's records of `hour` (`listed`: one per key, with its current status,
/// sorted; `unkeyed` beside) with what Devo holds (`held`: one per key and status, sorted) and
/// its `devo_lines`.
pub fn compare(
    hour: DateTime<Utc>,
    listed: &[Fingerprint],
    unkeyed: u64,
    held: &[Fingerprint],
    devo_lines: u64,
) -> HourAudit {
    let statuses_of = |key: u64| {
        let first = held.partition_point(|f| f.key < key);
        held[first..].iter().take_while(move |f| f.key == key)
    };
    let (mut missing, mut stale) = (0, 0);
    for f in listed {
        let mut statuses = statuses_of(f.key).peekable();
        if statuses.peek().is_none() {
            missing += 1;
        } else if !statuses.any(|h| h.status == f.status) {
            stale += 1;
        }
    }
    let listed_has = |key: u64| listed.binary_search_by_key(&key, |f| f.key).is_ok();
    let mut devo = 0;
    let mut extra = 0;
    let mut last = None;
    for f in held {
        if last != Some(f.key) {
            devo += 1;
            extra += u64::from(!listed_has(f.key));
            last = Some(f.key);
        }
    }
    HourAudit {
        hour,
        microsoft: listed.len() as u64,
        devo,
        devo_lines,
        missing,
        extra,
        stale,
        unkeyed,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn held(rows: &[(&str, &str)]) -> Vec<Fingerprint> {
        let mut v: Vec<Fingerprint> = rows
            .iter()
            .map(|(id, s)| fingerprint(id, "r@x", Some(s)))
            .collect();
        v.sort_unstable();
        v
    }

    fn listed(rows: &[(&str, &str)]) -> Vec<Fingerprint> {
        let mut v = held(rows);
        v.sort_by_key(|f| f.key);
        v
    }

    fn hour() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap()
    }

    #[test]
    fn a_status_change_is_one_record_with_two_lines_not_an_extra() {
        let ms = listed(&[("m1", "delivered"), ("m2", "Failed")]);
        let devo = held(&[("m1", "Pending"), ("m1", "Delivered"), ("m2", "Failed")]);
        let a = compare(hour(), &ms, 0, &devo, 3);
        assert_eq!((a.microsoft, a.devo, a.devo_lines), (2, 2, 3));
        assert_eq!(
            (a.missing, a.extra, a.stale),
            (0, 0, 0),
            "statuses compare case-insensitively"
        );
        assert!(a.clean());
    }

    #[test]
    fn missing_extra_and_stale_are_counted_apart() {
        let ms = listed(&[
            ("m1", "Delivered"),
            ("m2", "Delivered"),
            ("m3", "Delivered"),
        ]);
        let devo = held(&[("m1", "Delivered"), ("m2", "Pending"), ("m9", "Delivered")]);
        let a = compare(hour(), &ms, 1, &devo, 4);
        assert_eq!((a.missing, a.extra, a.stale, a.unkeyed), (1, 1, 1, 1));
        assert!(!a.clean());
    }

    #[test]
    fn an_empty_hour_on_both_sides_is_clean() {
        let a = compare(hour(), &[], 0, &[], 0);
        assert!(a.clean() && a.extra == 0 && a.devo == 0);
    }

    #[test]
    fn what_devo_holds_as_a_ledger_knows_exactly_its_lines() {
        use crate::ledger::{LedgerIndex, Verdict};
        let index = LedgerIndex::new(held(&[("m1", "Pending")]), Vec::new());
        let k = record_key("m1", "r@x");
        assert_eq!(index.verdict(&k, Some("pending"), hour()), Verdict::Known);
        assert_eq!(
            index.verdict(&k, Some("Delivered"), hour()),
            Verdict::StatusChanged
        );
        assert_eq!(
            index.verdict(&record_key("m2", "r@x"), Some("Delivered"), hour()),
            Verdict::Late
        );
    }

    proptest::proptest! {
        #[test]
        fn counts_add_up_whatever_the_sides(
            ms in proptest::collection::btree_map(0u8..40, 0u8..3, 0..30),
            devo in proptest::collection::btree_set((0u8..40, 0u8..3), 0..40),
        ) {
            let status = |s: u8| ["Delivered", "Pending", "Failed"][s as usize];
            let listed: Vec<Fingerprint> = {
                let mut v: Vec<Fingerprint> = ms.iter().map(|(k, s)| fingerprint(&k.to_string(), "r", Some(status(*s)))).collect();
                v.sort_by_key(|f| f.key);
                v
            };
            let mut held: Vec<Fingerprint> = devo.iter().map(|(k, s)| fingerprint(&k.to_string(), "r", Some(status(*s)))).collect();
            held.sort_unstable();
            let a = compare(hour(), &listed, 0, &held, held.len() as u64);
            let devo_keys: std::collections::BTreeSet<u8> = devo.iter().map(|(k, _)| *k).collect();
            proptest::prop_assert_eq!(a.devo, devo_keys.len() as u64);
            proptest::prop_assert_eq!(a.microsoft - a.missing, ms.keys().filter(|k| devo_keys.contains(k)).count() as u64);
            proptest::prop_assert_eq!(a.devo - a.extra, a.microsoft - a.missing);
            let stale = ms.iter().filter(|(k, s)| devo_keys.contains(k) && !devo.contains(&(**k, **s))).count() as u64;
            proptest::prop_assert_eq!(a.stale, stale);
        }
    }
}
