//! One tenant's Reporting Web Service settings ([`ReportingFormat`], page size) and the skip
//! tokens its report issued.
//!
//! Exists so the tenant state holds the report's settings without depending on the report
//! endpoint that reads them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::util::random_hex;

/// Which JSON the report answers with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReportingFormat {
    /// `{"value":[…],"odata.nextLink":"reportingwebservice/…"}`, dates `2026-11-24T10:15:30.1234567`.
    #[default]
    Light,
    /// `{"d":{"results":[…],"__next":"http://…"}}`, dates `/Date(ms)/`, rows with `__metadata`.
    Verbose,
    /// `{"d":[…]}`: every row in one answer, dates `/Date(ms)/`.
    VerboseBare,
}

/// Where a report page starts: the query it belongs to and the offset into its rows.
#[derive(Clone, Debug)]
struct Skip {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    offset: usize,
}

/// One tenant's report settings and the skip tokens it issued.
#[derive(Debug)]
pub(super) struct ReportingState {
    pub format: ReportingFormat,
    pub page_size: usize,
    /// Opaque skip tokens issued and still valid.
    skips: HashMap<String, Skip>,
}

impl Default for ReportingState {
    fn default() -> Self {
        ReportingState {
            format: ReportingFormat::Light,
            page_size: 50,
            skips: HashMap::new(),
        }
    }
}

impl ReportingState {
    /// Makes every skip token issued so far invalid.
    pub fn expire_skip_tokens(&mut self) {
        self.skips.clear();
    }

    /// Where the page of skip token `token` starts, if the token is valid for the query
    /// `start..end`.
    pub fn offset(&self, token: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> Option<usize> {
        self.skips
            .get(token)
            .filter(|s| s.start == start && s.end == end)
            .map(|s| s.offset)
    }

    /// Registers a skip token for the page of `start..end` that starts at `offset`.
    pub fn issue(&mut self, start: DateTime<Utc>, end: DateTime<Utc>, offset: usize) -> String {
        let token = random_hex(16);
        self.skips
            .insert(token.clone(), Skip { start, end, offset });
        token
    }
}
