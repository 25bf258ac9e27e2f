//! Reading an answer of the Query API (`json` mode): `{"status": 0, "msg": "", "object": [rows]}`
//! (leading spaces are Devo's keep-alive), an error body `{"status": 403, "msg": "…"}`, and the
//! rows of the two queries the product sends. Pure: bytes in, values out.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::verify::linq::{KEY_FIELDS, LINES};

/// One row of a result.
pub type Row = Map<String, Value>;

/// What a body says.
#[derive(Debug, Deserialize)]
pub struct Answer {
    /// 0 on success; otherwise an error code (often the HTTP status).
    #[serde(default)]
    pub status: Option<i64>,
    /// Devo's message (the error's text).
    #[serde(default)]
    pub msg: Option<String>,
    /// The rows.
    #[serde(default)]
    pub object: Option<Value>,
}

/// The body as Devo's JSON, or what is wrong with it (its position, never its content).
pub fn parse(body: &[u8]) -> Result<Answer, String> {
    serde_json::from_slice(body).map_err(|e| {
        format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        )
    })
}

impl Answer {
    /// The rows of a successful answer.
    pub fn rows(self) -> Result<Vec<Row>, String> {
        match self.object {
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::Object(row) => Ok(row),
                    _ => Err("a row that is not an object".to_owned()),
                })
                .collect(),
            Some(_) => Err("\"object\" is not a list of rows".to_owned()),
            None => Err("no \"object\"".to_owned()),
        }
    }
}

/// The hour a row belongs to (`eventdate`: milliseconds since the epoch, or Devo's
/// `yyyy-MM-dd HH:mm:ss.SSS` in UTC).
pub fn eventdate(row: &Row) -> Option<DateTime<Utc>> {
    match row.get("eventdate")? {
        Value::Number(n) => Utc.timestamp_millis_opt(n.as_i64()?).single(),
        Value::String(s) => ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.fZ"]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
            .map(|t| t.and_utc()),
        _ => None,
    }
}

/// The `lines` count of a row (a number, or a number written as a string).
pub fn lines(row: &Row) -> Option<u64> {
    match row.get(LINES)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// One distinct key Devo holds in an hour, and how many lines carry it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HeldKey {
    /// `MessageTraceId`.
    pub message_trace_id: String,
    /// `RecipientAddress`.
    pub recipient: String,
    /// `Status`.
    pub status: String,
    /// Lines with these three values.
    pub lines: u64,
}

/// The key of a row of the key query; `None` when a field is missing (a row that is not one of
/// this product's lines: the reader counts it apart).
pub fn held_key(row: &Row) -> Option<HeldKey> {
    let text = |name: &str| match row.get(name) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    let [id, recipient, status] = KEY_FIELDS;
    Some(HeldKey {
        message_trace_id: text(id)?,
        recipient: text(recipient)?,
        status: text(status).unwrap_or_default(),
        lines: lines(row).unwrap_or(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_after_keep_alive_spaces_gives_its_rows() {
        let body = br#"        {"status":0,"msg":"","timestamp":1,"cid":"c","object":[{"eventdate":1795514400000,"lines":12},{"eventdate":"2026-11-24 11:00:00.000","lines":"3"}]}"#;
        let rows = parse(body).unwrap().rows().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            eventdate(&rows[0]).unwrap().to_rfc3339(),
            "2026-11-24T10:00:00+00:00"
        );
        assert_eq!(
            eventdate(&rows[1]).unwrap().to_rfc3339(),
            "2026-11-24T11:00:00+00:00"
        );
        assert_eq!((lines(&rows[0]), lines(&rows[1])), (Some(12), Some(3)));
    }

    #[test]
    fn an_error_body_keeps_status_and_message() {
        let body = br#"{"timestamp":1741293602208,"cid":"6acc31e8644c","msg":"Access not allowed for table 'my.synthesis.incorrect.table'","status":403}"#;
        let a = parse(body).unwrap();
        assert_eq!(a.status, Some(403));
        assert!(a.msg.as_deref().unwrap().starts_with("Access not allowed"));
        assert!(a.rows().unwrap_err().contains("no \"object\""));
    }

    #[test]
    fn malformed_bodies_are_described_without_content() {
        let err = parse(b"<html>SECRETPAGE</html>").unwrap_err();
        assert!(!err.contains("SECRETPAGE"), "{err}");
        assert!(err.contains("line 1"), "{err}");
        let err = parse(br#"{"status":0,"object":{"m":{}}}"#)
            .unwrap()
            .rows()
            .unwrap_err();
        assert!(err.contains("not a list"), "{err}");
    }

    #[test]
    fn a_key_row_needs_its_id_and_recipient() {
        let row: Row = serde_json::from_str(
            r#"{"eventdate":1,"MessageTraceId":"m1","RecipientAddress":"a@b","Status":"Delivered","lines":2}"#,
        )
        .unwrap();
        assert_eq!(
            held_key(&row),
            Some(HeldKey {
                message_trace_id: "m1".into(),
                recipient: "a@b".into(),
                status: "Delivered".into(),
                lines: 2
            })
        );
        let other: Row =
            serde_json::from_str(r#"{"eventdate":1,"MessageTraceId":null,"lines":1}"#).unwrap();
        assert_eq!(held_key(&other), None);
    }
}
