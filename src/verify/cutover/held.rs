//! What Devo holds of some hours, as the index a window's admission reads during a cut-over:
//! the keys (`MessageTraceId`, `RecipientAddress`, `Status`) of the earlier collector's lines
//! and of this tenant's, hour by hour, every page turned into fingerprints as it arrives (16
//! bytes a key in memory, whatever the rows weigh).
//!
//! The record key is compared without regard to case (the index holds it lower-cased, as
//! [`held_key`] lowers a record's key): the Reporting Web Service and Graph may
//! not write a message trace id or an address in the same case.

use chrono::{DateTime, Duration, Utc};

use crate::checkpoint::cutover::{LineFilter, held_key};
use crate::ledger::{Fingerprint, LedgerIndex};
use crate::trace::http::Budget;
use crate::trace::record::record_key;
use crate::verify::answer;
use crate::verify::linq::{self, QueryBody};
use crate::verify::{QueryClient, QueryError};

/// Reads Devo's keys of hours for one tenant's cut-over.
#[derive(Debug, Clone)]
pub struct Held {
    client: QueryClient,
    table: String,
    /// The earlier collector's lines, then this tenant's (one filter when they are the same).
    filters: Vec<LineFilter>,
}

impl Held {
    /// Reads `table` through `client`: the lines of `earlier` and those of `hostname`.
    pub fn new(client: QueryClient, table: &str, earlier: &LineFilter, hostname: &str) -> Held {
        let ours = LineFilter::hostname(hostname);
        let mut filters = vec![earlier.clone()];
        if ours != *earlier {
            filters.push(ours);
        }
        Held {
            client,
            table: table.to_owned(),
            filters,
        }
    }

    /// Every key Devo holds in the hours starting at `hours`, as an index.
    pub async fn index(
        &self,
        hours: &[DateTime<Utc>],
        budget: &Budget,
    ) -> Result<LedgerIndex, QueryError> {
        let mut fingerprints = Vec::new();
        for &hour in hours {
            for filter in &self.filters {
                self.hour(filter, hour, budget, &mut fingerprints).await?;
            }
        }
        Ok(LedgerIndex::new(fingerprints, Vec::new()))
    }

    /// Adds the keys of the lines of `filter` in the hour starting at `hour`, page by page.
    async fn hour(
        &self,
        filter: &LineFilter,
        hour: DateTime<Utc>,
        budget: &Budget,
        out: &mut Vec<Fingerprint>,
    ) -> Result<(), QueryError> {
        let end = hour + Duration::hours(1);
        let what = format!(
            "keys of {} = {} in {hour}..{end}",
            filter.field, filter.value
        );
        let query = linq::keys_where(&self.table, &filter.field, &filter.value);
        let body = QueryBody::new(query, hour, end);
        let mut each = |row: answer::Row| {
            out.extend(fingerprint(&row, hour));
            Ok(())
        };
        self.client
            .each_row(&body, &what, &self.table, budget, &mut each)
            .await
    }
}

/// The fingerprint of a key row of `hour` (a row of another hour, should Devo's `to` be
/// inclusive, or one without the key fields, is none).
fn fingerprint(row: &answer::Row, hour: DateTime<Utc>) -> Option<Fingerprint> {
    if answer::eventdate(row).is_some_and(|h| h != hour) {
        return None;
    }
    let key = answer::held_key(row)?;
    Some(Fingerprint::of(
        &held_key(&record_key(&key.message_trace_id, &key.recipient)),
        Some(&key.status),
    ))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::ledger::Verdict;

    #[test]
    fn rows_become_case_blind_fingerprints_of_their_hour_only() {
        let hour = Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap();
        let row = |json: &str| -> answer::Row { serde_json::from_str(json).unwrap() };
        let rows = [
            row(
                r#"{"eventdate":1795514400000,"MessageTraceId":"AB-1","RecipientAddress":"Ann@Contoso.com","Status":"Delivered","lines":1}"#,
            ),
            row(
                r#"{"eventdate":1795518000000,"MessageTraceId":"ab-2","RecipientAddress":"x@y","Status":"Delivered","lines":1}"#,
            ),
            row(r#"{"eventdate":1795514400000,"MessageTraceId":null,"lines":3}"#),
        ];
        let prints: Vec<Fingerprint> = rows.iter().filter_map(|r| fingerprint(r, hour)).collect();
        assert_eq!(
            prints.len(),
            1,
            "the next hour's row and a keyless row are left out"
        );
        let index = LedgerIndex::new(prints, Vec::new());
        let key = held_key(&record_key("ab-1", "ann@contoso.com"));
        assert_eq!(index.verdict(&key, Some("delivered"), hour), Verdict::Known);
        assert_eq!(
            index.verdict(&key, Some("Failed"), hour),
            Verdict::StatusChanged
        );
    }

    #[test]
    fn the_tenants_own_lines_are_read_unless_they_are_the_earlier_ones() {
        let client = QueryClient::new(
            reqwest::Client::new(),
            "http://127.0.0.1:9/search",
            crate::secret::QueryToken::new("t"),
            "s",
        );
        let org = LineFilter {
            field: "Organization".into(),
            value: "contoso.com".into(),
        };
        assert_eq!(Held::new(client.clone(), "t.a", &org, "h").filters.len(), 2);
        let host = LineFilter {
            field: "hostname".into(),
            value: "h".into(),
        };
        assert_eq!(Held::new(client, "t.a", &host, "h").filters, [host]);
    }
}
