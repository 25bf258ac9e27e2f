//! Soak of the two passes: a live flow of records for about a minute, some exposed late, some
//! changing status, with faults at every point (throttling, 5xx, truncated pages, refused and
//! expired nextLinks, relay cuts, refusals and idle closes, short deadlines, crashed ticks). It
//! proves: every record arrives, every late one too; each status a record had at its second
//! look arrives; nothing is sent twice outside a cut delivery or a status change; the
//! checkpoint only moves forward; and the pipeline finishes, both passes caught up, no ledger
//! left. Set SOAK_SEED to replay a run.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::support::*;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use m365_trace_devtools::graph::Fault;
use m365_trace_devtools::records::{Rng, generate};
use serde_json::json;

const RUN: Duration = Duration::from_secs(55);
const STATUSES: [&str; 4] = ["delivered", "failed", "pending", "quarantined"];

fn inject_faults(rng: &mut Rng, h: &Harness) {
    if rng.chance(10) {
        h.graph.inject(Fault::TraceStatus {
            status: [429, 500, 503][rng.below(3) as usize],
            body: r#"{"error":{"code":"TooManyRequests","message":"busy"}}"#.into(),
            retry_after: Some(0),
        });
    }
    if rng.chance(8) {
        h.graph.inject(Fault::TruncatedPage);
    }
    if rng.chance(8) {
        h.graph.inject(Fault::ExpireSkipToken);
    }
    h.graph.set_refuse_next_links(rng.chance(10));
    h.devo
        .close_idle_after(rng.chance(10).then(|| Duration::from_millis(150)));
    if rng.chance(10) {
        h.devo.cut_next_connection_after(rng.below(30) as usize);
    }
    if rng.chance(4) {
        h.devo.refuse_next(1 + rng.below(2) as usize);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: minutes of ticks; run by `scripts/test --soak` and CI"]
async fn a_minute_of_live_flow_with_faults_loses_nothing_in_either_pass() {
    let seed: u64 = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_201);
    let ctx = format!("SOAK_SEED={seed}");
    let mut rng = Rng::new(seed);
    let now = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap();
    let records = generate(
        seed,
        now - TimeDelta::seconds(20),
        now + TimeDelta::seconds(50),
        1500,
    );
    let h = Harness::start(
        records.clone(),
        &[
            ("DELAY_SECONDS", "8"),
            ("FRESH_DELAY_SECONDS", "1"),
            ("MAX_WINDOW_SECONDS", "300"),
            ("PAGE_SIZE", "25"),
            ("REQUEST_TIMEOUT_SECONDS", "2"),
            ("REQUEST_BUDGET_PER_5_MINUTES", "1000000"),
        ],
    )
    .await;
    // Exposed late: visible 2 to 5 s after they were received (within DELAY_SECONDS).
    let mut late = generate(
        seed + 1,
        now - TimeDelta::seconds(10),
        now + TimeDelta::seconds(45),
        60,
    );
    for (i, r) in late.iter_mut().enumerate() {
        r.id = format!("late-{i}-{}", r.id);
        let visible = r.received_date_time + TimeDelta::milliseconds(2000 + rng.below(3000) as i64);
        h.graph.add_late_record(r.clone(), visible);
    }
    h.put_checkpoint(
        &json!({"version": 1, "end": now - TimeDelta::seconds(20), "updated_at": now}),
    )
    .await;
    let app = h.app(soak_options());
    let mut final_status: HashMap<String, String> = HashMap::new();
    let mut crashed: HashSet<usize> = HashSet::new();
    let mut last_end: Option<DateTime<Utc>> = None;
    let (started, mut ticks) = (Instant::now(), 0);

    while started.elapsed() < RUN {
        ticks += 1;
        inject_faults(&mut rng, &h);
        // A status changes while its record is younger than DELAY_SECONDS less 4 s.
        let young: Vec<_> = records
            .iter()
            .filter(|r| {
                let age = Utc::now() - r.received_date_time;
                age > TimeDelta::milliseconds(1500) && age < TimeDelta::seconds(4)
            })
            .collect();
        if let Some(r) = young.get(rng.below(young.len().max(1) as u64) as usize) {
            let status = STATUSES[rng.below(4) as usize];
            h.graph.set_status(&r.id, &r.recipient_address, status);
            final_status.insert(record_key(r), status.to_owned());
        }
        let deadline = if rng.chance(15) {
            Duration::from_secs(3)
        } else {
            Duration::from_secs(6)
        };
        let id = format!("soak2-{ticks}");
        let tick = h.invoke(&app, scheduled_event(), &id, deadline);
        if rng.chance(4) {
            let first = h.devo.sessions().len();
            if tokio::time::timeout(Duration::from_millis(30 + rng.below(200)), tick)
                .await
                .is_err()
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
                crashed.extend(first..h.devo.sessions().len());
            }
        } else {
            let _ = tick.await;
        }
        let end = end_of(&h.checkpoint().await);
        if let (Some(previous), Some(end)) = (last_end, end) {
            assert!(
                end >= previous,
                "checkpoint moved backwards: {previous} → {end} {ctx}"
            );
        }
        last_end = end.or(last_end);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Faults off; wait for every span's second look, then finish.
    h.graph.set_refuse_next_links(false);
    h.devo.close_idle_after(None);
    tokio::time::sleep(Duration::from_secs(9)).await;
    let mut finished = None;
    for i in 0..30 {
        if let Ok(s) = h.tick(&app, &format!("soak2-final-{i}")).await
            && s["caught_up"] == json!(true)
        {
            finished = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let summary = finished.unwrap_or_else(|| panic!("the pipeline finished {ctx}"));
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert!(
        checkpoint.get("ledger").is_none(),
        "no ledger left: {checkpoint} {ctx}"
    );

    // What arrived, per key and status, and which lines may repeat.
    let sessions = h.devo.sessions();
    let mut lines: HashMap<(String, String), usize> = HashMap::new();
    let mut may_repeat: HashSet<(String, String)> = HashSet::new();
    for (session, line) in h.devo.lines_by_session() {
        let status = line_json(&line)["Status"]
            .as_str()
            .unwrap_or("")
            .to_ascii_lowercase();
        let pair = (line_key(&line), status);
        *lines.entry(pair.clone()).or_default() += 1;
        let s = &sessions[session];
        if s.cut || !s.clean_close || s.idle_closed || crashed.contains(&session) {
            may_repeat.insert(pair);
        }
    }
    let keys: HashSet<&String> = lines.keys().map(|(k, _)| k).collect();
    let end = time(&summary["checkpoint"]);
    let missing: Vec<String> = records
        .iter()
        .chain(&late)
        .filter(|r| r.received_date_time < end)
        .map(record_key)
        .filter(|k| !keys.contains(k))
        .collect();
    assert!(
        missing.is_empty(),
        "{} never arrived, e.g. {:?} {ctx}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let lost_status: Vec<&String> = final_status
        .iter()
        .filter(|(k, s)| !lines.contains_key(&((*k).clone(), s.to_ascii_lowercase())))
        .map(|(k, _)| k)
        .collect();
    assert!(
        lost_status.is_empty(),
        "final statuses never arrived: {lost_status:?} {ctx}"
    );
    let twice: Vec<&(String, String)> = lines
        .iter()
        .filter(|(pair, n)| **n > 1 && !may_repeat.contains(*pair))
        .map(|(pair, _)| pair)
        .collect();
    assert!(
        twice.is_empty(),
        "sent twice outside a cut delivery: {:?} {ctx}",
        &twice[..twice.len().min(5)]
    );
    eprintln!(
        "soak of the passes {ctx}: {ticks} ticks, {} records + {} late, {} status changes, {} lines, {} sessions",
        records.len(),
        late.len(),
        final_status.len(),
        lines.values().sum::<usize>(),
        sessions.len()
    );
}
