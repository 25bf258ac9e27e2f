//! Framing and sending: a page's records become Devo lines, written to the current relay
//! stream. On every page, with lines or none, the stream is tended: one idle for
//! `DEVO_IDLE_SECONDS` is closed (which confirms it), one the relay ended while idle confirmed
//! everything it carried; a page with lines opens a new one.
//!
//! Streams are confirmed in bounded steps: one that carried `DEVO_CONFIRM_BYTES` or was first
//! written `DEVO_CONFIRM_SECONDS` ago is closed and confirmed, and the next page goes on a new
//! one, so what is unconfirmed at any moment is bounded. A page is written only if the stream
//! can still be confirmed before the delivery deadline at the relay's measured read rate
//! ([`crate::devo::pace`]); otherwise the stream is confirmed first, and if even a new stream
//! with that page alone could not be, writing stops. The last stream is closed at the end of the
//! window. Every connect, write and close is bounded by the time left.

use std::cell::Cell;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::devo::{Delivered, DevoError, DevoSender, DevoTls, Meaning, Pace, frame_line};
use crate::events::Event;
use crate::events::relay::{ConfirmStep, EndedWhileIdle, IdleClosed, StopWriting};

/// The relay and the limits of its streams.
#[derive(Debug, Clone)]
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
    /// How long the relay may take to end a stream after ours, beyond the time it needs to
    /// read what is still queued at its measured rate.
    pub close_timeout: Duration,
    /// A stream that carried this many bytes is closed and confirmed (`DEVO_CONFIRM_BYTES`).
    pub confirm_bytes: u64,
    /// A stream first written this long ago is closed and confirmed (`DEVO_CONFIRM_SECONDS`).
    pub confirm_after: Duration,
    /// The relay's read rate over the streams this transfer confirmed (all its windows).
    pub pace: Cell<Pace>,
    /// The tick's clock: every relay operation ends before its delivery deadline.
    pub clock: &'a Clock,
}

impl<'a> ForwardSettings<'a> {
    /// The relay `devo` and its limits from `config`, for lines of `hostname` and `tag`.
    pub fn new(
        config: &crate::config::Config,
        devo: &'a DevoTls,
        (hostname, tag): (&'a str, &'a str),
        clock: &'a Clock,
    ) -> ForwardSettings<'a> {
        ForwardSettings {
            devo,
            hostname,
            tag,
            idle: config.devo_idle,
            io_timeout: config.request_timeout,
            close_timeout: config.request_timeout.min(Duration::from_secs(10)),
            confirm_bytes: config.devo_confirm_bytes,
            confirm_after: config.devo_confirm_after,
            pace: Cell::default(),
            clock,
        }
    }
}

/// The forwarding stage of one window's transfer.
#[derive(Debug)]
pub struct Forward<'a> {
    settings: &'a ForwardSettings<'a>,
    sender: Option<DevoSender>,
    buf: Vec<u8>,
    lines: u64,
    on_stream: u64,
    confirmed_before: bool,
    /// What the relay confirmed so far.
    pub delivered: Delivered,
    /// Lines of streams that broke or were cut before their confirmation: the upper bound of
    /// what may arrive twice (they are sent again).
    pub unconfirmed: u64,
}

