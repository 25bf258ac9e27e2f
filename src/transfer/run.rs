//! One window's transfer as a loop of stages: pull a page, admit its records, frame and forward
//! them, follow the nextLink; then close the last stream, which confirms it. A stream that
//! broke is pulled again from what the relay confirmed.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::devo::DevoError;
use crate::events::Event;
use crate::events::relay::DevoRetry;
use crate::events::window::{NextLinkRefused, OddRecords, OutOfTime, PagePulled};
use crate::ledger::{Fingerprint, LedgerIndex};
use crate::summary::Counts;
use crate::trace::TraceError;
use crate::trace::page::TraceRecord;
use crate::trace::record::MappingContext;
use crate::transfer::admission::{Admission, Fate};
use crate::transfer::collect::{Collected, Staged};
use crate::transfer::forward::Forward;
use crate::transfer::frontier::Frontier;
use crate::transfer::paging::Paging;
use crate::transfer::pull::Pull;
use crate::transfer::{Ledger, Progress, Transfer, TransferError, WindowResult};
use crate::window::Window;

/// Why the pages of a window stopped coming.
enum Stop {
    /// The last page was read.
    Done,
    /// The time budget ran out.
    OutOfTime,
    /// Something failed.
    Failed(TransferError),
}

/// The stages of one window's transfer and the services they use.
pub(super) struct Run<'r> {
    pull: Pull<'r>,
    window: &'r Window,
    context: MappingContext<'r>,
    paging: Paging,
    admission: Admission,
    frontier: Frontier,
    /// What the lines stand for, by how far they got.
    staged: Staged<'r>,
    forward: Forward<'r>,
    tally: Counts,
    index: u64,
    /// Records sent or found in the ledger: what a restart after a refused nextLink must add to.
    passed: u64,
    retry_min_delay: Duration,
    devo_attempts: u32,
    devo_failures: u32,
    confirmed_at_failure: u64,
}

