//! Framing and sending: a page's records become Devo lines, written to the current relay
//! stream. A stream idle for `DEVO_IDLE_SECONDS` is closed (which confirms it) and replaced; a
//! stream the relay ended while idle confirmed everything before the pause and is replaced;
//! the last stream is closed at the end of the window. Every connect, write and close is
//! bounded by the time left.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::devo::{Delivered, DevoError, DevoSender, DevoTls, Peer, frame_line};
use crate::events::Event;
use crate::events::relay::{EndedWhileIdle, IdleClosed};

/// The relay and the limits of its streams.
#[derive(Debug)]
pub struct ForwardSettings<'a> {
    /// The relay's TLS settings.
    pub devo: &'a DevoTls,
    /// Host field of each line.
    pub hostname: &'a str,
    /// Devo tag of each line.
    pub tag: &'a str,
    /// A stream idle this long is replaced before the next write.
    pub idle: Duration,
    /// The longest connect or write.
    pub io_timeout: Duration,
    /// How long the relay may take to end a stream after ours.
    pub close_timeout: Duration,
    /// The tick's clock: every relay operation ends before its delivery deadline.
    pub clock: &'a Clock,
}

/// The forwarding stage of one window's transfer.
#[derive(Debug)]
pub struct Forward<'a> {
    settings: &'a ForwardSettings<'a>,
    sender: Option<DevoSender>,
    buf: Vec<u8>,
    lines: u64,
    confirmed_before: bool,
    /// What the relay confirmed so far.
    pub delivered: Delivered,
}

impl<'a> Forward<'a> {
    /// No stream yet: the first page with lines opens one.
    pub fn new(settings: &'a ForwardSettings<'a>) -> Forward<'a> {
        Forward {
            settings,
            sender: None,
            buf: Vec::with_capacity(1 << 20),
            lines: 0,
            confirmed_before: false,
            delivered: Delivered::default(),
        }
    }

    /// Frames one line for the current page.
    pub fn frame<T: serde::Serialize>(
        &mut self,
        received: DateTime<Utc>,
        record: &T,
    ) -> Result<(), serde_json::Error> {
        frame_line(
            &mut self.buf,
            received,
            self.settings.hostname,
            self.settings.tag,
            record,
        )?;
        self.lines += 1;
        Ok(())
    }

    /// Gets a stream ready for the page's lines: one that idled is closed and one the relay
    /// ended is let go (both confirm what they carried), and a new one is opened.
    pub async fn ready(&mut self) -> Result<(), DevoError> {
        if self.lines == 0 {
            return Ok(());
        }
        if let Some(mut sender) = self.sender.take() {
            match sender.peer().await {
                Peer::Open if sender.idle_for() >= self.settings.idle => {
                    IdleClosed {
                        idle: sender.idle_for(),
                    }
                    .emit();
                    self.add(
                        sender
                            .finish(self.timeout(self.settings.close_timeout))
                            .await?,
                    );
                    self.confirmed_before = true;
                }
                Peer::Open => self.sender = Some(sender),
                Peer::Ended => {
                    EndedWhileIdle {
                        lines: sender.lines(),
                    }
                    .emit();
                    self.add(sender.ended_while_idle());
                    self.confirmed_before = true;
                }
                Peer::Broken(seen) => {
                    return Err(DevoError::EndedEarly {
                        address: self.settings.devo.address().to_owned(),
                        seen,
                        lines: sender.lines(),
                    });
                }
            }
        }
        if self.sender.is_none() {
            let timeout = self.timeout(self.settings.io_timeout);
            self.sender = Some(DevoSender::connect(self.settings.devo, timeout).await?);
        }
        Ok(())
    }

    /// Writes the page's lines to the stream [`Forward::ready`] prepared.
    pub async fn write(&mut self) -> Result<(), DevoError> {
        let timeout = self.timeout(self.settings.io_timeout);
        let (Some(sender), lines @ 1..) = (self.sender.as_mut(), self.lines) else {
            return Ok(());
        };
        let result = sender.send(&self.buf, lines, timeout).await;
        self.discard_page();
        result
    }

    /// Whether an earlier stream was confirmed since the last call (by [`Forward::ready`]):
    /// everything written before the current page is delivered.
    pub fn take_confirmed(&mut self) -> bool {
        std::mem::take(&mut self.confirmed_before)
    }

    /// Whether a stream is open (its lines wait for the relay's confirmation).
    pub fn streaming(&self) -> bool {
        self.sender.is_some()
    }

    /// Drops the current page's framed lines (a record could not be framed, or the window
    /// starts over).
    pub fn discard_page(&mut self) {
        self.buf.clear();
        self.lines = 0;
    }

    /// Closes the stream and waits for the relay's end of stream; `true` when a stream was
    /// open (everything written is now confirmed).
    pub async fn close(&mut self) -> Result<bool, DevoError> {
        let Some(sender) = self.sender.take() else {
            return Ok(false);
        };
        self.add(
            sender
                .finish(self.timeout(self.settings.close_timeout))
                .await?,
        );
        Ok(true)
    }

    /// Forgets a broken stream (nothing on it is confirmed).
    pub fn drop_stream(&mut self) {
        self.sender = None;
        self.discard_page();
    }

    fn add(&mut self, d: Delivered) {
        self.delivered.lines += d.lines;
        self.delivered.bytes += d.bytes;
    }

    fn timeout(&self, limit: Duration) -> Duration {
        self.settings.clock.devo_timeout(limit)
    }
}
