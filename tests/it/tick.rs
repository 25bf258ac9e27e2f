//! One scheduled tick end to end: moto (S3 + Secrets Manager), the Graph-like server and the
//! mutual-TLS relay, through the real handler.

use std::collections::HashMap;
use std::time::Duration;

use crate::support::*;
use chrono::{DurationRound, SubsecRound, TimeDelta, Utc};
use m365_trace_devtools::graph::Fault;
use m365_trace_devtools::records::{GraphRecord, generate};
use m365_trace_to_devo::app::TickOptions;
use m365_trace_to_devo::app::TimeSource;
use m365_trace_to_devo::checkpoint;
use m365_trace_to_devo::state::S3Store;
use m365_trace_to_devo::summary::LeaseReport;
use m365_trace_to_devo::tick::TickRequest;
use m365_trace_to_devo::tick::{Claim, Claimed};
use serde_json::json;

fn counts(keys: &[String]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for k in keys {
        *m.entry(k.clone()).or_insert(0) += 1;
    }
    m
}

#[tokio::test]
async fn fresh_start_delivers_every_record_once_across_windows_and_pages() {
    let now = Utc::now();
    let records = generate(
        1,
        now - TimeDelta::days(2) - TimeDelta::hours(1),
        now - TimeDelta::hours(23),
        600,
    );
    let h = Harness::start(records.clone(), &[]).await;
    let app = h.app(fast_options());

    let summary = h.tick(&app, "req-fresh-1").await.expect("tick");

    // Two passes (the default): the checkpoint's end is now − FRESH_DELAY_SECONDS; the start
    // was now − HISTORIC_DAYS.
    let end = time(&summary["checkpoint"]);
    let fresh_delay = TimeDelta::seconds(FRESH_DELAY_SECONDS);
    let start = end + fresh_delay - TimeDelta::days(2);
    assert!(end <= Utc::now() - fresh_delay && end >= now.trunc_subsecs(0) - fresh_delay);
    let got = h.received_keys();
    let expected = expected_keys(&records, start, end);
    assert!(expected.len() > 400, "the data set covers the range");
    assert_eq!(
        sorted(got.clone()),
        expected,
        "every record in [start, end) exactly once"
    );
    assert_eq!(summary["events_sent"], json!(got.len()));
    assert_eq!(summary["windows"], json!(8), "47 h 50 min in 6 h windows");
    assert!(
        summary["pages"].as_u64().unwrap() >= 12,
        "≥ 3 pages a window: {summary}"
    );
    assert_eq!(summary["caught_up"], json!(true));
    assert_eq!(summary["lease"]["outcome"], json!("acquired"));
    assert_eq!(summary["lease"]["owner"], json!("req-fresh-1"));

    // Lines carry the Reporting Web Service field names.
    let first = line_json(&h.trace_lines()[0]);
    for field in [
        "Organization",
        "MessageId",
        "Received",
        "SenderAddress",
        "RecipientAddress",
        "Subject",
        "Status",
        "ToIP",
        "FromIP",
        "Size",
        "MessageTraceId",
        "StartDate",
        "EndDate",
        "Index",
    ] {
        assert!(first.get(field).is_some(), "{field} in {first}");
    }
    assert_eq!(first["Organization"], json!(TENANT));

    // Every request followed the documented API: both bounds, $top. The summary counts the
    // delivery details' requests too.
    let traces: Vec<_> = h
        .graph
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/messageTraces"))
        .collect();
    let details = h.graph.detail_requests();
    assert_eq!(
        (traces.len() + details) as u64,
        summary["requests"].as_u64().unwrap()
    );
    assert!(
        traces
            .iter()
            .all(|r| r.status == 200 && r.query.contains("$top=50"))
    );
    assert!(
        traces
            .iter()
            .all(|r| r.query.contains("receivedDateTime ge ")
                && r.query.contains(" and receivedDateTime le "))
    );

    let (checkpoint, _) = h.checkpoint().await.expect("checkpoint written");
    assert_eq!(time(&checkpoint["end"]), end);
    assert_eq!(checkpoint["lease"], json!(null), "lease released");
    assert_eq!(checkpoint["partial"], json!(null));

    // A second tick finds nothing new and sends nothing.
    let again = h.tick(&app, "req-fresh-2").await.expect("second tick");
    assert_eq!(again["events_sent"], json!(0));
    assert_eq!(again["caught_up"], json!(true));
    assert_eq!(h.received_keys().len(), got.len());
    assert!(
        time(&again["checkpoint"]) >= end,
        "moves forward with the clock, never back"
    );
}

