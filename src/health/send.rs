//! One status line on a relay stream of its own, closed and confirmed like a window's lines,
//! within a time limit.

use std::time::Duration;

use tokio::time::Instant;

use crate::devo::{DevoSender, DevoTls};
use crate::health::StatusError;

/// Sends `line` (one framed line) and waits for the relay to confirm it, all within `limit`.
pub(super) async fn send(devo: &DevoTls, line: &[u8], limit: Duration) -> Result<(), StatusError> {
    let until = Instant::now() + limit;
    let left = || {
        until
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    let deliver = async {
        let mut sender = DevoSender::connect(devo, left()).await?;
        sender.send(line, 1, left()).await?;
        sender.finish(left()).await.map(|_| ())
    };
    match tokio::time::timeout_at(until, deliver).await {
        Ok(result) => result.map_err(StatusError::Relay),
        Err(_) => Err(StatusError::Timeout {
            ms: crate::events::ms(limit),
        }),
    }
}
