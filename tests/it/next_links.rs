//! nextLinks Graph refuses (issue 11 §2): a refused nextLink restarts the rest of the window
//! from what was sent, as long as each restart makes progress; a refusal that makes no progress
//! fails the tick after committing what was delivered; double-encoded skip tokens are repaired
//! before they are followed.

use crate::support::*;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use m365_trace_devtools::graph::RecordedRequest;
use serde_json::json;

fn has_skiptoken(r: &RecordedRequest) -> bool {
    r.query.contains("$skiptoken")
}

/// The bounds of a request's `$filter` (`receivedDateTime ge S and receivedDateTime le E`).
fn filter_bounds(r: &RecordedRequest) -> (DateTime<Utc>, DateTime<Utc>) {
    let bound = |key: &str| {
        let at = r
            .query
            .find(key)
            .unwrap_or_else(|| panic!("{key}: {}", r.query))
            + key.len();
        let text: String = r.query[at..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '&')
            .collect();
        DateTime::parse_from_rfc3339(&text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .with_timezone(&Utc)
    };
    (bound("receivedDateTime ge "), bound("receivedDateTime le "))
}

#[tokio::test]
async fn refused_next_links_restart_the_window_from_what_was_sent_until_it_completes() {
    // 120 records in pages of 20: six pages, each after the first reached by a restart.
    let records = first_window_records(301, 120);
    let h = Harness::start(records.clone(), &[("PAGE_SIZE", "20")]).await;
    h.graph.set_refuse_next_links(true);
    let app = h.app(fast_options());

    let summary = h.tick(&app, "req-refused").await.expect("tick");

    assert_same_keys(
        h.received_keys(),
        records.iter().map(record_key).collect(),
        "each record exactly once",
    );
    assert_eq!(summary["caught_up"], json!(true), "{summary}");
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert_eq!(checkpoint["partial"], json!(null), "{checkpoint}");
    let requests = h.trace_requests();
    let followed: Vec<&RecordedRequest> = requests.iter().filter(|r| has_skiptoken(r)).collect();
    assert!(
        followed.iter().all(|r| r.status == 400),
        "every nextLink was refused"
    );
    assert!(followed.len() >= 5, "{} refusals", followed.len());
    // The first window's first pages: its first query, then one restart a refusal, each
    // ending where the last one's records stopped.
    let window_start = filter_bounds(&requests[0]).0;
    let firsts: Vec<DateTime<Utc>> = requests
        .iter()
        .filter(|r| !has_skiptoken(r) && filter_bounds(r).0 == window_start)
        .map(|r| filter_bounds(r).1)
        .collect();
    assert_eq!(firsts.len(), followed.len() + 1, "{firsts:?}");
    assert!(
        firsts.windows(2).all(|w| w[1] < w[0]),
        "each restart asked for less than the one before: {firsts:?}"
    );
}

#[tokio::test]
async fn a_refusal_that_makes_no_progress_fails_the_tick_and_keeps_what_was_delivered() {
    // 10 newer records, 30 at one instant, 10 older, in pages of 20. Page 1 sends the 10 newer
    // and 10 at the instant; the restart from that instant sends 10 more; the next restart
    // asks for the same instant again and gets only records already sent: no progress.
    let mut records = first_window_records(302, 50);
    // Whole seconds: Graph keeps 100 ns.
    let instant = (Utc::now() - TimeDelta::days(2) + TimeDelta::hours(2))
        .duration_trunc(TimeDelta::seconds(1))
        .unwrap();
    for (i, r) in records.iter_mut().enumerate() {
        let i = i as i64;
        r.received_date_time = match i {
            0..10 => instant + TimeDelta::minutes(10 + i),
            10..40 => instant,
            _ => instant - TimeDelta::minutes(i),
        };
    }
    let h = Harness::start(records.clone(), &[("PAGE_SIZE", "20")]).await;
    h.graph.set_refuse_next_links(true);
    let app = h.app(fast_options());

    let (error_type, message) = h
        .invoke_typed(
            &app,
            scheduled_event(),
            "req-no-progress",
            std::time::Duration::from_secs(60),
        )
        .await
        .expect_err("the refusal came back without progress");

    assert_eq!(error_type, "Microsoft", "{message}");
    assert!(
        message.contains("Invalid starting recipient address"),
        "{message}"
    );
    assert_eq!(h.trace_lines().len(), 30, "10 newer and 20 at the instant");
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    let resume = &checkpoint["partial"]["resume"];
    assert_eq!(time(&resume["until"]), instant, "{checkpoint}");
    assert_eq!(
        resume["sent_at_until"].as_array().map(Vec::len),
        Some(20),
        "{checkpoint}"
    );
    assert_eq!(checkpoint["lease"], json!(null), "lease released");

    h.graph.set_refuse_next_links(false);
    let summary = h.tick(&app, "req-after").await.expect("tick");
    assert_eq!(summary["caught_up"], json!(true), "{summary}");
    assert_same_keys(
        h.received_keys(),
        records.iter().map(record_key).collect(),
        "each record exactly once",
    );
}

#[tokio::test]
async fn double_encoded_skip_tokens_are_repaired_before_they_are_followed() {
    let records = first_window_records(303, 120);
    let h = Harness::start(records.clone(), &[("PAGE_SIZE", "20")]).await;
    h.graph.set_double_encoded_skip_tokens(true);
    let app = h.app(fast_options());

    let summary = h.tick(&app, "req-double").await.expect("tick");

    assert_same_keys(
        h.received_keys(),
        records.iter().map(record_key).collect(),
        "each record exactly once",
    );
    assert_eq!(summary["caught_up"], json!(true), "{summary}");
    let requests = h.trace_requests();
    let refused: Vec<&str> = requests
        .iter()
        .filter(|r| r.status != 200)
        .map(|r| r.query.as_str())
        .collect();
    assert!(refused.is_empty(), "no request was refused: {refused:?}");
    assert!(
        requests.iter().filter(|r| has_skiptoken(r)).count() >= 5,
        "the nextLinks were followed"
    );
}
