//! Which records of a page are sent: first the window's bounds (and a resumed window's records
//! already delivered at its resume point), then the dedup of records repeated across pages, then
//! what an earlier tick confirmed (the ledger of the reconciliation pass; the lines of a cut
//! window of the Reporting Web Service).

use chrono::{DateTime, Utc};

use crate::checkpoint::sent;
use crate::ledger::{self, Fingerprint, LedgerIndex};
use crate::summary::Counts;
use crate::transfer::dedup::{Dedup, Seen};
use crate::window::Window;

/// What happens to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Send it.
    Send,
    /// Send it: the reconciliation pass found it missing from the ledger (exposed late), with
    /// another status, or in a span whose ledger is missing.
    Reconciled(ledger::Verdict),
    /// The fresh pass delivered it with this status: nothing to send.
    Known,
    /// A tick that was cut in this window (an unordered source) delivered it with this
    /// status: nothing to send.
    SentBefore,
    /// Devo holds it with this status (an earlier collector's line, in a cut-over's overlap):
    /// nothing to send.
    Held,
    /// Received outside the window: another window sends it.
    Outside,
    /// Already delivered in this window.
    Repeat,
}

impl Fate {
    /// Counts the record's fate in `tally`.
    pub fn tally(self, tally: &mut Counts) {
        use ledger::Verdict;
        match self {
            Fate::Outside => tally.outside_window += 1,
            Fate::Repeat | Fate::Known | Fate::SentBefore => tally.duplicates_skipped += 1,
            Fate::Held => tally.cutover_suppressed += 1,
            Fate::Reconciled(Verdict::Late) => tally.late_records += 1,
            Fate::Reconciled(Verdict::StatusChanged) => tally.status_changes += 1,
            Fate::Reconciled(Verdict::LedgerMissing) => tally.ledger_missing += 1,
            Fate::Reconciled(Verdict::Known) | Fate::Send => {}
        }
    }
}

/// The admission stage of one window's transfer.
#[derive(Debug)]
pub struct Admission {
    window: Window,
    seen: Dedup,
    newest_first: bool,
    ledger: Option<LedgerIndex>,
    /// Sorted fingerprints of the lines a cut tick confirmed.
    sent: Vec<Fingerprint>,
    /// What Devo holds, in a cut-over's overlap (keys lower-cased).
    held: Option<LedgerIndex>,
}

impl Admission {
    /// Admits records to `window`; `newest_first` when the source pages newest first (which
    /// lets the dedup forget keys that can no longer repeat).
    pub fn new(window: Window, newest_first: bool) -> Admission {
        Admission {
            window,
            seen: Dedup::default(),
            newest_first,
            ledger: None,
            sent: Vec::new(),
            held: None,
        }
    }

    /// Then sends nothing Devo holds with the same key and status (a cut-over's overlap).
    pub fn with_held(mut self, held: Option<LedgerIndex>) -> Admission {
        self.held = held;
        self
    }

    /// Then skips the lines a tick that was cut in this window confirmed (sorted fingerprints).
    pub fn with_sent(mut self, sent: Vec<Fingerprint>) -> Admission {
        self.sent = sent;
        self
    }

    /// Then sends only what the fresh pass's ledger does not hold (the reconciliation pass).
    pub fn with_ledger(mut self, ledger: Option<LedgerIndex>) -> Admission {
        self.ledger = ledger;
        self
    }

    /// Decides for the record `key` with `status`, received at `received`.
    pub fn admit(&mut self, key: &str, status: Option<&str>, received: DateTime<Utc>) -> Fate {
        match self.admit_new(key, received) {
            Fate::Send
                if !self.sent.is_empty()
                    && sent::holds(&self.sent, &Fingerprint::of(key, status)) =>
            {
                Fate::SentBefore
            }
            Fate::Send => {
                let verdict = self
                    .ledger
                    .as_ref()
                    .map(|ledger| ledger.verdict(key, status, received));
                match verdict {
                    Some(ledger::Verdict::Known) => Fate::Known,
                    _ if self.held(key, status, received) => Fate::Held,
                    Some(other) => Fate::Reconciled(other),
                    None => Fate::Send,
                }
            }
            other => other,
        }
    }

    /// Whether Devo holds the record with this status.
    fn held(&self, key: &str, status: Option<&str>, received: DateTime<Utc>) -> bool {
        self.held.as_ref().is_some_and(|held| {
            let key = crate::checkpoint::cutover::held_key(key);
            held.verdict(&key, status, received) == ledger::Verdict::Known
        })
    }

