//! The message trace API's `$filter`: `receivedDateTime ge S and receivedDateTime le E`, both
//! bounds required, clauses in either order, unquoted DateTimeOffset values.
//!
//! Exists so a filter the real API would refuse is refused here too, with a message that says
//! what to write instead.

use chrono::{DateTime, Utc};

/// Parses `receivedDateTime ge S and receivedDateTime le E` (clauses in either order).
pub(super) fn parse_filter(filter: &str) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let expected =
        "expected 'receivedDateTime ge <DateTimeOffset> and receivedDateTime le <DateTimeOffset>'";
    let tokens: Vec<&str> = filter.split_whitespace().collect();
    let mut ge = None;
    let mut le = None;
    let mut i = 0;
    while i < tokens.len() {
        if i > 0 {
            if tokens[i] != "and" {
                return Err(format!(
                    "Invalid filter clause: {expected}, found '{}' in '{filter}'.",
                    tokens[i]
                ));
            }
            i += 1;
        }
        let clause = tokens.get(i..i + 3).ok_or_else(|| {
            format!("Invalid filter clause: {expected}; the filter '{filter}' ends early.")
        })?;
        if clause[0] != "receivedDateTime" {
            return Err(format!(
                "Invalid filter clause: property '{}' is not supported in a range filter; {expected}.",
                clause[0]
            ));
        }
        let value = DateTime::parse_from_rfc3339(clause[2])
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                format!(
                    "Invalid filter clause: '{}' is not a valid DateTimeOffset (write it unquoted, e.g. 2026-11-24T10:00:00Z).",
                    clause[2]
                )
            })?;
        let slot = match clause[1] {
            "ge" => &mut ge,
            "le" => &mut le,
            op => {
                return Err(format!(
                    "Invalid filter clause: operator '{op}' is not supported on receivedDateTime (only ge and le)."
                ));
            }
        };
        if slot.replace(value).is_some() {
            return Err(format!(
                "Invalid filter clause: receivedDateTime {} appears twice.",
                clause[1]
            ));
        }
        i += 3;
    }
    match (ge, le) {
        (Some(s), Some(e)) => Ok((s, e)),
        _ => Err(format!(
            "Invalid filter clause: both bounds are required (receivedDateTime ge <start> and receivedDateTime le <end>), got '{filter}'."
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_parsing() {
        let (s, e) = parse_filter("receivedDateTime ge 2026-11-24T10:00:00Z and receivedDateTime le 2026-11-24T11:00:00.1234567Z").unwrap();
        assert!(s < e);
        assert!(parse_filter("receivedDateTime le 2026-11-24T11:00:00Z and receivedDateTime ge 2026-11-24T10:00:00Z").is_ok());
        assert!(
            parse_filter("receivedDateTime ge 2026-11-24T10:00:00Z")
                .unwrap_err()
                .contains("both bounds")
        );
        assert!(parse_filter("receivedDateTime ge '2026-11-24T10:00:00Z' and receivedDateTime le 2026-11-24T11:00:00Z").is_err());
        assert!(parse_filter("receivedDateTime gt 2026-11-24T10:00:00Z and receivedDateTime le 2026-11-24T11:00:00Z").is_err());
        assert!(parse_filter("status eq 'delivered'").is_err());
        assert!(parse_filter("receivedDateTime ge 2026-11-24T10:00:00Z or receivedDateTime le 2026-11-24T11:00:00Z").is_err());
    }
}
