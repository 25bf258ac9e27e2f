//! Fresh and complete: the fresh pass delivers within seconds, the reconciliation pass sends
//! what Microsoft exposed late and the statuses that changed — each once — and nothing else
//! twice. Delays are seconds here (DELAY_SECONDS=12, FRESH_DELAY_SECONDS=2).

use std::collections::HashMap;
use std::time::Duration;

use crate::support::*;
use chrono::{DateTime, TimeDelta, Utc};
use m365_trace_devtools::records::{GraphRecord, generate};
use serde_json::json;

const DELAY: i64 = 12;

fn env() -> Vec<(&'static str, &'static str)> {
    vec![("DELAY_SECONDS", "12"), ("FRESH_DELAY_SECONDS", "2")]
}

/// Lines received per key, and the statuses they carried.
fn statuses(h: &Harness) -> HashMap<String, Vec<String>> {
    let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
    for line in h.trace_lines() {
        let json = line_json(&line);
        by_key
            .entry(line_key(&line))
            .or_default()
            .push(json["Status"].as_str().unwrap_or("").to_owned());
    }
    by_key
}

/// A record received 8 s before `t0`, which the server exposes only once [`expose_now`] is
/// called, after the fresh tick (not at a fixed time, which a loaded machine could reach
/// before that tick).
fn late_record(seed: u64, t0: DateTime<Utc>, id: &str) -> GraphRecord {
    let mut late = generate(
        seed,
        t0 - TimeDelta::seconds(8),
        t0 - TimeDelta::seconds(7),
        1,
    )
    .remove(0);
    late.id = id.into();
    late
}

/// Exposes `late` from now on: Microsoft shows it only after the fresh tick looked.
fn expose_now(h: &Harness, late: &GraphRecord) {
    h.graph.add_late_record(late.clone(), Utc::now());
}

/// Changes `record`'s status on the server; returns the new status.
fn change_status(h: &Harness, record: &GraphRecord) -> &'static str {
    let new_status = if record.status == "failed" {
        "delivered"
    } else {
        "failed"
    };
    assert!(
        h.graph
            .set_status(&record.id, &record.recipient_address, new_status)
    );
    new_status
}

#[tokio::test]
async fn late_records_and_status_changes_arrive_once_each_after_the_fresh_pass() {
    let t0 = Utc::now();
    let records = generate(
        201,
        t0 - TimeDelta::seconds(10),
        t0 - TimeDelta::seconds(4),
        30,
    );
    let h = Harness::start(records.clone(), &env()).await;
    let late = late_record(202, t0, "late-record");
    let app = h.app(fast_options());

    // The fresh pass: within seconds, every visible record once; the late one not yet.
    let first = h.tick(&app, "req-fresh").await.expect("tick");
    expose_now(&h, &late);
    assert_eq!(pass(&first, "fresh")["events_sent"], json!(30), "{first}");
    assert_same_keys(
        h.received_keys(),
        records.iter().map(record_key).collect(),
        "fresh pass",
    );
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert!(
        time(&checkpoint["end"]) > t0 - TimeDelta::seconds(4),
        "fresh: {checkpoint}"
    );
    assert_eq!(
        checkpoint["ledger"].as_array().map(Vec::len),
        Some(1),
        "{checkpoint}"
    );

    // A status changes after the fresh pass sent it.
    let changed = &records[3];
    let new_status = change_status(&h, changed);

    // Once the span is older than DELAY_SECONDS, the reconciliation pass pulls it again.
    until(t0 + TimeDelta::seconds(DELAY)).await;
    let second = h.tick(&app, "req-reconcile").await.expect("tick");
    let reconcile = pass(&second, "reconcile");
    assert_eq!(reconcile["late_records"], json!(1), "{second}");
    assert_eq!(reconcile["status_changes"], json!(1), "{second}");
    assert_eq!(
        reconcile["events_sent"],
        json!(2),
        "only the late one and the change: {second}"
    );

    let by_key = statuses(&h);
    assert_eq!(by_key[&record_key(&late)].len(), 1, "the late record once");
    let changed_lines = &by_key[&record_key(changed)];
    assert_eq!(changed_lines.len(), 2, "once per status: {changed_lines:?}");
    assert!(
        changed_lines[1].eq_ignore_ascii_case(new_status),
        "{changed_lines:?}"
    );
    let twice: Vec<&String> = by_key
        .iter()
        .filter(|(k, v)| v.len() > 1 && **k != record_key(changed))
        .map(|(k, _)| k)
        .collect();
    assert!(twice.is_empty(), "nothing else twice: {twice:?}");
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert!(
        checkpoint.get("ledger").is_none(),
        "ledger read and dropped: {checkpoint}"
    );

    // A later tick sends nothing again.
    let third = h.tick(&app, "req-after").await.expect("tick");
    assert_eq!(third["events_sent"], json!(0), "{third}");
}

