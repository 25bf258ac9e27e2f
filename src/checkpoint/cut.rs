//! A window of an unordered source (the Reporting Web Service) cut by the deadline has no
//! resume point: pulled again whole it would not fit the next tick either. It is split at
//! once, into pieces that one tick can pull at the rate this tick measured. Pure: values in,
//! values out.

use std::time::Duration;

use chrono::{DateTime, DurationRound, Utc};

use crate::checkpoint::split::MIN_PIECE;

/// Share of a tick's pulling time a piece is sized to fill: the rest absorbs a slower page.
const HEADROOM: f64 = 0.8;

/// How a cut window was pulled in the tick that cut it.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// Rows pulled from the window's pages (before dedup and bounds).
    pub rows: u64,
    /// Time spent pulling the window.
    pub pulling: Duration,
    /// Time the tick had for pulling, from its first window to its deadline.
    pub tick: Duration,
    /// The received times of the window's rows that were delivered: in no order, so a sample
    /// of how the window's rows spread over it.
    pub received: Vec<DateTime<Utc>>,
}

impl Measured {
    /// Rows pulled per second of pulling; `None` when nothing was measured.
    pub fn rate(&self) -> Option<f64> {
        let secs = self.pulling.as_secs_f64();
        (self.rows > 0 && secs > 0.0).then(|| self.rows as f64 / secs)
    }

    /// How many of the sampled rows one piece may hold. The window's row count is unknown
    /// (no order, no count): it holds what was pulled and at least as much again, so each
    /// sampled row stands for two. A piece holds what one tick pulls at the measured rate
    /// within [`HEADROOM`] of its time. `None` when nothing was measured.
    fn per_piece(&self) -> Option<usize> {
        let rate = self.rate()?;
        let fits = rate * self.tick.as_secs_f64() * HEADROOM;
        let sampled = self.received.len().max(1) as f64 / self.rows.max(1) as f64;
        Some(((fits / 2.0 * sampled).floor() as usize).max(1))
    }
}

