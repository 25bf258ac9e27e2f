//! Which windows the reconciliation pass pulls: the spans of the ledger's parts, oldest first,
//! from where it stands up to now − `DELAY_SECONDS`, gaps (spans the fresh pass pulled when
//! they were already old) jumped over. Pure.

use chrono::{DateTime, Duration, Utc};

use crate::ledger::LedgerPart;
use crate::window::{Plan, Window};

/// The spans of `parts`, sorted, overlapping or touching ones merged.
pub fn spans(parts: &[LedgerPart]) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut all: Vec<(DateTime<Utc>, DateTime<Utc>)> =
        parts.iter().map(|p| (p.start, p.end)).collect();
    all.sort();
    let mut merged: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::with_capacity(all.len());
    for (s, e) in all {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// Plans at most `max_windows` windows of at most `span` over the ledger's spans, from where
/// the pass stands (`end`, and a window left part-way) up to `horizon`.
pub fn plan(
    parts: &[LedgerPart],
    end: Option<DateTime<Utc>>,
    partial: Option<&Window>,
    horizon: DateTime<Utc>,
    span: Duration,
    max_windows: usize,
) -> Plan {
    let mut windows = Vec::new();
    let mut from = end;
    if let Some(partial) = partial {
        windows.push(partial.clone());
        from = Some(partial.end);
    }
    for (s, e) in spans(parts) {
        let mut start = from.map_or(s, |f| f.max(s));
        let stop = e.min(horizon);
        while start < stop && windows.len() < max_windows {
            let end = (start + span).min(stop);
            windows.push(Window {
                start,
                end,
                resume: None,
            });
            start = end;
        }
        if e > horizon || windows.len() >= max_windows {
            break;
        }
    }
    Plan {
        start: windows
            .first()
            .map_or_else(|| from.unwrap_or(horizon), |w| w.start),
        horizon,
        skipped: None,
        windows,
        split: None,
    }
}

/// The parts a reconciliation pass standing at `end` has fully covered.
pub fn covered(parts: &[LedgerPart], end: DateTime<Utc>) -> Vec<LedgerPart> {
    parts.iter().filter(|p| p.end <= end).cloned().collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(m: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 0, 0, 0).unwrap() + Duration::minutes(m)
    }

    fn part(s: i64, e: i64, n: u32) -> LedgerPart {
        LedgerPart {
            start: t(s),
            end: t(e),
            n,
            records: 1,
        }
    }

    #[test]
    fn windows_cover_the_ledger_spans_only_oldest_first_up_to_the_horizon() {
        let parts = [
            part(10, 15, 0),
            part(0, 5, 0),
            part(5, 10, 0),
            part(5, 10, 1),
            part(100, 130, 0),
        ];
        let p = plan(&parts, None, None, t(120), Duration::minutes(8), 100);
        let bounds: Vec<(DateTime<Utc>, DateTime<Utc>)> =
            p.windows.iter().map(|w| (w.start, w.end)).collect();
        assert_eq!(
            bounds,
            vec![
                (t(0), t(8)),
                (t(8), t(15)),
                (t(100), t(108)),
                (t(108), t(116)),
                (t(116), t(120))
            ],
            "the gap 15..100 is jumped; nothing past the horizon"
        );
        let p = plan(&parts, Some(t(12)), None, t(50), Duration::minutes(8), 100);
        assert_eq!(p.windows.len(), 1);
        assert_eq!((p.windows[0].start, p.windows[0].end), (t(12), t(15)));
        assert_eq!(covered(&parts, t(10)).len(), 3);
    }
}
