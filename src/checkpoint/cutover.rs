//! A take-over from an earlier collector (the command line's `cutover`), as the checkpoint
//! keeps it: the **overlap**, the span in which the earlier collector may have delivered a
//! record, and the rules a tick follows in it. Pure: values in, values out.
//!
//! In the overlap a record is sent only when Devo does not hold it (its key and status, in the
//! earlier collector's lines or this tenant's): the tick reads the keys Devo holds for each
//! hour of a window before pulling it. While the earlier collector may still deliver (no
//! `until` yet, or its last lines may not be searchable yet), the primary pass waits
//! `DELAY_SECONDS`: it reads an hour only once the earlier collector has delivered everything
//! it ever will of it, so whichever of "stop the hosted collector" and "apply the cut-over"
//! comes first, nothing is sent twice and nothing is left out. Once `until` is set, the pass
//! catches up at its own delay, reading Devo's keys up to `until`; past it, the tick is the
//! only collector and reads nothing.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{AuditMark, Checkpoint};
use crate::window::{Window, ceil_hour, floor_hour};

/// How long after `until` the overlap stays open: the earlier collector's last lines must be
/// searchable in Devo before a tick reads an hour they may be in.
pub const SEARCHABLE_AFTER: Duration = Duration::minutes(10);

/// Which lines of the table are the earlier collector's: `field` = `value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineFilter {
    /// `Organization` (the tenant's domain, as the Reporting Web Service writes it) or
    /// `hostname`.
    pub field: String,
    /// The value the field holds in every line of the earlier collector.
    pub value: String,
}

impl LineFilter {
    /// The lines written under `hostname` (this tenant's `DEVO_HOSTNAME`, or an earlier
    /// collector that used the same).
    pub fn hostname(hostname: &str) -> LineFilter {
        LineFilter {
            field: "hostname".to_owned(),
            value: hostname.to_owned(),
        }
    }

    /// The lines of the tenant `domain`, as the Reporting Web Service writes `Organization`.
    pub fn organization(domain: &str) -> LineFilter {
        LineFilter {
            field: "Organization".to_owned(),
            value: domain.trim().to_owned(),
        }
    }
}

/// The take-over in the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cutover {
    /// Start of the overlap: the earlier collector's newest `Received` less the margin in which
    /// Microsoft may still have exposed records it missed (`DELAY_SECONDS`).
    pub from: DateTime<Utc>,
    /// End of the overlap: when the operator said the earlier collector was stopped; absent
    /// while it may still deliver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// The earlier collector's newest `Received` when the cut-over was applied.
    pub newest: DateTime<Utc>,
    /// Its lines.
    pub earlier: LineFilter,
    /// When the cut-over was applied.
    pub applied_at: DateTime<Utc>,
}

impl Cutover {
    /// Whether the earlier collector may still add lines a tick would read at `now`.
    pub fn open(&self, now: DateTime<Utc>) -> bool {
        self.until.is_none_or(|u| now < u + SEARCHABLE_AFTER)
    }

    /// Whether a tick still reads Devo's keys: the primary pass, standing at `end`, has not
    /// passed the overlap's end (an open overlap has none).
    pub fn pending(&self, end: Option<DateTime<Utc>>) -> bool {
        match (self.until, end) {
            (Some(until), Some(end)) => end < until,
            _ => true,
        }
    }

    /// The primary pass's `horizon` at `now`: while the overlap is open, no later than
    /// now − `delay` (`DELAY_SECONDS`), by when the earlier collector has delivered each
    /// record it will ever deliver.
    pub fn horizon(
        &self,
        horizon: DateTime<Utc>,
        now: DateTime<Utc>,
        delay: Duration,
    ) -> DateTime<Utc> {
        if self.open(now) {
            horizon.min(now - delay)
        } else {
            horizon
        }
    }

    /// The hours (their starts) whose keys Devo holds are read before `window` is pulled: those
    /// that meet the part of the window inside the overlap; none outside it.
    pub fn hours_of(&self, window: &Window) -> Vec<DateTime<Utc>> {
        let start = window.start.max(self.from);
        let end = self.until.map_or(window.end, |u| window.end.min(u));
        let mut hours = Vec::new();
        if start >= end {
            return hours;
        }
        let mut hour = floor_hour(start);
        while hour < end {
            hours.push(hour);
            hour += Duration::hours(1);
        }
        hours
    }

    /// Whether the hour starting at `hour` begins before the overlap's end (every hour while it
    /// is open): the earlier collector's records there are not under this tenant's hostname, so
    /// an audit would count them as missing and a repair would send them twice.
    pub fn before_end(&self, hour: DateTime<Utc>) -> bool {
        self.until.is_none_or(|u| hour < u)
    }

    /// Where the scheduled audit may start: not while the overlap is open, and never inside it
    /// (the audit reads this tenant's lines only, so the earlier collector's records would count
    /// as missing there).
    pub fn audit_from(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.until {
            Some(until) if !self.open(now) => Some(ceil_hour(until)),
            _ => None,
        }
    }
}

