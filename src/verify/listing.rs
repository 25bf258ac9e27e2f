//! Microsoft's side of an audited hour: the records the API lists for it, through the same
//! source, tokens, request budget and retries as a tick. Nothing is sent.

use chrono::{DateTime, Duration, Utc};

use crate::ledger::Fingerprint;
use crate::trace::TraceError;
use crate::trace::auth::TokenSource;
use crate::trace::fetch::Spent;
use crate::trace::http::Budget;
use crate::trace::request_budget::RequestBudget;
use crate::trace::source::TraceSource;
use crate::window::Window;

/// A refused or failing nextLink restarts the hour's listing from its first page at most this
/// many times (the listing is a set: a restart adds nothing twice).
const RESTARTS: u32 = 3;

/// The records of one hour.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Listing {
    /// One fingerprint per key, with its current status, sorted by key.
    pub listed: Vec<Fingerprint>,
    /// Records without an id or recipient.
    pub unkeyed: u64,
    /// Pages read.
    pub pages: u32,
}

/// The API's services for listing, as a tick holds them.
#[derive(Debug)]
pub struct Lister<'a> {
    /// `TRACE_API`'s client.
    pub source: &'a TraceSource,
    /// Its tokens.
    pub tokens: &'a mut TokenSource,
    /// The request budget (Graph's 100 requests per 5 minutes).
    pub throttle: &'a mut RequestBudget,
}

impl Lister<'_> {
    /// Lists the hour starting at `hour`: every page, records received in `[hour, hour + 1h)`.
    pub async fn hour(
        &mut self,
        hour: DateTime<Utc>,
        budget: &Budget,
    ) -> Result<Listing, TraceError> {
        let window = Window {
            start: hour,
            end: hour + Duration::hours(1),
            resume: None,
        };
        let what = format!("audit {}", self.source.describe_window(&window));
        let mut listing = Listing::default();
        let mut url = self.source.first_page_url(&window);
        let mut restarts = 0;
        loop {
            let page = self
                .source
                .page(
                    &url,
                    self.tokens,
                    budget,
                    self.throttle,
                    &what,
                    &mut Spent::default(),
                )
                .await;
            let page = match page {
                Ok(page) => page,
                Err(_) if url != self.source.first_page_url(&window) && restarts < RESTARTS => {
                    restarts += 1;
                    url = self.source.first_page_url(&window);
                    continue;
                }
                Err(e) => return Err(e),
            };
            listing.pages += 1;
            let empty = page.records.is_empty();
            for record in page.records {
                let received = record.received().unwrap_or(window.start);
                if received < window.start || received >= window.end {
                    continue;
                }
                if record.missing_key() {
                    listing.unkeyed += 1;
                } else {
                    let key = record.key();
                    let status = record.status();
                    listing.listed.push(Fingerprint::of(&key, status));
                }
            }
            match page.next_link {
                Some(next) if !empty => url = next,
                _ => {
                    // A record repeated across pages (a shifted tail) is one record.
                    listing.listed.sort_by_key(|f| f.key);
                    listing.listed.dedup_by_key(|f| f.key);
                    return Ok(listing);
                }
            }
        }
    }
}
