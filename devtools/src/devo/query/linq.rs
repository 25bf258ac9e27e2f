//! The part of LINQ the stand-in understands, parsed and run over rows (pure):
//!
//! ```text
//! from TABLE [where FIELD = "TEXT" [(, | and) FIELD = "TEXT"]…]
//!   [group [every N(s|m|h|d)] [by FIELD[, FIELD]…] select AGG as ALIAS[, AGG as ALIAS]…]
//! AGG: count() | max(FIELD) | min(FIELD)
//! ```
//!
//! A grouped query gives one row per group, `eventdate` (the bucket's start, milliseconds)
//! when grouped `every`, the `by` fields and the aggregates (`max`/`min` compare numbers as
//! numbers and text as text, as Devo compares a field of one type), ordered by bucket then
//! fields (a stable order, so `limit`/`offset` pages do not overlap). An ungrouped one gives the rows
//! themselves (`eventdate`, `hostname` and the JSON fields), ordered by `eventdate`. Anything
//! else is refused with the position that was not understood, as Devo refuses a bad query.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::table::Row;

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linq {
    /// `from`.
    pub table: String,
    /// `where` conditions, all of which must hold: field = text.
    pub conditions: Vec<(String, String)>,
    /// `group`, when given.
    pub group: Option<Group>,
}

/// `group [every …] [by …] select AGG as ALIAS[, …]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Bucket length in milliseconds (`every`), if any.
    pub every_ms: Option<i64>,
    /// `by` fields.
    pub by: Vec<String>,
    /// The aggregates, each with its column.
    pub select: Vec<(Aggregate, String)>,
}

/// An aggregate of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Aggregate {
    /// `count()`: the rows.
    Count,
    /// `max(FIELD)`: the greatest value of the field (rows without it left out).
    Max(String),
    /// `min(FIELD)`: the least.
    Min(String),
}

/// Splits LINQ into words, punctuation and string literals (kept with their quotes).
fn tokens(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut s = String::from("\"");
            loop {
                match chars.next() {
                    Some('\\') => s.push(chars.next().ok_or("unterminated string")?),
                    Some('"') => break,
                    Some(c) => s.push(c),
                    None => return Err("unterminated string".into()),
                }
            }
            out.push(s);
        } else if "=,()".contains(c) {
            out.push(c.to_string());
            chars.next();
        } else {
            let mut w = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || "=,()\"".contains(c) {
                    break;
                }
                w.push(c);
                chars.next();
            }
            out.push(w);
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<String>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    fn next(&mut self) -> Result<String, String> {
        let t = self
            .tokens
            .get(self.at)
            .cloned()
            .ok_or("unexpected end of query")?;
        self.at += 1;
        Ok(t)
    }

    fn expect(&mut self, word: &str) -> Result<(), String> {
        let t = self.next()?;
        if t.eq_ignore_ascii_case(word) {
            Ok(())
        } else {
            Err(format!(
                "expected '{word}' at token {}, found '{t}'",
                self.at
            ))
        }
    }

    fn is(&self, word: &str) -> bool {
        self.peek().is_some_and(|t| t.eq_ignore_ascii_case(word))
    }

    fn condition(&mut self) -> Result<(String, String), String> {
        let field = self.next()?;
        self.expect("=")?;
        let value = self.next()?;
        let text = value
            .strip_prefix('"')
            .map_or_else(|| value.clone(), str::to_owned);
        Ok((field, text))
    }

    fn group(&mut self) -> Result<Group, String> {
        let mut every_ms = None;
        if self.is("every") {
            self.next()?;
            every_ms = Some(duration_ms(&self.next()?)?);
        }
        let mut by = Vec::new();
        if self.is("by") {
            self.next()?;
            by.push(self.next()?);
            while self.is(",") {
                self.next()?;
                by.push(self.next()?);
            }
        }
        self.expect("select")?;
        let mut select = vec![self.aggregate()?];
        while self.is(",") {
            self.next()?;
            select.push(self.aggregate()?);
        }
        Ok(Group {
            every_ms,
            by,
            select,
        })
    }

    /// `count() as ALIAS`, `max(FIELD) as ALIAS` or `min(FIELD) as ALIAS`.
    fn aggregate(&mut self) -> Result<(Aggregate, String), String> {
        let function = self.next()?.to_ascii_lowercase();
        self.expect("(")?;
        let aggregate = match function.as_str() {
            "count" => Aggregate::Count,
            "max" => Aggregate::Max(self.next()?),
            "min" => Aggregate::Min(self.next()?),
            other => return Err(format!("unknown aggregate '{other}' at token {}", self.at)),
        };
        self.expect(")")?;
        self.expect("as")?;
        Ok((aggregate, self.next()?))
    }
}

