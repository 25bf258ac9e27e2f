//! Backfill by invocation and RESET_BEFORE, end to end through the real handler: moto (S3 +
//! Secrets Manager), the Graph-like server and the mutual-TLS relay.

use std::collections::HashMap;
use std::time::Duration;

use crate::support::*;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use m365_trace_devtools::graph::Fault;
use m365_trace_devtools::records::generate;
use m365_trace_to_devo::app::App;
use serde_json::{Value, json};

/// An hour-aligned instant `hours` back.
fn hours_ago(hours: i64) -> DateTime<Utc> {
    (Utc::now() - TimeDelta::hours(hours))
        .duration_trunc(TimeDelta::hours(1))
        .unwrap()
}

fn backfill_event(start: DateTime<Utc>, end: DateTime<Utc>, name: Option<&str>) -> Value {
    let mut b = json!({"start": start, "end": end});
    if let Some(name) = name {
        b["name"] = json!(name);
    }
    json!({ "backfill": b })
}

/// Any object of the harness's bucket, with its ETag.
async fn object(h: &Harness, key: &str) -> Option<(Value, String)> {
    let out = h
        .clients
        .s3
        .get_object()
        .bucket(&h.bucket)
        .key(key)
        .send()
        .await
        .ok()?;
    let etag = out.e_tag().unwrap_or_default().to_owned();
    let body = out.body.collect().await.ok()?.into_bytes();
    Some((serde_json::from_slice(&body).expect("JSON object"), etag))
}

/// Invokes a backfill that must be refused, and returns the error.
async fn refused(h: &Harness, app: &App, event: Value, request_id: &str) -> String {
    h.invoke(app, event, request_id, Duration::from_secs(60))
        .await
        .expect_err("refused")
}

fn count(keys: &[String]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for k in keys {
        *m.entry(k.clone()).or_insert(0) += 1;
    }
    m
}

#[tokio::test]
async fn a_backfill_cut_by_its_deadline_resumes_on_the_next_invocation_exactly_once() {
    let (start, end) = (hours_ago(72), hours_ago(60));
    let records = generate(
        21,
        start - TimeDelta::hours(2),
        end + TimeDelta::hours(2),
        600,
    );
    let h = Harness::start(records.clone(), &[]).await;
    let app = h.app(fast_options());
    for _ in 0..4 {
        h.graph.inject(Fault::Delay(Duration::from_millis(1000)));
    }
    let event = backfill_event(start, end, Some("last-tuesday"));

    let first = h
        .invoke(&app, event.clone(), "req-bf-1", Duration::from_millis(4000))
        .await
        .expect("first invocation");

    let report = &first["backfill"];
    assert_eq!(report["name"], json!("last-tuesday"), "{first}");
    assert_eq!(
        report["key"],
        json!("m365-message-trace/backfill/last-tuesday.json")
    );
    assert_eq!(report["complete"], json!(false), "{first}");
    assert!(report["remaining_seconds"].as_i64().unwrap() > 0, "{first}");
    assert_eq!(
        report["remaining_seconds"].as_i64().unwrap(),
        (end - time(&report["done_until"])).num_seconds()
    );
    assert!(first["events_sent"].as_u64().unwrap() > 0, "{first}");
    let (stored, _) = object(&h, "m365-message-trace/backfill/last-tuesday.json")
        .await
        .expect("the backfill's own checkpoint");
    assert_eq!(stored["lease"], json!(null), "lease released");
    assert_eq!(time(&stored["backfill"]["start"]), start);
    assert_eq!(time(&stored["backfill"]["end"]), end);

    let second = h
        .invoke(&app, event.clone(), "req-bf-2", Duration::from_secs(120))
        .await
        .expect("second invocation");

    assert_eq!(second["backfill"]["complete"], json!(true), "{second}");
    assert_eq!(second["backfill"]["remaining_seconds"], json!(0));
    assert_eq!(time(&second["backfill"]["done_until"]), end);
    assert_eq!(
        sorted(h.received_keys()),
        expected_keys(&records, start, end),
        "every record of [start, end) exactly once across the two invocations"
    );
    assert!(
        h.checkpoint().await.is_none(),
        "the scheduled checkpoint is not created by a backfill"
    );

    // A third invocation of a complete backfill sends nothing.
    let third = h
        .invoke(&app, event, "req-bf-3", Duration::from_secs(120))
        .await
        .expect("third invocation");
    assert_eq!(third["events_sent"], json!(0));
    assert_eq!(third["backfill"]["complete"], json!(true));
}

