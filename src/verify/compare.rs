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

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ledger::Fingerprint;
use crate::ledger::fingerprint::status_code;
use crate::trace::record::record_key;
use crate::verify::answer::HeldKey;

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

/// Microsoft's records of an hour: key → current status.
pub type Listed = BTreeMap<String, Option<String>>;

/// Compares `listed` (with `unkeyed` records beside) with what Devo `held` in `hour`.
pub fn compare(
    hour: DateTime<Utc>,
    listed: &Listed,
    unkeyed: u64,
    held: &[HeldKey],
    devo_lines: u64,
) -> HourAudit {
    let mut devo: HashMap<String, Vec<u32>> = HashMap::new();
    for k in held {
        devo.entry(record_key(&k.message_trace_id, &k.recipient))
            .or_default()
            .push(status_code(Some(&k.status)));
    }
    let (mut missing, mut stale) = (0, 0);
    for (key, status) in listed {
        match devo.get(key) {
            None => missing += 1,
            Some(codes) if !codes.contains(&status_code(status.as_deref())) => stale += 1,
            Some(_) => {}
        }
    }
    let extra = devo.keys().filter(|k| !listed.contains_key(*k)).count() as u64;
    HourAudit {
        hour,
        microsoft: listed.len() as u64,
        devo: devo.len() as u64,
        devo_lines,
        missing,
        extra,
        stale,
        unkeyed,
    }
}

/// What Devo holds of an hour, as a ledger the reconciliation machinery reads: a record whose
/// key and status are in it is not sent again; any other is (the repair).
pub fn held_fingerprints(held: &[HeldKey]) -> Vec<Fingerprint> {
    held.iter()
        .map(|k| {
            Fingerprint::of(
                &record_key(&k.message_trace_id, &k.recipient),
                Some(&k.status),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn held(id: &str, status: &str, lines: u64) -> HeldKey {
        HeldKey {
            message_trace_id: id.into(),
            recipient: "r@x".into(),
            status: status.into(),
            lines,
        }
    }

    fn listed(rows: &[(&str, &str)]) -> Listed {
        rows.iter()
            .map(|(id, s)| (record_key(id, "r@x"), Some((*s).to_owned())))
            .collect()
    }

    fn hour() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap()
    }

    #[test]
    fn a_status_change_is_one_record_with_two_lines_not_an_extra() {
        let ms = listed(&[("m1", "delivered"), ("m2", "Failed")]);
        let devo = [
            held("m1", "Pending", 1),
            held("m1", "Delivered", 1),
            held("m2", "Failed", 1),
        ];
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
        let devo = [
            held("m1", "Delivered", 2),
            held("m2", "Pending", 1),
            held("m9", "Delivered", 1),
        ];
        let a = compare(hour(), &ms, 1, &devo, 4);
        assert_eq!((a.missing, a.extra, a.stale, a.unkeyed), (1, 1, 1, 1));
        assert!(!a.clean());
    }

    #[test]
    fn an_empty_hour_on_both_sides_is_clean() {
        let a = compare(hour(), &Listed::new(), 0, &[], 0);
        assert!(a.clean() && a.extra == 0 && a.devo == 0);
    }

    #[test]
    fn the_held_ledger_knows_exactly_the_lines_devo_has() {
        let index = crate::ledger::LedgerIndex::new(
            held_fingerprints(&[held("m1", "Pending", 1)]),
            Vec::new(),
        );
        use crate::ledger::Verdict;
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
}
