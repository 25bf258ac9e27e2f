//! Which hours an audit looks at (pure): whole UTC hours of the range asked for, only those the
//! product calls complete (ending at or before the checkpoint's `complete_until`: both passes
//! delivered them), after a cut-over's overlap, and that the API still serves. The others are
//! reported with the reason.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::checkpoint::cutover::Cutover;
use crate::window::{ceil_hour, floor_hour};

/// Hours of the range that are not audited, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// Start of the first hour skipped.
    pub from: DateTime<Utc>,
    /// End of the last.
    pub to: DateTime<Utc>,
    /// Why: `not_complete`, `cutover`, `lookback` or `no_checkpoint`.
    pub reason: &'static str,
}

/// The audit's hours and the spans skipped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hours {
    /// Starts of the hours to audit, oldest first.
    pub hours: Vec<DateTime<Utc>>,
    /// What is left out.
    pub skipped: Vec<Skipped>,
}

/// The hours of `[from, to)` (widened to whole hours) to audit, given the checkpoint's
/// `complete_until` and cut-over, and the oldest instant the API still serves.
pub fn plan(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    (complete_until, cutover): (Option<DateTime<Utc>>, Option<&Cutover>),
    served_from: DateTime<Utc>,
) -> Hours {
    let (from, to) = (floor_hour(from), ceil_hour(to));
    let mut out = Hours::default();
    let mut h = from;
    while h < to {
        let reason = match complete_until {
            None => Some("no_checkpoint"),
            Some(c) if h + Duration::hours(1) > c => Some("not_complete"),
            Some(_) if cutover.is_some_and(|c| c.before_end(h)) => Some("cutover"),
            Some(_) if h < served_from => Some("lookback"),
            Some(_) => None,
        };
        match reason {
            None => out.hours.push(h),
            Some(reason) => match out.skipped.last_mut() {
                Some(last) if last.reason == reason && last.to == h => {
                    last.to = h + Duration::hours(1)
                }
                _ => out.skipped.push(Skipped {
                    from: h,
                    to: h + Duration::hours(1),
                    reason,
                }),
            },
        }
        h += Duration::hours(1);
    }
    out
}

/// What a reason means, for the table's footer.
pub fn explain(reason: &str) -> &'static str {
    match reason {
        "not_complete" => {
            "not complete yet: the product calls records complete before the checkpoint's complete_until, once both passes delivered them"
        }
        "cutover" => {
            "before the end of the cut-over's overlap (cutover.until in the checkpoint; every hour while it is open): the earlier collector's records there are not under this hostname, so they would count as missing and --repair would send them twice; in the overlap the ticks sent what Devo lacked"
        }
        "lookback" => "older than the API serves (Graph 90 days, Reporting Web Service 10 days)",
        "no_checkpoint" => "no checkpoint: nothing was delivered for this tenant yet",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap()
    }

    #[test]
    fn whole_hours_before_complete_until_are_audited_the_rest_said_why() {
        let p = plan(
            t(24, 9, 30),
            t(24, 14, 10),
            (Some(t(24, 12, 45)), None),
            t(1, 0, 0),
        );
        assert_eq!(p.hours, [t(24, 9, 0), t(24, 10, 0), t(24, 11, 0)]);
        assert_eq!(
            p.skipped,
            [Skipped {
                from: t(24, 12, 0),
                to: t(24, 15, 0),
                reason: "not_complete"
            }]
        );
    }

    #[test]
    fn hours_the_api_no_longer_serves_are_skipped() {
        let p = plan(
            t(20, 0, 0),
            t(20, 4, 0),
            (Some(t(24, 0, 0)), None),
            t(20, 1, 30),
        );
        assert_eq!(p.hours, [t(20, 2, 0), t(20, 3, 0)]);
        assert_eq!(p.skipped[0].reason, "lookback");
        assert_eq!(
            (p.skipped[0].from, p.skipped[0].to),
            (t(20, 0, 0), t(20, 2, 0))
        );
    }

    #[test]
    fn without_a_checkpoint_nothing_is_audited() {
        let p = plan(t(20, 0, 0), t(20, 2, 0), (None, None), t(1, 0, 0));
        assert!(p.hours.is_empty());
        assert_eq!(p.skipped.len(), 1);
        assert!(!explain(p.skipped[0].reason).is_empty());
    }

    #[test]
    fn hours_before_a_cut_overs_end_are_skipped_all_while_it_is_open() {
        let mut cutover = Cutover {
            from: t(24, 9, 30),
            until: None,
            newest: t(25, 10, 30),
            earlier: crate::checkpoint::cutover::LineFilter {
                field: "Organization".into(),
                value: "contoso.com".into(),
            },
            applied_at: t(25, 11, 0),
        };
        let complete = Some(t(25, 0, 0));
        let open = plan(
            t(24, 7, 0),
            t(24, 12, 0),
            (complete, Some(&cutover)),
            t(1, 0, 0),
        );
        assert!(open.hours.is_empty(), "{open:?}");
        assert_eq!(
            open.skipped,
            [Skipped {
                from: t(24, 7, 0),
                to: t(24, 12, 0),
                reason: "cutover"
            }]
        );
        assert!(!explain("cutover").is_empty());
        cutover.until = Some(t(24, 10, 15));
        let stopped = plan(
            t(24, 7, 0),
            t(24, 12, 0),
            (complete, Some(&cutover)),
            t(1, 0, 0),
        );
        assert_eq!(stopped.hours, [t(24, 11, 0)]);
        assert_eq!(
            (stopped.skipped[0].from, stopped.skipped[0].to),
            (t(24, 7, 0), t(24, 11, 0)),
            "the hour the overlap ends in is skipped too"
        );
    }
}
