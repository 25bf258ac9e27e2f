//! Backfill of a range on demand: which ranges are accepted, where their checkpoint lives, how
//! they are cut into windows and how far they got. Pure: values in, values out; the tick does
//! the I/O.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::WindowRules;
use crate::window::Bounds;

/// A backfill request: `{"backfill": {"start": "RFC3339", "end": "RFC3339", "name": "…"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BackfillRequest {
    /// Inclusive start.
    pub start: DateTime<Utc>,
    /// Exclusive end.
    pub end: DateTime<Utc>,
    /// Optional name of the backfill's checkpoint.
    #[serde(default)]
    pub name: Option<String>,
}

/// Longest accepted backfill name.
pub const MAX_NAME_LEN: usize = 100;

/// A range that can be pulled: `[start, end)`, inside the API's limits when it was accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    /// The backfill's name: the checkpoint object's file name.
    pub name: String,
    /// Inclusive start.
    pub start: DateTime<Utc>,
    /// Exclusive end.
    pub end: DateTime<Utc>,
}

/// Why a backfill request is refused. Each message names the limit and how to fix the request.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BackfillError {
    /// end ≤ start.
    #[error(
        "backfill end {end} is not after its start {start}: the range [start, end) must not be empty or inverted"
    )]
    Inverted {
        /// Requested start.
        start: String,
        /// Requested end.
        end: String,
    },
    /// end is after now.
    #[error(
        "backfill end {end} is in the future (now is {now}); it must be at or before now − DELAY_SECONDS = {horizon}"
    )]
    Future {
        /// Requested end.
        end: String,
        now: String,
        /// now − delay.
        horizon: String,
    },
    /// end is after now − delay: Microsoft may not have made every record visible yet.
    #[error(
        "backfill end {end} is after now − DELAY_SECONDS ({delay_seconds} s) = {horizon}: records may not be visible yet; end the range at or before {horizon}"
    )]
    NotYetVisible {
        /// Requested end.
        end: String,
        /// now − delay.
        horizon: String,
        /// DELAY_SECONDS.
        delay_seconds: i64,
    },
    /// start is older than what the API serves.
    #[error(
        "backfill start {start} is outside the {api} API's lookback of {lookback_days} days: start at or after now − {lookback_days} days + MARGIN_SECONDS = {earliest}"
    )]
    Lookback {
        /// Requested start.
        start: String,
        api: &'static str,
        lookback_days: i64,
        /// The oldest accepted start.
        earliest: String,
    },
    /// The name cannot be an S3 file name.
    #[error(
        "backfill name {name:?} is invalid: use 1 to {MAX_NAME_LEN} letters, digits, '.', '_' or '-' (not starting with '.')"
    )]
    Name {
        /// The requested name.
        name: String,
    },
    /// A checkpoint with this name belongs to another range.
    #[error(
        "backfill {name:?} already exists for {start}..{end}: repeat that range to resume it, or choose another name"
    )]
    Mismatch {
        name: String,
        /// The stored range's start.
        start: String,
        /// The stored range's end.
        end: String,
    },
}

fn text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Accepts `request` at `now` under `rules` (of `api`), or says which limit it breaks.
pub fn validate(
    request: &BackfillRequest,
    now: DateTime<Utc>,
    rules: &WindowRules,
    api: &'static str,
) -> Result<Range, BackfillError> {
    let (start, end) = (request.start, request.end);
    let horizon = now - rules.delay;
    let earliest = rules.earliest(now);
    if end <= start {
        return Err(BackfillError::Inverted {
            start: text(start),
            end: text(end),
        });
    }
    if end > now {
        return Err(BackfillError::Future {
            end: text(end),
            now: text(now),
            horizon: text(horizon),
        });
    }
    if end > horizon {
        return Err(BackfillError::NotYetVisible {
            end: text(end),
            horizon: text(horizon),
            delay_seconds: rules.delay.num_seconds(),
        });
    }
    if start < earliest {
        return Err(BackfillError::Lookback {
            start: text(start),
            api,
            lookback_days: rules.lookback.num_days(),
            earliest: text(earliest),
        });
    }
    let name = match &request.name {
        Some(name) => {
            let valid = !name.is_empty()
                && name.len() <= MAX_NAME_LEN
                && !name.starts_with('.')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !valid {
                return Err(BackfillError::Name { name: name.clone() });
            }
            name.clone()
        }
        None => format!("{}_{}", compact(start), compact(end)),
    };
    Ok(Range { name, start, end })
}

