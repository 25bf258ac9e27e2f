//! Steps 5 and 6 for one window: its pages, newest first, become Devo lines on one stream.

pub mod dedup;

use std::time::Duration;

use chrono::{DateTime, Utc};
use thiserror::Error;

use crate::devo::sender::Delivered;
use crate::devo::{DevoError, DevoSender, DevoTls, frame_line};
use crate::summary::Counts;
use crate::trace::TraceError;
use crate::trace::auth::TokenSource;
use crate::trace::http::Budget;
use crate::trace::record::MappingContext;
use crate::trace::request_budget::RequestBudget;
use crate::trace::source::TraceSource;
use crate::window::{Resume, Window};
use dedup::{Dedup, Seen};

/// Why a window could not be delivered.
#[derive(Debug, Error)]
pub enum TransferError {
    /// Microsoft failed.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// Devo failed.
    #[error(transparent)]
    Devo(#[from] DevoError),
    /// A record could not be written as JSON.
    #[error("record {key} cannot be written as JSON: {detail}")]
    Encode {
        /// The record's key.
        key: String,
        /// serde_json's reason.
        detail: String,
    },
}

/// How far a window got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Every record of the window was delivered.
    Complete,
    /// The budget ran out: the newest part was delivered; the rest resumes from here.
    Partial(Resume),
    /// The budget ran out before anything could be recorded as delivered.
    NotStarted,
}

/// The services and settings a window transfer uses.
pub struct Transfer<'a> {
    /// The API (Graph or the Reporting Web Service).
    pub source: &'a TraceSource,
    /// Tokens.
    pub tokens: &'a mut TokenSource,
    /// Relay TLS settings.
    pub devo: &'a DevoTls,
    /// Tenant id, the Organization field.
    pub organization: &'a str,
    /// Host field.
    pub hostname: &'a str,
    /// Devo tag.
    pub tag: &'a str,
    /// Pulling stops when this runs out.
    pub budget: Budget,
    /// The client-side throttle budget, kept in the checkpoint.
    pub throttle: &'a mut RequestBudget,
    /// Timeout of a connect or a write.
    pub io_timeout: Duration,
    /// How long the relay may take to end the stream after ours.
    pub close_timeout: Duration,
}

/// Times a window's query is restarted after its nextLink stopped working.
const MAX_LINK_RESTARTS: u32 = 3;

/// The oldest instant delivered so far and the keys delivered at it.
struct Frontier {
    at: DateTime<Utc>,
    keys: Vec<String>,
}

