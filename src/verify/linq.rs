//! The LINQ the product sends to Devo's Query API, built from values (pure, unit-tested): how
//! many lines a tenant's host wrote per hour, and which keys it wrote in an hour.
//!
//! Both queries group by `every 1h`, so each row carries its hour (`eventdate`, the start of
//! the bucket): a row of an hour outside the one asked for (were `to` inclusive) is recognised
//! and left out by the reader, never counted twice. `eventdate` is the line's syslog
//! timestamp, which the product writes as the record's `Received` time.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The column the line counts are returned in.
pub const LINES: &str = "lines";
/// The key fields of a record, as Devo's `cloud.office365.messagetracing` parser names them.
pub const KEY_FIELDS: [&str; 3] = ["MessageTraceId", "RecipientAddress", "Status"];

/// Where a tenant's lines are: the table (`DEVO_TAG`, or the tenant's tag) and the host field
/// (`DEVO_HOSTNAME`, or the tenant's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The table, e.g. `cloud.office365.messagetracing`.
    pub table: String,
    /// The `hostname` every line of the tenant carries.
    pub hostname: String,
}

/// The number of lines per hour: `[{"eventdate": …, "lines": n}, …]`.
pub fn lines_per_hour(target: &Target) -> String {
    format!(
        "from {} where hostname = {} group every 1h select count() as {LINES}",
        target.table,
        quote(&target.hostname)
    )
}

/// The distinct keys (id, recipient, status) per hour and how many lines carry each:
/// `[{"eventdate": …, "MessageTraceId": …, "RecipientAddress": …, "Status": …, "lines": n}, …]`.
pub fn keys_per_hour(target: &Target) -> String {
    format!(
        "from {} where hostname = {} group every 1h by {} select count() as {LINES}",
        target.table,
        quote(&target.hostname),
        KEY_FIELDS.join(", ")
    )
}

/// The column the newest `Received` of an hour is returned in.
pub const NEWEST: &str = "newest";

/// The distinct keys per hour of the lines whose `field` is `value` (an earlier collector's
/// `Organization`, or a `hostname`): the rows of [`keys_per_hour`].
pub fn keys_where(table: &str, field: &str, value: &str) -> String {
    format!(
        "from {table} where {field} = {} group every 1h by {} select count() as {LINES}",
        quote(value),
        KEY_FIELDS.join(", ")
    )
}

/// The lines per hour whose `field` is `value`, and the newest `Received` among them:
/// `[{"eventdate": …, "lines": n, "newest": "2026-11-24T10:15:30.1234567"}, …]`.
pub fn newest_per_hour(table: &str, field: &str, value: &str) -> String {
    format!(
        "from {table} where {field} = {} group every 1h select count() as {LINES}, max(Received) as {NEWEST}",
        quote(value)
    )
}

/// A LINQ string literal: double quotes, with `\` and `"` escaped (control characters cannot
/// occur: `DEVO_HOSTNAME` refuses them).
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The JSON body of `POST {DEVO_QUERY_URL}/query`: the LINQ, the span in UTC seconds, the
/// `json` response mode, and the page (`limit` rows from `offset`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueryBody {
    /// The LINQ.
    pub query: String,
    /// Start, UTC seconds.
    pub from: i64,
    /// End, UTC seconds.
    pub to: i64,
    /// `{"type": "json"}`.
    pub mode: Mode,
    /// Rows per page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Rows skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

/// The response mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mode {
    /// Always `json`: one document, `{"status", "msg", "object": [rows]}`.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

impl QueryBody {
    /// `query` over `[from, to)`, unpaged.
    pub fn new(query: String, from: DateTime<Utc>, to: DateTime<Utc>) -> QueryBody {
        QueryBody {
            query,
            from: from.timestamp(),
            to: to.timestamp(),
            mode: Mode { kind: "json" },
            limit: None,
            offset: None,
        }
    }

    /// The same query, one page of `limit` rows from `offset`.
    pub fn page(&self, limit: u64, offset: u64) -> QueryBody {
        QueryBody {
            limit: Some(limit),
            offset: Some(offset),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn target(host: &str) -> Target {
        Target {
            table: "cloud.office365.messagetracing".into(),
            hostname: host.into(),
        }
    }

    #[test]
    fn the_hourly_count_filters_the_host_and_groups_by_hour() {
        assert_eq!(
            lines_per_hour(&target("m365-trace-to-devo")),
            "from cloud.office365.messagetracing where hostname = \"m365-trace-to-devo\" group every 1h select count() as lines"
        );
    }

    #[test]
    fn the_key_query_groups_by_hour_and_the_three_key_fields() {
        assert_eq!(
            keys_per_hour(&target("contoso")),
            "from cloud.office365.messagetracing where hostname = \"contoso\" group every 1h by MessageTraceId, RecipientAddress, Status select count() as lines"
        );
    }

    #[test]
    fn an_earlier_collectors_lines_are_found_by_their_organization() {
        assert_eq!(
            newest_per_hour(
                "cloud.office365.messagetracing",
                "Organization",
                "contoso.com"
            ),
            "from cloud.office365.messagetracing where Organization = \"contoso.com\" group every 1h select count() as lines, max(Received) as newest"
        );
        assert_eq!(
            keys_where("t.a", "hostname", "h"),
            keys_per_hour(&Target {
                table: "t.a".into(),
                hostname: "h".into()
            })
        );
    }

    #[test]
    fn a_hostname_cannot_end_its_literal() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        let q = lines_per_hour(&target(r#"x" or hostname = "y"#));
        assert!(q.contains(r#"hostname = "x\" or hostname = \"y""#), "{q}");
    }

    #[test]
    fn the_body_is_devos_shape_in_utc_seconds() {
        let from = Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap();
        let to = Utc.with_ymd_and_hms(2026, 11, 24, 11, 0, 0).unwrap();
        let body = QueryBody::new("from a.b".into(), from, to);
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"query": "from a.b", "from": 1795514400, "to": 1795518000, "mode": {"type": "json"}})
        );
        assert_eq!(
            serde_json::to_value(body.page(10_000, 20_000)).unwrap()["offset"],
            20_000
        );
    }
}
