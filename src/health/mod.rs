//! Collection health inside Devo: after every scheduled tick, one status line per tenant under
//! `STATUS_TAG`, so that an analyst (or an MSSP watching many tenants) sees in Devo itself which
//! tenant went silent or fell behind. Best effort: the line never changes the tick's outcome;
//! a line that cannot be sent is logged (`status_not_sent`) and counted (`StatusLineFailed`).

pub mod line;
mod send;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use thiserror::Error;

use crate::devo::{DevoError, DevoTls};
use crate::events::Event;
use crate::events::health::StatusNotSent;
pub use line::{Outcome, Standing, StatusLine};

/// Below this much time before the deadline, no status line is attempted.
pub const MIN_TIME: Duration = Duration::from_millis(200);

/// The longest a status line may take (connect, write, confirm).
pub const MAX_TIME: Duration = Duration::from_secs(10);

/// What became of a tick's status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusSent {
    /// The relay confirmed it.
    Sent,
    /// It could not be sent (`status_not_sent` says why).
    NotSent,
    /// `STATUS_TAG` is empty: none is sent.
    Off,
}

impl StatusSent {
    /// Its name in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusSent::Sent => "sent",
            StatusSent::NotSent => "not_sent",
            StatusSent::Off => "off",
        }
    }
}

/// Why a status line was not sent.
#[derive(Debug, Error)]
pub enum StatusError {
    /// The tick failed before the Devo material could be read: there is no relay to send to.
    #[error(
        "the tick failed before the Devo material in the secret could be used, so there is no relay to send it to"
    )]
    NoRelay,
    /// Too close to the deadline.
    #[error("only {left_ms} ms were left before the invocation's deadline")]
    NoTime {
        /// Milliseconds left.
        left_ms: u64,
    },
    /// The relay did not confirm it in time.
    #[error("the Devo relay did not confirm it within {ms} ms")]
    Timeout {
        /// The time it had.
        ms: u64,
    },
    /// The relay refused or broke the stream.
    #[error("{0}")]
    Relay(#[source] DevoError),
    /// The line could not be written.
    #[error("it cannot be written as JSON: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Where a tenant's status line goes.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    /// The relay and the domain's certificate.
    pub devo: &'a DevoTls,
    /// The tenant's Devo hostname: the host field of its lines.
    pub hostname: &'a str,
    /// `STATUS_TAG`.
    pub tag: &'a str,
}

/// Sends `line` stamped `now` to `to` within `time` (what is left before the deadline, at
/// most [`MAX_TIME`]); a failure is logged, never returned.
pub async fn report(
    to: Destination<'_>,
    line: &StatusLine<'_>,
    now: DateTime<Utc>,
    time: Duration,
) -> StatusSent {
    let sent = async {
        if time < MIN_TIME {
            return Err(StatusError::NoTime {
                left_ms: crate::events::ms(time),
            });
        }
        let frame = line.frame(now, to.hostname, to.tag)?;
        send::send(to.devo, &frame, time.min(MAX_TIME)).await
    };
    match sent.await {
        Ok(()) => StatusSent::Sent,
        Err(error) => {
            StatusNotSent {
                tenant: line.tenant,
                error: &error,
            }
            .emit();
            StatusSent::NotSent
        }
    }
}