    fn admit_new(&mut self, key: &str, received: DateTime<Utc>) -> Fate {
        if received < self.window.start || received >= self.window.end {
            return Fate::Outside;
        }
        if !self.window.wants(received, key) {
            return Fate::Repeat;
        }
        match self.seen.check(key, received) {
            Seen::New => Fate::Send,
            Seen::Repeat => Fate::Repeat,
            // Newer than keys already let go: only a source breaking its newest-first order
            // sends that. Send it (a possible repeat is better than a loss) and stop relying
            // on the order for this window.
            Seen::AssumedDelivered => {
                self.newest_first = false;
                Fate::Send
            }
        }
    }

    /// Ends a page: with newest-first pages, the keys that can no longer repeat are let go.
    pub fn end_page(&mut self) {
        if self.newest_first {
            self.seen.end_page();
        }
    }

    /// Whether the pages were seen in newest-first order so far.
    pub fn newest_first(&self) -> bool {
        self.newest_first
    }

    /// Marks the order as broken (the frontier found a record newer than one already sent).
    pub fn order_broken(&mut self) {
        self.newest_first = false;
    }

    /// Starts over on `window` after a stream broke: nothing it carried counts as delivered,
    /// so no key is remembered any more.
    pub fn restart(&mut self, window: Window) {
        self.window = window;
        self.seen = Dedup::default();
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::window::Resume;

    fn t(m: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap() + Duration::minutes(m)
    }

    #[test]
    fn bounds_first_then_repeats() {
        let w = Window {
            start: t(0),
            end: t(60),
            resume: Some(Resume {
                until: t(30),
                sent_at_until: vec!["done".into()],
            }),
        };
        let mut a = Admission::new(w.clone(), true);
        assert_eq!(a.admit("x", None, t(60)), Fate::Outside);
        assert_eq!(a.admit("x", None, t(-1)), Fate::Outside);
        assert_eq!(a.admit("done", None, t(30)), Fate::Repeat);
        assert_eq!(a.admit("x", None, t(30)), Fate::Send);
        assert_eq!(a.admit("x", None, t(30)), Fate::Repeat);
        a.restart(w);
        assert_eq!(
            a.admit("x", None, t(30)),
            Fate::Send,
            "after a broken stream: sent again"
        );
    }

    #[test]
    fn what_devo_holds_is_not_sent_whatever_the_case_of_its_key() {
        let w = Window {
            start: t(0),
            end: t(60),
            resume: None,
        };
        let held = LedgerIndex::new(
            vec![Fingerprint::of("id-1|ann@contoso.com", Some("Delivered"))],
            Vec::new(),
        );
        let mut a = Admission::new(w.clone(), true).with_held(Some(held.clone()));
        assert_eq!(
            a.admit("ID-1|Ann@Contoso.com", Some("delivered"), t(5)),
            Fate::Held
        );
        assert_eq!(
            a.admit("id-2|ann@contoso.com", Some("Delivered"), t(5)),
            Fate::Send
        );
        let mut changed = Admission::new(w.clone(), true).with_held(Some(held.clone()));
        assert_eq!(
            changed.admit("id-1|ann@contoso.com", Some("Failed"), t(5)),
            Fate::Send,
            "another status is a line Devo does not hold"
        );
        // The fresh pass's own ledger decides first.
        let ledger = LedgerIndex::new(
            vec![Fingerprint::of("ID-1|Ann@Contoso.com", Some("Delivered"))],
            Vec::new(),
        );
        let mut both = Admission::new(w, true)
            .with_ledger(Some(ledger))
            .with_held(Some(held));
        assert_eq!(
            both.admit("ID-1|Ann@Contoso.com", Some("Delivered"), t(5)),
            Fate::Known
        );
    }

    #[test]
    fn lines_a_cut_tick_confirmed_are_skipped_unless_their_status_changed() {
        let w = Window {
            start: t(0),
            end: t(60),
            resume: None,
        };
        let sent = vec![Fingerprint::of("a", Some("Delivered"))];
        let mut a = Admission::new(w.clone(), false).with_sent(sent.clone());
        assert_eq!(a.admit("a", Some("Delivered"), t(5)), Fate::SentBefore);
        assert_eq!(a.admit("b", Some("Delivered"), t(5)), Fate::Send);
        let mut changed = Admission::new(w, false).with_sent(sent);
        assert_eq!(changed.admit("a", Some("Failed"), t(5)), Fate::Send);
    }
}
