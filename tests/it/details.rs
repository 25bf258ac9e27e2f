//! Delivery details: problem deliveries get their `getDetailsByRecipient` events under
//! `DETAIL_TAG`, once per status, after both passes and within what the request budget leaves;
//! a queue in the checkpoint carries what a tick could not fetch, bounded and counted. Recalled
//! messages arrive as `Recalled`. The default two passes run (the delays are seconds where a
//! test needs the reconciliation pass, and it says so).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::support::*;
use chrono::{TimeDelta, Utc};
use m365_trace_devtools::graph::{Fault, detail_rows, is_details_path};
use m365_trace_devtools::records::{GraphRecord, generate};
use m365_trace_to_devo::app::{App, TimeSource};
use serde_json::{Value, json};

/// The statuses `DETAIL_STATUSES` asks for by default.
const PROBLEMS: [&str; 3] = ["failed", "quarantined", "filteredAsSpam"];

/// `records` with their statuses taken in turn from `statuses`.
fn with_statuses(mut records: Vec<GraphRecord>, statuses: &[&str]) -> Vec<GraphRecord> {
    for (i, r) in records.iter_mut().enumerate() {
        r.status = statuses[i % statuses.len()].to_owned();
    }
    records
}

fn is_problem(r: &GraphRecord) -> bool {
    PROBLEMS.iter().any(|s| s.eq_ignore_ascii_case(&r.status))
}

/// The detail lines received, by `MessageTraceId|RecipientAddress`, as their JSON.
fn details_by_key(h: &Harness) -> HashMap<String, Vec<Value>> {
    let mut by_key: HashMap<String, Vec<Value>> = HashMap::new();
    for line in h.detail_lines() {
        let (header, json) = line.split_once(": ").expect("header: json");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 4, "<14>date time host tag: {line}");
        assert_eq!((parts[2], parts[3]), ("test-collector", DETAIL_TAG));
        let json: Value = serde_json::from_str(json).expect("one JSON object per line");
        let key = format!(
            "{}|{}",
            json["MessageTraceId"].as_str().expect("MessageTraceId"),
            json["RecipientAddress"].as_str().expect("RecipientAddress")
        );
        by_key.entry(key).or_default().push(json);
    }
    by_key
}

