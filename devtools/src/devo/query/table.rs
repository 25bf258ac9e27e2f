//! What "Devo" makes of a received line: a row of its table, as the Query API shows it —
//! `eventdate` (the line's timestamp, UTC), `hostname`, the table (the tag) and the JSON
//! fields (as Devo's `cloud.office365.messagetracing` parser exposes them). And which lines a
//! relay that loses a fraction loses.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

/// One row of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The table (the line's tag).
    pub table: String,
    /// The line's timestamp.
    pub eventdate: DateTime<Utc>,
    /// The line's host field.
    pub hostname: String,
    /// The JSON fields.
    pub fields: Map<String, Value>,
}

impl Row {
    /// The value of `field` as text (`hostname`, `eventdate` in milliseconds, or a JSON
    /// field); `None` when absent or null.
    pub fn text(&self, field: &str) -> Option<String> {
        match field {
            "hostname" => Some(self.hostname.clone()),
            "eventdate" => Some(self.eventdate.timestamp_millis().to_string()),
            _ => match self.fields.get(field)? {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            },
        }
    }

    /// The value of `field` as JSON (`eventdate` in milliseconds); `None` when absent or null.
    pub fn value(&self, field: &str) -> Option<Value> {
        match field {
            "hostname" => Some(Value::String(self.hostname.clone())),
            "eventdate" => Some(Value::from(self.eventdate.timestamp_millis())),
            _ => self.fields.get(field).filter(|v| !v.is_null()).cloned(),
        }
    }
}

/// Parses `<PRI>yyyy-MM-dd HH:mm:ss.SSS hostname tag: {json}`; `None` for any other line.
pub fn parse_line(line: &str) -> Option<Row> {
    let rest = line.strip_prefix('<')?;
    let (_, rest) = rest.split_once('>')?;
    let mut parts = rest.splitn(4, ' ');
    let (date, time, hostname, rest) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let eventdate =
        NaiveDateTime::parse_from_str(&format!("{date} {time}"), "%Y-%m-%d %H:%M:%S%.f")
            .ok()?
            .and_utc();
    let (tag, json) = rest.split_once(": ")?;
    let fields = match serde_json::from_str(json) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    Some(Row {
        table: tag.to_owned(),
        eventdate,
        hostname: hostname.to_owned(),
        fields,
    })
}

/// Whether a relay losing `per_mille` thousandths loses `line`: by the record's key
/// (`MessageTraceId|RecipientAddress`), so every line of a lost record is lost, and the same
/// records in every run.
pub fn loses(line: &str, per_mille: u32) -> bool {
    let key = parse_line(line)
        .and_then(|r| {
            Some(format!(
                "{}|{}",
                r.text("MessageTraceId")?,
                r.text("RecipientAddress")?
            ))
        })
        .unwrap_or_else(|| line.to_owned());
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.as_bytes());
    let b = digest.as_ref();
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) % 1000 < per_mille
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"<14>2026-11-24 10:15:30.123 contoso cloud.office365.messagetracing: {"MessageTraceId":"m1","RecipientAddress":"a@b","Status":"Delivered","Size":12}"#;

    #[test]
    fn a_product_line_is_a_row() {
        let row = parse_line(LINE).unwrap();
        assert_eq!(row.table, "cloud.office365.messagetracing");
        assert_eq!(row.hostname, "contoso");
        assert_eq!(row.eventdate.to_rfc3339(), "2026-11-24T10:15:30.123+00:00");
        assert_eq!(row.text("Status").as_deref(), Some("Delivered"));
        assert_eq!(row.text("Size").as_deref(), Some("12"));
        assert_eq!(row.text("Subject"), None);
        assert_eq!(parse_line("not a line"), None);
    }

    #[test]
    fn losses_follow_the_key_not_the_status() {
        let other_status = LINE.replace("Delivered", "Pending");
        for p in [0, 10, 500, 1000] {
            assert_eq!(loses(LINE, p), loses(&other_status, p));
        }
        assert!(!loses(LINE, 0));
        assert!(loses(LINE, 1000));
        let lost = (0..10_000)
            .filter(|i| loses(&LINE.replace("m1", &format!("m{i}")), 10))
            .count();
        assert!((50..200).contains(&lost), "{lost} of 10000 at 1 %");
    }
}