impl<'r> Run<'r> {
    pub(super) fn new(
        t: &'r mut Transfer<'_>,
        window: &'r Window,
        ledger: Ledger,
        sent: Vec<Fingerprint>,
        held: Option<LedgerIndex>,
    ) -> Run<'r> {
        let ordered = t.source.newest_first();
        let (filter, collected) = match ledger {
            Ledger::None => (None, None),
            Ledger::Collect(young_from) => (None, Some(Collected::from(young_from))),
            Ledger::Filter(index) => (Some(index), None),
        };
        Run {
            pull: Pull {
                source: t.source,
                tokens: &mut *t.tokens,
                throttle: &mut *t.throttle,
                budget: t.budget.clone(),
                what: t.source.describe_window(window),
            },
            context: MappingContext {
                organization: t.organization,
                start: window.start,
                end: window.end,
            },
            paging: Paging::new(t.source, window),
            admission: Admission::new(window.clone(), ordered)
                .with_ledger(filter)
                .with_sent(sent)
                .with_held(held),
            frontier: Frontier::new(ordered),
            staged: Staged {
                ledger: collected,
                sent: (!ordered).then(Collected::default),
                details: t.details.map(|s| (s, Collected::default())),
            },
            forward: Forward::new(&t.forward),
            window,
            tally: Counts::default(),
            index: 0,
            passed: 0,
            retry_min_delay: t.retry.min_delay,
            devo_attempts: t.retry.devo_attempts,
            devo_failures: 0,
            confirmed_at_failure: 0,
        }
    }

    pub(super) async fn go(mut self, counts: &mut Counts) -> WindowResult {
        let stop = loop {
            // pull, admit and forward until the pages stop
            let stop = self.pages().await;
            // close: the last stream confirms what it carried
            let stop = match stop {
                Stop::Failed(TransferError::Devo(e)) => Stop::Failed(TransferError::Devo(e)),
                stop => match self.forward.close().await {
                    Ok(confirmed) => {
                        if confirmed {
                            self.confirm();
                        }
                        stop
                    }
                    Err(e) => Stop::Failed(TransferError::Devo(e)),
                },
            };
            // a broken stream: pull again what the relay did not confirm
            match stop {
                Stop::Failed(TransferError::Devo(e)) if self.retry_devo(&e).await => continue,
                stop => break stop,
            }
        };
        self.finish(stop, counts)
    }

    async fn pages(&mut self) -> Stop {
        loop {
            if self.pull.budget.exhausted() {
                return Stop::OutOfTime;
            }
            let started = tokio::time::Instant::now();
            let url = self.paging.url().to_owned();
            let page = self.pull.page(&url, &mut self.tally).await;
            let page = match page {
                Ok(page) => page,
                Err(e) => match self.after_pull_error(e) {
                    Some(stop) => return stop,
                    None => continue,
                },
            };
            self.tally.pages += 1;
            self.tally.records_pulled += page.records.len() as u64;
            if let Err((key, detail)) = self.admit(&page.records) {
                self.forward.discard_page();
                return Stop::Failed(TransferError::Encode { key, detail });
            }
            if let Some(stop) = self.forward_page().await {
                return stop;
            }
            if !self.forward.streaming() {
                // Nothing waits for the relay: what the page passed (records the ledger
                // holds) is as good as confirmed.
                self.confirm();
            }
            PagePulled {
                records: page.records.len(),
                bytes: page.bytes,
                latency: started.elapsed(),
            }
            .emit();
            if !self.paging.follow(page.next_link) {
                return Stop::Done;
            }
        }
    }

    /// Forwards the page's lines (none: the stream is tended all the same) and confirms the
    /// stream when it is due; a stop when writing must stop (no time left to confirm the page)
    /// or the relay failed.
    async fn forward_page(&mut self) -> Option<Stop> {
        let ready = self.forward.ready().await;
        if self.forward.take_confirmed() {
            self.confirm();
        }
        match ready {
            Ok(true) => {}
            Ok(false) => return Some(Stop::OutOfTime),
            Err(e) => return Some(Stop::Failed(TransferError::Devo(e))),
        }
        if let Err(e) = self.forward.write().await {
            return Some(Stop::Failed(TransferError::Devo(e)));
        }
        self.frontier.page_sent();
        self.staged.page_sent();
        match self.forward.step().await {
            Ok(true) => self.confirm(),
            Ok(false) => {}
            Err(e) => return Some(Stop::Failed(TransferError::Devo(e))),
        }
        None
    }

    /// A refused nextLink restarts the rest of the window while restarts make progress; a
    /// budget that ran out stops the window where it is; anything else fails it.
    fn after_pull_error(&mut self, e: TraceError) -> Option<Stop> {
        match e {
            TraceError::Api {
                status: 400 | 404 | 410,
                ref code,
                ..
            } if self.paging.following_link() => {
                let rest = self.frontier.rest_of(self.window);
                if !self
                    .paging
                    .restart_after_refusal(self.pull.source, &rest, self.passed)
                {
                    NextLinkRefused {
                        code,
                        restarts: self.paging.restarts(),
                        until: None,
                    }
                    .emit();
                    return Some(Stop::Failed(e.into()));
                }
                NextLinkRefused {
                    code,
                    restarts: self.paging.restarts(),
                    until: Some(rest.query_end()),
                }
                .emit();
                None
            }
            e if self.pull.budget.exhausted() || matches!(e, TraceError::OutOfTime { .. }) => {
                OutOfTime { error: &e }.emit();
                Some(Stop::OutOfTime)
            }
            e => Some(Stop::Failed(e.into())),
        }
    }

    /// The relay confirmed everything written so far.
    fn confirm(&mut self) {
        self.frontier.confirm();
        self.staged.confirm();
    }

    /// Admits a page's records, notes them on the frontier and frames them.
    /// Fails with the key of a record that cannot be written as JSON, and serde_json's reason.
    fn admit(&mut self, records: &[TraceRecord]) -> Result<(), (String, String)> {
        for record in records {
            let key = record.key();
            // A record without a readable time is still sent (never lost), stamped with the
            // window's start; it takes no part in the resume point.
            let timed = record.received();
            let received = timed.unwrap_or(self.window.start);
            let verdict = self.admission.admit(&key, record.status(), received);
            verdict.tally(&mut self.tally);
            match verdict {
                Fate::Outside | Fate::Repeat => continue,
                Fate::Known => {
                    // Delivered by the fresh pass: progress like a line sent.
                    self.passed_without_line(timed, &key);
                    continue;
                }
                Fate::SentBefore => {
                    // Confirmed by a tick that cut this window: delivered, held as such.
                    self.staged.push(&key, record, received);
                    continue;
                }
                Fate::Held => {
                    // In Devo already (a cut-over's overlap): progress like a line sent, held
                    // as delivered by the fresh pass's ledger; the earlier collector sent no
                    // delivery details, so they are still wanted.
                    self.passed_without_line(timed, &key);
                    self.staged.push(&key, record, received);
                    self.staged.note_detail(record);
                    continue;
                }
                Fate::Reconciled(_) | Fate::Send => {}
            }
            self.staged.push(&key, record, received);
            if record.missing_key() {
                self.tally.missing_key += 1;
            }
            self.staged.note_detail(record);
            if !self.admission.newest_first() {
                self.frontier.order_broken();
            }
            if let Some(at) = timed
                && !self.frontier.note(at, &key)
            {
                self.admission.order_broken();
            }
            let json = record.devo_json(&self.context, self.index);
            self.forward
                .frame(received, &json)
                .map_err(|e| (key.clone(), e.to_string()))?;
            self.index += 1;
            self.passed += 1;
        }
        self.admission.end_page();
        Ok(())
    }

    /// A record that needs no line counts as passed, and moves the resume point like one.
    fn passed_without_line(&mut self, timed: Option<DateTime<Utc>>, key: &str) {
        self.passed += 1;
        if let Some(at) = timed
            && !self.frontier.note(at, key)
        {
            self.admission.order_broken();
        }
    }

    /// After the relay failed: forget what it did not confirm and, unless it failed
    /// `devo_attempts` times in a row without confirming anything, pull that part again.
    async fn retry_devo(&mut self, e: &DevoError) -> bool {
        self.forward.drop_stream();
        self.frontier.rollback();
        self.staged.rollback();
        if self.forward.delivered.lines > self.confirmed_at_failure {
            self.devo_failures = 0;
        }
        self.confirmed_at_failure = self.forward.delivered.lines;
        self.devo_failures += 1;
        let delay = self.retry_min_delay * 2u32.saturating_pow(self.devo_failures);
        if !e.is_retryable()
            || self.devo_failures >= self.devo_attempts
            || delay >= self.pull.budget.remaining()
        {
            return false;
        }
        DevoRetry {
            attempt: self.devo_failures,
            error: e,
        }
        .emit();
        tokio::time::sleep(delay).await;
        let again = self.frontier.after_rollback(self.window);
        self.admission.restart(again.clone());
        self.paging.restart(self.pull.source, &again);
        true
    }

    fn finish(mut self, stop: Stop, counts: &mut Counts) -> WindowResult {
        self.tally.events_sent = self.forward.delivered.lines;
        self.tally.bytes_sent = self.forward.delivered.bytes;
        self.tally.unconfirmed_lines = self.forward.unconfirmed;
        if self.tally.outside_window > 0 || self.tally.missing_key > 0 {
            OddRecords {
                window: self.window,
                outside_window: self.tally.outside_window,
                missing_key: self.tally.missing_key,
            }
            .emit();
        }
        *counts += self.tally;
        let (complete, failure) = match stop {
            Stop::Done => (true, None),
            Stop::OutOfTime => (false, None),
            Stop::Failed(e) => (false, Some(e)),
        };
        let ordered = self.frontier.ordered() && self.admission.newest_first();
        let progress = match self.frontier.confirmed_resume(self.window) {
            _ if complete => Progress::Complete,
            Some(resume) if ordered => Progress::Partial(resume),
            _ => Progress::NotStarted,
        };
        let taken = self.staged.take();
        WindowResult {
            progress,
            failure,
            fingerprints: taken.ledger,
            sent: taken.sent,
            details: taken.details,
        }
    }
}
