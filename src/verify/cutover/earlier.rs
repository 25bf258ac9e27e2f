//! Where the earlier collector stopped: the newest `Received` among its lines in the table, and
//! how many lines it wrote, from one LINQ query grouped by hour (`newest_of` reads the answer,
//! pure).

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::checkpoint::cutover::LineFilter;
use crate::trace::http::Budget;
use crate::verify::answer::{self, Row};
use crate::verify::linq::{self, NEWEST, QueryBody};
use crate::verify::{QueryClient, QueryError};

/// The earlier collector's lines, as found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    /// Its newest `Received`.
    pub newest: DateTime<Utc>,
    /// The hour of its newest line.
    pub hour: DateTime<Utc>,
    /// Its lines in that hour.
    pub hour_lines: u64,
    /// Its lines in the span searched.
    pub lines: u64,
    /// The newest `Received` could not be read: the hour's start stands for it.
    pub received_unreadable: bool,
}

/// The earlier collector's lines (`filter`) in `table` dated `[from, to)`; `None` when it has
/// none there.
pub async fn find(
    client: &QueryClient,
    table: &str,
    filter: &LineFilter,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    budget: &Budget,
) -> Result<Option<Found>, QueryError> {
    let query = linq::newest_per_hour(table, &filter.field, &filter.value);
    let what = format!(
        "the earlier collector's lines ({} = {}) of {from}..{to}",
        filter.field, filter.value
    );
    let mut rows = Vec::new();
    let mut each = |row: Row| {
        rows.push(row);
        Ok(())
    };
    client
        .each_row(
            &QueryBody::new(query, from, to),
            &what,
            table,
            budget,
            &mut each,
        )
        .await?;
    Ok(newest_of(&rows))
}

/// The newest hour with lines and the newest `Received` in it.
pub fn newest_of(rows: &[Row]) -> Option<Found> {
    let mut lines = 0;
    let mut newest: Option<(DateTime<Utc>, u64, Option<DateTime<Utc>>)> = None;
    for row in rows {
        let (Some(hour), n) = (answer::eventdate(row), answer::lines(row).unwrap_or(0)) else {
            continue;
        };
        if n == 0 {
            continue;
        }
        lines += n;
        if newest.is_none_or(|(h, _, _)| hour > h) {
            newest = Some((hour, n, row.get(NEWEST).and_then(received)));
        }
    }
    let (hour, hour_lines, received) = newest?;
    Some(Found {
        newest: received.unwrap_or(hour),
        hour,
        hour_lines,
        lines,
        received_unreadable: received.is_none(),
    })
}

/// A `Received` as Devo may return it: the Reporting Web Service's text
/// (`2026-11-24T10:15:30.1234567`, with or without a zone), Devo's date text, or milliseconds.
fn received(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::Number(n) => Utc.timestamp_millis_opt(n.as_i64()?).single(),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Some(t.with_timezone(&Utc));
            }
            ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(s.trim_end_matches('Z'), f).ok())
                .map(|t| t.and_utc())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(json: &str) -> Vec<Row> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_newest_hour_gives_the_newest_received() {
        let found = newest_of(&rows(
            r#"[{"eventdate":1795510800000,"lines":40,"newest":"2026-11-24T09:59:59.9999999"},
                {"eventdate":1795514400000,"lines":12,"newest":"2026-11-24T10:15:30.1234567"},
                {"eventdate":1795518000000,"lines":0,"newest":null}]"#,
        ))
        .unwrap();
        assert_eq!(
            found.newest,
            Utc.with_ymd_and_hms(2026, 11, 24, 10, 15, 30).unwrap()
                + chrono::Duration::nanoseconds(123_456_700)
        );
        assert_eq!((found.hour_lines, found.lines), (12, 52));
        assert!(!found.received_unreadable);
    }

    #[test]
    fn received_in_every_form_devo_may_return_and_the_hour_when_unreadable() {
        let t = Utc.with_ymd_and_hms(2026, 11, 24, 10, 15, 30).unwrap();
        for v in [
            serde_json::json!("2026-11-24T10:15:30"),
            serde_json::json!("2026-11-24T10:15:30Z"),
            serde_json::json!("2026-11-24T10:15:30+00:00"),
            serde_json::json!("2026-11-24 10:15:30.000"),
            serde_json::json!(1795515330000_i64),
        ] {
            assert_eq!(received(&v), Some(t), "{v}");
        }
        let found = newest_of(&rows(
            r#"[{"eventdate":1795514400000,"lines":3,"newest":"n/a"}]"#,
        ))
        .unwrap();
        assert!(found.received_unreadable);
        assert_eq!(found.newest, found.hour);
        assert_eq!(newest_of(&rows(r#"[{"eventdate":1,"lines":0}]"#)), None);
        assert_eq!(newest_of(&[]), None);
    }
}
