//! What every subcommand prints with: an error (also as JSON), a JSON document, an instant.

use std::process::ExitCode;

use chrono::{DateTime, Utc};

pub(crate) fn fail(json: bool, message: &str) -> ExitCode {
    if json {
        println!("{}", serde_json::json!({ "error": message }));
    }
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

pub(crate) fn print_json(value: &impl serde::Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: cannot write JSON: {e}"),
    }
}

/// An instant as RFC 3339 in UTC with `Z`, as the events and the checkpoint write it.
pub(crate) fn z(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

pub(crate) fn time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "none".to_owned(), z)
}
