//! Exactly once within a window, in memory that does not grow with the window.
//!
//! A record can come back on a later page of the same query (Graph pages by position, so a
//! record that becomes visible while the window is being pulled shifts the tail of a page onto
//! the next one). Remembering every key of the window would make that impossible, but costs
//! about 35 bytes per record in a hash set that doubles as it grows (50 MB for a
//! 1,000,000-record window, the most of the function's memory). Pages come newest first, so a
//! page can only repeat records of the page before it: after each page, the keys of records
//! newer than everything on that page are let go, and at most about two pages of keys are kept.
//!
//! A record at or after the oldest instant let go cannot be decided from the keys any more. By
//! the order of the pages, everything at those instants was delivered on an earlier page, so
//! only a source that breaks its newest-first order can send one: such a record is reported as
//! [`Seen::AssumedDelivered`], and the transfer sends it anyway (a possible repeat, never a
//! loss) and keeps every key from then on. Sources without that order never let keys go.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use chrono::{DateTime, Utc};

/// What [`Dedup::check`] found out about a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// First time in this window: send it.
    New,
    /// Its key was already delivered in this window.
    Repeat,
    /// Newer than keys already let go: delivered on an earlier page by the newest-first order.
    AssumedDelivered,
}

/// Keys delivered in one window that can still repeat.
#[derive(Debug, Default)]
pub struct Dedup {
    /// 128-bit key hashes of the delivered records that can still repeat, with their instant.
    kept: HashMap<u128, DateTime<Utc>>,
    /// Newest instant delivered on the current page.
    page_newest: Option<DateTime<Utc>>,
    /// Oldest instant of a key let go so far.
    forgotten_from: Option<DateTime<Utc>>,
}

fn key_hash(key: &str) -> u128 {
    // Two independent 64-bit SipHashes: 128 bits keep a collision (which would drop a record)
    // out of reach at any window size, in a fraction of the memory of the keys themselves.
    let mut a = std::hash::DefaultHasher::new();
    ("a", key).hash(&mut a);
    let mut b = std::hash::DefaultHasher::new();
    ("b", key).hash(&mut b);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

impl Dedup {
    /// Whether the record `key` received at `received` is to be sent; a [`Seen::New`] record is
    /// remembered as delivered.
    pub fn check(&mut self, key: &str, received: DateTime<Utc>) -> Seen {
        let hash = key_hash(key);
        if self.kept.contains_key(&hash) {
            // A repeat is on this page too, so the next page may repeat it again: it raises
            // the page's ceiling like a new record.
            self.note_on_page(received);
            return Seen::Repeat;
        }
        if self.forgotten_from.is_some_and(|f| received >= f) {
            return Seen::AssumedDelivered;
        }
        self.kept.insert(hash, received);
        self.note_on_page(received);
        Seen::New
    }

    fn note_on_page(&mut self, received: DateTime<Utc>) {
        self.page_newest = Some(self.page_newest.map_or(received, |t| t.max(received)));
    }

    /// Ends a page: lets go of the keys newer than every record delivered or repeated on it (no
    /// later page can hold them). A page that delivered and repeated nothing changes nothing.
    pub fn end_page(&mut self) {
        let Some(ceiling) = self.page_newest.take() else {
            return;
        };
        let mut forgotten_from = self.forgotten_from;
        self.kept.retain(|_, t| {
            if *t > ceiling {
                forgotten_from = Some(forgotten_from.map_or(*t, |f| f.min(*t)));
                false
            } else {
                true
            }
        });
        self.forgotten_from = forgotten_from;
    }

    /// Keys held now (for tests and benchmarks).
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 0, 0, 0).unwrap() + Duration::seconds(s)
    }

    /// Sends `pages` through a Dedup; returns the keys sent, in order, and the verdicts.
    fn run(pages: &[Vec<(&str, i64)>]) -> (Vec<String>, Vec<Seen>, usize) {
        let mut d = Dedup::default();
        let (mut sent, mut verdicts, mut most) = (Vec::new(), Vec::new(), 0);
        for page in pages {
            for (key, t) in page {
                let v = d.check(key, at(*t));
                if v == Seen::New {
                    sent.push((*key).to_owned());
                }
                verdicts.push(v);
                most = most.max(d.len());
            }
            d.end_page();
        }
        (sent, verdicts, most)
    }

    #[test]
    fn a_tail_repeated_on_the_next_page_is_sent_once() {
        let (sent, verdicts, _) = run(&[
            vec![("a", 10), ("b", 9), ("c", 8)],
            vec![("b", 9), ("c", 8), ("d", 7)],
            vec![("d", 7), ("e", 6)],
        ]);
        assert_eq!(sent, ["a", "b", "c", "d", "e"]);
        assert_eq!(verdicts.iter().filter(|v| **v == Seen::Repeat).count(), 3);
    }

    #[test]
    fn a_record_repeated_on_two_pages_in_a_row_is_still_a_repeat() {
        // Two records became visible while the window was pulled: c shifts onto page 2, then
        // onto page 3. Page 2 delivered only d (7), but it repeated b and c: the keys of b and
        // c must survive the end of page 2.
        let (sent, verdicts, _) = run(&[
            vec![("a", 10), ("b", 9), ("c", 8)],
            vec![("b", 9), ("c", 8), ("d", 7)],
            vec![("c", 8), ("d", 7), ("e", 6)],
        ]);
        assert_eq!(sent, ["a", "b", "c", "d", "e"]);
        assert!(
            !verdicts.contains(&Seen::AssumedDelivered),
            "c is known, not assumed (which sends it again): {verdicts:?}"
        );
        assert_eq!(verdicts.iter().filter(|v| **v == Seen::Repeat).count(), 4);
    }

    #[test]
    fn ties_across_many_pages_are_kept() {
        // Every record at one instant: nothing can be let go.
        let pages: Vec<Vec<(&str, i64)>> = vec![
            vec![("a", 5), ("b", 5)],
            vec![("c", 5), ("a", 5)],
            vec![("d", 5), ("b", 5)],
        ];
        let (sent, _, most) = run(&pages);
        assert_eq!(sent, ["a", "b", "c", "d"]);
        assert_eq!(most, 4);
    }

    #[test]
    fn a_restart_from_the_newest_page_repeats_nothing() {
        let first = vec![("a", 10), ("b", 9)];
        let second = vec![("c", 8), ("d", 7)];
        let third = vec![("e", 6)];
        let (sent, verdicts, _) = run(&[
            first.clone(),
            second.clone(),
            third,
            first,
            second,
            vec![("f", 5)],
        ]);
        assert_eq!(sent, ["a", "b", "c", "d", "e", "f"]);
        assert!(verdicts[5..9].iter().all(|v| *v != Seen::New));
    }

    #[test]
    fn memory_stays_at_about_two_pages() {
        let keys: Vec<String> = (0..10_000)
            .map(|i| format!("id-{i}|r@contoso.com"))
            .collect();
        let mut d = Dedup::default();
        let mut most = 0;
        for (p, page) in keys.chunks(500).enumerate() {
            for (i, k) in page.iter().enumerate() {
                let t = 1_000_000 - (p * 500 + i) as i64;
                assert_eq!(d.check(k, at(t)), Seen::New);
                most = most.max(d.len());
            }
            d.end_page();
        }
        assert!(most <= 1000, "{most} keys held");
        assert!(!d.is_empty());
    }
}
