//! One entry of the registry: its fields, its rules, and how the JSON of each entry becomes a
//! valid [`Entry`] or the reason it is not. Each entry is read on its own, so a bad entry (a
//! typo, a field this version does not know, a duplicated name) fails alone and the others run.
//! Pure.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest tenant name: it is a path segment of S3 keys and a metric dimension value.
pub const MAX_NAME_LEN: usize = 63;

/// The fields this version reads; any other is kept and reported as a warning.
pub const KNOWN_FIELDS: [&str; 6] = [
    "name",
    "secret_id",
    "enabled",
    "devo_hostname",
    "devo_tag",
    "reset_before",
];

/// One tenant of the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// `[a-z0-9][a-z0-9-]{0,62}`: its state prefix, event payload and metric dimension.
    pub name: String,
    /// The Secrets Manager secret with its Microsoft credentials (and maybe Devo material).
    pub secret_id: String,
    /// A disabled tenant is not dispatched and its events are refused; its state is kept.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Host field of its lines; default: the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devo_hostname: Option<String>,
    /// Devo tag of its lines; default: `DEVO_TAG`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devo_tag: Option<String>,
    /// Its own `RESET_BEFORE`; default: the deployment's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_before: Option<DateTime<Utc>>,
}

fn enabled_by_default() -> bool {
    true
}

/// An entry that cannot run, and why: the dispatch reports it and starts the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invalid {
    /// Its position in `tenants`, from 0.
    pub index: usize,
    /// Its `name` as written (`""` when it has none).
    pub name: String,
    /// What is wrong and what is accepted.
    pub problem: String,
}

/// A field this version does not read: kept, not used, reported (a typo, or a newer version's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnknownField {
    /// The entry's position in `tenants` (`None`: a field beside `tenants`).
    pub index: Option<usize>,
    /// The entry's `name` (`""` beside `tenants`).
    pub name: String,
    pub field: String,
}

/// The registry's entries as read: the valid ones in order, the invalid ones, the warnings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entries {
    /// Entries that can run.
    pub valid: Vec<Entry>,
    /// Entries that cannot, each with its problem.
    pub invalid: Vec<Invalid>,
    /// Fields not read.
    pub unknown_fields: Vec<UnknownField>,
}

/// Whether `name` can be a tenant's name: `[a-z0-9][a-z0-9-]{0,62}`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= MAX_NAME_LEN
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// What is wrong with `entry`, if anything.
pub fn entry_problem(entry: &Entry) -> Option<String> {
    if !valid_name(&entry.name) {
        return Some(format!(
            "\"name\" must match [a-z0-9][a-z0-9-]{{0,{}}} (lowercase letters, digits and '-', starting with a letter or digit, at most {MAX_NAME_LEN} characters)",
            MAX_NAME_LEN - 1
        ));
    }
    if entry.secret_id.trim().is_empty() {
        return Some("\"secret_id\" is empty: give the name or ARN of the tenant's secret".into());
    }
    if let Some(host) = &entry.devo_hostname
        && (host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Some(
            "\"devo_hostname\" must be one word without spaces or control characters".into(),
        );
    }
    if let Some(tag) = &entry.devo_tag
        && !crate::config::is_tag(tag)
    {
        return Some(
            "\"devo_tag\" must be dot-separated words of letters, digits, '_' or '-', such as cloud.office365.messagetracing".into(),
        );
    }
    None
}

