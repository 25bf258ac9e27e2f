//! The fresh pass's ledger, as a window is delivered: the fingerprints of the lines on the
//! current page, of those written to streams, and of those the relay confirmed. Only the last
//! go into the ledger.

use chrono::{DateTime, Utc};

use crate::ledger::Fingerprint;

/// A delivered line's fingerprint and its record's received time (which decides whether its
/// span needs a second look).
pub type Fingerprinted = (Fingerprint, DateTime<Utc>);

/// Fingerprints by how far their lines got.
#[derive(Debug, Default)]
pub struct Collected {
    /// Records received before this are not held (their span needs no second look).
    from: Option<DateTime<Utc>>,
    page: Vec<Fingerprinted>,
    written: Vec<Fingerprinted>,
    confirmed: Vec<Fingerprinted>,
}

impl Collected {
    /// Collects the lines of records received at or after `from` only.
    pub fn from(from: DateTime<Utc>) -> Collected {
        Collected {
            from: Some(from),
            ..Collected::default()
        }
    }

    /// A line framed on the current page.
    pub fn push(&mut self, fingerprint: Fingerprint, received: DateTime<Utc>) {
        if self.from.is_none_or(|from| received >= from) {
            self.page.push((fingerprint, received));
        }
    }

    /// The current page was written to the stream.
    pub fn page_sent(&mut self) {
        self.written.append(&mut self.page);
    }

    /// The relay confirmed everything written.
    pub fn confirm(&mut self) {
        self.confirmed.append(&mut self.written);
    }

    /// A stream broke: what it carried is not delivered.
    pub fn rollback(&mut self) {
        self.page.clear();
        self.written.clear();
    }

    /// The confirmed fingerprints.
    pub fn take(&mut self) -> Vec<Fingerprinted> {
        std::mem::take(&mut self.confirmed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_older_than_the_young_span_are_not_held() {
        let t = Utc::now();
        let mut c = Collected::from(t);
        let f = |k: &str| Fingerprint::of(k, Some("delivered"));
        c.push(f("old"), t - chrono::TimeDelta::seconds(1));
        c.push(f("young"), t);
        c.page_sent();
        c.confirm();
        assert_eq!(c.take(), vec![(f("young"), t)]);
    }

    #[test]
    fn only_confirmed_lines_are_remembered() {
        let mut c = Collected::default();
        let t = Utc::now();
        let f = |k: &str| Fingerprint::of(k, Some("delivered"));
        c.push(f("a"), t);
        c.page_sent();
        c.confirm();
        c.push(f("b"), t);
        c.page_sent();
        c.rollback();
        c.push(f("c"), t);
        c.page_sent();
        assert_eq!(c.take(), vec![(f("a"), t)]);
    }
}