impl Transfer<'_> {
    /// Pulls `window` and delivers it; `counts` grows as pages arrive.
    pub async fn run(
        &mut self,
        window: &Window,
        counts: &mut Counts,
    ) -> Result<Progress, TransferError> {
        let what = self.source.describe_window(window);
        let context = MappingContext {
            organization: self.organization,
            start: window.start,
            end: window.end,
        };
        let first_url = self.source.first_page_url(window);
        let mut url = first_url.clone();
        let mut restarts = 0;
        let mut sender: Option<DevoSender> = None;
        // Only the keys that can still repeat: memory stays flat as the window grows.
        let mut seen = Dedup::default();
        let mut frontier: Option<Frontier> = None;
        // Only a newest-first API can describe what was delivered by one instant.
        let mut newest_first = self.source.newest_first();
        let mut index = 0u64;
        let mut buf = Vec::with_capacity(1 << 20);
        let mut complete = false;
        let mut window_counts = Counts::default();

        while !self.budget.exhausted() {
            let started = tokio::time::Instant::now();
            let page = match self
                .source
                .page(&url, self.tokens, &self.budget, self.throttle, &what)
                .await
            {
                Ok(page) => page,
                // A nextLink that stopped working (expired or invalid skip token): ask again for
                // what is left. Pages come newest first, so everything newer than the oldest
                // instant delivered was sent; the seen keys skip the rest.
                Err(TraceError::Api {
                    status: 400 | 404 | 410,
                    code,
                    ..
                }) if url != first_url && restarts < MAX_LINK_RESTARTS => {
                    restarts += 1;
                    let rest = match (&frontier, newest_first) {
                        (Some(f), true) => Window {
                            resume: Some(Resume {
                                until: f.at,
                                sent_at_until: Vec::new(),
                            }),
                            ..window.clone()
                        },
                        _ => window.clone(),
                    };
                    url = self.source.first_page_url(&rest);
                    tracing::warn!(
                        event = "next_link_failed",
                        code = %code,
                        restart = restarts,
                        until = %rest.query_end().to_rfc3339(),
                        "the nextLink stopped working; pulling the rest of the window again"
                    );
                    continue;
                }
                // The budget ran out while waiting for or retrying this page: stop here and
                // keep what was delivered; the next tick pulls the rest.
                Err(e) if self.budget.exhausted() || matches!(e, TraceError::OutOfTime { .. }) => {
                    tracing::warn!(event = "out_of_time", error = %e, "time budget used up inside the window");
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            window_counts.pages += 1;
            window_counts.requests += u64::from(page.requests);
            window_counts.retries += u64::from(page.requests.saturating_sub(1));
            window_counts.throttled_requests += u64::from(page.throttled);
            window_counts.records_pulled += page.records.len() as u64;
            buf.clear();
            let mut lines = 0u64;
            for record in &page.records {
                let key = record.key();
                // A record without a readable time is still sent (never lost), stamped with the
                // window's start; it takes no part in the resume point.
                let timed = record.received();
                let received = timed.unwrap_or(window.start);
                if !window.wants(received, &key) {
                    continue;
                }
                match seen.check(&key, received) {
                    Seen::New => {}
                    Seen::Repeat => {
                        window_counts.duplicates_skipped += 1;
                        continue;
                    }
                    // Newer than keys already let go: only a source breaking its newest-first
                    // order sends that. Send it (a possible repeat is better than a loss) and
                    // stop relying on the order for this window.
                    Seen::AssumedDelivered => newest_first = false,
                }
                match &mut frontier {
                    _ if timed.is_none() => {}
                    None => {
                        frontier = Some(Frontier {
                            at: received,
                            keys: vec![key.clone()],
                        })
                    }
                    Some(f) if received < f.at => {
                        *f = Frontier {
                            at: received,
                            keys: vec![key.clone()],
                        }
                    }
                    Some(f) if received == f.at => f.keys.push(key.clone()),
                    Some(_) => newest_first = false,
                }
                let trace = record.devo_json(&context, index);
                frame_line(&mut buf, received, self.hostname, self.tag, &trace).map_err(|e| {
                    TransferError::Encode {
                        key: key.clone(),
                        detail: e.to_string(),
                    }
                })?;
                index += 1;
                lines += 1;
            }
            // Letting keys go relies on newest-first pages; for a source without that order
            // (or once the order was seen broken) every key of the window is kept.
            if newest_first {
                seen.end_page();
            }
            if lines > 0 {
                if sender.is_none() {
                    sender = Some(DevoSender::connect(self.devo, self.io_timeout).await?);
                }
                if let Some(s) = sender.as_mut() {
                    s.send(&buf, lines, self.io_timeout).await?;
                }
            }
            tracing::debug!(
                event = "page",
                records = page.records.len(),
                lines,
                bytes = page.bytes,
                latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "page pulled"
            );
            match page.next_link {
                Some(next) => url = next,
                None => {
                    complete = true;
                    break;
                }
            }
        }

        if let Some(s) = sender {
            let Delivered { lines, bytes } = s.finish(self.close_timeout).await?;
            window_counts.events_sent += lines;
            window_counts.bytes_sent += bytes;
        }
        add(counts, &window_counts);
        if complete {
            return Ok(Progress::Complete);
        }
        match frontier {
            Some(f) if newest_first => {
                let mut keys = f.keys;
                if let Some(previous) = window.resume.as_ref().filter(|r| r.until == f.at) {
                    keys.extend(previous.sent_at_until.iter().cloned());
                }
                Ok(Progress::Partial(Resume {
                    until: f.at,
                    sent_at_until: keys,
                }))
            }
            // Nothing new delivered, or the API broke its newest-first order so the delivered
            // part cannot be described by one instant: the whole window is pulled again.
            _ => Ok(Progress::NotStarted),
        }
    }
}

fn add(total: &mut Counts, part: &Counts) {
    total.pages += part.pages;
    total.requests += part.requests;
    total.retries += part.retries;
    total.throttled_requests += part.throttled_requests;
    total.records_pulled += part.records_pulled;
    total.events_sent += part.events_sent;
    total.bytes_sent += part.bytes_sent;
    total.duplicates_skipped += part.duplicates_skipped;
}
