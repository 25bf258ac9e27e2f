//! A window of an unordered source (the Reporting Web Service) cut by the deadline has no
//! resume point: pulled again whole it would not fit the next tick either. It is split at
//! once, into pieces that one tick can pull at the rate this tick measured. Pure: values in,
//! values out.

use std::time::Duration;

use crate::split::MIN_PIECE;

/// Share of a tick's pulling time a piece is sized to fill: the rest absorbs a slower page.
const HEADROOM: f64 = 0.8;

/// How a cut window was pulled in the tick that cut it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// Rows pulled from the window's pages (before dedup and bounds).
    pub rows: u64,
    /// Time spent pulling the window.
    pub pulling: Duration,
    /// Time the tick had for pulling, from its first window to its deadline.
    pub tick: Duration,
}

impl Measured {
    /// Rows pulled per second of pulling; `None` when nothing was measured.
    pub fn rate(&self) -> Option<f64> {
        let secs = self.pulling.as_secs_f64();
        (self.rows > 0 && secs > 0.0).then(|| self.rows as f64 / secs)
    }
}

/// The length of the pieces of a cut window `window_seconds` long, in seconds.
///
/// The window's row count is unknown (no order, no count): it holds what was pulled and at
/// least as much again, so it is taken as twice the rows pulled. A piece holds its share of
/// that count that one tick pulls at the measured rate within [`HEADROOM`] of its time. At
/// least two pieces; no measure (no row, no time) halves the window. Never shorter than
/// [`MIN_PIECE`] nor longer than the window.
pub fn piece_seconds(window_seconds: i64, measured: &Measured) -> i64 {
    let min = MIN_PIECE.num_seconds();
    let window_seconds = window_seconds.max(min);
    let pieces = match measured.rate() {
        None => 2.0,
        Some(rate) => {
            let fits = (rate * measured.tick.as_secs_f64() * HEADROOM).max(1.0);
            let estimated = 2.0 * measured.rows as f64;
            (estimated / fits).ceil().max(2.0)
        }
    };
    let piece = (window_seconds as f64 / pieces).floor();
    // A float past i64's range saturates; the clamp keeps it within the window.
    (piece as i64).clamp(min, window_seconds)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::split::carve;
    use crate::window::{Split, Window};
    use chrono::{DateTime, TimeZone, Utc};

    fn measured(rows: u64, pulling: u64, tick: u64) -> Measured {
        Measured {
            rows,
            pulling: Duration::from_secs(pulling),
            tick: Duration::from_secs(tick),
        }
    }

    #[test]
    fn the_issues_window_is_cut_in_pieces_a_tick_pulls() {
        // 4,000 rows in 15 s of an 18.5 s tick: ~267 rows/s, ~3,950 rows fit; 8,000 estimated.
        let m = Measured {
            tick: Duration::from_millis(18_500),
            ..measured(4000, 15, 0)
        };
        assert_eq!(piece_seconds(6 * 3600, &m), 2 * 3600, "three pieces");
        // A tick that pulled little of a long tick: at least halves.
        assert_eq!(piece_seconds(3600, &measured(100, 1, 60)), 1800);
    }

    #[test]
    fn nothing_measured_halves() {
        assert_eq!(piece_seconds(3600, &measured(0, 15, 18)), 1800);
        assert_eq!(piece_seconds(3600, &measured(500, 0, 18)), 1800);
        assert_eq!(piece_seconds(1, &measured(0, 0, 0)), 1, "never below a second");
    }

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap() + chrono::Duration::seconds(s)
    }

    proptest! {
        /// Pieces are never shorter than a second nor longer than the window, and carving the
        /// window with them tiles it, older first, each piece no longer than the size.
        #[test]
        fn pieces_tile_the_window_older_first(
            window in 1i64..864_000, rows in 0u64..10_000_000, pulling_ms in 0u64..900_000,
            tick_ms in 0u64..900_000,
        ) {
            let m = Measured {
                rows,
                pulling: Duration::from_millis(pulling_ms),
                tick: Duration::from_millis(tick_ms),
            };
            let piece = piece_seconds(window, &m);
            prop_assert!(piece >= 1 && piece <= window, "{piece} of {window}");
            if window >= 2 {
                prop_assert!(piece < window, "a cut window is always split");
            }
            let whole = Window { start: t(0), end: t(window), resume: None };
            let split = Split::cut(t(0), t(window), piece, 1);
            let pieces = carve(vec![whole], &split);
            prop_assert_eq!(pieces.first().map(|w| w.start), Some(t(0)));
            prop_assert_eq!(pieces.last().map(|w| w.end), Some(t(window)));
            for pair in pieces.windows(2) {
                prop_assert_eq!(pair[0].end, pair[1].start);
            }
            for p in &pieces {
                prop_assert!(p.start < p.end && (p.end - p.start).num_seconds() <= piece);
            }
        }

        /// A faster measured rate never gives shorter pieces.
        #[test]
        fn a_faster_rate_never_shortens_the_pieces(
            window in 2i64..864_000, rows in 1u64..100_000, pulling in 1u64..900, faster in 1u64..900,
        ) {
            let slow = piece_seconds(window, &measured(rows, pulling + faster, 600));
            let fast = piece_seconds(window, &measured(rows, pulling, 600));
            prop_assert!(fast >= slow);
        }
    }
}