/// Keeps the scheduled audit of `checkpoint` out of its overlap at `now`: moves its position
/// past the overlap; `false` while the overlap is open (no audit then).
pub fn hold_audit(checkpoint: &mut Checkpoint, now: DateTime<Utc>) -> bool {
    let Some(cutover) = &checkpoint.cutover else {
        return true;
    };
    let Some(from) = cutover.audit_from(now) else {
        return false;
    };
    if checkpoint.audit.is_none_or(|a| a.until < from) {
        checkpoint.audit = Some(AuditMark { until: from });
    }
    true
}

/// The key a record is looked up by in what Devo holds: `id|recipient`, lower-cased (the
/// Reporting Web Service and Graph may not write an id or an address in the same case).
pub fn held_key(key: &str) -> String {
    key.to_lowercase()
}

/// Whether `checkpoint` has delivered anything: a position, a window left part-way, spans or
/// ledger parts waiting for the second look. (A lease, a recorded failure or the request
/// history alone are not deliveries.)
pub fn delivered(checkpoint: &Checkpoint) -> bool {
    let started = |p: &crate::checkpoint::Position| {
        p.end.is_some() || p.partial.is_some() || !p.due.is_empty()
    };
    started(&checkpoint.primary)
        || checkpoint.reconcile.as_ref().is_some_and(started)
        || !checkpoint.ledger.is_empty()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap()
    }

    fn cutover(until: Option<DateTime<Utc>>) -> Cutover {
        Cutover {
            from: t(23, 9, 15),
            until,
            newest: t(24, 10, 15),
            earlier: LineFilter {
                field: "Organization".into(),
                value: "contoso.com".into(),
            },
            applied_at: t(24, 11, 0),
        }
    }

    fn window(start: DateTime<Utc>, end: DateTime<Utc>) -> Window {
        Window {
            start,
            end,
            resume: None,
        }
    }

    #[test]
    fn while_the_earlier_collector_may_deliver_the_primary_pass_waits_the_full_delay() {
        let delay = Duration::hours(25);
        let now = t(25, 12, 0);
        let fresh = now - Duration::minutes(10);
        let open = cutover(None);
        assert!(open.open(now));
        assert_eq!(open.horizon(fresh, now, delay), now - delay);
        // Stopped: open until its last lines are searchable, then the pass's own delay.
        let stopped = cutover(Some(now));
        assert_eq!(stopped.horizon(fresh, now, delay), now - delay);
        let later = now + SEARCHABLE_AFTER;
        assert!(!stopped.open(later));
        assert_eq!(stopped.horizon(fresh, later, delay), fresh);
        // A horizon already further back stays.
        assert_eq!(open.horizon(now - delay * 2, now, delay), now - delay * 2);
    }

    #[test]
    fn the_hours_read_are_those_of_the_window_inside_the_overlap() {
        let c = cutover(Some(t(24, 12, 30)));
        assert_eq!(
            c.hours_of(&window(t(23, 6, 0), t(23, 11, 0))),
            [t(23, 9, 0), t(23, 10, 0)],
            "from the overlap's start, in its hour"
        );
        assert_eq!(
            c.hours_of(&window(t(24, 11, 40), t(24, 17, 40))),
            [t(24, 11, 0), t(24, 12, 0)],
            "up to its end"
        );
        assert!(c.hours_of(&window(t(24, 12, 30), t(24, 18, 0))).is_empty());
        assert!(c.hours_of(&window(t(23, 3, 0), t(23, 9, 15))).is_empty());
        assert!(c.pending(Some(t(24, 12, 29))) && !c.pending(Some(t(24, 12, 30))));
        assert!(cutover(None).pending(Some(t(30, 0, 0))));
        let open = cutover(None);
        assert_eq!(open.hours_of(&window(t(26, 0, 0), t(26, 2, 0))).len(), 2);
    }

    #[test]
    fn the_scheduled_audit_waits_for_the_overlap_and_starts_after_it() {
        let mut c = Checkpoint::empty(t(24, 11, 0));
        assert!(hold_audit(&mut c, t(24, 11, 0)), "no cut-over: audit");
        c.cutover = Some(cutover(None));
        assert!(!hold_audit(&mut c, t(26, 0, 0)));
        assert_eq!(c.audit, None);
        c.cutover = Some(cutover(Some(t(24, 12, 30))));
        assert!(!hold_audit(&mut c, t(24, 12, 35)), "not searchable yet");
        assert!(hold_audit(&mut c, t(26, 0, 0)));
        assert_eq!(c.audit.map(|a| a.until), Some(t(24, 13, 0)));
        c.audit = Some(AuditMark { until: t(25, 3, 0) });
        assert!(hold_audit(&mut c, t(26, 0, 0)));
        assert_eq!(c.audit.map(|a| a.until), Some(t(25, 3, 0)), "never back");
    }

    #[test]
    fn a_lease_or_a_failure_alone_is_not_a_delivery() {
        let mut c = Checkpoint::empty(t(24, 11, 0));
        c.lease = Some(crate::checkpoint::lease::Lease {
            owner: "r".into(),
            expires_at: t(24, 11, 5),
        });
        c.recent_requests = vec![t(24, 11, 0)];
        assert!(!delivered(&c));
        let mut moved = c.clone();
        moved.primary.end = Some(t(24, 10, 0));
        assert!(delivered(&moved));
        let mut owed = c.clone();
        owed.position_mut(crate::checkpoint::Track::Reconcile)
            .owe((t(24, 9, 0), t(24, 10, 0)));
        assert!(delivered(&owed));
    }
}
