//! Prerendered records for benchmarks: every record's JSON rendered once, newest first, so a
//! page is one copy of a contiguous byte range.
//!
//! Exists so serving a 5000-record page costs a few milliseconds and the server is never what
//! a benchmark measures. Late visibility is not applied to prerendered records (every record is
//! visible); a status change or a late record goes back to rendering per request.

use std::cmp::Reverse;

use chrono::{DateTime, Utc};

use super::skiptoken::Cursor;
use super::stored::{Stored, order_key, tick};
use crate::records::GraphRecord;

/// Every record rendered once as JSON, in page order.
pub(super) struct Rendered {
    /// `receivedDateTime` of each record at Graph's resolution, newest first.
    times: Vec<DateTime<Utc>>,
    /// The records' JSON objects, each followed by a comma.
    json: Vec<u8>,
    /// Where each record starts in `json`, plus the end of the last one.
    starts: Vec<usize>,
}

impl Rendered {
    /// Renders `records` (already in page order).
    pub fn new(records: &[Stored]) -> Rendered {
        let mut json = Vec::new();
        let mut starts = Vec::with_capacity(records.len() + 1);
        for s in records {
            starts.push(json.len());
            if serde_json::to_writer(&mut json, &s.record).is_err() {
                // A record is plain strings and numbers: never happens; keep the array valid.
                json.extend_from_slice(b"{}");
            }
            json.push(b',');
        }
        starts.push(json.len());
        Rendered {
            times: records
                .iter()
                .map(|s| tick(s.record.received_date_time))
                .collect(),
            json,
            starts,
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// Average size of a record's JSON in bytes.
    pub fn average_size(&self) -> usize {
        self.json.len() / self.times.len().max(1)
    }

    /// The matching records `[first, last)` of the query `start..=end`.
    pub fn matching(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> (usize, usize) {
        let first = self.times.partition_point(|t| *t > end);
        let last = self.times.partition_point(|t| *t >= start).max(first);
        (first, last)
    }

    /// Record `i`, parsed back from its JSON.
    pub fn record(&self, i: usize) -> Option<GraphRecord> {
        let bytes = self
            .json
            .get(*self.starts.get(i)?..self.starts.get(i + 1)? - 1)?;
        serde_json::from_slice(bytes).ok()
    }

    /// The index of the first record at or after `cursor` in page order.
    pub fn position(&self, cursor: &Cursor) -> usize {
        let at = Reverse(cursor.at);
        let mut i = self.times.partition_point(|t| Reverse(*t) < at);
        // Only the records at the cursor's instant need their id and recipient.
        while i < self.times.len() && self.times[i] == cursor.at {
            match self.record(i) {
                Some(r) if order_key(&r) < cursor.key() => i += 1,
                _ => break,
            }
        }
        i
    }

    /// The records `[from, to)` as the inside of a JSON array.
    pub fn slice(&self, from: usize, to: usize) -> &[u8] {
        if from >= to {
            return b"";
        }
        // Without the comma after the last record.
        &self.json[self.starts[from]..self.starts[to] - 1]
    }

    /// Bytes of the records `[from, to)`.
    pub fn size(&self, from: usize, to: usize) -> usize {
        self.starts[to] - self.starts[from]
    }
}
