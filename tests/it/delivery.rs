//! The delivery promise under the failures real relays and Graph produce: what a window
//! delivered is kept when it then fails, no failure repeats forever, any Lambda timeout works,
//! and every failure reaches Lambda with a stable error type.

use std::time::{Duration, Instant};

use crate::support::*;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use m365_trace_devtools::graph::Fault;
use m365_trace_devtools::records::{GraphRecord, generate};
use m365_trace_to_devo::app::TickOptions;
use serde_json::{Value, json};

/// 60 records in the first 5 hours of the first window of a fresh start: 3 pages of 20.
fn first_window_records(seed: u64) -> Vec<GraphRecord> {
    let now = Utc::now();
    let start = now - TimeDelta::days(2) + TimeDelta::minutes(1);
    generate(seed, start, start + TimeDelta::hours(5), 60)
}

fn five_hundreds(n: usize) -> Vec<Fault> {
    (0..n)
        .map(|_| Fault::TraceStatus {
            status: 500,
            body: r#"{"error":{"code":"InternalServerError","message":"busy"}}"#.into(),
            retry_after: None,
        })
        .collect()
}

/// Every record of `records` arrived once, after ticking until caught up.
async fn tick_until_caught_up(h: &Harness, app: &m365_trace_to_devo::app::App, tag: &str) -> Value {
    for i in 0..10 {
        if let Ok(summary) = h.tick(app, &format!("{tag}-{i}")).await
            && summary["caught_up"] == json!(true)
        {
            return summary;
        }
    }
    panic!("not caught up after 10 ticks");
}

#[tokio::test]
async fn a_window_that_fails_after_its_first_page_commits_that_page() {
    let records = first_window_records(101);
    let h = Harness::start(records.clone(), &[("PAGE_SIZE", "20")]).await;
    h.graph.inject(Fault::Delay(Duration::ZERO));
    for f in five_hundreds(6) {
        h.graph.inject(f);
    }
    let app = h.app(fast_options());

    let (error_type, message) = h
        .invoke_typed(&app, scheduled_event(), "req-fail", Duration::from_secs(60))
        .await
        .expect_err("the page that keeps failing fails the tick");

    assert_eq!(error_type, "Microsoft", "{message}");
    assert!(message.contains("HTTP 500"), "{message}");
    assert_eq!(h.trace_lines().len(), 20, "the first page was delivered");
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    let resume = &checkpoint["partial"]["resume"];
    let first_page: Vec<&GraphRecord> = {
        let mut sorted: Vec<&GraphRecord> = records.iter().collect();
        sorted.sort_by_key(|r| std::cmp::Reverse(r.received_date_time));
        sorted.into_iter().take(20).collect()
    };
    let oldest = first_page
        .iter()
        .map(|r| r.received_date_time)
        .min()
        .unwrap();
    assert_eq!(
        time(&resume["until"]),
        oldest,
        "committed down to the first page: {checkpoint}"
    );
    assert_eq!(checkpoint["lease"], json!(null), "lease released");

    tick_until_caught_up(&h, &app, "req-after").await;
    assert_same_keys(
        h.received_keys(),
        records.iter().map(record_key).collect(),
        "each record exactly once: the first page is not sent again",
    );
}

#[tokio::test]
async fn a_relay_failing_after_a_confirmed_stream_keeps_what_the_relay_confirmed() {
    let records = first_window_records(102);
    let h = Harness::start(
        records.clone(),
        &[("PAGE_SIZE", "20"), ("DEVO_IDLE_SECONDS", "1")],
    )
    .await;
    // Page 2 comes after a pause: the idle stream is closed (confirming page 1) and replaced.
    h.graph.inject(Fault::Delay(Duration::ZERO));
    h.graph.inject(Fault::Delay(Duration::from_millis(1300)));
    let app = h.app(fast_options());
    let relay = &h.devo;
    let refuse_after_first = async {
        assert!(relay.wait_for_lines(20, Duration::from_secs(10)).await);
        relay.refuse_next(100);
    };

    let (result, ()) = tokio::join!(
        h.invoke_typed(
            &app,
            scheduled_event(),
            "req-relay",
            Duration::from_secs(60)
        ),
        refuse_after_first
    );

    let (error_type, message) = result.expect_err("the relay keeps refusing");
    assert_eq!(error_type, "Devo", "{message}");
    assert!(
        h.devo.sessions()[0].clean_close,
        "the first stream was closed by us, cleanly"
    );
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert!(
        checkpoint["partial"]["resume"]["until"].is_string(),
        "page 1 committed: {checkpoint}"
    );

    h.devo.refuse_next(0);
    tick_until_caught_up(&h, &app, "req-after").await;
    assert_same_keys(
        h.received_keys(),
        records.iter().map(record_key).collect(),
        "each record exactly once",
    );
}

