//! Where "now" comes from, so that every read of the wall time can be stepped in a test.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};

/// Where "now" comes from: the system clock in production; a stepped clock that moves only
/// when told to in tests, so a whole tick can be replayed at chosen instants.
#[derive(Debug, Clone, Default)]
pub enum TimeSource {
    /// The system's wall clock.
    #[default]
    System,
    /// A clock that stands still until [`TimeSource::advance`] or [`TimeSource::set`].
    Stepped(Arc<Mutex<DateTime<Utc>>>),
}

impl TimeSource {
    /// A stepped clock standing at `at`.
    pub fn stepped(at: DateTime<Utc>) -> TimeSource {
        TimeSource::Stepped(Arc::new(Mutex::new(at)))
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            TimeSource::System => Utc::now(),
            TimeSource::Stepped(at) => *at.lock().unwrap_or_else(PoisonError::into_inner),
        }
    }

    /// Moves a stepped clock forward by `by`; the system clock moves by itself.
    pub fn advance(&self, by: chrono::Duration) {
        if let TimeSource::Stepped(at) = self {
            *at.lock().unwrap_or_else(PoisonError::into_inner) += by;
        }
    }

    /// Puts a stepped clock at `to`; the system clock is not set.
    pub fn set(&self, to: DateTime<Utc>) {
        if let TimeSource::Stepped(at) = self {
            *at.lock().unwrap_or_else(PoisonError::into_inner) = to;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stepped_clock_moves_only_when_told_and_its_clones_follow() {
        let start = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let time = TimeSource::stepped(start);
        let seen_by_the_tick = time.clone();
        assert_eq!(time.now(), start);
        time.advance(chrono::Duration::minutes(5));
        assert_eq!(seen_by_the_tick.now(), start + chrono::Duration::minutes(5));
        time.set(start);
        assert_eq!(seen_by_the_tick.now(), start);
    }
}
