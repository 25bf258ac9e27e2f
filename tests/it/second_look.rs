//! Complete means complete: every span the fresh pass pulled young gets its second look — found
//! empty, straddling the young boundary, or with its rows outside the window — a span past the
//! API's lookback is dropped as a reported gap without failing, and a reconciliation window
//! resumes after a refused nextLink or a deadline. Two passes, delays of seconds.

use std::collections::HashMap;

use crate::support::*;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use m365_trace_devtools::records::{GraphRecord, generate};
use m365_trace_to_devo::app::App;
use serde_json::{Value, json};

/// Sleeps until `t`.
async fn until(t: DateTime<Utc>) {
    if let Ok(d) = (t - Utc::now()).to_std() {
        tokio::time::sleep(d).await;
    }
}

/// Now, to the second (windows and records line up on whole seconds).
fn second() -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(TimeDelta::seconds(1))
        .expect("whole second")
}

/// How many lines arrived per record key.
fn arrivals(h: &Harness) -> HashMap<String, usize> {
    let mut by_key = HashMap::new();
    for key in h.received_keys() {
        *by_key.entry(key).or_default() += 1;
    }
    by_key
}

/// One record received at `at`, with `id`.
fn record_at(seed: u64, at: DateTime<Utc>, id: &str) -> GraphRecord {
    let mut r = generate(seed, at, at + TimeDelta::seconds(1), 1).remove(0);
    r.received_date_time = at;
    r.id = id.into();
    r
}

/// Ticks at `at` and checks that its reconciliation pass sent `late` records exposed late.
async fn reconcile_at(h: &Harness, app: &App, at: DateTime<Utc>, id: &str, late: u64) -> Value {
    until(at).await;
    let summary = h.tick(app, id).await.expect("reconcile tick");
    assert_eq!(
        pass(&summary, "reconcile")["late_records"],
        json!(late),
        "{summary}"
    );
    summary
}

/// Every key arrived once, and `expected` are all there.
fn assert_once(h: &Harness, expected: &[&GraphRecord]) {
    let by_key = arrivals(h);
    let twice: Vec<(&String, &usize)> = by_key.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent twice: {twice:?}");
    for r in expected {
        assert_eq!(
            by_key.get(&record_key(r)),
            Some(&1),
            "{} arrived once",
            r.id
        );
    }
}

#[tokio::test]
async fn a_record_exposed_late_in_an_empty_fresh_window_arrives_once_after_the_delay() {
    // The repro: ticks at t0 and t0 + 20 s, the second fresh window empty, a record
    // received inside it exposed after it; a tick after DELAY_SECONDS delivers it, once.
    let t0 = second();
    let busy = generate(
        301,
        t0 - TimeDelta::seconds(10),
        t0 - TimeDelta::seconds(6),
        5,
    );
    let env = [("DELAY_SECONDS", "60"), ("FRESH_DELAY_SECONDS", "5")];
    let h = Harness::start(busy.clone(), &env).await;
    let late_busy = record_at(302, t0 - TimeDelta::seconds(8), "late-in-busy-span");
    let late_quiet = record_at(303, t0 + TimeDelta::seconds(5), "late-in-quiet-span");
    let app = h.app(fast_options());

    // Each late record is exposed once the tick that would have seen it is done (not at a
    // fixed time, which a loaded machine could reach before that tick).
    h.tick(&app, "req-t0").await.expect("tick at t0");
    expose_now(&h, &late_busy);
    until(t0 + TimeDelta::seconds(20)).await;
    let second = h.tick(&app, "req-t20").await.expect("tick at t0 + 20 s");
    expose_now(&h, &late_quiet);
    assert_eq!(
        pass(&second, "fresh")["records_pulled"],
        json!(0),
        "{second}"
    );
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    let due = &checkpoint["reconcile"]["due"];
    assert!(
        due.as_array()
            .is_some_and(|d| d.len() == 1 && time(&d[0][1]) >= t0 + TimeDelta::seconds(14)),
        "the empty young span is due too: {checkpoint}"
    );

    until(t0 + TimeDelta::seconds(76)).await;
    let after = h
        .tick(&app, "req-after-delay")
        .await
        .expect("tick after the delay");
    assert_eq!(
        pass(&after, "reconcile")["late_records"],
        json!(2),
        "{after}"
    );
    assert_once(&h, &[&late_busy, &late_quiet]);
    assert_eq!(h.trace_lines().len(), 7);
    assert!(
        time(&after["complete_until"]) >= t0 + TimeDelta::seconds(15),
        "{after}"
    );
}