#[tokio::test]
async fn a_fifteen_second_timeout_delivers_and_commits_with_the_default_reserve() {
    let records = first_window_records(103);
    let h = Harness::start(records.clone(), &[]).await;
    let app = h.app(TickOptions::default());

    let summary = h
        .invoke(&app, scheduled_event(), "req-15s", Duration::from_secs(15))
        .await
        .expect("tick");

    assert_eq!(summary["events_sent"], json!(60), "{summary}");
    assert!(summary["windows"].as_u64().unwrap() >= 1, "{summary}");
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert!(
        time(&checkpoint["end"]) > Utc::now() - TimeDelta::days(2),
        "{checkpoint}"
    );
}

#[tokio::test]
async fn a_timeout_too_short_to_deliver_anything_fails_naming_the_timeout_and_the_minimum() {
    let h = Harness::start(first_window_records(104), &[]).await;
    let app = h.app(TickOptions::default());

    let (error_type, message) = h
        .invoke_typed(&app, scheduled_event(), "req-2s", Duration::from_secs(2))
        .await
        .expect_err("too short");

    assert_eq!(error_type, "Config");
    assert!(
        message.contains("function timeout is too short"),
        "{message}"
    );
    assert!(message.contains("at least 3 s"), "{message}");
    assert!(h.checkpoint().await.is_none(), "nothing touched");
    assert!(h.trace_requests().is_empty());
}