/// `1h`, `30m`, `10s`, `1d` in milliseconds.
fn duration_ms(word: &str) -> Result<i64, String> {
    let (n, unit) = word.split_at(word.len().saturating_sub(1));
    let n: i64 = n.parse().map_err(|_| format!("not a duration: '{word}'"))?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("not a duration: '{word}'")),
    };
    (n > 0)
        .then_some(n * unit_ms)
        .ok_or(format!("not a duration: '{word}'"))
}

/// Parses `text`, or says where it stopped understanding.
pub fn parse(text: &str) -> Result<Linq, String> {
    let mut p = Parser {
        tokens: tokens(text)?,
        at: 0,
    };
    p.expect("from")?;
    let table = p.next()?;
    let mut conditions = Vec::new();
    if p.is("where") {
        p.next()?;
        conditions.push(p.condition()?);
        while p.is(",") || p.is("and") {
            p.next()?;
            conditions.push(p.condition()?);
        }
    }
    let group = if p.is("group") {
        p.next()?;
        Some(p.group()?)
    } else {
        None
    };
    match p.peek() {
        None => Ok(Linq {
            table,
            conditions,
            group,
        }),
        Some(t) => Err(format!("unexpected '{t}' at token {}", p.at + 1)),
    }
}

impl Linq {
    /// The result over `rows` whose `eventdate` is in `[from, to)`.
    pub fn run(&self, rows: &[Row], from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Value> {
        let matching = rows.iter().filter(|r| {
            r.table == self.table
                && r.eventdate >= from
                && r.eventdate < to
                && self
                    .conditions
                    .iter()
                    .all(|(f, v)| r.text(f).as_deref() == Some(v.as_str()))
        });
        let Some(group) = &self.group else {
            let mut out: Vec<&Row> = matching.collect();
            out.sort_by_key(|r| r.eventdate);
            return out.into_iter().map(raw).collect();
        };
        let mut groups: BTreeMap<(i64, Vec<Option<String>>), Vec<Value>> = BTreeMap::new();
        for r in matching {
            let ms = r.eventdate.timestamp_millis();
            let bucket = group.every_ms.map_or(0, |e| ms.div_euclid(e) * e);
            let key = group.by.iter().map(|f| r.text(f)).collect();
            let values = groups
                .entry((bucket, key))
                .or_insert_with(|| vec![Value::Null; group.select.len()]);
            for ((aggregate, _), value) in group.select.iter().zip(values.iter_mut()) {
                add(aggregate, value, r);
            }
        }
        groups
            .into_iter()
            .map(|((bucket, key), values)| {
                let mut row = Map::new();
                if group.every_ms.is_some() {
                    row.insert("eventdate".into(), json!(bucket));
                }
                for (f, v) in group.by.iter().zip(key) {
                    row.insert(f.clone(), v.map_or(Value::Null, Value::String));
                }
                for ((_, alias), value) in group.select.iter().zip(values) {
                    row.insert(alias.clone(), value);
                }
                Value::Object(row)
            })
            .collect()
    }
}

/// Adds row `r` to the running `value` of `aggregate`.
fn add(aggregate: &Aggregate, value: &mut Value, r: &Row) {
    let (field, greater) = match aggregate {
        Aggregate::Count => {
            *value = json!(value.as_u64().unwrap_or(0) + 1);
            return;
        }
        Aggregate::Max(field) => (field, Ordering::Greater),
        Aggregate::Min(field) => (field, Ordering::Less),
    };
    let Some(new) = r.value(field) else {
        return;
    };
    if value.is_null() || compare(&new, value) == Some(greater) {
        *value = new;
    }
}

/// Numbers as numbers, text as text; values of different types do not compare.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn raw(r: &Row) -> Value {
    let mut row = Map::new();
    row.insert("eventdate".into(), json!(r.eventdate.timestamp_millis()));
    row.insert("hostname".into(), json!(r.hostname));
    row.extend(r.fields.clone());
    Value::Object(row)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::super::table::parse_line;
    use super::*;