#[tokio::test]
async fn a_record_exposed_late_in_the_young_part_of_a_straddling_window_arrives_once() {
    // One fresh window, half older than DELAY_SECONDS when pulled: its only rows are in the
    // old half, the late record in the young half.
    let t0 = second();
    let old = generate(
        311,
        t0 - TimeDelta::seconds(28),
        t0 - TimeDelta::seconds(20),
        4,
    );
    let env = [("DELAY_SECONDS", "12"), ("FRESH_DELAY_SECONDS", "2")];
    let h = Harness::start(old.clone(), &env).await;
    h.put_checkpoint(&json!({"version": 1, "end": t0 - TimeDelta::seconds(30), "updated_at": t0}))
        .await;
    let late = record_at(312, t0 - TimeDelta::seconds(6), "late-in-young-half");
    let app = h.app(fast_options());

    let first = h.tick(&app, "req-fresh").await.expect("fresh tick");
    expose_now(&h, &late);
    assert_eq!(
        pass(&first, "fresh")["windows"],
        json!(1),
        "one window: {first}"
    );
    reconcile_at(&h, &app, t0 + TimeDelta::seconds(12), "req-reconcile", 1).await;
    let mut expected: Vec<&GraphRecord> = old.iter().collect();
    expected.push(&late);
    assert_once(&h, &expected);
}

#[tokio::test]
async fn a_record_exposed_late_in_a_window_whose_rows_fell_outside_it_arrives_once() {
    // The tick's clock is whole seconds, so the fresh window ends at t1 − 2 s exactly: its
    // query (inclusive bounds) returns only a row received at that end, which belongs to the
    // next window, so the window confirms nothing; a record inside it is exposed late.
    let env = [("DELAY_SECONDS", "12"), ("FRESH_DELAY_SECONDS", "2")];
    let h = Harness::start(Vec::new(), &env).await;
    let t1 = second() + TimeDelta::seconds(1);
    let boundary = record_at(321, t1 - TimeDelta::seconds(2), "on-the-boundary");
    h.graph.set_records(vec![boundary.clone()]);
    h.put_checkpoint(&json!({"version": 1, "end": t1 - TimeDelta::seconds(10), "updated_at": t1}))
        .await;
    let late = record_at(322, t1 - TimeDelta::seconds(5), "late-in-the-window");
    let app = h.app(fast_options());

    until(t1 + TimeDelta::milliseconds(50)).await;
    let first = h.tick(&app, "req-fresh").await.expect("fresh tick");
    expose_now(&h, &late);
    assert_eq!(first["outside_window"], json!(1), "{first}");
    assert_eq!(first["events_sent"], json!(0), "{first}");
    reconcile_at(&h, &app, t1 + TimeDelta::seconds(11), "req-reconcile", 1).await;
    assert_once(&h, &[&boundary, &late]);
}