#[tokio::test]
async fn a_relay_that_never_answers_cannot_hold_the_tick_past_its_deadline() {
    // Accepts TCP (the kernel does) but never speaks TLS.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap().to_string();
    let h = Harness::start(
        first_window_records(105),
        &[
            ("DEVO_ADDRESS", address.as_str()),
            ("REQUEST_TIMEOUT_SECONDS", "60"),
        ],
    )
    .await;
    let app = h.app(TickOptions::default());
    let deadline = Duration::from_secs(6);
    let started = Instant::now();

    let (error_type, message) = h
        .invoke_typed(&app, scheduled_event(), "req-silent", deadline)
        .await
        .expect_err("no relay");

    // Unbounded, the handshake would wait REQUEST_TIMEOUT_SECONDS (60 s).
    assert!(
        started.elapsed() < deadline_bound(deadline),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(error_type, "Devo", "{message}");
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert_eq!(
        checkpoint["lease"],
        json!(null),
        "released before the deadline"
    );
    drop(silent);
}

#[tokio::test]
async fn a_window_too_big_for_one_tick_is_split_and_still_advances() {
    // The Reporting Web Service has no order: a window cut by the deadline has no resume
    // point and is split. 40 rows in pages of 2, 300 ms a page, 3.5 s ticks: the window never
    // fits.
    let now = Utc::now();
    let start = now - TimeDelta::days(2) + TimeDelta::minutes(1);
    let records = generate(106, start, start + TimeDelta::hours(20), 40);
    let h = Harness::start(
        records.clone(),
        &[("TRACE_API", "reporting"), ("MAX_WINDOW_SECONDS", "86400")],
    )
    .await;
    h.graph.set_reporting_page_size(2);
    for _ in 0..400 {
        h.graph.inject(Fault::Delay(Duration::from_millis(300)));
    }
    let app = h.app(fast_options());
    let mut splits = 0;
    let mut caught_up = false;
    for i in 0..14 {
        let summary = h
            .invoke(
                &app,
                scheduled_event(),
                &format!("req-split-{i}"),
                Duration::from_millis(3500),
            )
            .await
            .expect("tick");
        splits += usize::from(summary.get("split").is_some());
        if summary["caught_up"] == json!(true) {
            caught_up = true;
            break;
        }
    }

    assert!(splits > 0, "the stuck window was split");
    assert!(caught_up, "the pipeline finished");
    let mut got = h.received_keys();
    got.sort();
    got.dedup();
    assert_same_keys(
        got,
        records.iter().map(record_key).collect(),
        "every record arrived",
    );
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert!(
        checkpoint.get("stuck").is_none(),
        "passed the stuck span: {checkpoint}"
    );
}

#[tokio::test]
async fn records_at_the_window_end_and_records_without_a_key_are_counted_and_still_sent() {
    let t0 = (Utc::now() - TimeDelta::days(2))
        .duration_trunc(TimeDelta::hours(1))
        .unwrap();
    let mut records = generate(
        107,
        t0 + TimeDelta::minutes(1),
        t0 + TimeDelta::minutes(50),
        10,
    );
    // Graph's filter is inclusive: a record at the window's end comes back for both windows.
    records[0].received_date_time = t0 + TimeDelta::hours(1);
    // Two records without an id: different content, both sent.
    records[1].id = String::new();
    records[2].id = String::new();
    let h = Harness::start(records.clone(), &[("MAX_WINDOW_SECONDS", "3600")]).await;
    h.put_checkpoint(&json!({"version": 1, "end": t0, "updated_at": Utc::now()}))
        .await;
    let app = h.app(fast_options());

    let summary = h
        .invoke(&app, scheduled_event(), "req-odd", Duration::from_secs(60))
        .await
        .expect("tick");

    assert_eq!(summary["outside_window"], json!(1), "{summary}");
    assert_eq!(summary["missing_key"], json!(2), "{summary}");
    assert_same_keys(
        h.received_keys(),
        records.iter().map(record_key).collect(),
        "each record once, the keyless ones included",
    );
}

/// An hour-aligned instant `hours` back.
fn hours_ago(hours: i64) -> DateTime<Utc> {
    (Utc::now() - TimeDelta::hours(hours))
        .duration_trunc(TimeDelta::hours(1))
        .unwrap()
}

#[tokio::test]
async fn a_reset_that_moves_the_schedule_forward_reports_the_span_it_skips() {
    let h = Harness::start(Vec::new(), &[("RESET_BEFORE", "2026-11-01T00:00:00Z")]).await;
    let behind = hours_ago(24 * 20);
    h.put_checkpoint(&json!({"version": 1, "end": behind, "updated_at": Utc::now()}))
        .await;
    let app = h.app(fast_options());

    let summary = h.tick(&app, "req-reset-forward").await.expect("tick");

    assert_eq!(time(&summary["skipped"]["from"]), behind, "{summary}");
    let to = time(&summary["skipped"]["to"]);
    assert!(
        (to - (Utc::now() - TimeDelta::days(2))).num_seconds().abs() < 60,
        "{summary}"
    );
}

#[tokio::test]
async fn every_failure_reaches_lambda_with_a_stable_error_type() {
    let h = Harness::start(Vec::new(), &[]).await;
    let app = h.app(fast_options());
    let typed = |r: Result<Value, (String, String)>| r.expect_err("fails").0;

    let event = json!({"backfill": {"start": "yesterday"}});
    let r = h
        .invoke_typed(&app, event, "req-e1", Duration::from_secs(30))
        .await;
    assert_eq!(typed(r), "Event");

    let event = json!({"backfill": {"start": Utc::now(), "end": Utc::now() - TimeDelta::hours(1)}});
    let r = h
        .invoke_typed(&app, event, "req-e2", Duration::from_secs(30))
        .await;
    assert_eq!(typed(r), "Backfill");

    let bad = h.app_with("PAGE_SIZE", "0", fast_options());
    let r = h
        .invoke_typed(&bad, scheduled_event(), "req-e3", Duration::from_secs(30))
        .await;
    assert_eq!(typed(r), "Config");

    let bad = h.app_with("SECRET_ID", "no-such-secret", fast_options());
    let r = h
        .invoke_typed(&bad, scheduled_event(), "req-e4", Duration::from_secs(30))
        .await;
    assert_eq!(typed(r), "Secret");

    let bad = h.app_with("STATE_BUCKET", "no-such-bucket-m365", fast_options());
    let r = h
        .invoke_typed(&bad, scheduled_event(), "req-e5", Duration::from_secs(30))
        .await;
    assert_eq!(typed(r), "Checkpoint");

    h.graph.inject(Fault::TokenStatus {
        status: 401,
        body: r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#.into(),
    });
    let r = h
        .invoke_typed(&app, scheduled_event(), "req-e6", Duration::from_secs(30))
        .await;
    assert_eq!(typed(r), "Microsoft");
}
