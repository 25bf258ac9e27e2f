//! Collection health inside Devo: every tick sends one status line per tenant (also when it
//! fails on Microsoft's side), best effort, without changing the tick's outcome; a 429 while
//! under our own budget is contention and lowers the tenant's budget until 429s stop; pages
//! come gzip-compressed. The defaults a user gets (two passes); time is the App's stepped
//! clock where lags and budgets are asserted.

use std::time::Duration;

use crate::support::*;
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use m365_trace_devtools::graph::Fault;
use m365_trace_to_devo::app::TimeSource;
use serde_json::{Value, json};

/// A tick's deadline in these tests.
const DEADLINE: Duration = Duration::from_secs(120);

/// The one status line among `h`'s lines after `before` of them, checked for its framing:
/// `<14>{at} test-collector my.app.m365trace.status: {json}`.
fn only_new_status_line(h: &Harness, before: usize, at: DateTime<Utc>) -> Value {
    let lines: Vec<String> = h
        .devo
        .lines()
        .into_iter()
        .filter(|l| is_status_line(l))
        .collect();
    assert_eq!(
        lines.len(),
        before + 1,
        "one status line per tick: {lines:?}"
    );
    let line = &lines[before];
    let header = format!(
        "<14>{} test-collector {STATUS_TAG}: ",
        at.format("%Y-%m-%d %H:%M:%S%.3f")
    );
    assert!(line.starts_with(&header), "{line}");
    serde_json::from_str(&line[header.len()..]).expect("one JSON object")
}

fn pass_names(summary: &Value) -> Value {
    Value::Array(
        summary["passes"]
            .as_array()
            .expect("passes")
            .iter()
            .map(|p| p["pass"].clone())
            .collect(),
    )
}

/// The failure of a window whose pages Graph keeps answering 500 (every retry).
fn graph_keeps_failing(h: &Harness) {
    for _ in 0..6 {
        h.graph.inject(Fault::TraceStatus {
            status: 500,
            body: r#"{"error":{"code":"InternalServerError","message":"An internal server error occurred."}}"#.into(),
            retry_after: None,
        });
    }
}

/// A `host:port` where nothing listens: a relay that is down.
async fn closed_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    address
}