/// `2026-11-20T00:00:00Z` → `20261120T000000Z`: a file name without ':'.
fn compact(t: DateTime<Utc>) -> String {
    text(t).replace(['-', ':'], "")
}

/// The backfill's checkpoint key: `backfill/{name}.json` next to the scheduled `STATE_KEY`.
pub fn checkpoint_key(state_key: &str, range: &Range) -> String {
    match state_key.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/backfill/{}.json", range.name),
        None => format!("backfill/{}.json", range.name),
    }
}

/// Refuses a stored checkpoint of the same name that belongs to another range (`stored`).
pub fn check_stored(range: &Range, stored: Option<&Range>) -> Result<(), BackfillError> {
    match stored {
        Some(other) if other.start != range.start || other.end != range.end => {
            Err(BackfillError::Mismatch {
                name: range.name.clone(),
                start: text(other.start),
                end: text(other.end),
            })
        }
        _ => Ok(()),
    }
}

/// The limits a backfill's windows are planned within: the range, still inside the lookback.
pub fn bounds(range: &Range, now: DateTime<Utc>, rules: &WindowRules) -> Bounds {
    Bounds {
        start: range.start,
        horizon: range.end,
        ..Bounds::scheduled(now, rules)
    }
}

/// How much of a backfill is done, for the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub name: String,
    /// The checkpoint object's key.
    pub key: String,
    /// Range start.
    pub start: DateTime<Utc>,
    /// Range end.
    pub end: DateTime<Utc>,
    /// Every record received before this instant was sent.
    pub done_until: DateTime<Utc>,
    /// Seconds of the range left to pull (a window left part-way counts as left).
    pub remaining_seconds: i64,
    /// Whether the whole range was delivered.
    pub complete: bool,
}