    fn line(t: &str, host: &str, id: &str, status: &str) -> Row {
        parse_line(&format!(
            r#"<14>2026-11-24 {t} {host} cloud.office365.messagetracing: {{"MessageTraceId":"{id}","RecipientAddress":"a@b","Status":"{status}"}}"#
        ))
        .unwrap()
    }

    fn rows() -> Vec<Row> {
        vec![
            line("10:15:00.000", "contoso", "m1", "Pending"),
            line("10:20:00.000", "contoso", "m1", "Delivered"),
            line("10:59:59.999", "contoso", "m2", "Delivered"),
            line("11:00:00.000", "contoso", "m3", "Failed"),
            line("10:30:00.000", "fabrikam", "m9", "Delivered"),
        ]
    }

    fn day() -> (DateTime<Utc>, DateTime<Utc>) {
        (
            Utc.with_ymd_and_hms(2026, 11, 24, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap(),
        )
    }

    #[test]
    fn the_products_hourly_count_is_understood() {
        let q = parse(r#"from cloud.office365.messagetracing where hostname = "contoso" group every 1h select count() as lines"#).unwrap();
        let (from, to) = day();
        assert_eq!(
            q.run(&rows(), from, to),
            vec![
                json!({"eventdate": 1795514400000_i64, "lines": 3}),
                json!({"eventdate": 1795518000000_i64, "lines": 1})
            ]
        );
    }

    #[test]
    fn the_products_key_query_is_understood_and_ordered() {
        let q = parse(r#"from cloud.office365.messagetracing where hostname = "contoso" group every 1h by MessageTraceId, RecipientAddress, Status select count() as lines"#).unwrap();
        let from = Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap();
        let to = Utc.with_ymd_and_hms(2026, 11, 24, 11, 0, 0).unwrap();
        let out = q.run(&rows(), from, to);
        let ids: Vec<(&str, &str)> = out
            .iter()
            .map(|r| {
                (
                    r["MessageTraceId"].as_str().unwrap(),
                    r["Status"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            ids,
            [("m1", "Delivered"), ("m1", "Pending"), ("m2", "Delivered")]
        );
    }

    #[test]
    fn conditions_on_json_fields_and_raw_rows() {
        let q = parse(r#"from cloud.office365.messagetracing where hostname = "contoso", Status = "Delivered""#).unwrap();
        let (from, to) = day();
        let out = q.run(&rows(), from, to);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0]["MessageTraceId"], "m1");
        assert_eq!(out[0]["hostname"], "contoso");
    }

    #[test]
    fn the_newest_received_of_an_earlier_collector_per_hour() {
        let held = |t: &str, org: &str, received: &str| {
            parse_line(&format!(
                r#"<14>2026-11-24 {t} hosted cloud.office365.messagetracing: {{"Organization":"{org}","MessageTraceId":"m","Received":"{received}"}}"#
            ))
            .unwrap()
        };
        let rows = vec![
            held("10:15:00.000", "contoso.com", "2026-11-24T10:15:00.1234567"),
            held("10:40:00.000", "contoso.com", "2026-11-24T10:40:00.7654321"),
            held("10:20:00.000", "contoso.com", "2026-11-24T10:20:00.0000000"),
            held(
                "10:50:00.000",
                "fabrikam.com",
                "2026-11-24T10:50:00.0000000",
            ),
            held("11:05:00.000", "contoso.com", "2026-11-24T11:05:00.0000000"),
        ];
        let q = parse(r#"from cloud.office365.messagetracing where Organization = "contoso.com" group every 1h select count() as lines, max(Received) as newest, min(eventdate) as first"#).unwrap();
        let (from, to) = day();
        assert_eq!(
            q.run(&rows, from, to),
            vec![
                json!({"eventdate": 1795514400000_i64, "lines": 3, "newest": "2026-11-24T10:40:00.7654321", "first": 1795515300000_i64}),
                json!({"eventdate": 1795518000000_i64, "lines": 1, "newest": "2026-11-24T11:05:00.0000000", "first": 1795518300000_i64})
            ]
        );
        assert!(parse("from t group select median(x) as n").is_err());
    }

    #[test]
    fn what_is_not_understood_is_refused_with_its_place() {
        for bad in [
            "select * from x",
            "from t where hostname ~ \"a\"",
            "from t group every 1y select count() as n",
            "from t group by a select sum(x) as n",
            "from t where hostname = \"a",
            "from t limit 10",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