#[tokio::test]
async fn every_tick_sends_one_status_line_with_its_lags_and_counts() {
    let records = first_window_records(301, 120);
    let h = Harness::start(records.clone(), &[]).await;
    let t0 = Utc::now().trunc_subsecs(0);
    let time = TimeSource::stepped(t0);
    let app = h.app(fast_options()).with_time(time.clone());

    let first = h.tick(&app, "req-health-1").await.expect("tick");
    assert_eq!(first["events_sent"], json!(120), "{first}");
    assert_eq!(first["status_line"], json!("sent"), "{first}");
    let line = only_new_status_line(&h, 0, t0);
    assert_eq!(line["tenant"], json!("default"));
    assert_eq!(line["api"], json!("graph"));
    assert_eq!(line["outcome"], json!("succeeded"));
    assert_eq!(line["passes"], pass_names(&first));
    assert_eq!(line["passes"][0], json!("fresh"));
    // The fresh pass stands at now − FRESH_DELAY_SECONDS; the complete record at now −
    // DELAY_SECONDS (the span the fresh pass pulled young waits for its second look).
    assert_eq!(
        line["fresh_lag_seconds"],
        json!(FRESH_DELAY_SECONDS),
        "{line}"
    );
    assert_eq!(line["complete_lag_seconds"], json!(90_000), "{line}");
    assert_eq!(line["events_sent"], json!(h.trace_lines().len()));
    assert_eq!(line["events_sent"], json!(120));
    assert_eq!(line["requests"], first["requests"]);
    assert_eq!(
        (&line["late_records"], &line["status_changes"]),
        (&json!(0), &json!(0))
    );
    // The delivery details ran before the line was built: their lines and what waits.
    assert!(
        !h.detail_lines().is_empty(),
        "problem deliveries among them"
    );
    assert_eq!(line["details_sent"], json!(h.detail_lines().len()));
    assert_eq!(
        (&line["details_sent"], &line["details_queued"]),
        (&first["details_sent"], &json!(0))
    );
    assert_eq!(
        (&line["throttled_requests"], &line["quota_contention"]),
        (&json!(0), &json!(0))
    );
    assert_eq!(line["request_budget"], json!(90));
    assert_eq!(
        (&line["error_type"], &line["error"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(line["version"], json!(env!("CARGO_PKG_VERSION")));

    // Five minutes later: nothing new, one more line, the fresh pass kept its pace.
    time.advance(TimeDelta::minutes(5));
    let second = h.tick(&app, "req-health-2").await.expect("tick");
    assert_eq!(second["events_sent"], json!(0), "{second}");
    let line = only_new_status_line(&h, 1, t0 + TimeDelta::minutes(5));
    assert_eq!(line["events_sent"], json!(0));
    assert_eq!(
        line["fresh_lag_seconds"],
        json!(FRESH_DELAY_SECONDS),
        "{line}"
    );
    // The reconciliation pass pulled the five minutes that aged past the delay.
    assert_eq!(line["complete_lag_seconds"], json!(90_000), "{line}");
    assert_eq!(
        h.trace_lines().len(),
        120,
        "Devo bills by volume: nothing twice"
    );
}

#[tokio::test]
async fn a_tick_that_fails_on_microsofts_side_sends_its_line_with_the_error_type() {
    let records = first_window_records(302, 40);
    let h = Harness::start(records, &[]).await;
    let t0 = Utc::now().trunc_subsecs(0);
    let time = TimeSource::stepped(t0);
    let app = h.app(fast_options()).with_time(time.clone());

    // The token endpoint refuses the client secret (AADSTS).
    h.graph.inject(Fault::TokenStatus {
        status: 401,
        body: r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID."}"#.into(),
    });
    let (error_type, message) = h
        .invoke_typed(&app, scheduled_event(), "req-aadsts", DEADLINE)
        .await
        .expect_err("the token is refused");
    assert_eq!(error_type, "Microsoft", "{message}");
    let line = only_new_status_line(&h, 0, t0);
    assert_eq!(line["outcome"], json!("failed"));
    assert_eq!(line["error_type"], json!("Microsoft"));
    let error = line["error"].as_str().expect("error text");
    assert!(error.contains("AADSTS7000215"), "{error}");
    assert!(!error.contains(CLIENT_SECRET), "never a secret: {error}");
    assert_eq!(line["events_sent"], json!(0));

    // A good tick, then Graph answers 500 to every retry: the line carries the error and the
    // lags of what was delivered before.
    time.advance(TimeDelta::minutes(5));
    h.tick(&app, "req-good").await.expect("tick");
    let _ = only_new_status_line(&h, 1, t0 + TimeDelta::minutes(5));
    time.advance(TimeDelta::minutes(5));
    graph_keeps_failing(&h);
    let (error_type, message) = h
        .invoke_typed(&app, scheduled_event(), "req-500", DEADLINE)
        .await
        .expect_err("Graph keeps failing");
    assert_eq!(error_type, "Microsoft", "{message}");
    let line = only_new_status_line(&h, 2, t0 + TimeDelta::minutes(10));
    assert_eq!(line["outcome"], json!("failed"));
    assert_eq!(line["error_type"], json!("Microsoft"));
    assert!(
        line["error"].as_str().unwrap().contains("HTTP 500"),
        "{line}"
    );
    assert_eq!(line["requests"], json!(6), "every retry counted: {line}");
    // The fresh pass stood where the good tick left it, five minutes ago.
    assert_eq!(
        line["fresh_lag_seconds"],
        json!(FRESH_DELAY_SECONDS + 300),
        "{line}"
    );
}

#[tokio::test]
async fn an_empty_status_tag_sends_no_status_line() {
    let records = first_window_records(303, 30);
    let h = Harness::start(records.clone(), &[("STATUS_TAG", "")]).await;
    let app = h.app(fast_options());

    let summary = h.tick(&app, "req-off").await.expect("tick");

    assert_eq!(summary["status_line"], json!("off"), "{summary}");
    assert!(h.status_lines().is_empty());
    assert_same_keys(
        h.received_keys(),
        records.iter().map(record_key).collect(),
        "the records all the same",
    );
    assert_eq!(
        h.devo.lines().len(),
        30 + h.detail_lines().len(),
        "nothing but the records and their delivery details"
    );
}

#[tokio::test]
async fn a_relay_that_is_down_changes_neither_a_success_nor_a_failure() {
    // A quiet tenant: nothing to send, so only the status line needs the relay.
    let down = closed_port().await;
    let h = Harness::start(Vec::new(), &[]).await;
    let time = TimeSource::stepped(Utc::now().trunc_subsecs(0));
    let app = h
        .app_with("DEVO_ADDRESS", &down, fast_options())
        .with_time(time.clone());

    let summary = h.tick(&app, "req-quiet").await.expect("the tick succeeds");
    assert_eq!(summary["status_line"], json!("not_sent"), "{summary}");
    assert_eq!(summary["caught_up"], json!(true), "{summary}");

    // Five minutes later Graph fails the tick: its errorType stays Microsoft's, not the
    // relay's.
    time.advance(TimeDelta::minutes(5));
    graph_keeps_failing(&h);
    let (error_type, message) = h
        .invoke_typed(&app, scheduled_event(), "req-both-down", DEADLINE)
        .await
        .expect_err("Graph keeps failing");
    assert_eq!(error_type, "Microsoft", "{message}");
    assert!(message.contains("HTTP 500"), "{message}");
}

#[tokio::test]
async fn a_relay_that_never_answers_holds_the_tick_no_longer_than_its_deadline() {
    // Accepts connections and never completes a TLS handshake.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = silent.local_addr().unwrap().to_string();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let h = Harness::start(Vec::new(), &[]).await;
    let app = h.app_with("DEVO_ADDRESS", &address, fast_options());
    let deadline = Duration::from_secs(6);

    let started = std::time::Instant::now();
    let summary = h
        .invoke(&app, scheduled_event(), "req-silent", deadline)
        .await
        .expect("the tick succeeds");

    assert!(
        started.elapsed() < deadline_bound(deadline),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(summary["status_line"], json!("not_sent"), "{summary}");
    held.abort();
}

#[tokio::test]
async fn a_429_under_our_own_budget_is_contention_and_the_budget_recovers_when_429s_stop() {
    // 100 pages of 10 records; our budget is 20 requests per 5 minutes.
    let records = first_window_records(304, 1000);
    let h = Harness::start(
        records,
        &[("PAGE_SIZE", "10"), ("REQUEST_BUDGET_PER_5_MINUTES", "20")],
    )
    .await;
    let t0 = Utc::now().trunc_subsecs(0);
    let time = TimeSource::stepped(t0);
    let app = h.app(fast_options()).with_time(time.clone());
    // Another application has spent 95 of the tenant's 100 requests: our sixth meets a 429.
    h.graph.set_throttle(Some((100, Duration::from_secs(300))));
    h.graph.spend_quota(95);

    let first = h.tick(&app, "req-contended").await.expect("tick");
    assert_eq!(h.trace_requests().len(), 6, "{first}");
    assert_eq!(first["quota_contention"], json!(1), "{first}");
    assert_eq!(first["throttled_requests"], json!(1), "{first}");
    assert_eq!(first["request_budget"], json!(10), "halved: {first}");
    assert_eq!(
        first["events_sent"],
        json!(50),
        "what came is delivered: {first}"
    );
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert_eq!(
        checkpoint["quota_share"]["limit"],
        json!(10),
        "{checkpoint}"
    );
    let line = only_new_status_line(&h, 0, t0);
    assert_eq!(
        (
            &line["quota_contention"],
            &line["throttled_requests"],
            &line["request_budget"]
        ),
        (&json!(1), &json!(1), &json!(10))
    );

    // The other application stops. A minute later our own six requests are still within the
    // period: the lowered budget leaves room for four.
    h.graph.set_throttle(None);
    let requests = |h: &Harness| h.trace_requests().len();
    let mut before = requests(&h);
    time.advance(TimeDelta::minutes(1));
    let second = h.tick(&app, "req-lowered").await.expect("tick");
    assert_eq!(requests(&h) - before, 4, "{second}");
    assert_eq!(second["quota_contention"], json!(0), "{second}");
    assert_eq!(second["request_budget"], json!(10), "{second}");

    // Then every quiet five minutes gives back a tenth of the budget, up to the whole of it.
    time.advance(TimeDelta::minutes(5));
    for (tick, want) in [12, 14, 16, 18, 20].into_iter().enumerate() {
        before = requests(&h);
        let summary = h
            .tick(&app, &format!("req-recovering-{tick}"))
            .await
            .expect("tick");
        assert_eq!(requests(&h) - before, want, "tick {tick}: {summary}");
        assert_eq!(summary["request_budget"], json!(want), "{summary}");
        time.advance(TimeDelta::minutes(5));
    }
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert!(
        checkpoint.get("quota_share").is_none(),
        "recovered: {checkpoint}"
    );
}

#[tokio::test]
async fn pages_come_gzip_compressed_and_every_record_arrives_intact() {
    let records = first_window_records(305, 150);
    let h = Harness::start(records.clone(), &[]).await;
    let app = h.app(fast_options());

    let summary = h.tick(&app, "req-gzip").await.expect("tick");

    assert_eq!(summary["events_sent"], json!(150), "{summary}");
    let pages = h.trace_requests();
    assert!(!pages.is_empty());
    for page in &pages {
        assert!(
            page.accept_encoding
                .as_deref()
                .is_some_and(|a| a.contains("gzip")),
            "asked for gzip: {page:?}"
        );
        assert_eq!(page.content_encoding.as_deref(), Some("gzip"), "{page:?}");
    }
    // Intact: each record's fields as Graph had them.
    let by_key: std::collections::HashMap<String, &m365_trace_devtools::records::GraphRecord> =
        records.iter().map(|r| (record_key(r), r)).collect();
    for line in h.trace_lines() {
        let json = line_json(&line);
        let record = by_key[&line_key(&line)];
        assert_eq!(json["Subject"], json!(record.subject), "{line}");
        assert_eq!(
            json["SenderAddress"],
            json!(record.sender_address),
            "{line}"
        );
        assert_eq!(json["Size"], json!(record.size), "{line}");
    }
    assert_same_keys(
        h.received_keys(),
        records.iter().map(record_key).collect(),
        "every record once",
    );
}
