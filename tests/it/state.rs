//! Failures that touch the state in S3, through the real handler: moto behind the SDK client
//! with S3's own failures (`tests/it/support/s3_faults.rs`). An unreadable ledger part is a repeat,
//! never a failed tick; a failed tick gives its lease back; a retried write S3 had applied is
//! ours; a second delivery of the same event leaves. Two passes (the default), with delays of
//! seconds (DELAY_SECONDS=12, FRESH_DELAY_SECONDS=2).

use std::collections::HashMap;

use crate::support::s3_faults::S3Fault;
use crate::support::*;
use chrono::{DateTime, TimeDelta, Utc};
use m365_trace_devtools::records::{GraphRecord, generate};
use serde_json::{Value, json};

const DELAY: i64 = 12;

fn env() -> Vec<(&'static str, &'static str)> {
    vec![("DELAY_SECONDS", "12"), ("FRESH_DELAY_SECONDS", "2")]
}

/// `count` records received 10 to 4 s before `t0`: young enough for a ledger part.
fn young(seed: u64, t0: DateTime<Utc>, count: usize) -> Vec<GraphRecord> {
    generate(
        seed,
        t0 - TimeDelta::seconds(10),
        t0 - TimeDelta::seconds(4),
        count,
    )
}

fn times_received(h: &Harness) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for k in h.received_keys() {
        *seen.entry(k).or_default() += 1;
    }
    seen
}

fn fault(method: &'static str, key: &str, skip: usize, times: usize, status: u16) -> S3Fault {
    S3Fault {
        method,
        key_contains: key.to_owned(),
        skip,
        times,
        status,
        code: match status {
            403 => "AccessDenied",
            _ => "InternalError",
        },
    }
}

#[tokio::test]
async fn a_ledger_part_s3_refuses_is_sent_again_and_counted_and_the_tick_succeeds() {
    let t0 = Utc::now();
    let records = young(301, t0, 20);
    let h = Harness::start(records.clone(), &env()).await;
    let app = h.app(fast_options());
    h.tick(&app, "req-fresh").await.expect("fresh tick");
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert_eq!(checkpoint["ledger"].as_array().map(Vec::len), Some(1));

    // The role may no longer read the part (a policy, a KMS key): 403 every time.
    h.s3_fault(fault("GET", "/ledger/", 0, usize::MAX, 403));
    until(t0 + TimeDelta::seconds(DELAY)).await;
    let second = h
        .tick(&app, "req-reconcile")
        .await
        .expect("the tick succeeds");

    assert_eq!(second["ledger_missing"], json!(20), "{second}");
    assert!(h.s3_faults.answered() >= 2, "read, and retried");
    let seen = times_received(&h);
    assert_eq!(seen.len(), 20);
    assert!(
        seen.values().all(|n| *n == 2),
        "the span sent again: {seen:?}"
    );
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert!(checkpoint.get("ledger").is_none(), "{checkpoint}");
    assert_eq!(checkpoint["lease"], Value::Null);
    assert_eq!(checkpoint["last_error"], Value::Null);
}

#[tokio::test]
async fn a_state_error_inside_a_pass_gives_the_lease_back() {
    let t0 = Utc::now();
    let h = Harness::start(young(302, t0, 10), &env()).await;
    let app = h.app(fast_options());
    // The fresh pass's ledger part cannot be written: S3 answers 500 to every attempt.
    h.s3_fault(fault("PUT", "/ledger/", 0, usize::MAX, 500));

    let (error_type, message) = h
        .invoke_typed(
            &app,
            scheduled_event(),
            "req-failing",
            std::time::Duration::from_secs(120),
        )
        .await
        .expect_err("the tick fails");

    assert_eq!(error_type, "Checkpoint", "{message}");
    assert!(message.contains("/ledger/"), "{message}");
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert_eq!(checkpoint["lease"], Value::Null, "given back: {checkpoint}");
    assert_eq!(checkpoint["last_error"]["error_type"], json!("Checkpoint"));

    // The next tick need not wait for the lease to expire.
    h.s3_faults.clear();
    let next = h.tick(&app, "req-next").await.expect("tick");
    assert_eq!(next["lease"]["outcome"], json!("acquired"), "{next}");
}

#[tokio::test]
async fn a_retried_checkpoint_write_that_s3_had_applied_is_ours() {
    let t0 = Utc::now();
    let records = young(303, t0, 10);
    let h = Harness::start(records.clone(), &env()).await;
    let app = h.app(fast_options());
    // The claim and the first commit reach S3, but their answers are lost (500): the SDK
    // retries each, and S3 answers the retry 412 because the first attempt moved the ETag.
    h.s3_fault(fault("PUT", "checkpoint.json", 0, 1, 500));
    h.s3_fault(fault("PUT", "checkpoint.json", 1, 1, 500));

    let summary = h.tick(&app, "req-retried").await.expect("tick");

    assert_eq!(h.s3_faults.answered(), 2);
    assert_eq!(summary["lease"]["outcome"], json!("acquired"), "{summary}");
    assert_eq!(summary["caught_up"], json!(true), "{summary}");
    assert_same_keys(
        h.received_keys(),
        records.iter().map(record_key).collect(),
        "each once",
    );
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert_eq!(checkpoint["lease"], Value::Null, "released: {checkpoint}");
    assert_eq!(time(&checkpoint["end"]), time(&summary["checkpoint"]));
}

#[tokio::test]
async fn a_second_delivery_of_the_same_event_leaves_without_writing() {
    let t0 = Utc::now();
    let h = Harness::start(young(304, t0, 10), &env()).await;
    let app = h.app(fast_options());
    h.tick(&app, "req-earlier").await.expect("tick");
    // The first delivery of the event "req-dup" runs and holds the lease.
    let (mut checkpoint, _) = h.checkpoint().await.unwrap();
    let until = (Utc::now() + TimeDelta::minutes(5)).to_rfc3339();
    checkpoint["lease"] = json!({"owner": "req-dup", "expires_at": until});
    h.put_checkpoint(&checkpoint).await;
    let (_, etag) = h.checkpoint().await.unwrap();
    let (sent, pulled) = (h.received_keys().len(), h.trace_requests().len());

    let second = h
        .tick(&app, "req-dup")
        .await
        .expect("a summary, not an error");

    assert_eq!(second["lease"]["outcome"], json!("duplicate"), "{second}");
    assert_eq!(second["lease"]["owner"], json!("req-dup"));
    assert_eq!(time(&second["lease"]["until"]), time(&json!(until)));
    assert_eq!(second["events_sent"], json!(0));
    assert_eq!(h.checkpoint().await.unwrap().1, etag, "nothing written");
    assert_eq!(h.received_keys().len(), sent, "nothing sent");
    assert_eq!(h.trace_requests().len(), pulled, "nothing pulled");
}