impl<'a> Forward<'a> {
    /// No stream yet: the first page with lines opens one.
    pub fn new(settings: &'a ForwardSettings<'a>) -> Forward<'a> {
        Forward {
            settings,
            sender: None,
            buf: Vec::with_capacity(1 << 20),
            lines: 0,
            on_stream: 0,
            confirmed_before: false,
            delivered: Delivered::default(),
            unconfirmed: 0,
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

    /// Gets a stream ready for the page's lines, on every page (lines or none): the current
    /// stream is tended (see `Forward::tend`); for a page with lines, a stream that could not be
    /// confirmed in time with them is confirmed now, and a new one is opened if there is none.
    /// `false` when not even a new stream with the page alone could be confirmed in time: the
    /// page is dropped and writing stops.
    pub async fn ready(&mut self) -> Result<bool, DevoError> {
        self.tend().await?;
        if self.lines == 0 {
            return Ok(true);
        }
        let page = self.buf.len() as u64;
        if let Some(sender) = &self.sender
            && !self.in_time(sender.bytes() + page, sender.since_first_write())
            && let Some(sender) = self.sender.take()
        {
            self.confirm_stream(sender).await?;
        }
        if self.sender.is_none() {
            if !self.in_time(page, Duration::ZERO) {
                StopWriting {
                    page_bytes: page,
                    rate: self.settings.pace.get().rate(),
                    left: self.settings.clock.delivery_left(),
                }
                .emit();
                self.discard_page();
                return Ok(false);
            }
            let timeout = self.timeout(self.settings.io_timeout);
            self.sender = Some(DevoSender::connect(self.settings.devo, timeout).await?);
        }
        Ok(true)
    }

    /// Looks at the current stream and acts on its meaning ([`crate::devo::look`]): one idle
    /// for `DEVO_IDLE_SECONDS` is closed, one the relay ended while idle is let go (both confirm
    /// what they carried), one that broke fails.
    async fn tend(&mut self) -> Result<(), DevoError> {
        let Some(mut sender) = self.sender.take() else {
            return Ok(());
        };
        match sender.look(self.settings.idle).await {
            Meaning::Keep => self.sender = Some(sender),
            Meaning::CloseIdle => {
                IdleClosed {
                    idle: sender.idle_for(),
                }
                .emit();
                self.confirm_stream(sender).await?;
            }
            Meaning::Confirmed => {
                EndedWhileIdle {
                    lines: sender.lines(),
                }
                .emit();
                self.add(sender.ended_while_idle());
            }
            Meaning::Broken(seen) => return Err(sender.ended_early(seen)),
        }
        Ok(())
    }

    /// Writes the page's lines to the stream [`Forward::ready`] prepared.
    pub async fn write(&mut self) -> Result<(), DevoError> {
        let timeout = self.timeout(self.settings.io_timeout);
        let (Some(sender), lines @ 1..) = (self.sender.as_mut(), self.lines) else {
            return Ok(());
        };
        self.on_stream += lines;
        let result = sender.send(&self.buf, lines, timeout).await;
        self.discard_page();
        result
    }

    /// After a page was written: a stream that carried `DEVO_CONFIRM_BYTES` or was first
    /// written `DEVO_CONFIRM_SECONDS` ago is closed and confirmed; `true` when it was
    /// (everything written so far is delivered).
    pub async fn step(&mut self) -> Result<bool, DevoError> {
        let due = self.sender.as_ref().is_some_and(|s| {
            s.bytes() >= self.settings.confirm_bytes
                || s.since_first_write() >= self.settings.confirm_after
        });
        if let Some(sender) = self.sender.take_if(|_| due) {
            self.confirm_stream(sender).await?;
        }
        Ok(self.take_confirmed())
    }

    /// Whether an earlier stream was confirmed since the last call: everything written before
    /// the current page is delivered.
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
    /// confirmed (everything written is now). The stream's state means what it means between
    /// pages: one the relay ended while idle confirmed what it carried.
    pub async fn close(&mut self) -> Result<bool, DevoError> {
        self.tend().await?;
        if let Some(sender) = self.sender.take() {
            self.confirm_stream(sender).await?;
        }
        Ok(self.take_confirmed())
    }

    /// Forgets a broken stream (nothing on it is confirmed: its lines count as unconfirmed).
    pub fn drop_stream(&mut self) {
        self.sender = None;
        self.unconfirmed += std::mem::take(&mut self.on_stream);
        self.discard_page();
    }

    /// Closes `sender` and waits for the relay to read what is queued (at its measured rate)
    /// and end the stream; measures the rate.
    async fn confirm_stream(&mut self, sender: DevoSender) -> Result<(), DevoError> {
        let mut pace = self.settings.pace.get();
        let (bytes, span) = (sender.bytes(), sender.writing_span());
        let queued = pace.drain(bytes, sender.since_first_write());
        let timeout = self.timeout(self.settings.close_timeout + queued);
        let closing = tokio::time::Instant::now();
        let delivered = sender.finish(timeout).await?;
        pace.observe(bytes, span + closing.elapsed());
        self.settings.pace.set(pace);
        ConfirmStep {
            lines: delivered.lines,
            bytes,
            rate: pace.rate(),
        }
        .emit();
        self.add(delivered);
        Ok(())
    }

    /// Whether a stream of `bytes` first written `since` ago can be confirmed before the
    /// delivery deadline.
    fn in_time(&self, bytes: u64, since: Duration) -> bool {
        self.settings.pace.get().reserve(bytes, since) <= self.settings.clock.delivery_left()
    }

    /// The current stream was confirmed.
    fn add(&mut self, d: Delivered) {
        self.delivered.lines += d.lines;
        self.delivered.bytes += d.bytes;
        self.on_stream = 0;
        self.confirmed_before = true;
    }

    fn timeout(&self, limit: Duration) -> Duration {
        self.settings.clock.devo_timeout(limit)
    }
}