/// Where to cut the window `[start, end)`: the instants strictly inside it, ascending, whole
/// seconds, at least [`MIN_PIECE`] apart and from its ends. Each piece holds at most
/// [`Measured::per_piece`] of the sampled rows, and the window is cut at least once (at the
/// median row; without a measure, in half), unless it is shorter than two seconds.
pub fn boundaries(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    measured: &Measured,
) -> Vec<DateTime<Utc>> {
    let mut times: Vec<DateTime<Utc>> = measured
        .received
        .iter()
        .copied()
        .filter(|t| *t >= start && *t < end)
        .collect();
    times.sort_unstable();
    let mut cuts = Vec::new();
    match measured.per_piece() {
        Some(k) if !times.is_empty() => {
            // As many pieces as needed, then as even as can be; at least two.
            let pieces = times.len().div_ceil(k).max(2);
            let k = times.len().div_ceil(pieces).max(1);
            // The (k+1)-th row of a piece starts the next one.
            let mut i = k;
            while i < times.len() {
                cuts.push(times[i]);
                i += k;
            }
        }
        _ => cuts.push(start + (end - start) / 2),
    }
    let second = chrono::Duration::seconds(1);
    let mut out: Vec<DateTime<Utc>> = Vec::with_capacity(cuts.len());
    for cut in cuts {
        let cut = cut.duration_trunc(second).unwrap_or(cut);
        let after = out.last().copied().unwrap_or(start);
        if cut >= after + MIN_PIECE && cut + MIN_PIECE <= end {
            out.push(cut);
        }
    }
    if out.is_empty() && end - start >= MIN_PIECE * 2 {
        let half = (start + (end - start) / 2)
            .duration_trunc(second)
            .unwrap_or(start);
        out.push(half.max(start + MIN_PIECE));
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;
    use crate::checkpoint::split::longest;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap() + chrono::Duration::seconds(s)
    }

    fn measured(rows: u64, pulling: u64, tick: u64, received: Vec<DateTime<Utc>>) -> Measured {
        Measured {
            rows,
            pulling: Duration::from_secs(pulling),
            tick: Duration::from_secs(tick),
            received,
        }
    }

    #[test]
    fn the_issues_window_is_cut_in_pieces_a_tick_pulls() {
        // 4,000 rows spread evenly over 6 h, pulled in 15 s of an 18.5 s tick: ~267 rows/s,
        // ~3,950 fit a tick, 8,000 estimated: pieces of ~1,970 sampled rows, three of them.
        let received = (0..4000).map(|i| t(i * 54 / 10)).collect();
        let m = Measured {
            tick: Duration::from_millis(18_500),
            ..measured(4000, 15, 0, received)
        };
        let cuts = boundaries(t(0), t(6 * 3600), &m);
        assert_eq!(cuts.len(), 2, "{cuts:?}");
        assert!(longest(t(0), t(6 * 3600), &cuts) <= 2 * 3600 + 60);
    }

    #[test]
    fn rows_crowded_in_part_of_the_window_put_the_cuts_there() {
        // 360 rows in the first 6 h of a day, 120 rows/s, 2 s ticks: 192 fit, 96 sampled a
        // piece: four pieces of 90 rows, the last one to the day's end.
        let received = (0..360).map(|i| t(i * 60)).collect();
        let cuts = boundaries(t(0), t(86_400), &measured(360, 3, 2, received));
        assert!(cuts.iter().all(|c| *c <= t(6 * 3600)), "{cuts:?}");
        assert_eq!(cuts, vec![t(90 * 60), t(180 * 60), t(270 * 60)]);
    }

    #[test]
    fn nothing_measured_halves() {
        assert_eq!(
            boundaries(t(0), t(3600), &measured(0, 15, 18, vec![])),
            vec![t(1800)]
        );
        assert_eq!(
            boundaries(t(0), t(3600), &measured(500, 0, 18, vec![t(5)])),
            vec![t(1800)]
        );
        assert!(
            boundaries(t(0), t(1), &measured(0, 0, 0, vec![])).is_empty(),
            "one second"
        );
    }

    proptest! {
        /// Cuts are inside the window, ascending, at least a second apart and from its ends;
        /// no piece holds more than its share of the sample; a window of 2 s or more is cut.
        #[test]
        fn cuts_tile_the_window_older_first(
            window in 1i64..864_000, rows in 0u64..100_000, pulling_ms in 0u64..900_000,
            tick_ms in 0u64..900_000, sample in prop::collection::vec(0i64..864_000, 0..300),
        ) {
            let received: Vec<_> = sample.iter().map(|s| t(s % window)).collect();
            let m = Measured {
                rows: rows.max(received.len() as u64),
                pulling: Duration::from_millis(pulling_ms),
                tick: Duration::from_millis(tick_ms),
                received,
            };
            let cuts = boundaries(t(0), t(window), &m);
            let mut edges = vec![t(0)];
            edges.extend(cuts.iter().copied());
            edges.push(t(window));
            for pair in edges.windows(2) {
                prop_assert!(pair[1] - pair[0] >= MIN_PIECE, "{:?}", edges);
            }
            if window >= 2 {
                prop_assert!(!cuts.is_empty(), "a cut window of {window} s is split");
            }
            let longest = longest(t(0), t(window), &cuts);
            prop_assert!(longest >= 1 && longest <= window);
        }

        /// With distinct whole-second times, every piece holds at most its share of them.
        #[test]
        fn no_piece_holds_more_than_a_tick_pulls(
            mut sample in prop::collection::btree_set(0i64..86_400, 2..400),
            rate in 1u64..500, tick in 1u64..30,
        ) {
            let times: Vec<_> = std::mem::take(&mut sample).into_iter().map(t).collect();
            let n = times.len() as u64;
            let m = Measured { rows: n, pulling: Duration::from_secs(n.div_ceil(rate)), tick: Duration::from_secs(tick), received: times.clone() };
            let k = m.per_piece().unwrap();
            let cuts = boundaries(t(0), t(86_400), &m);
            let mut edges = vec![t(0)];
            edges.extend(cuts.iter().copied());
            edges.push(t(86_400));
            for pair in edges.windows(2) {
                let inside = times.iter().filter(|x| **x >= pair[0] && **x < pair[1]).count();
                prop_assert!(inside <= k, "{inside} > {k} in {:?}", pair);
            }
        }
    }
}
