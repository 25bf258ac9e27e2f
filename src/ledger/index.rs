//! The ledger of one reconciliation window, loaded: which records the fresh pass delivered,
//! with which status, and which spans lost their ledger. Pure lookups.

use chrono::{DateTime, Utc};

use crate::ledger::Fingerprint;
use crate::ledger::fingerprint::{HASHED_FROM, legacy_code};

/// Whether `code` is a hashed status of a part of the first format (7 bits: compared with the
/// record's status hashed the same way).
fn is_legacy(code: u32) -> bool {
    (0x80..HASHED_FROM).contains(&code)
}

/// What the reconciliation pass does with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The fresh pass delivered it with this status: nothing to send.
    Known,
    /// The fresh pass never saw it: Microsoft exposed it late.
    Late,
    /// The fresh pass delivered it with another status: sent again with the new one.
    StatusChanged,
    /// Its span's ledger object is missing: sent again (a repeat, never a loss).
    LedgerMissing,
}

/// The fingerprints of a window's ledger parts, sorted, and the spans whose part is missing.
#[derive(Debug, Default, Clone)]
pub struct LedgerIndex {
    fingerprints: Vec<Fingerprint>,
    missing: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

impl LedgerIndex {
    /// An index of `fingerprints` (any order) with the spans `missing` parts covered.
    pub fn new(
        mut fingerprints: Vec<Fingerprint>,
        missing: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    ) -> LedgerIndex {
        fingerprints.sort_unstable();
        LedgerIndex {
            fingerprints,
            missing,
        }
    }

    /// Fingerprints held (for the memory figures).
    pub fn len(&self) -> usize {
        self.fingerprints.len()
    }

    /// Whether no fingerprint is held.
    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty()
    }

    /// Decides for the record `key` with `status`, received at `received`.
    pub fn verdict(&self, key: &str, status: Option<&str>, received: DateTime<Utc>) -> Verdict {
        if self
            .missing
            .iter()
            .any(|(s, e)| *s <= received && received < *e)
        {
            return Verdict::LedgerMissing;
        }
        let f = Fingerprint::of(key, status);
        let first = self.fingerprints.partition_point(|x| x.key < f.key);
        let same_key = self.fingerprints[first..]
            .iter()
            .take_while(|x| x.key == f.key);
        let mut seen = false;
        for x in same_key {
            if x.status == f.status || (is_legacy(x.status) && x.status == legacy_code(status)) {
                return Verdict::Known;
            }
            seen = true;
        }
        if seen {
            Verdict::StatusChanged
        } else {
            Verdict::Late
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    #[test]
    fn known_late_changed_and_missing() {
        let t = Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap();
        let index = LedgerIndex::new(
            vec![
                Fingerprint::of("a|r", Some("delivered")),
                Fingerprint::of("b|r", Some("pending")),
            ],
            vec![(t + Duration::hours(1), t + Duration::hours(2))],
        );
        assert_eq!(index.verdict("a|r", Some("Delivered"), t), Verdict::Known);
        assert_eq!(
            index.verdict("b|r", Some("Delivered"), t),
            Verdict::StatusChanged
        );
        assert_eq!(index.verdict("c|r", Some("Delivered"), t), Verdict::Late);
        // A part of the first format: an undocumented status hashed into 7 bits.
        let old = LedgerIndex::new(
            vec![Fingerprint {
                key: Fingerprint::key_of("d|r"),
                status: legacy_code(Some("Custom")),
            }],
            Vec::new(),
        );
        assert_eq!(old.verdict("d|r", Some("custom"), t), Verdict::Known);
        assert_eq!(
            old.verdict("d|r", Some("Delivered"), t),
            Verdict::StatusChanged
        );
        assert_eq!(
            index.verdict("a|r", Some("delivered"), t + Duration::minutes(90)),
            Verdict::LedgerMissing
        );
    }
}