#[tokio::test]
async fn a_backfill_leaves_the_scheduled_checkpoint_alone_and_each_delivers_its_own() {
    let records = generate(22, hours_ago(44), hours_ago(24), 500);
    let h = Harness::start(records.clone(), &[]).await;
    let app = h.app(fast_options());
    let scheduled_from = hours_ago(40);
    h.put_checkpoint(&json!({"version": 1, "end": scheduled_from, "updated_at": Utc::now()}))
        .await;
    let (_, etag_before) = h.checkpoint().await.unwrap();

    // The backfill alone: the scheduled object keeps its ETag.
    let (bf_start, bf_end) = (hours_ago(43), hours_ago(34));
    let summary = h
        .invoke(
            &app,
            backfill_event(bf_start, bf_end, None),
            "req-bf-alone",
            Duration::from_secs(120),
        )
        .await
        .expect("backfill");
    assert_eq!(summary["backfill"]["complete"], json!(true), "{summary}");
    let name = summary["backfill"]["name"].as_str().unwrap().to_owned();
    assert!(
        object(&h, &format!("m365-message-trace/backfill/{name}.json"))
            .await
            .is_some()
    );
    let (_, etag_after) = h.checkpoint().await.unwrap();
    assert_eq!(
        etag_after, etag_before,
        "scheduled checkpoint byte-identical"
    );
    assert_eq!(
        sorted(h.received_keys()),
        expected_keys(&records, bf_start, bf_end)
    );

    // A second backfill and the tick at the same time, over overlapping ranges.
    let (bf2_start, bf2_end) = (hours_ago(38), hours_ago(30));
    let before = h.received_keys().len();
    let (backfill, tick) = tokio::join!(
        h.invoke(
            &app,
            backfill_event(bf2_start, bf2_end, Some("overlap")),
            "req-bf-overlap",
            Duration::from_secs(120),
        ),
        h.tick(&app, "req-tick-overlap"),
    );
    let backfill = backfill.expect("backfill");
    let tick = tick.expect("tick");
    assert_eq!(
        backfill["lease"]["outcome"],
        json!("acquired"),
        "{backfill}"
    );
    assert_eq!(tick["lease"]["outcome"], json!("acquired"), "{tick}");
    assert_eq!(backfill["backfill"]["complete"], json!(true));
    assert!(tick.get("backfill").is_none(), "{tick}");
    let tick_end = time(&tick["checkpoint"]);
    let got = h.received_keys()[before..].to_vec();
    let mut expected = count(&expected_keys(&records, bf2_start, bf2_end));
    for key in expected_keys(&records, scheduled_from, tick_end) {
        *expected.entry(key).or_insert(0) += 1;
    }
    assert_eq!(
        count(&got),
        expected,
        "each delivers its own range once: the overlap twice, nothing else repeated"
    );
    assert_eq!(
        backfill["events_sent"].as_u64().unwrap() + tick["events_sent"].as_u64().unwrap(),
        got.len() as u64
    );
}

