//! What a window delivered, by instant. Pages come newest first, so everything received after
//! the oldest instant sent (and the keys sent at it) describes what was sent; a stream's lines
//! count once the relay confirmed them, so the frontier keeps two marks: written and confirmed.

use chrono::{DateTime, Utc};

use crate::window::{Resume, Window};

/// The oldest instant sent and the keys sent at it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mark {
    at: DateTime<Utc>,
    keys: Vec<String>,
}

impl Mark {
    /// Adds `other` (the marks of later pages are older or equal); `false` when it is newer,
    /// i.e. the source broke its newest-first order.
    fn absorb(slot: &mut Option<Mark>, other: Mark) -> bool {
        match slot {
            None => {
                *slot = Some(other);
                true
            }
            Some(m) if other.at < m.at => {
                *m = other;
                true
            }
            Some(m) if other.at == m.at => {
                m.keys.extend(other.keys);
                true
            }
            Some(_) => false,
        }
    }
}

/// The frontier stage of one window's transfer.
#[derive(Debug, Default)]
pub struct Frontier {
    page: Option<Mark>,
    written: Option<Mark>,
    confirmed: Option<Mark>,
    ordered: bool,
}

impl Frontier {
    /// A frontier for a source whose pages come newest first (`ordered`); without that order
    /// nothing can be described by one instant.
    pub fn new(ordered: bool) -> Frontier {
        Frontier {
            ordered,
            ..Frontier::default()
        }
    }

    /// Notes a line framed on the current page; `false` when the record is newer than one
    /// already sent (the order is broken from here on).
    pub fn note(&mut self, received: DateTime<Utc>, key: &str) -> bool {
        let mark = Mark {
            at: received,
            keys: vec![key.to_owned()],
        };
        let newest = self.written.as_ref().is_none_or(|w| received <= w.at);
        if !newest || !Mark::absorb(&mut self.page, mark) {
            self.ordered = false;
        }
        self.ordered
    }

    /// The current page's lines were handed to the stream.
    pub fn page_sent(&mut self) {
        if let Some(page) = self.page.take()
            && !Mark::absorb(&mut self.written, page)
        {
            self.ordered = false;
        }
    }

    /// The relay confirmed everything sent so far.
    pub fn confirm(&mut self) {
        self.confirmed = self.written.clone();
    }

    /// A stream broke: what it carried since the last confirmation counts as not sent.
    pub fn rollback(&mut self) {
        self.page = None;
        self.written = self.confirmed.clone();
    }

    /// Marks the order as broken (the dedup saw a record newer than keys it let go).
    pub fn order_broken(&mut self) {
        self.ordered = false;
    }

    /// Whether the order held so far (a broken order makes the frontier meaningless).
    pub fn ordered(&self) -> bool {
        self.ordered
    }

    /// Where to ask again for the rest of `window` after a nextLink stopped working: up to the
    /// oldest instant sent (its keys are skipped by the dedup).
    pub fn rest_of(&self, window: &Window) -> Window {
        match (&self.written, self.ordered) {
            (Some(w), true) => Window {
                resume: Some(Resume {
                    until: w.at,
                    sent_at_until: Vec::new(),
                }),
                ..window.clone()
            },
            _ => window.clone(),
        }
    }

    /// What of `window` is still to be delivered, as the window with the confirmed resume
    /// point; `None` when nothing new was confirmed or the order is unknown.
    pub fn confirmed_resume(&self, window: &Window) -> Option<Resume> {
        let mark = self.confirmed.as_ref().filter(|_| self.ordered)?;
        let mut keys = mark.keys.clone();
        if let Some(previous) = window.resume.as_ref().filter(|r| r.until == mark.at) {
            keys.extend(previous.sent_at_until.iter().cloned());
        }
        Some(Resume {
            until: mark.at,
            sent_at_until: keys,
        })
    }

    /// The window to pull again after a stream broke: the rest past the confirmed point, or the
    /// whole window.
    pub fn after_rollback(&self, window: &Window) -> Window {
        match self.confirmed_resume(window) {
            Some(resume) => Window {
                resume: Some(resume),
                ..window.clone()
            },
            None => window.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn t(m: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap() + Duration::minutes(m)
    }

    fn window() -> Window {
        Window {
            start: t(0),
            end: t(60),
            resume: None,
        }
    }

    #[test]
    fn only_confirmed_lines_make_a_resume_point() {
        let mut f = Frontier::new(true);
        f.note(t(50), "a");
        f.note(t(40), "b");
        f.page_sent();
        assert_eq!(
            f.confirmed_resume(&window()),
            None,
            "written, not confirmed"
        );
        f.confirm();
        f.note(t(30), "c");
        f.note(t(30), "d");
        f.page_sent();
        let r = f.confirmed_resume(&window()).unwrap();
        assert_eq!((r.until, r.sent_at_until), (t(40), vec!["b".to_owned()]));
        assert_eq!(
            f.rest_of(&window()).query_end(),
            t(30),
            "nextLink restart: from written"
        );
        f.rollback();
        assert_eq!(f.after_rollback(&window()).query_end(), t(40));
        f.confirm();
        assert_eq!(
            f.confirmed_resume(&window()).unwrap().until,
            t(40),
            "rolled back"
        );
    }

    #[test]
    fn a_record_newer_than_one_sent_breaks_the_order() {
        let mut f = Frontier::new(true);
        f.note(t(40), "a");
        f.page_sent();
        assert!(!f.note(t(45), "b"));
        f.page_sent();
        f.confirm();
        assert_eq!(f.confirmed_resume(&window()), None);
        assert_eq!(f.after_rollback(&window()), window());
    }
}
