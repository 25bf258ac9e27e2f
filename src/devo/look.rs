//! What a stream's state means, wherever the sender looks at it: before a page's lines, between
//! pages without lines, and at the close. One pure mapping, so the same state never means
//! "delivered" in one place and "broken" in another.
//!
//! A relay ends a stream it received nothing on for a while (its idle close) with a clean end
//! (TLS close_notify, FIN). It read everything that arrived before: lines that reached it after
//! its end are answered with a reset, which the socket keeps as its error behind the end of
//! stream. So a clean end with no reset behind it, looked at [`SETTLE`] or more after our last
//! write (when a reset for that write would have come back), confirms every line the stream
//! carried. A clean end seen sooner is looked at again once [`SETTLE`] has passed.

use std::time::Duration;

/// How long after our last write a reset for it has surely come back: far above the round trip
/// to a relay, and short enough to wait at a close.
pub const SETTLE: Duration = Duration::from_secs(1);

/// What the relay did to a stream while we were not writing to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// Nothing: the stream is open.
    Open,
    /// It ended the stream cleanly (TLS close_notify) and no reset followed.
    Ended,
    /// It reset the stream, ended it without close_notify, or wrote to it: nothing is confirmed.
    Broken(String),
}

/// What a stream's state means for the lines it carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Meaning {
    /// Open and in use: write on.
    Keep,
    /// Open and idle for `DEVO_IDLE_SECONDS`: ours to close (our close confirms it) before the
    /// relay ends it.
    CloseIdle,
    /// The relay ended it while idle with nothing written since: every line it carried was read.
    Confirmed,
    /// Nothing written on it since its last confirmation is confirmed.
    Broken(String),
}

/// A look's outcome: a meaning now, or look again after this long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Look {
    /// The state's meaning.
    Now(Meaning),
    /// The relay ended the stream right after a write: look again after this long, when a
    /// reset for that write would have come back.
    Again(Duration),
}

/// The meaning of `peer`, seen `idle_for` after our last write, for streams we close after
/// `idle_limit` without a write.
pub fn meaning(peer: Peer, idle_for: Duration, idle_limit: Duration) -> Look {
    Look::Now(match peer {
        Peer::Open if idle_for >= idle_limit => Meaning::CloseIdle,
        Peer::Open => Meaning::Keep,
        Peer::Ended if idle_for >= SETTLE => Meaning::Confirmed,
        Peer::Ended => return Look::Again(SETTLE - idle_for),
        Peer::Broken(seen) => Meaning::Broken(seen),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMIT: Duration = Duration::from_secs(30);

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn a_clean_end_after_a_pause_confirms_what_the_stream_carried() {
        assert_eq!(
            meaning(Peer::Ended, secs(1.5), LIMIT),
            Look::Now(Meaning::Confirmed)
        );
    }

    #[test]
    fn a_clean_end_right_after_a_write_is_looked_at_again_once_a_reset_would_be_back() {
        assert_eq!(
            meaning(Peer::Ended, secs(0.25), LIMIT),
            Look::Again(secs(0.75))
        );
    }

    #[test]
    fn a_reset_behind_the_end_is_broken_however_long_the_pause() {
        let seen = "reset".to_owned();
        assert_eq!(
            meaning(Peer::Broken(seen.clone()), secs(100.0), LIMIT),
            Look::Now(Meaning::Broken(seen))
        );
    }

    #[test]
    fn an_open_stream_idle_for_the_limit_is_ours_to_close() {
        assert_eq!(
            meaning(Peer::Open, LIMIT, LIMIT),
            Look::Now(Meaning::CloseIdle)
        );
        assert_eq!(
            meaning(Peer::Open, secs(29.9), LIMIT),
            Look::Now(Meaning::Keep)
        );
    }

    proptest! {
        /// The meaning depends on the state and the pause only: never on where the sender
        /// looks (one function), a clean end never reads as broken, and looking again after the
        /// wait it asks for always gives a meaning.
        #[test]
        fn a_clean_end_is_confirmed_once_settled(idle_ms in 0u64..120_000, limit_s in 1u64..600) {
            let (idle, limit) = (Duration::from_millis(idle_ms), Duration::from_secs(limit_s));
            match meaning(Peer::Ended, idle, limit) {
                Look::Now(m) => prop_assert_eq!(m, Meaning::Confirmed),
                Look::Again(wait) => {
                    prop_assert!(wait <= SETTLE);
                    prop_assert_eq!(
                        meaning(Peer::Ended, idle + wait, limit),
                        Look::Now(Meaning::Confirmed)
                    );
                }
            }
            let open = meaning(Peer::Open, idle, limit);
            prop_assert!(matches!(open, Look::Now(Meaning::Keep | Meaning::CloseIdle)));
        }
    }
}