#[tokio::test]
async fn a_new_reset_before_restarts_the_schedule_once_and_records_the_value() {
    let records = generate(23, hours_ago(60), hours_ago(24), 400);
    let h = Harness::start(records.clone(), &[("RESET_BEFORE", "2026-11-01T00:00:00Z")]).await;
    let caught_up = Utc::now() - TimeDelta::hours(25) - TimeDelta::minutes(5);
    h.put_checkpoint(&json!({"version": 1, "end": caught_up, "updated_at": Utc::now()}))
        .await;
    let app = h.app(fast_options());

    let summary = h.tick(&app, "req-reset-1").await.expect("tick");

    assert_eq!(
        summary["reset"]["reset_before"],
        json!("2026-11-01T00:00:00Z"),
        "{summary}"
    );
    assert_eq!(time(&summary["reset"]["previous_checkpoint"]), caught_up);
    let end = time(&summary["checkpoint"]);
    let start = end + TimeDelta::seconds(FRESH_DELAY_SECONDS) - TimeDelta::days(2);
    assert_eq!(
        sorted(h.received_keys()),
        expected_keys(&records, start, end),
        "restarted HISTORIC_DAYS (2) back: those records are sent again"
    );
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert_eq!(checkpoint["reset_before"], json!("2026-11-01T00:00:00Z"));

    // The same value again changes nothing.
    let sent = h.received_keys().len();
    let again = h.tick(&app, "req-reset-2").await.expect("tick");
    assert!(again.get("reset").is_none(), "{again}");
    assert_eq!(again["events_sent"], json!(0));
    assert_eq!(h.received_keys().len(), sent);

    // Another value restarts once more.
    let other = h.app_with("RESET_BEFORE", "2026-11-02T00:00:00+01:00", fast_options());
    let third = h.tick(&other, "req-reset-3").await.expect("tick");
    assert_eq!(
        third["reset"]["previous_value"],
        json!("2026-11-01T00:00:00Z")
    );
    let end = time(&third["checkpoint"]);
    let start = end + TimeDelta::seconds(FRESH_DELAY_SECONDS) - TimeDelta::days(2);
    assert_eq!(
        sorted(h.received_keys()[sent..].to_vec()),
        expected_keys(&records, start, end),
        "the span sent again after the second reset"
    );
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert_eq!(checkpoint["reset_before"], json!("2026-11-01T23:00:00Z"));
}

#[tokio::test]
async fn ranges_the_api_cannot_serve_are_refused_naming_the_limit_before_any_call() {
    let h = Harness::start(Vec::new(), &[]).await;
    let app = h.app(fast_options());
    let now = Utc::now();
    let cases = [
        (hours_ago(30), hours_ago(40), "is not after its start"),
        (
            hours_ago(30),
            hours_ago(30),
            "must not be empty or inverted",
        ),
        (hours_ago(30), now + TimeDelta::hours(1), "is in the future"),
        (
            hours_ago(30),
            now - TimeDelta::hours(2),
            "is after now − DELAY_SECONDS (90000 s)",
        ),
        (
            now - TimeDelta::days(91),
            hours_ago(30),
            "outside the graph API's lookback of 90 days: start at or after now − 90 days + MARGIN_SECONDS",
        ),
    ];
    for (i, (start, end, expected)) in cases.into_iter().enumerate() {
        let id = format!("req-refused-{i}");
        let err = refused(&h, &app, backfill_event(start, end, None), &id).await;
        assert!(err.contains("backfill refused"), "{err}");
        assert!(err.contains(expected), "{expected}: {err}");
    }
    let err = refused(
        &h,
        &app,
        backfill_event(hours_ago(40), hours_ago(30), Some("../escape")),
        "req-refused-name",
    )
    .await;
    assert!(
        err.contains("backfill name \"../escape\" is invalid"),
        "{err}"
    );
    assert!(h.graph.requests().is_empty(), "nothing pulled");
    let listed = h
        .clients
        .s3
        .list_objects_v2()
        .bucket(&h.bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(0), "nothing written");

    // A name already used for another range is refused too.
    let done = h
        .invoke(
            &app,
            backfill_event(hours_ago(40), hours_ago(39), Some("incident")),
            "req-named",
            Duration::from_secs(60),
        )
        .await
        .expect("backfill");
    assert_eq!(done["backfill"]["complete"], json!(true));
    let err = refused(
        &h,
        &app,
        backfill_event(hours_ago(40), hours_ago(38), Some("incident")),
        "req-named-again",
    )
    .await;
    assert!(
        err.contains("backfill \"incident\" already exists for"),
        "{err}"
    );
}