/// How far a checkpoint that ends at `end` (with a window left part-way when `partial`) got
/// through `range`.
pub fn report(range: &Range, key: &str, end: Option<DateTime<Utc>>, partial: bool) -> Report {
    let done_until = end.unwrap_or(range.start).clamp(range.start, range.end);
    let remaining_seconds = (range.end - done_until).num_seconds().max(0);
    Report {
        name: range.name.clone(),
        key: key.to_owned(),
        start: range.start,
        end: range.end,
        done_until,
        remaining_seconds,
        complete: remaining_seconds == 0 && !partial,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    use super::*;
    use crate::window::MAX_QUERY_SPAN;
    use crate::window::tests::{now, rules};
    use crate::window::{Standing, plan_within};

    fn request(start: DateTime<Utc>, end: DateTime<Utc>, name: Option<&str>) -> BackfillRequest {
        BackfillRequest {
            start,
            end,
            name: name.map(str::to_owned),
        }
    }

    fn refused(start: DateTime<Utc>, end: DateTime<Utc>) -> String {
        validate(&request(start, end, None), now(), &rules(), "graph")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_valid_range_gets_a_name_and_a_key_next_to_the_schedule() {
        let start = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
        let end = Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 0).unwrap();
        let range = validate(&request(start, end, None), now(), &rules(), "graph").unwrap();
        assert_eq!(range.name, "20261120T000000Z_20261121T000000Z");
        assert_eq!(
            checkpoint_key("m365-message-trace/checkpoint.json", &range),
            "m365-message-trace/backfill/20261120T000000Z_20261121T000000Z.json"
        );
        let named = validate(
            &request(start, end, Some("2026-11-20")),
            now(),
            &rules(),
            "graph",
        )
        .unwrap();
        assert_eq!(
            checkpoint_key("state.json", &named),
            "backfill/2026-11-20.json"
        );
    }

    #[test]
    fn refusals_name_the_limit() {
        let t = now() - Duration::days(5);
        assert!(refused(t, t).contains("not after its start"));
        assert!(refused(t, t - Duration::hours(1)).contains("empty or inverted"));
        let err = refused(t, now() + Duration::hours(1));
        assert!(err.contains("in the future"), "{err}");
        assert!(
            err.contains("2026-11-24T11:00:00Z"),
            "names now − delay: {err}"
        );
        let err = refused(t, now() - Duration::hours(2));
        assert!(
            err.contains("after now − DELAY_SECONDS (90000 s) = 2026-11-24T11:00:00Z"),
            "{err}"
        );
        let err = refused(now() - Duration::days(91), t);
        assert!(
            err.contains("lookback of 90 days")
                && err.contains("now − 90 days + MARGIN_SECONDS = 2026-08-27T12:01:00Z"),
            "{err}"
        );
        for bad in ["", "../x", "a/b", ".hidden", "with space"] {
            let err = validate(
                &request(t, t + Duration::hours(1), Some(bad)),
                now(),
                &rules(),
                "graph",
            )
            .unwrap_err();
            assert!(matches!(err, BackfillError::Name { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn a_stored_checkpoint_of_another_range_is_refused() {
        let t = now() - Duration::days(5);
        let range = validate(
            &request(t, t + Duration::hours(1), Some("x")),
            now(),
            &rules(),
            "graph",
        )
        .unwrap();
        let mut stored = None;
        assert!(check_stored(&range, stored.as_ref()).is_ok());
        stored = Some(Range {
            end: t + Duration::hours(2),
            ..range.clone()
        });
        let err = check_stored(&range, stored.as_ref())
            .unwrap_err()
            .to_string();
        assert!(err.contains("already exists for"), "{err}");
    }

    #[test]
    fn report_counts_a_partial_window_as_left() {
        let t = now() - Duration::days(5);
        let range = Range {
            name: "n".into(),
            start: t,
            end: t + Duration::hours(10),
        };
        let r = report(&range, "k", None, false);
        assert_eq!(
            (r.done_until, r.remaining_seconds, r.complete),
            (t, 36_000, false)
        );
        let r = report(&range, "k", Some(t + Duration::hours(4)), true);
        assert_eq!((r.remaining_seconds, r.complete), (21_600, false));
        assert!(report(&range, "k", Some(t + Duration::hours(10)), false).complete);
    }

    proptest! {
        #[test]
        fn backfill_windows_cover_the_range_exactly_within_the_api_limits(
            start_offset_s in 26i64 * 3_600..89 * 86_400,
            length_s in 1i64..30 * 86_400,
            done_s in 0i64..30 * 86_400,
            max_window in 60i64..=864_000,
            max_windows in 1usize..500,
        ) {
            let rules = WindowRules { max_window: Duration::seconds(max_window), ..rules() };
            let start = now() - Duration::seconds(start_offset_s);
            let end = (start + Duration::seconds(length_s)).min(now() - rules.delay);
            prop_assume!(end > start);
            let range = validate(&request(start, end, None), now(), &rules, "graph").unwrap();
            let done = (start + Duration::seconds(done_s)).min(end);
            let p = plan_within(Standing { end: Some(done), partial: None }, &bounds(&range, now(), &rules), max_windows);
            prop_assert!(p.skipped.is_none());
            prop_assert_eq!(p.start, done, "resumes where it stopped");
            let mut expected = done;
            for w in &p.windows {
                prop_assert_eq!(w.start, expected, "no gap, no overlap");
                prop_assert!(w.start < w.end);
                prop_assert!(w.end <= end, "never past the range");
                prop_assert!(w.end - w.start <= MAX_QUERY_SPAN);
                prop_assert!(w.end - w.start <= rules.max_window);
                expected = w.end;
            }
            if p.windows.len() < max_windows {
                prop_assert_eq!(expected, end, "the whole rest of the range");
            }
        }
    }
}