fn record_at(id: &str, recipient: &str, at: chrono::DateTime<Utc>) -> GraphRecord {
    GraphRecord {
        id: id.into(),
        message_id: format!("<{id}@contoso.example>"),
        received_date_time: at,
        sender_address: "sender@contoso.example".into(),
        recipient_address: recipient.into(),
        subject: Some("boundary\r\nsubject ✓".into()),
        status: "delivered".into(),
        size: 1000,
        from_ip: Some("203.0.113.9".into()),
        to_ip: None,
    }
}

#[tokio::test]
async fn records_with_the_same_instant_on_a_window_boundary_are_sent_once() {
    let now = Utc::now();
    let t0 = (now - TimeDelta::hours(40))
        .duration_trunc(TimeDelta::hours(1))
        .unwrap();
    let mut records = generate(2, t0, t0 + TimeDelta::hours(3), 240);
    // Same instant as the start, the 1 h boundary and the 2 h boundary; several recipients.
    for (i, at) in [t0, t0 + TimeDelta::hours(1), t0 + TimeDelta::hours(2)]
        .into_iter()
        .enumerate()
    {
        for r in 0..4 {
            records.push(record_at(
                &format!("bbbbbbbb-0000-0000-0000-00000000000{i}"),
                &format!("r{r}@contoso.example"),
                at,
            ));
        }
        records.push(record_at(
            &format!("cccccccc-0000-0000-0000-00000000000{i}"),
            "solo@contoso.example",
            at,
        ));
    }
    let h = Harness::start(
        records.clone(),
        &[("MAX_WINDOW_SECONDS", "3600"), ("PAGE_SIZE", "7")],
    )
    .await;
    h.put_checkpoint(&json!({"version": 1, "end": t0, "updated_at": now}))
        .await;
    let app = h.app(fast_options());

    let summary = h.tick(&app, "req-boundary").await.expect("tick");

    let end = time(&summary["checkpoint"]);
    let got = h.received_keys();
    assert_eq!(
        sorted(got.clone()),
        expected_keys(&records, t0, end),
        "each record once"
    );
    let c = counts(&got);
    for i in 0..3 {
        for r in 0..4 {
            assert_eq!(
                c[&format!("bbbbbbbb-0000-0000-0000-00000000000{i}|r{r}@contoso.example")],
                1
            );
        }
    }
    assert!(
        summary["windows"].as_u64().unwrap() >= 15,
        "1 h windows: {summary}"
    );
}