#[tokio::test]
async fn a_missing_ledger_object_sends_its_span_again_and_says_how_many() {
    let t0 = Utc::now();
    let records = generate(
        203,
        t0 - TimeDelta::seconds(10),
        t0 - TimeDelta::seconds(4),
        20,
    );
    let h = Harness::start(records.clone(), &env()).await;
    let app = h.app(fast_options());
    h.tick(&app, "req-fresh").await.expect("tick");
    // Delete every ledger object by hand.
    let listed = h
        .clients
        .s3
        .list_objects_v2()
        .bucket(&h.bucket)
        .prefix("m365-message-trace/ledger/")
        .send()
        .await
        .unwrap();
    let keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    assert_eq!(
        keys.len(),
        1,
        "one ledger object next to the checkpoint: {keys:?}"
    );
    // Tagged, so that the bucket's lifecycle rule finds it under any layout (template.yaml).
    let tags = h
        .clients
        .s3
        .get_object_tagging()
        .bucket(&h.bucket)
        .key(&keys[0])
        .send()
        .await
        .unwrap();
    let tags: Vec<(&str, &str)> = tags
        .tag_set()
        .iter()
        .map(|t| (t.key(), t.value()))
        .collect();
    assert_eq!(tags, vec![("m365-trace-to-devo", "ledger")]);
    for key in &keys {
        h.clients
            .s3
            .delete_object()
            .bucket(&h.bucket)
            .key(key)
            .send()
            .await
            .unwrap();
    }

    until(t0 + TimeDelta::seconds(DELAY)).await;
    let second = h.tick(&app, "req-reconcile").await.expect("tick");

    assert_eq!(second["ledger_missing"], json!(20), "{second}");
    let by_key = statuses(&h);
    assert!(
        by_key.values().all(|v| v.len() == 2),
        "sent again, never lost"
    );
    assert_eq!(by_key.len(), 20);
}

#[tokio::test]
async fn a_single_pass_checkpoint_upgrades_in_place_without_sending_anything_twice() {
    let t0 = Utc::now();
    let before = generate(204, t0 - TimeDelta::hours(3), t0 - TimeDelta::hours(2), 15);
    let after = generate(
        205,
        t0 - TimeDelta::minutes(90),
        t0 - TimeDelta::seconds(30),
        15,
    );
    let all: Vec<GraphRecord> = before.iter().chain(&after).cloned().collect();
    let h = Harness::start(all, &[("FRESH_DELAY_SECONDS", "2")]).await;
    // A checkpoint written by the single pass, an hour and three quarters back.
    let end = t0 - TimeDelta::minutes(105);
    h.put_checkpoint(&json!({"version": 1, "end": end, "updated_at": t0}))
        .await;
    let app = h.app(fast_options());

    let summary = h.tick(&app, "req-upgrade").await.expect("tick");

    assert_same_keys(
        h.received_keys(),
        after.iter().map(record_key).collect(),
        "from the old end on, once; nothing before it again",
    );
    assert!(
        time(&summary["checkpoint"]) > t0 - TimeDelta::seconds(5),
        "{summary}"
    );
    assert_eq!(
        time(&summary["complete_until"]),
        end,
        "complete up to the old end; the rest waits for its second look: {summary}"
    );
}

