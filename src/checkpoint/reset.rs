//! `RESET_BEFORE`: an operator's way to make the schedule start again from `HISTORIC_DAYS`
//! back, once per new value. Pure: the checkpoint in, the checkpoint and what happened out.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::checkpoint::Checkpoint;

/// A reset that was applied, for the summary and the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reset {
    /// The new `RESET_BEFORE` value, now recorded in the checkpoint.
    pub reset_before: DateTime<Utc>,
    /// The value recorded before, if any.
    pub previous_value: Option<DateTime<Utc>>,
    /// Where the checkpoint stood before the reset (records after it are sent again).
    pub previous_checkpoint: Option<DateTime<Utc>>,
}

/// Restarts `checkpoint` when `wanted` differs from the value it records: its progress is
/// forgotten (the plan then starts `HISTORIC_DAYS` back) and `wanted` is recorded. An unset
/// `wanted`, or the value already recorded, changes nothing.
pub fn apply(checkpoint: &mut Checkpoint, wanted: Option<DateTime<Utc>>) -> Option<Reset> {
    let wanted = wanted?;
    if checkpoint.reset_before == Some(wanted) {
        return None;
    }
    let reset = Reset {
        reset_before: wanted,
        previous_value: checkpoint.reset_before,
        previous_checkpoint: checkpoint.primary.end,
    };
    checkpoint.primary.end = None;
    checkpoint.primary.partial = None;
    checkpoint.primary.then.clear();
    checkpoint.reset_before = Some(wanted);
    Some(reset)
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    #[test]
    fn a_new_value_restarts_once_and_is_recorded() {
        let now = Utc::now();
        let mut c = Checkpoint::empty(now);
        c.primary.end = Some(now - Duration::hours(30));
        assert_eq!(apply(&mut c, None), None, "unset: nothing");
        assert_eq!(c.primary.end, Some(now - Duration::hours(30)));

        let value = now - Duration::days(3);
        let reset = apply(&mut c, Some(value)).expect("new value");
        assert_eq!(reset.previous_checkpoint, Some(now - Duration::hours(30)));
        assert_eq!(reset.previous_value, None);
        assert_eq!((c.primary.end, c.reset_before), (None, Some(value)));

        c.primary.end = Some(now - Duration::hours(26));
        assert_eq!(apply(&mut c, Some(value)), None, "same value: nothing");
        assert_eq!(c.primary.end, Some(now - Duration::hours(26)));

        let other = value + Duration::seconds(1);
        assert_eq!(
            apply(&mut c, Some(other)).map(|r| r.previous_value),
            Some(Some(value))
        );
        assert_eq!(c.primary.end, None);
    }
}
