//! The fresh pass's ledger, as a window is delivered: the fingerprints of the lines on the
//! current page, of those written to streams, and of those the relay confirmed. Only the last
//! go into the ledger.

use crate::ledger::Fingerprint;

/// Fingerprints by how far their lines got.
#[derive(Debug, Default)]
pub struct Collected {
    page: Vec<Fingerprint>,
    written: Vec<Fingerprint>,
    confirmed: Vec<Fingerprint>,
}

impl Collected {
    /// A line framed on the current page.
    pub fn push(&mut self, fingerprint: Fingerprint) {
        self.page.push(fingerprint);
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
    pub fn take(&mut self) -> Vec<Fingerprint> {
        std::mem::take(&mut self.confirmed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_confirmed_lines_are_remembered() {
        let mut c = Collected::default();
        let f = |k: &str| Fingerprint::of(k, Some("delivered"));
        c.push(f("a"));
        c.page_sent();
        c.confirm();
        c.push(f("b"));
        c.page_sent();
        c.rollback();
        c.push(f("c"));
        c.page_sent();
        assert_eq!(c.take(), vec![f("a")]);
    }
}
