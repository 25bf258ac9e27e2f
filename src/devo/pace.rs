//! How fast the relay reads, measured from the streams it confirmed, and how long a stream
//! still needs to be confirmed: the sender stops writing early enough before its deadline to
//! confirm what it wrote, so that a tick cut by its deadline re-sends nothing.
//!
//! The measure of a confirmed stream is its bytes over the time from its first write to the
//! relay's end, less any pause between its last write and our close (an idle close): while the
//! relay is the bottleneck the sender's writes queue up and this is the relay's read rate;
//! while pages are the bottleneck it is the pace of writing, which predicts the next stream's
//! end just as well (the relay keeps up with it).

use std::time::Duration;

/// The read rate assumed before any stream was confirmed (bytes per second): a congested relay;
/// the first confirmation step measures the real one.
pub const ASSUMED_RATE: f64 = 32.0 * 1024.0;

/// Kept free beyond the predicted reading time: the close handshakes, and a relay slower than
/// measured by a tenth.
const MARGIN: Duration = Duration::from_secs(1);

/// The relay's read rate over the streams confirmed so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pace {
    bytes: u64,
    time: Duration,
}

impl Pace {
    /// Adds a confirmed stream of `bytes` that took `time` from its first write to the relay's
    /// end (pauses before our close excluded).
    pub fn observe(&mut self, bytes: u64, time: Duration) {
        self.bytes = self.bytes.saturating_add(bytes);
        self.time = self.time.saturating_add(time.max(Duration::from_millis(1)));
    }

    /// Bytes per second: measured, or [`ASSUMED_RATE`] before any stream was confirmed.
    pub fn rate(&self) -> f64 {
        if self.bytes == 0 {
            ASSUMED_RATE
        } else {
            (self.bytes as f64 / self.time.as_secs_f64()).max(1.0)
        }
    }

    /// How long from now until the relay has read a stream of `bytes`, first written `since`
    /// ago, reading at [`Pace::rate`] from its first write on.
    pub fn drain(&self, bytes: u64, since: Duration) -> Duration {
        let reading = Duration::from_secs_f64((bytes as f64 / self.rate()).min(1e9));
        reading.saturating_sub(since)
    }

    /// The time to keep free to confirm a stream of `bytes` first written `since` ago: its
    /// [`Pace::drain`], a tenth more, and a second for the close.
    pub fn reserve(&self, bytes: u64, since: Duration) -> Duration {
        self.drain(bytes, since).mul_f64(1.1) + MARGIN
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn before_any_confirmation_the_relay_is_taken_to_be_congested() {
        let pace = Pace::default();
        assert_eq!(pace.rate(), ASSUMED_RATE);
        // 320 KiB at 32 KiB/s: 10 s, a tenth more and the close.
        assert_eq!(
            pace.reserve(320 * 1024, Duration::ZERO),
            Duration::from_secs(12)
        );
    }

    #[test]
    fn the_rate_is_measured_over_every_confirmed_stream() {
        let mut pace = Pace::default();
        pace.observe(1_000_000, Duration::from_secs(10));
        pace.observe(3_000_000, Duration::from_secs(10));
        assert_eq!(pace.rate(), 200_000.0);
    }

    #[test]
    fn what_the_relay_read_while_the_stream_was_written_needs_no_reserve() {
        let mut pace = Pace::default();
        pace.observe(100_000, Duration::from_secs(1));
        // 500 kB written over 5 s, as fast as the relay reads: read by now.
        assert_eq!(pace.drain(500_000, Duration::from_secs(5)), Duration::ZERO);
        // 500 kB written in 1 s: 4 s to go.
        assert_eq!(
            pace.drain(500_000, Duration::from_secs(1)),
            Duration::from_secs(4)
        );
    }

    proptest! {
        /// More bytes never need less time, and a stream written longer ago never more.
        #[test]
        fn the_reserve_grows_with_the_bytes_and_shrinks_with_time(
            measured in 1u64..100_000_000,
            secs in 1u64..600,
            bytes in 0u64..100_000_000,
            more in 0u64..10_000_000,
            since in 0u64..600,
        ) {
            let mut pace = Pace::default();
            pace.observe(measured, Duration::from_secs(secs));
            let since = Duration::from_secs(since);
            prop_assert!(pace.reserve(bytes + more, since) >= pace.reserve(bytes, since));
            prop_assert!(
                pace.reserve(bytes, since + Duration::from_secs(1)) <= pace.reserve(bytes, since)
            );
            prop_assert!(pace.reserve(bytes, since) >= MARGIN);
        }
    }
}
