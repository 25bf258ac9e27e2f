//! Detail lines to the relay, under `DETAIL_TAG`, on the same kind of confirmed streams as the
//! trace lines: a delivery counts as sent only once the relay confirmed every line of it.

use crate::details::mapping::{line_time, to_detail};
use crate::devo::DevoError;
use crate::trace::detail::{DetailCandidate, DetailRow};
use crate::transfer::{Forward, ForwardSettings};

/// The detail lines of the deliveries fetched this tick, by how far they got.
pub struct Sink<'a> {
    forward: Forward<'a>,
    organization: &'a str,
    /// On the current stream, not yet confirmed.
    written: Vec<DetailCandidate>,
    /// Confirmed by the relay.
    confirmed: Vec<DetailCandidate>,
}

/// What the detail streams delivered.
#[derive(Debug)]
pub struct Closed {
    /// The deliveries whose every line the relay confirmed.
    pub confirmed: Vec<DetailCandidate>,
    /// Lines confirmed.
    pub lines: u64,
    /// Lines of streams that broke: their deliveries wait in the queue and are sent again, so
    /// at most this many lines may arrive twice.
    pub unconfirmed: u64,
    /// The relay's failure at the last close, if any.
    pub failure: Option<DevoError>,
}

/// Why a delivery's lines were not written.
#[derive(Debug)]
pub enum NotWritten {
    /// They could not be confirmed before the delivery deadline.
    NoTime,
    /// The relay failed: what the stream carried since its last confirmation is not
    /// delivered.
    Relay(DevoError),
}

impl<'a> Sink<'a> {
    /// Lines go to the relay of `settings` (its tag `DETAIL_TAG`), for `organization`.
    pub fn new(settings: &'a ForwardSettings<'a>, organization: &'a str) -> Sink<'a> {
        Sink {
            forward: Forward::new(settings),
            organization,
            written: Vec::new(),
            confirmed: Vec::new(),
        }
    }

    /// Writes one line per row of `delivery` (none: it is done at once).
    pub async fn send(
        &mut self,
        delivery: DetailCandidate,
        rows: &[DetailRow],
    ) -> Result<(), NotWritten> {
        if rows.is_empty() {
            self.confirmed.push(delivery);
            return Ok(());
        }
        for row in rows {
            let line = to_detail(row, &delivery, self.organization);
            // Plain strings: serde_json cannot fail on them; a failure drops the row's line
            // only, never the stream.
            let _ = self.forward.frame(line_time(row, &delivery), &line);
        }
        let ready = self.forward.ready().await;
        self.take_confirmed();
        match ready {
            Ok(true) => {}
            Ok(false) => return Err(NotWritten::NoTime),
            Err(e) => return Err(self.broke(e)),
        }
        if let Err(e) = self.forward.write().await {
            return Err(self.broke(e));
        }
        self.written.push(delivery);
        match self.forward.step().await {
            Ok(true) => self.confirm(),
            Ok(false) => {}
            Err(e) => return Err(self.broke(e)),
        }
        Ok(())
    }

    /// Closes the last stream, which confirms it.
    pub async fn close(mut self) -> Closed {
        let failure = match self.forward.close().await {
            Ok(true) => {
                self.confirm();
                None
            }
            Ok(false) => None,
            Err(e) => {
                self.broke_quietly();
                Some(e)
            }
        };
        Closed {
            confirmed: self.confirmed,
            lines: self.forward.delivered.lines,
            unconfirmed: self.forward.unconfirmed,
            failure,
        }
    }

    fn take_confirmed(&mut self) {
        if self.forward.take_confirmed() {
            self.confirm();
        }
    }

    fn confirm(&mut self) {
        self.confirmed.append(&mut self.written);
    }

    fn broke(&mut self, e: DevoError) -> NotWritten {
        self.broke_quietly();
        NotWritten::Relay(e)
    }

    /// The stream broke: its deliveries since the last confirmation are not sent (they wait
    /// in the queue), its lines are counted as possible duplicates.
    fn broke_quietly(&mut self) {
        self.forward.drop_stream();
        self.written.clear();
    }
}