/// The events of a delivery's detail lines, in order.
fn events(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["Event"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// The events Graph gives for `record` as it is now.
fn expected_events(record: &GraphRecord) -> Vec<String> {
    detail_rows(record)
        .iter()
        .map(|r| r["event"].as_str().unwrap().to_owned())
        .collect()
}

/// The getDetailsByRecipient requests the server answered.
fn detail_calls(h: &Harness) -> usize {
    h.graph
        .requests()
        .iter()
        .filter(|r| is_details_path(&r.path))
        .count()
}

/// A tick at the stepped clock's instant, with two minutes to go from there.
async fn tick_at(h: &Harness, app: &App, time: &TimeSource, id: &str) -> Value {
    let ahead = (time.now() - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    h.invoke(app, scheduled_event(), id, ahead + Duration::from_secs(120))
        .await
        .unwrap_or_else(|e| panic!("{id}: {e}"))
}

/// Changes `record`'s status to `status` on the server after the fresh tick, and ticks once its
/// span is older than `DELAY_SECONDS` (12 s after `t0`): the reconciliation pass sends the one
/// change.
async fn reconcile_a_change(
    h: &Harness,
    app: &App,
    t0: chrono::DateTime<Utc>,
    record: &GraphRecord,
    status: &str,
) -> Value {
    assert!(
        h.graph
            .set_status(&record.id, &record.recipient_address, status)
    );
    until(t0 + TimeDelta::seconds(12)).await;
    let summary = h.tick(app, "req-reconcile").await.expect("tick");
    assert_eq!(
        pass(&summary, "reconcile")["status_changes"],
        json!(1),
        "{summary}"
    );
    summary
}

#[tokio::test]
async fn failed_quarantined_and_spam_deliveries_get_their_detail_lines_exactly_once() {
    let statuses = [
        "failed",
        "quarantined",
        "filteredAsSpam",
        "delivered",
        "pending",
    ];
    let records = with_statuses(first_window_records(191, 40), &statuses);
    let problems: Vec<&GraphRecord> = records.iter().filter(|r| is_problem(r)).collect();
    let h = Harness::start(records.clone(), &[]).await;
    let app = h.app(fast_options());

    let mut summaries = Vec::new();
    for i in 0..3 {
        summaries.push(h.tick(&app, &format!("req-{i}")).await.expect("tick"));
    }

    // Every problem delivery's events once, in Graph's order; nothing for the others.
    let got = details_by_key(&h);
    let expected: HashMap<String, Vec<String>> = problems
        .iter()
        .map(|r| (record_key(r), expected_events(r)))
        .collect();
    let got_events: HashMap<String, Vec<String>> =
        got.iter().map(|(k, v)| (k.clone(), events(v))).collect();
    assert_eq!(got_events, expected);
    assert_eq!(
        detail_calls(&h),
        problems.len(),
        "each delivery asked about once"
    );
    // Asked like a page of records: gzip, and the Prefer header.
    for call in h
        .graph
        .requests()
        .iter()
        .filter(|r| is_details_path(&r.path))
    {
        assert!(
            call.accept_encoding
                .as_deref()
                .is_some_and(|a| a.contains("gzip")),
            "{call:?}"
        );
        assert_eq!(call.content_encoding.as_deref(), Some("gzip"), "{call:?}");
        assert_eq!(
            call.prefer.as_deref(),
            Some("include-unknown-enum-members"),
            "{call:?}"
        );
    }
    // Joined to its trace line by MessageTraceId + RecipientAddress; the trace record's
    // sender, Message-ID and tenant; the Fail event carries the NDR.
    let trace_keys: HashSet<String> = h.received_keys().into_iter().collect();
    for r in &problems {
        let lines = &got[&record_key(r)];
        assert!(trace_keys.contains(&record_key(r)));
        for line in lines {
            assert_eq!(line["Organization"], json!(TENANT));
            assert_eq!(line["SenderAddress"], json!(r.sender_address));
            assert_eq!(line["MessageId"], json!(r.message_id));
            assert!(
                line["Date"].as_str().is_some_and(|d| d.len() == 27),
                "{line}"
            );
        }
        if r.status == "failed" {
            let fail = lines.last().unwrap();
            assert_eq!(fail["Event"], json!("Fail"));
            assert!(
                fail["Detail"]
                    .as_str()
                    .unwrap()
                    .contains("550 5.1.10 RESOLVER.ADR.RecipientNotFound")
            );
        }
    }
    let rows: usize = expected.values().map(Vec::len).sum();
    assert_eq!(
        summaries[0]["details_sent"],
        json!(rows),
        "{}",
        summaries[0]
    );
    for s in &summaries {
        assert_eq!(
            (&s["details_queued"], &s["details_dropped"]),
            (&json!(0), &json!(0)),
            "{s}"
        );
    }
    assert_eq!(summaries[1]["details_sent"], json!(0));
    assert_eq!(summaries[2]["details_sent"], json!(0));
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert!(
        checkpoint["details"].get("waiting").is_none(),
        "nothing waits: {checkpoint}"
    );
}

#[tokio::test]
async fn a_tight_budget_queues_details_and_later_ticks_drain_them_while_the_passes_keep_their_pace()
{
    let records = with_statuses(first_window_records(192, 30), &["failed"]);
    let h = Harness::start(records.clone(), &[("REQUEST_BUDGET_PER_5_MINUTES", "24")]).await;
    let time = TimeSource::stepped(Utc::now());
    let app = h.app(fast_options()).with_time(time.clone());

    // Tick 1: the passes take their requests, the details what is left of half the budget.
    let first = tick_at(&h, &app, &time, "req-1").await;
    let fetched_first = detail_calls(&h);
    let list_first = h.trace_requests().len();
    assert!(fetched_first > 0, "{first}");
    assert_eq!(fetched_first + list_first, 12, "half of 24: {first}");
    assert_eq!(
        first["details_queued"],
        json!(30 - fetched_first),
        "{first}"
    );
    // Its status line, built after the details: what they sent and what waits, and the
    // requests of both the passes and the details.
    let line = h.status_lines().pop().expect("the status line");
    assert_eq!(
        line["details_sent"],
        json!(h.detail_lines().len()),
        "{line}"
    );
    assert_eq!(
        (
            &line["details_sent"],
            &line["details_queued"],
            &line["requests"]
        ),
        (
            &first["details_sent"],
            &json!(30 - fetched_first),
            &json!(12)
        ),
        "{line}"
    );

    // Tick 2, a minute later: new records for the fresh pass, with a quarter of the budget.
    let t0 = time.now();
    let fresh = with_statuses(
        generate(
            193,
            t0 - TimeDelta::seconds(590),
            t0 - TimeDelta::seconds(560),
            3,
        ),
        &["delivered", "failed", "delivered"],
    );
    for r in &fresh {
        h.graph.add_late_record(r.clone(), Utc::now());
    }
    time.advance(TimeDelta::seconds(60));
    let second = tick_at(&h, &app, &time, "req-2").await;
    assert_eq!(pass(&second, "fresh")["caught_up"], json!(true), "{second}");
    assert_eq!(
        pass(&second, "reconcile")["caught_up"],
        json!(true),
        "the details never starve the reconciliation either: {second}"
    );
    let keys: HashSet<String> = h.received_keys().into_iter().collect();
    for r in &fresh {
        assert!(
            keys.contains(&record_key(r)),
            "the fresh pass kept its pace: {second}"
        );
    }
    assert_eq!(
        detail_calls(&h),
        fetched_first,
        "the share was used: {second}"
    );
    assert_eq!(
        second["details_queued"],
        json!(31 - fetched_first),
        "{second}"
    );

    // Later ticks, five minutes apart, drain the queue oldest first.
    let mut queued = 31 - fetched_first;
    for n in 3..12 {
        if queued == 0 {
            break;
        }
        time.advance(TimeDelta::minutes(5));
        let s = tick_at(&h, &app, &time, &format!("req-{n}")).await;
        assert_eq!(pass(&s, "fresh")["caught_up"], json!(true), "{s}");
        let now_queued = s["details_queued"].as_u64().unwrap() as usize;
        assert!(now_queued < queued, "drains: {s}");
        queued = now_queued;
    }
    assert_eq!(queued, 0);
    let all: Vec<&GraphRecord> = records
        .iter()
        .chain(&fresh)
        .filter(|r| is_problem(r))
        .collect();
    let got = details_by_key(&h);
    for r in &all {
        assert_eq!(
            events(&got[&record_key(r)]),
            expected_events(r),
            "once each"
        );
    }
    assert_eq!(got.len(), all.len());
    assert_eq!(detail_calls(&h), all.len(), "each fetched once");
}

#[tokio::test]
async fn a_pending_delivery_that_fails_later_gets_its_details_again_once() {
    // DETAIL_PENDING_AFTER_SECONDS=0: pending deliveries get details too; the delays are
    // seconds (DELAY_SECONDS=12, FRESH_DELAY_SECONDS=2) so that the reconciliation pass runs.
    let t0 = Utc::now();
    let records = with_statuses(
        generate(
            194,
            t0 - TimeDelta::seconds(10),
            t0 - TimeDelta::seconds(4),
            6,
        ),
        &["pending", "delivered"],
    );
    let env = [
        ("DELAY_SECONDS", "12"),
        ("FRESH_DELAY_SECONDS", "2"),
        ("DETAIL_PENDING_AFTER_SECONDS", "0"),
    ];
    let h = Harness::start(records.clone(), &env).await;
    let app = h.app(fast_options());
    let pending: Vec<&GraphRecord> = records.iter().filter(|r| r.status == "pending").collect();

    let first = h.tick(&app, "req-fresh").await.expect("tick");
    assert_eq!(detail_calls(&h), pending.len(), "{first}");
    let changed = pending[0];
    let second = reconcile_a_change(&h, &app, t0, changed, "failed").await;
    assert_eq!(
        detail_calls(&h),
        pending.len() + 1,
        "the new status, once: {second}"
    );
    let third = h.tick(&app, "req-again").await.expect("tick");
    assert_eq!(detail_calls(&h), pending.len() + 1, "{third}");

    let got = details_by_key(&h);
    let failed_now = GraphRecord {
        status: "failed".into(),
        ..(*changed).clone()
    };
    let mut both = expected_events(changed);
    both.extend(expected_events(&failed_now));
    assert_eq!(
        events(&got[&record_key(changed)]),
        both,
        "pending, then failed"
    );
    assert!(both.contains(&"Defer".to_owned()) && both.contains(&"Fail".to_owned()));
    for r in &pending[1..] {
        assert_eq!(events(&got[&record_key(r)]), expected_events(r));
    }
}

#[tokio::test]
async fn a_recalled_message_arrives_as_recalled() {
    // The delays are seconds (DELAY_SECONDS=12, FRESH_DELAY_SECONDS=2): the recall is a status
    // change the reconciliation pass sends.
    let t0 = Utc::now();
    let records = with_statuses(
        generate(
            195,
            t0 - TimeDelta::seconds(10),
            t0 - TimeDelta::seconds(4),
            5,
        ),
        &["delivered"],
    );
    let env = [("DELAY_SECONDS", "12"), ("FRESH_DELAY_SECONDS", "2")];
    let h = Harness::start(records.clone(), &env).await;
    let app = h.app(fast_options());
    h.tick(&app, "req-fresh").await.expect("tick");
    let recalled = &records[2];
    reconcile_a_change(&h, &app, t0, recalled, "recalled").await;
    let statuses: Vec<String> = h
        .trace_lines()
        .iter()
        .filter(|l| line_key(l) == record_key(recalled))
        .map(|l| line_json(l)["Status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["Delivered", "Recalled"]);
    assert!(
        h.detail_lines().is_empty(),
        "recalled is not in DETAIL_STATUSES"
    );
}

#[tokio::test]
async fn empty_detail_statuses_send_no_detail_line_and_make_no_detail_call() {
    let records = with_statuses(first_window_records(196, 20), &PROBLEMS);
    let h = Harness::start(records.clone(), &[("DETAIL_STATUSES", "")]).await;
    let app = h.app(fast_options());
    let summary = h.tick(&app, "req-off").await.expect("tick");
    assert_same_keys(
        h.received_keys(),
        records.iter().map(record_key).collect(),
        "every trace line",
    );
    assert_eq!(detail_calls(&h), 0);
    assert!(h.detail_lines().is_empty());
    assert_eq!(
        (&summary["details_sent"], &summary["details_queued"]),
        (&json!(0), &json!(0))
    );
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert!(checkpoint.get("details").is_none(), "{checkpoint}");
}

#[tokio::test]
async fn a_full_queue_drops_the_newest_deliveries_and_counts_them() {
    let records = with_statuses(first_window_records(197, 12), &["failed"]);
    let env = [("DETAIL_QUEUE_MAX", "5")];
    let h = Harness::start(records.clone(), &env).await;
    let app = h.app(fast_options());
    let first = h.tick(&app, "req-1").await.expect("tick");
    assert_eq!(first["details_dropped"], json!(7), "{first}");
    let second = h.tick(&app, "req-2").await.expect("tick");
    assert_eq!(
        second["details_dropped"],
        json!(0),
        "counted once: {second}"
    );
    // The five oldest got their details; the newest seven none.
    let mut by_age = records.clone();
    by_age.sort_by_key(|r| {
        (
            r.received_date_time,
            r.id.clone(),
            r.recipient_address.clone(),
        )
    });
    let got = details_by_key(&h);
    let kept: HashSet<String> = by_age[..5].iter().map(record_key).collect();
    assert_eq!(got.keys().cloned().collect::<HashSet<_>>(), kept);
    assert_eq!(detail_calls(&h), 5);
}

#[tokio::test]
async fn a_429_stops_the_details_for_the_tick_and_a_delivery_gone_is_dropped_not_retried() {
    let records = with_statuses(first_window_records(198, 10), &["quarantined"]);
    // A budget the first tick's passes use up: every delivery waits in the queue.
    let h = Harness::start(records.clone(), &[("REQUEST_BUDGET_PER_5_MINUTES", "10")]).await;
    let time = TimeSource::stepped(Utc::now());
    let app = h.app(fast_options()).with_time(time.clone());
    let first = tick_at(&h, &app, &time, "req-1").await;
    let waiting = first["details_queued"].as_u64().unwrap();
    assert!(waiting > 0, "{first}");

    // Another tool spends the tenant's quota: the next tick's two list calls (fresh and
    // reconciliation) get through, its first detail call is answered 429.
    time.advance(TimeDelta::minutes(5));
    let calls = detail_calls(&h);
    h.graph.set_throttle(Some((2, Duration::from_secs(300))));
    let second = tick_at(&h, &app, &time, "req-2").await;
    assert_eq!(
        detail_calls(&h),
        calls + 1,
        "stopped at the first 429: {second}"
    );
    assert_eq!(second["throttled_requests"], json!(1), "{second}");
    // Three requests in the last five minutes, under the budget of 10: another application
    // spends the quota. The detail call's 429 counts as contention like a list call's, lowers
    // the budget, and the status line says so.
    assert_eq!(
        (&second["quota_contention"], &second["request_budget"]),
        (&json!(1), &json!(5)),
        "{second}"
    );
    let line = h.status_lines().pop().expect("the status line");
    assert_eq!(
        (
            &line["throttled_requests"],
            &line["quota_contention"],
            &line["request_budget"]
        ),
        (&json!(1), &json!(1), &json!(5)),
        "{line}"
    );
    assert_eq!(second["details_queued"], json!(waiting), "kept: {second}");
    assert_eq!(second["details_sent"], json!(0));

    // Microsoft no longer has one delivery: dropped with its reason, counted, never retried.
    h.graph.set_throttle(None);
    let gone = &records[0];
    let kept: Vec<GraphRecord> = records[1..].to_vec();
    h.graph.set_records(kept.clone());
    let (mut dropped, mut queued) = (0, waiting);
    for n in 3..10 {
        if queued == 0 {
            break;
        }
        time.advance(TimeDelta::minutes(5));
        let s = tick_at(&h, &app, &time, &format!("req-{n}")).await;
        dropped += s["details_dropped"].as_u64().unwrap();
        queued = s["details_queued"].as_u64().unwrap();
    }
    assert_eq!((dropped, queued), (1, 0));
    let answered_404 = h
        .graph
        .requests()
        .iter()
        .filter(|r| is_details_path(&r.path) && r.status == 404)
        .count();
    assert_eq!(answered_404, 1, "dropped at its first 404, not tried again");
    let calls = detail_calls(&h);
    time.advance(TimeDelta::minutes(5));
    let last = tick_at(&h, &app, &time, "req-last").await;
    assert_eq!(detail_calls(&h), calls, "not asked again: {last}");
    let got = details_by_key(&h);
    assert!(!got.contains_key(&record_key(gone)));
    for r in kept.iter().filter(|r| is_problem(r)) {
        assert_eq!(
            events(&got[&record_key(r)]),
            expected_events(r),
            "once each"
        );
    }
}

#[tokio::test]
async fn a_relay_cut_during_the_details_sends_them_again_and_counts_what_may_arrive_twice() {
    let records = with_statuses(first_window_records(199, 10), &["failed"]);
    let h = Harness::start(records.clone(), &[]).await;
    let time = TimeSource::stepped(Utc::now());
    // Tick 1 with a budget its passes use up: every delivery waits in the queue.
    let tight = h
        .app_with("REQUEST_BUDGET_PER_5_MINUTES", "8", fast_options())
        .with_time(time.clone());
    let first = tick_at(&h, &tight, &time, "req-1").await;
    assert_eq!(first["details_queued"], json!(10), "{first}");

    // Tick 2: the passes send no line (no stream); the details' stream is cut after 2 lines.
    let app = h.app(fast_options()).with_time(time.clone());
    time.advance(TimeDelta::minutes(5));
    h.devo.cut_next_connection_after(2);
    let second = tick_at(&h, &app, &time, "req-2").await;
    assert_eq!(
        second["details_queued"],
        json!(10),
        "nothing confirmed: {second}"
    );
    assert_eq!(second["details_sent"], json!(0), "{second}");
    let unconfirmed = second["unconfirmed_lines"].as_u64().unwrap();
    assert!(unconfirmed >= 2, "{second}");
    // The stage stopped at the broken stream.
    let fetched = detail_calls(&h);
    assert!((1..10).contains(&fetched), "{fetched}");

    // Tick 3 sends them again: every line arrives, at most the unconfirmed ones twice.
    time.advance(TimeDelta::minutes(5));
    let third = tick_at(&h, &app, &time, "req-3").await;
    assert_eq!(third["details_queued"], json!(0), "{third}");
    assert_eq!(
        detail_calls(&h),
        10 + fetched,
        "asked twice only for what was not delivered"
    );
    let expected: usize = records.iter().map(|r| expected_events(r).len()).sum();
    let got = details_by_key(&h);
    let received: usize = got.values().map(Vec::len).sum();
    assert_eq!(
        received,
        expected + 2,
        "the 2 lines the relay read before the cut, twice"
    );
    assert!(received - expected <= unconfirmed as usize);
    for r in &records {
        // Each event once, the repeats of the cut aside.
        let mut distinct = HashSet::new();
        let seen: Vec<Value> = got[&record_key(r)]
            .iter()
            .filter(|l| distinct.insert((l["Event"].clone(), l["Date"].clone())))
            .cloned()
            .collect();
        assert_eq!(events(&seen), expected_events(r));
    }
}

#[tokio::test]
async fn deliveries_are_queued_with_the_window_that_found_them_even_when_the_tick_then_dies() {
    let records = with_statuses(first_window_records(200, 8), &["failed", "delivered"]);
    let h = Harness::start(records.clone(), &[]).await;
    // The first window's page comes at once, the second window's answer is slow; the
    // function dies while it waits for it (the invocation is dropped: no release, no
    // summary), once the first window is committed.
    h.graph.inject(Fault::Delay(Duration::ZERO));
    h.graph.inject(Fault::Delay(Duration::from_secs(30)));
    let time = TimeSource::stepped(Utc::now());
    let app = h.app(fast_options()).with_time(time.clone());
    let mut tick = Box::pin(h.invoke(
        &app,
        scheduled_event(),
        "req-dies",
        Duration::from_secs(120),
    ));
    let first_window_committed = async {
        loop {
            if let Some((checkpoint, _)) = h.checkpoint().await
                && checkpoint["end"].is_string()
            {
                return checkpoint;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let checkpoint = tokio::select! {
        ended = &mut tick => panic!("the tick ended while its second window waited: {ended:?}"),
        checkpoint = first_window_committed => checkpoint,
    };
    drop(tick); // the invocation dies here
    assert_eq!(detail_calls(&h), 0);
    let waiting = checkpoint["details"]["waiting"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        waiting.len(),
        4,
        "committed with the first window: {checkpoint}"
    );

    // Once its lease expired, the next tick takes over and drains them.
    time.advance(TimeDelta::minutes(5));
    let summary = tick_at(&h, &app, &time, "req-next").await;
    assert_eq!(summary["details_queued"], json!(0), "{summary}");
    let got = details_by_key(&h);
    for r in records.iter().filter(|r| is_problem(r)) {
        assert_eq!(events(&got[&record_key(r)]), expected_events(r));
    }
    assert_eq!(got.len(), 4);
}

#[tokio::test]
async fn the_reporting_web_service_has_no_details_and_its_ticks_do_not_fail_for_it() {
    // TRACE_API=reporting: the Reporting Web Service has no getDetailsByRecipient.
    let records = with_statuses(first_window_records(201, 20), &PROBLEMS);
    let h = Harness::start(records.clone(), &[("TRACE_API", "reporting")]).await;
    let app = h.app(fast_options());
    let summary = h.tick(&app, "req-reporting").await.expect("tick");
    assert_eq!(summary["api"], json!("reporting"));
    assert_eq!(summary["events_sent"], json!(20), "{summary}");
    assert_eq!(detail_calls(&h), 0);
    assert!(h.detail_lines().is_empty());
    assert_eq!(summary["details_queued"], json!(0));
}
