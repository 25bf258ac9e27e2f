//! What a window's lines stand for, as they are delivered: on the current page, written to
//! streams, confirmed by the relay. Only the confirmed count: the fresh pass's ledger takes
//! their fingerprints, the detail queue the problem deliveries among them.

use chrono::{DateTime, Utc};

use crate::config::DetailSettings;
use crate::ledger::Fingerprint;
use crate::trace::detail::{DetailCandidate, candidate};
use crate::trace::page::TraceRecord;

/// A delivered line's fingerprint and its record's received time (which decides whether its
/// span needs a second look).
pub type Fingerprinted = (Fingerprint, DateTime<Utc>);

/// Items (fingerprints, deliveries) by how far their lines got.
#[derive(Debug)]
pub struct Collected<T = Fingerprinted> {
    /// Records received before this are not held (their span needs no second look).
    from: Option<DateTime<Utc>>,
    page: Vec<T>,
    written: Vec<T>,
    confirmed: Vec<T>,
}

impl<T> Default for Collected<T> {
    fn default() -> Collected<T> {
        Collected {
            from: None,
            page: Vec::new(),
            written: Vec::new(),
            confirmed: Vec::new(),
        }
    }
}

impl Collected<Fingerprinted> {
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
}

impl<T> Collected<T> {
    /// What a line framed on the current page stands for.
    pub fn stage(&mut self, item: T) {
        self.page.push(item);
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

    /// What the confirmed lines stand for.
    pub fn take(&mut self) -> Vec<T> {
        std::mem::take(&mut self.confirmed)
    }
}

/// Everything a window's lines stand for, staged together as they go to the relay: the fresh
/// pass's fingerprints (its ledger), an unordered source's confirmed lines (kept should the
/// window be cut), and the deliveries whose details are wanted.
#[derive(Debug, Default)]
pub struct Staged<'s> {
    /// The fresh pass's ledger.
    pub ledger: Option<Collected>,
    /// An unordered source: what the relay confirmed.
    pub sent: Option<Collected>,
    /// Which deliveries' details are wanted, and those among the lines.
    pub details: Option<(&'s DetailSettings, Collected<DetailCandidate>)>,
}

/// What the confirmed lines of a window stood for.
#[derive(Debug, Default)]
pub struct Taken {
    /// The fresh pass's fingerprints.
    pub ledger: Vec<Fingerprinted>,
    /// An unordered source's confirmed lines.
    pub sent: Vec<Fingerprinted>,
    /// The deliveries whose details are wanted.
    pub details: Vec<DetailCandidate>,
}

impl Staged<'_> {
    /// A line of `record` (`key`, received at `received`) framed on the current page.
    pub fn push(&mut self, key: &str, record: &TraceRecord, received: DateTime<Utc>) {
        for c in self.ledger.iter_mut().chain(&mut self.sent) {
            c.push(Fingerprint::of(key, record.status()), received);
        }
    }

    /// A line of `record` sent (not one a cut tick confirmed): a Graph delivery in a status
    /// whose details are wanted is staged with it.
    pub fn note_detail(&mut self, record: &TraceRecord) {
        let Some((settings, staged)) = &mut self.details else {
            return;
        };
        if let TraceRecord::Graph(r) = record
            && r.status.as_deref().is_some_and(|s| settings.wants(s))
            && let Some(delivery) = candidate(r)
        {
            staged.stage(delivery);
        }
    }

    /// The current page was written to the stream.
    pub fn page_sent(&mut self) {
        self.each(Collected::page_sent, Collected::page_sent);
    }

    /// The relay confirmed everything written.
    pub fn confirm(&mut self) {
        self.each(Collected::confirm, Collected::confirm);
    }

    /// A stream broke: what it carried is not delivered.
    pub fn rollback(&mut self) {
        self.each(Collected::rollback, Collected::rollback);
    }

    /// What the confirmed lines stood for.
    pub fn take(&mut self) -> Taken {
        Taken {
            ledger: self
                .ledger
                .as_mut()
                .map(Collected::take)
                .unwrap_or_default(),
            sent: self.sent.as_mut().map(Collected::take).unwrap_or_default(),
            details: self
                .details
                .as_mut()
                .map(|(_, d)| d.take())
                .unwrap_or_default(),
        }
    }

    fn each(
        &mut self,
        lines: impl Fn(&mut Collected),
        deliveries: impl Fn(&mut Collected<DetailCandidate>),
    ) {
        self.ledger.iter_mut().chain(&mut self.sent).for_each(lines);
        if let Some((_, d)) = &mut self.details {
            deliveries(d);
        }
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