/// The `name` of an entry's JSON as written, for messages (`""` when there is none).
pub fn name_of(value: &Value) -> String {
    match value.get("name") {
        Some(Value::String(name)) => name.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// Reads one entry's JSON: the entry, or what is wrong with it.
pub fn read_entry(value: &Value) -> Result<Entry, String> {
    if !value.is_object() {
        return Err(format!(
            "an entry is a JSON object such as {{\"name\": \"contoso\", \"secret_id\": \"m365-trace-to-devo/contoso\"}}, not {value}"
        ));
    }
    let entry = Entry::deserialize(value).map_err(|e| e.to_string())?;
    entry_problem(&entry).map_or(Ok(entry), Err)
}

/// The fields of an entry's JSON this version does not read.
fn unknown_fields(index: usize, value: &Value) -> Vec<UnknownField> {
    let Some(object) = value.as_object() else {
        return Vec::new();
    };
    object
        .keys()
        .filter(|k| !KNOWN_FIELDS.contains(&k.as_str()))
        .map(|field| UnknownField {
            index: Some(index),
            name: name_of(value),
            field: field.clone(),
        })
        .collect()
}

/// Reads every entry on its own. A name written more than once refuses every entry that has it
/// (which one the operator meant cannot be known; running either could pull a tenant under
/// another's secret); the other entries run.
pub fn read_entries(values: &[Value]) -> Entries {
    let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
    for (index, value) in values.iter().enumerate() {
        if let Some(Value::String(name)) = value.get("name") {
            by_name.entry(name.clone()).or_default().push(index);
        }
    }
    let mut entries = Entries::default();
    for (index, value) in values.iter().enumerate() {
        entries.unknown_fields.extend(unknown_fields(index, value));
        let duplicate = by_name
            .get(&name_of(value))
            .filter(|indices| indices.len() > 1);
        let read = match (read_entry(value), duplicate) {
            (Err(problem), _) => Err(problem),
            (Ok(_), Some(indices)) => {
                let others: Vec<String> = indices
                    .iter()
                    .filter(|i| **i != index)
                    .map(usize::to_string)
                    .collect();
                Err(format!(
                    "the name is also used by entry {}: names are unique, so no entry with this name runs; rename or remove all but one",
                    others.join(", ")
                ))
            }
            (Ok(entry), None) => Ok(entry),
        };
        match read {
            Ok(entry) => entries.valid.push(entry),
            Err(problem) => entries.invalid.push(Invalid {
                index,
                name: name_of(value),
                problem,
            }),
        }
    }
    entries
}

#[cfg(test)]
impl Entry {
    /// An enabled entry with secret `s/NAME` and nothing overridden, for tests.
    pub(crate) fn named(name: &str) -> Entry {
        Entry {
            name: name.into(),
            secret_id: format!("s/{name}"),
            enabled: true,
            devo_hostname: None,
            devo_tag: None,
            reset_before: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_follow_the_rule() {
        for ok in ["a", "contoso", "0day", "a-b-c", &"x".repeat(63)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "Contoso",
            "a_b",
            "a.b",
            "a/b",
            &"x".repeat(64),
            "é",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn each_entry_is_read_on_its_own_and_a_bad_one_is_named_with_its_position() {
        let values = vec![
            json!({"name": "ok", "secret_id": "s/ok", "comment": "onboarded 2026-11"}),
            json!({"name": "Bad Name", "secret_id": "s"}),
            json!({"name": "nosecret"}),
            json!({"name": "tagged", "secret_id": "s", "devo_tag": "one"}),
            json!("contoso"),
            json!({"name": "blank", "secret_id": " "}),
            json!({"name": "also-ok", "secret_id": "s/also", "enabled": false}),
        ];
        let read = read_entries(&values);
        let names: Vec<&str> = read.valid.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["ok", "also-ok"]);
        let invalid: Vec<(usize, &str)> = read
            .invalid
            .iter()
            .map(|i| (i.index, i.name.as_str()))
            .collect();
        assert_eq!(
            invalid,
            [
                (1, "Bad Name"),
                (2, "nosecret"),
                (3, "tagged"),
                (4, ""),
                (5, "blank")
            ]
        );
        let problems: Vec<&str> = read.invalid.iter().map(|i| i.problem.as_str()).collect();
        assert!(problems[0].contains("[a-z0-9]"), "{}", problems[0]);
        assert!(
            problems[1].contains("missing field `secret_id`"),
            "{}",
            problems[1]
        );
        assert!(problems[2].contains("devo_tag"), "{}", problems[2]);
        assert!(
            problems[3].contains("an entry is a JSON object"),
            "{}",
            problems[3]
        );
        assert!(problems[4].contains("secret_id"), "{}", problems[4]);
        assert_eq!(
            read.unknown_fields,
            vec![UnknownField {
                index: Some(0),
                name: "ok".into(),
                field: "comment".into()
            }],
            "accepted, with a warning"
        );
    }

    #[test]
    fn a_duplicated_name_refuses_every_entry_that_has_it_and_the_rest_run() {
        let values = vec![
            json!({"name": "a", "secret_id": "s/1"}),
            json!({"name": "b", "secret_id": "s/b"}),
            json!({"name": "a", "secret_id": "s/2"}),
        ];
        let read = read_entries(&values);
        assert_eq!(read.valid, vec![Entry::named("b")]);
        assert_eq!(read.invalid.len(), 2);
        assert_eq!((read.invalid[0].index, read.invalid[1].index), (0, 2));
        assert!(
            read.invalid[0].problem.contains("also used by entry 2"),
            "{}",
            read.invalid[0].problem
        );
        assert!(read.invalid[1].problem.contains("also used by entry 0"));
    }
}