#[tokio::test]
async fn spans_pulled_when_already_old_need_no_second_look() {
    let t0 = Utc::now();
    // Older than DELAY_SECONDS when the fresh pass first pulls them.
    let old = generate(
        206,
        t0 - TimeDelta::minutes(30),
        t0 - TimeDelta::minutes(20),
        10,
    );
    let h = Harness::start(old.clone(), &env()).await;
    let app = h.app(fast_options());
    let first = h.tick(&app, "req-1").await.expect("tick");
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert!(
        checkpoint.get("ledger").is_none(),
        "no ledger for old spans: {checkpoint}"
    );
    // Only the young part of what the fresh pass pulled (the last DELAY_SECONDS) is due.
    let due = checkpoint["reconcile"]["due"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(due.len(), 1, "{checkpoint}");
    assert!(
        time(&due[0][0]) >= t0 - TimeDelta::seconds(DELAY + 1),
        "the old span is not due: {checkpoint}"
    );
    let requests_before = h.trace_requests().len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = h.tick(&app, "req-2").await.expect("tick");

    assert_same_keys(
        h.received_keys(),
        old.iter().map(record_key).collect(),
        "once",
    );
    assert_eq!(pass(&first, "reconcile")["events_sent"], json!(0));
    assert_eq!(
        pass(&second, "reconcile")["records_pulled"],
        json!(0),
        "{second}"
    );
    assert!(
        h.trace_requests().len() - requests_before <= 2,
        "the fresh pass, and the second look at its young span only"
    );
}

#[tokio::test]
async fn when_the_request_budget_is_short_reconciliation_falls_behind_never_the_fresh_pass() {
    let t0 = Utc::now();
    let records = generate(
        207,
        t0 - TimeDelta::seconds(10),
        t0 - TimeDelta::seconds(4),
        20,
    );
    let env = [
        ("DELAY_SECONDS", "12"),
        ("FRESH_DELAY_SECONDS", "2"),
        ("PAGE_SIZE", "5"),
        ("REQUEST_BUDGET_PER_5_MINUTES", "8"),
    ];
    let h = Harness::start(records.clone(), &env).await;
    let mut late = generate(
        208,
        t0 - TimeDelta::seconds(9),
        t0 - TimeDelta::seconds(8),
        1,
    )
    .remove(0);
    late.id = "late-under-budget".into();
    h.put_checkpoint(&json!({"version": 1, "end": t0 - TimeDelta::seconds(11), "updated_at": t0}))
        .await;
    let app = h.app(fast_options());
    h.tick(&app, "req-1").await.expect("fresh tick");
    assert_eq!(h.trace_lines().len(), 20);

    // The span is due for reconciliation, but the budget leaves it one request.
    until(t0 + TimeDelta::seconds(DELAY)).await;
    let newer = generate(
        209,
        t0 + TimeDelta::seconds(7),
        t0 + TimeDelta::seconds(9),
        3,
    );
    let mut all = records.clone();
    all.extend(newer.clone());
    h.graph.set_records(all);
    expose_now(&h, &late);
    let second = h.tick(&app, "req-2").await.expect("tick");
    assert_eq!(
        pass(&second, "reconcile")["caught_up"],
        json!(false),
        "fell behind: {second}"
    );
    assert_eq!(second["caught_up"], json!(false));

    // The next tick's fresh pass is not held back by it.
    until(t0 + TimeDelta::seconds(12)).await;
    let third = h.tick(&app, "req-3").await.expect("tick");
    assert_eq!(pass(&third, "fresh")["caught_up"], json!(true), "{third}");
    let got = h.received_keys();
    for r in &newer {
        assert!(
            got.contains(&record_key(r)),
            "the fresh pass delivered {}",
            record_key(r)
        );
    }

    // Once the budget has room again (five minutes later; here: the history cleared), the
    // reconciliation catches up and the late record arrives.
    let (mut checkpoint, _) = h.checkpoint().await.unwrap();
    checkpoint["recent_requests"] = json!([]);
    h.put_checkpoint(&checkpoint).await;
    let fourth = h.tick(&app, "req-4").await.expect("tick");
    assert_eq!(
        pass(&fourth, "reconcile")["late_records"],
        json!(1),
        "{fourth}"
    );
    let by_key = statuses(&h);
    assert_eq!(by_key[&record_key(&late)].len(), 1);
    assert!(by_key.values().all(|v| v.len() == 1), "nothing twice");
}

#[tokio::test]
async fn the_reporting_web_service_gets_the_same_two_passes() {
    let t0 = Utc::now();
    let records = generate(
        210,
        t0 - TimeDelta::seconds(10),
        t0 - TimeDelta::seconds(4),
        12,
    );
    let mut env = env();
    env.push(("TRACE_API", "reporting"));
    let h = Harness::start(records.clone(), &env).await;
    let late = late_record(211, t0, "late-reporting");
    let app = h.app(fast_options());

    let first = h.tick(&app, "req-fresh").await.expect("tick");
    expose_now(&h, &late);
    assert_eq!(pass(&first, "fresh")["events_sent"], json!(12), "{first}");
    let changed = &records[0];
    change_status(&h, changed);

    until(t0 + TimeDelta::seconds(DELAY)).await;
    let second = h.tick(&app, "req-reconcile").await.expect("tick");
    let reconcile = pass(&second, "reconcile");
    assert_eq!(reconcile["late_records"], json!(1), "{second}");
    assert_eq!(reconcile["status_changes"], json!(1), "{second}");
    let by_key = statuses(&h);
    assert_eq!(by_key[&record_key(&late)].len(), 1);
    assert_eq!(by_key[&record_key(changed)].len(), 2);
    assert_eq!(
        by_key.values().filter(|v| v.len() > 1).count(),
        1,
        "nothing else twice"
    );
}

/// This test is about the single pass (`FRESH_DELAY_SECONDS=0`), the mode the harness no longer
/// runs by default: it waits `DELAY_SECONDS`, and ledger parts a fresh pass left are still
/// reconciled first.
#[tokio::test]
async fn with_the_fresh_pass_off_one_pass_waits_the_delay_and_still_reconciles_the_ledger() {
    let t0 = Utc::now();
    let records = generate(
        212,
        t0 - TimeDelta::seconds(10),
        t0 - TimeDelta::seconds(4),
        10,
    );
    let h = Harness::start(records.clone(), &env()).await;
    let late = late_record(213, t0, "late-single");
    let app = h.app(fast_options());
    h.tick(&app, "req-fresh").await.expect("tick");
    expose_now(&h, &late);
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert_eq!(checkpoint["ledger"].as_array().map(Vec::len), Some(1));
    let fresh_end = time(&checkpoint["end"]);

    // The operator turns the fresh pass off; the span is not yet DELAY_SECONDS old.
    let single = h.app_with("FRESH_DELAY_SECONDS", "0", fast_options());
    let early = h.tick(&single, "req-single-1").await.expect("tick");
    assert_eq!(early["events_sent"], json!(0), "{early}");
    assert_eq!(pass(&early, "single")["caught_up"], json!(true), "{early}");
    assert_eq!(time(&early["checkpoint"]), fresh_end, "never moves back");

    until(t0 + TimeDelta::seconds(DELAY)).await;
    let later = h.tick(&single, "req-single-2").await.expect("tick");
    assert_eq!(
        pass(&later, "reconcile")["late_records"],
        json!(1),
        "{later}"
    );
    let mut expected: Vec<String> = records.iter().map(record_key).collect();
    expected.push(record_key(&late));
    assert_same_keys(h.received_keys(), expected, "each once");
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert!(checkpoint.get("ledger").is_none(), "{checkpoint}");
    assert!(time(&later["checkpoint"]) <= Utc::now() - TimeDelta::seconds(DELAY));
}