#[tokio::test]
async fn a_live_lease_of_another_owner_means_nothing_is_pulled_or_sent() {
    let now = Utc::now();
    let records = generate(3, now - TimeDelta::days(2), now - TimeDelta::hours(25), 100);
    let h = Harness::start(records, &[]).await;
    let held = json!({"version": 1, "end": now - TimeDelta::days(1) - TimeDelta::hours(12), "updated_at": now,
        "lease": {"owner": "other-invocation", "expires_at": now + TimeDelta::minutes(5)}});
    h.put_checkpoint(&held).await;
    let (_, etag_before) = h.checkpoint().await.unwrap();
    let app = h.app(fast_options());

    let summary = h.tick(&app, "req-second").await.expect("tick");

    assert_eq!(summary["lease"]["outcome"], json!("held_by_other"));
    assert_eq!(summary["lease"]["owner"], json!("other-invocation"));
    assert_eq!(summary["events_sent"], json!(0));
    assert!(h.trace_lines().is_empty());
    assert_eq!(h.devo.connections(), 0);
    assert!(
        h.graph
            .requests()
            .iter()
            .all(|r| !r.path.ends_with("/messageTraces")),
        "no pull"
    );
    let (after, etag_after) = h.checkpoint().await.unwrap();
    assert_eq!(etag_after, etag_before, "checkpoint untouched");
    assert_eq!(after["lease"]["owner"], json!("other-invocation"));
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_the_tick_delivers() {
    let now = Utc::now();
    let records = generate(4, now - TimeDelta::days(2), now - TimeDelta::hours(25), 200);
    let h = Harness::start(records.clone(), &[]).await;
    let start = (now - TimeDelta::hours(36))
        .duration_trunc(TimeDelta::minutes(1))
        .unwrap();
    h.put_checkpoint(&json!({"version": 1, "end": start, "updated_at": now,
        "lease": {"owner": "crashed-invocation", "expires_at": now - TimeDelta::seconds(1)}}))
        .await;
    let app = h.app(fast_options());

    let summary = h.tick(&app, "req-takeover").await.expect("tick");

    assert_eq!(summary["lease"]["outcome"], json!("taken_over"));
    assert_eq!(
        summary["lease"]["previous_owner"],
        json!("crashed-invocation")
    );
    let end = time(&summary["checkpoint"]);
    assert_eq!(
        sorted(h.received_keys()),
        expected_keys(&records, start, end)
    );
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert_eq!(checkpoint["lease"], json!(null));
}

#[tokio::test]
async fn an_etag_changed_between_read_and_claim_means_no_claim_and_no_regression() {
    let now = Utc::now();
    let h = Harness::start(Vec::new(), &[]).await;
    let mine = now - TimeDelta::hours(40);
    h.put_checkpoint(&json!({"version": 1, "end": mine, "updated_at": now}))
        .await;
    let store = S3Store::new(h.clients.s3.clone(), h.bucket.clone());
    let read = checkpoint::load(&store, &h.key()).await.unwrap();
    // Another invocation advances the checkpoint after our read.
    let theirs = now - TimeDelta::hours(30);
    h.put_checkpoint(&json!({"version": 1, "end": theirs, "updated_at": now,
        "lease": {"owner": "other", "expires_at": now + TimeDelta::minutes(4)}}))
        .await;
    let request = TickRequest {
        request_id: "req-stale".into(),
        deadline: now + TimeDelta::minutes(2),
    };

    let outcome = Claimed::claim(
        &store,
        &h.key(),
        read,
        &request.request_id,
        (now, &TimeSource::System),
        now + TimeDelta::minutes(3),
    )
    .await
    .unwrap();

    assert!(
        matches!(
            outcome,
            Claim::Refused {
                report: LeaseReport::Lost { at: "claim" },
                ..
            }
        ),
        "{outcome:?}"
    );
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert_eq!(time(&checkpoint["end"]), theirs, "no regression");
    assert_eq!(checkpoint["lease"]["owner"], json!("other"));

    // And a creation races the same way: If-None-Match: * refuses to overwrite.
    let outcome = Claimed::claim(
        &store,
        &h.key(),
        None,
        &request.request_id,
        (now, &TimeSource::System),
        now + TimeDelta::minutes(3),
    )
    .await
    .unwrap();
    assert!(
        matches!(
            outcome,
            Claim::Refused {
                report: LeaseReport::Lost { .. },
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(time(&h.checkpoint().await.unwrap().0["end"]), theirs);
}

#[tokio::test]
async fn a_checkpoint_changed_during_the_tick_stops_it_without_regression() {
    let now = Utc::now();
    let records = generate(5, now - TimeDelta::days(2), now - TimeDelta::hours(25), 300);
    let h = Harness::start(records, &[]).await;
    h.graph.inject(Fault::Delay(Duration::from_millis(1500)));
    let app = h.app(fast_options());
    let theirs = now - TimeDelta::hours(26);
    let tick = h.tick(&app, "req-slow");
    let intruder = async {
        tokio::time::sleep(Duration::from_millis(600)).await;
        h.put_checkpoint(&json!({"version": 1, "end": theirs, "updated_at": now,
            "lease": {"owner": "intruder", "expires_at": now + TimeDelta::minutes(4)}}))
            .await;
    };
    let (summary, ()) = tokio::join!(tick, intruder);
    let summary = summary.expect("tick");

    assert_eq!(summary["lease"]["outcome"], json!("lost"), "{summary}");
    assert_eq!(
        summary["windows"],
        json!(1),
        "stopped after the first window's commit failed"
    );
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert_eq!(
        time(&checkpoint["end"]),
        theirs,
        "the other writer's checkpoint stands"
    );
    assert_eq!(checkpoint["lease"]["owner"], json!("intruder"));
}

#[tokio::test]
async fn a_relay_cut_mid_window_keeps_the_checkpoint_and_the_next_tick_delivers() {
    let now = Utc::now();
    let records = generate(6, now - TimeDelta::days(2), now - TimeDelta::hours(25), 400);
    let h = Harness::start(records.clone(), &[]).await;
    // One attempt per window: the cut fails the tick (`faults.rs` covers the retries).
    let app = h.app(TickOptions {
        devo_attempts: 1,
        ..fast_options()
    });
    h.devo.cut_next_connection_after(30);

    let failed = h
        .tick(&app, "req-cut")
        .await
        .expect_err("the cut fails the tick");

    assert!(failed.contains("Devo relay"), "{failed}");
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    let start = time(&checkpoint["end"]);
    assert!(
        start <= now - TimeDelta::days(2) + TimeDelta::minutes(1),
        "not advanced past the cut window"
    );
    assert_eq!(
        checkpoint["lease"],
        json!(null),
        "lease released after the failure"
    );
    let cut_lines = h.trace_lines().len();
    assert!(cut_lines >= 30);

    let summary = h.tick(&app, "req-after-cut").await.expect("next tick");
    let end = time(&summary["checkpoint"]);
    let got = h.received_keys();
    let expected = expected_keys(&records, start, end);
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique, expected, "every record arrived");
    // Duplicates only from the first window, the one whose delivery was cut.
    let first_window_end = start + TimeDelta::hours(6);
    let by_key: HashMap<String, &GraphRecord> =
        records.iter().map(|r| (record_key(r), r)).collect();
    for (key, n) in counts(&got) {
        if n > 1 {
            assert_eq!(n, 2);
            assert!(
                by_key[&key].received_date_time < first_window_end,
                "{key} duplicated outside the cut window"
            );
        }
    }
}

#[tokio::test]
async fn a_deadline_inside_a_window_resumes_there_without_loss_or_repeat() {
    let now = Utc::now();
    let records = generate(
        7,
        now - TimeDelta::days(2),
        now - TimeDelta::days(2) + TimeDelta::hours(6),
        500,
    );
    let h = Harness::start(records.clone(), &[]).await;
    let app = h.app(TickOptions {
        commit_reserve: Duration::from_millis(1500),
        ..fast_options()
    });

    let first = h.short_tick(&app, "req-short").await.expect("first tick");

    assert_eq!(first["caught_up"], json!(false), "{first}");
    assert!(
        first["partial"]["resume"]["until"].is_string(),
        "a window left part-way: {first}"
    );
    assert!(first["events_sent"].as_u64().unwrap() > 0);
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert_eq!(checkpoint["partial"], first["partial"]);
    assert_eq!(checkpoint["lease"], json!(null));

    let mut last = first;
    for i in 0..5 {
        if last["caught_up"] == json!(true) {
            break;
        }
        last = h
            .tick(&app, &format!("req-resume-{i}"))
            .await
            .expect("resume tick");
    }
    assert_eq!(last["caught_up"], json!(true));
    let end = time(&last["checkpoint"]);
    let start = end + TimeDelta::seconds(FRESH_DELAY_SECONDS) - TimeDelta::days(2);
    assert_eq!(
        sorted(h.received_keys()),
        expected_keys(&records, start, end),
        "exactly once across the resume"
    );
}

#[tokio::test]
async fn an_invalid_setting_stops_the_tick_before_any_call() {
    let h = Harness::start(Vec::new(), &[("MAX_WINDOW_SECONDS", "30")]).await;
    let app = h.app(fast_options());

    let err = h
        .tick(&app, "req-bad-config")
        .await
        .expect_err("invalid config");

    assert!(err.contains("MAX_WINDOW_SECONDS=\"30\" is invalid: out of range; accepted: a whole number from 60 to 864000"), "{err}");
    assert!(h.graph.requests().is_empty());
    assert!(h.checkpoint().await.is_none(), "S3 untouched");
}