#[tokio::test]
async fn a_span_past_the_lookback_is_dropped_as_a_reported_gap_and_the_tick_succeeds() {
    // A checkpoint as the version before this one wrote it, after a pause of 100 days: a
    // ledger part the reconciliation pass never read, long past Graph's 90-day lookback.
    let t0 = second();
    let recent = generate(
        331,
        t0 - TimeDelta::seconds(20),
        t0 - TimeDelta::seconds(15),
        3,
    );
    let env = [("DELAY_SECONDS", "12"), ("FRESH_DELAY_SECONDS", "2")];
    let h = Harness::start(recent.clone(), &env).await;
    let old = t0 - TimeDelta::days(100);
    h.put_checkpoint(&json!({
        "version": 1,
        "end": t0 - TimeDelta::seconds(25),
        "updated_at": old,
        "reconcile": {"end": old},
        "ledger": [{"start": old, "end": old + TimeDelta::hours(6), "n": 0, "records": 3}],
    }))
    .await;
    let app = h.app(fast_options());

    let summary = h
        .tick(&app, "req-after-pause")
        .await
        .expect("the tick succeeds");

    let gaps = summary["reconcile_gaps"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(gaps.len(), 1, "{summary}");
    assert_eq!(gaps[0]["reason"], json!("lookback"));
    assert_eq!(time(&gaps[0]["from"]), old);
    assert_eq!(time(&gaps[0]["to"]), old + TimeDelta::hours(6));
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert!(
        time(&checkpoint["reconcile"]["end"]) > t0 - TimeDelta::days(90),
        "the position moved on: {checkpoint}"
    );
    assert!(
        checkpoint.get("ledger").is_none(),
        "the part is gone: {checkpoint}"
    );
    assert!(
        time(&summary["complete_until"]) > t0 - TimeDelta::seconds(30),
        "{summary}"
    );
    assert_once(&h, &recent.iter().collect::<Vec<_>>());
}

/// Thirty records the fresh pass delivers in pages of 5, and one record received before them
/// that Microsoft exposes late: [`expose_now`] adds it once the fresh tick is done
/// (not at a fixed time, which a loaded machine could reach before that tick); the span is due
/// for reconciliation at `t0 + 12 s`.
async fn busy_young_span(seed: u64) -> (Harness, DateTime<Utc>, Vec<GraphRecord>, GraphRecord) {
    let t0 = second();
    let records = generate(
        seed,
        t0 - TimeDelta::seconds(9),
        t0 - TimeDelta::seconds(4),
        30,
    );
    let env = [
        ("DELAY_SECONDS", "12"),
        ("FRESH_DELAY_SECONDS", "2"),
        ("PAGE_SIZE", "5"),
    ];
    let h = Harness::start(records.clone(), &env).await;
    h.put_checkpoint(&json!({"version": 1, "end": t0 - TimeDelta::seconds(11), "updated_at": t0}))
        .await;
    let late = record_at(seed + 1, t0 - TimeDelta::seconds(10), "late-and-oldest");
    (h, t0, records, late)
}

/// Exposes `late` from now on, after the tick that must not see it looked at its span.
fn expose_now(h: &Harness, late: &GraphRecord) {
    h.graph.add_late_record(late.clone(), Utc::now());
}

#[tokio::test]
async fn a_reconciliation_window_resumes_after_refused_next_links_and_sends_nothing_twice() {
    let (h, t0, records, late) = busy_young_span(341).await;
    let app = h.app(fast_options());
    h.tick(&app, "req-fresh").await.expect("fresh tick");
    assert_eq!(h.trace_lines().len(), 30);
    expose_now(&h, &late);

    // Every nextLink is refused: each restart from the rest of the window must count the
    // records the ledger holds as progress.
    h.graph.set_refuse_next_links(true);
    reconcile_at(&h, &app, t0 + TimeDelta::seconds(12), "req-reconcile", 1).await;
    let mut expected: Vec<&GraphRecord> = records.iter().collect();
    expected.push(&late);
    assert_once(&h, &expected);
}

#[tokio::test]
async fn a_reconciliation_window_cut_by_the_deadline_resumes_where_it_stood() {
    let (h, t0, records, late) = busy_young_span(351).await;
    let app = h.app(fast_options());
    h.tick(&app, "req-fresh").await.expect("fresh tick");
    expose_now(&h, &late);

    until(t0 + TimeDelta::seconds(12)).await;
    // Pages of 1 s, a deadline 4 s away: the reconciliation window stops after a page or two
    // of records the ledger holds.
    let short = h.short_tick(&app, "req-short").await.expect("short tick");
    assert_eq!(
        pass(&short, "reconcile")["late_records"],
        json!(0),
        "{short}"
    );
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    let partial = &checkpoint["reconcile"]["partial"];
    assert!(
        partial["resume"]["until"].is_string(),
        "the window resumes where it stood: {checkpoint}"
    );

    let next = h.tick(&app, "req-next").await.expect("next tick");
    assert_eq!(pass(&next, "reconcile")["late_records"], json!(1), "{next}");
    assert!(
        pass(&next, "reconcile")["records_pulled"].as_u64() < Some(31),
        "from where it stood, not from the top: {next}"
    );
    let mut expected: Vec<&GraphRecord> = records.iter().collect();
    expected.push(&late);
    assert_once(&h, &expected);
}
