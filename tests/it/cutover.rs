//! `cutover` end to end, with the default two passes and delays (DELAY_SECONDS 25 h,
//! FRESH_DELAY_SECONDS 10 min) on the App's stepped clock over a day and a half: Devo holds an
//! earlier collector's lines (Devo's hosted collector, `Organization` = the tenant's domain, the
//! Reporting Web Service's field values) up to T, minus the records it missed. Whichever comes
//! first — stopping the earlier collector or applying the cut-over — every record from the
//! overlap's start on is in Devo exactly once per status (the earlier collector's line or
//! ours), including records the earlier collector missed, records Microsoft exposed late and
//! lines it wrote after the plan was printed.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use m365_trace_devtools::devo::query::DevoQueryApi;
use m365_trace_devtools::graph::detail_rows;
use m365_trace_devtools::records::{GraphRecord, generate, graph_time};
use m365_trace_to_devo::app::{App, TimeSource};
use m365_trace_to_devo::tenants::Tenant;
use m365_trace_to_devo::verify::audit::{AuditReport, RepairMode};
use m365_trace_to_devo::verify::cutover::plan::{Action, Request};
use m365_trace_to_devo::verify::cutover::{self, Outcome};
use m365_trace_to_devo::verify::run::{self as audit, AuditRequest};
use serde_json::{Value, json};

use crate::support::*;

const TOKEN: &str = "devo-query-CUTOVER-4e1b7a";
const DOMAIN: &str = "contoso.onmicrosoft.com";
const EARLIER_HOST: &str = "hosted-collector";
const TAG: &str = "cloud.office365.messagetracing";

/// The earlier collector's line for `r`, as Devo's hosted collector writes a Reporting Web
/// Service row (the status capitalised, `Received` without a zone, the address in the
/// directory's case when `shout`).
fn earlier_line(r: &GraphRecord, status: &str, shout: bool) -> String {
    let received = graph_time(&r.received_date_time);
    let recipient = if shout {
        r.recipient_address.to_uppercase()
    } else {
        r.recipient_address.clone()
    };
    let mut status = status.to_owned();
    status[..1].make_ascii_uppercase();
    let json = json!({
        "Organization": DOMAIN, "MessageId": r.message_id,
        "Received": received.trim_end_matches('Z'), "SenderAddress": r.sender_address,
        "RecipientAddress": recipient, "Subject": r.subject, "Status": status,
        "ToIP": r.to_ip, "FromIP": r.from_ip, "Size": r.size, "MessageTraceId": r.id,
    });
    format!(
        "<14>{} {EARLIER_HOST} {TAG}: {json}",
        r.received_date_time.format("%Y-%m-%d %H:%M:%S%.3f")
    )
}

/// Key and status of a Devo line (ours or the earlier collector's), the key lower-cased.
fn key_status(line: &str) -> (String, String) {
    let json: Value = serde_json::from_str(line.split_once(": ").expect("tag: json").1).unwrap();
    let key = format!(
        "{}|{}",
        json["MessageTraceId"].as_str().unwrap(),
        json["RecipientAddress"].as_str().unwrap()
    );
    (
        key.to_lowercase(),
        json["Status"].as_str().unwrap().to_lowercase(),
    )
}

/// A tenant taken over from an earlier collector, on a stepped clock.
struct Scenario {
    h: Harness,
    _api: DevoQueryApi,
    app: App,
    time: TimeSource,
    /// Every record Microsoft shows (late ones once exposed).
    records: Vec<GraphRecord>,
    /// Records the earlier collector never writes.
    missed: BTreeSet<String>,
    /// The record the earlier collector wrote as pending; Microsoft says delivered.
    changed: String,
    /// The earlier collector wrote every record received up to here.
    written_to: DateTime<Utc>,
    summaries: Vec<Value>,
}

impl Scenario {
    /// Records from 40 h before `v0` to 32 h after; the earlier collector, an hour and a half
    /// behind, wrote everything received up to `v0` − 90 min, except every 12th record of the
    /// 20 h before that.
    async fn start(v0: DateTime<Utc>) -> Scenario {
        let records = generate(
            811,
            v0 - TimeDelta::hours(40),
            v0 + TimeDelta::hours(32),
            700,
        );
        // The scheduled audit on: it must not count the earlier collector's records as
        // missing.
        let env = [("PAGE_SIZE", "1000"), ("AUDIT_HOURS", "3")];
        let mut h = Harness::start(records.clone(), &env).await;
        let api = h.with_query_api(TOKEN).await;
        let time = TimeSource::stepped(v0);
        let app = h.app(fast_options()).with_time(time.clone());
        let t = v0 - TimeDelta::minutes(90);
        let missed: BTreeSet<String> = records
            .iter()
            .filter(|r| r.received_date_time > t - TimeDelta::hours(20))
            .filter(|r| r.received_date_time <= t)
            .step_by(12)
            .map(record_key)
            .collect();
        let changed = records
            .iter()
            .filter(|r| r.received_date_time > t - TimeDelta::hours(10) && r.status == "delivered")
            .map(record_key)
            .find(|k| !missed.contains(k))
            .expect("a delivered record");
        let mut s = Scenario {
            h,
            _api: api,
            app,
            time,
            records,
            missed,
            changed,
            written_to: v0 - TimeDelta::hours(48),
            summaries: Vec::new(),
        };
        s.earlier_writes_to(t);
        s
    }

    fn now(&self) -> DateTime<Utc> {
        self.time.now()
    }

    fn step(&self, by: TimeDelta) {
        self.time.advance(by);
    }

    /// The earlier collector writes the records received up to `to` it has not written.
    fn earlier_writes_to(&mut self, to: DateTime<Utc>) {
        let lines: Vec<String> = self
            .records
            .iter()
            .filter(|r| r.received_date_time > self.written_to && r.received_date_time <= to)
            .filter(|r| !self.missed.contains(&record_key(r)))
            .enumerate()
            .map(|(i, r)| {
                let status = if record_key(r) == self.changed {
                    "pending"
                } else {
                    r.status.as_str()
                };
                earlier_line(r, status, i % 7 == 0)
            })
            .collect();
        self.h.devo.hold_lines(lines);
        self.written_to = to;
    }

    /// A record received at `at` that Microsoft exposes late: not shown until [`expose`].
    fn late(&mut self, seed: u64, at: DateTime<Utc>) -> GraphRecord {
        let mut r = generate(seed, at, at + TimeDelta::seconds(1), 1).remove(0);
        r.id = format!("late-{seed}");
        self.missed.insert(record_key(&r));
        r
    }

    /// Microsoft shows `r` from now on.
    fn expose(&mut self, r: &GraphRecord) {
        self.h.graph.add_late_record(r.clone(), Utc::now());
        self.records.push(r.clone());
    }

    async fn tick(&mut self) -> Value {
        let id = format!("tick-{}", self.summaries.len());
        let summary = self.h.tick_on_clock(&self.app, &id).await.expect("tick");
        self.summaries.push(summary.clone());
        summary
    }

    async fn cutover(&self, stopped: bool, apply: bool) -> Outcome {
        let tenant = Tenant::single(self.app.config().expect("config"));
        let request = Request {
            organization: Some(DOMAIN.into()),
            stopped,
            replace: false,
        };
        let deadline = self.now() + TimeDelta::seconds(120);
        cutover::run(&self.app, &tenant, &request, apply, deadline)
            .await
            .expect("cutover")
    }

    /// The command line's `audit --repair` of `[from, to)` at the clock's now.
    async fn audit_repair(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> AuditReport {
        let tenant = Tenant::single(self.app.config().expect("config"));
        let request = AuditRequest {
            from,
            to,
            repair: RepairMode::Missing,
        };
        let deadline = self.now() + TimeDelta::seconds(120);
        audit::run(&self.app, &tenant, &request, deadline)
            .await
            .expect("audit")
    }

    /// Ticks every `every` until `until`.
    async fn tick_until(&mut self, until: DateTime<Utc>, every: TimeDelta) {
        while self.now() < until {
            self.step(every);
            self.tick().await;
        }
    }

    /// Checks what Devo holds up to the fresh pass's position: every record once per status,
    /// the earlier collector's line or ours, never both — the records the earlier collector
    /// missed and those Microsoft exposed late included; nothing of ours before `from`, the
    /// overlap's start; and the second look past `until`, the overlap's end.
    async fn assert_once_each(&self, from: DateTime<Utc>, until: DateTime<Utc>) {
        let last = self.summaries.last().expect("a tick");
        assert!(
            time(&last["complete_until"]) > until + TimeDelta::hours(1),
            "{last}"
        );
        let (checkpoint, _) = self.h.checkpoint().await.expect("checkpoint");
        let end = time(&checkpoint["end"]);
        let ours: Vec<(String, String)> =
            self.h.trace_lines().iter().map(|l| key_status(l)).collect();
        let earlier: Vec<(String, String)> = self
            .h
            .devo
            .held_lines()
            .iter()
            .filter(|l| l.contains(EARLIER_HOST))
            .map(|l| key_status(l))
            .collect();
        let mut arrivals: BTreeMap<(String, String), u32> = BTreeMap::new();
        for ks in ours.iter().chain(&earlier) {
            *arrivals.entry(ks.clone()).or_default() += 1;
        }
        let twice: Vec<_> = arrivals.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "arrived twice: {twice:?}");
        let expected: BTreeSet<String> = self
            .records
            .iter()
            .filter(|r| r.received_date_time < end)
            .map(|r| record_key(r).to_lowercase())
            .collect();
        let held: BTreeSet<String> = arrivals.keys().map(|(k, _)| k.clone()).collect();
        let missing: Vec<&String> = expected.difference(&held).collect();
        assert!(
            missing.is_empty(),
            "{} records missing: {missing:?}",
            missing.len()
        );
        let changed = self.changed.to_lowercase();
        let statuses: Vec<&str> = arrivals
            .keys()
            .filter(|(k, _)| *k == changed)
            .map(|(_, s)| s.as_str())
            .collect();
        assert_eq!(
            statuses,
            ["delivered", "pending"],
            "the status change, once"
        );
        let before: Vec<&GraphRecord> = self
            .records
            .iter()
            .filter(|r| r.received_date_time < from)
            .filter(|r| ours.iter().any(|(k, _)| *k == record_key(r).to_lowercase()))
            .collect();
        assert!(before.is_empty(), "sent before the overlap: {before:?}");
        let sent_missed = self
            .missed
            .iter()
            .filter(|k| expected.contains(&k.to_lowercase()))
            .filter(|k| ours.iter().any(|(o, _)| *o == k.to_lowercase()))
            .count();
        let missed_expected = self
            .missed
            .iter()
            .filter(|k| expected.contains(&k.to_lowercase()))
            .count();
        assert_eq!(
            sent_missed, missed_expected,
            "what the earlier collector missed, by us"
        );
        let suppressed: u64 = self
            .summaries
            .iter()
            .map(|s| s["cutover_suppressed"].as_u64().unwrap_or(0))
            .sum();
        assert!(
            suppressed > 100,
            "the overlap's records Devo held: {suppressed}"
        );
        let audits: Vec<&Value> = self
            .summaries
            .iter()
            .filter_map(|s| s.get("audit"))
            .collect();
        assert!(
            audits.iter().all(|a| a["missing"] == 0 && a["extra"] == 0),
            "the scheduled audit found nothing missing: {audits:?}"
        );
        assert!(
            audits
                .iter()
                .map(|a| a["hours"].as_u64().unwrap_or(0))
                .sum::<u64>()
                > 0,
            "the scheduled audit ran after the overlap: {audits:?}"
        );
        self.assert_details_once(from, end, &earlier);
    }

    /// The problem deliveries of `[from, end)` Devo held from the earlier collector get their
    /// detail lines too (it sent none), each delivery's rows once.
    fn assert_details_once(
        &self,
        from: DateTime<Utc>,
        end: DateTime<Utc>,
        earlier: &[(String, String)],
    ) {
        let mut details: BTreeMap<String, usize> = BTreeMap::new();
        for line in self.h.detail_lines() {
            let json: Value = serde_json::from_str(line.split_once(": ").unwrap().1).unwrap();
            let key = format!(
                "{}|{}",
                json["MessageTraceId"].as_str().unwrap(),
                json["RecipientAddress"].as_str().unwrap()
            );
            *details.entry(key.to_lowercase()).or_default() += 1;
        }
        let held: BTreeSet<&String> = earlier.iter().map(|(k, _)| k).collect();
        let problems: Vec<&GraphRecord> = self
            .records
            .iter()
            .filter(|r| r.received_date_time >= from && r.received_date_time < end)
            .filter(|r| ["failed", "quarantined", "filteredAsSpam"].contains(&r.status.as_str()))
            .collect();
        let mut held_detailed = 0;
        for r in &problems {
            let key = record_key(r).to_lowercase();
            if let Some(n) = details.get(&key) {
                assert_eq!(*n, detail_rows(r).len(), "{key}: its detail rows once each");
                held_detailed += usize::from(held.contains(&key));
            }
        }
        let queued = self.summaries.last().unwrap()["details_queued"]
            .as_u64()
            .unwrap_or(0);
        let held_problems = problems
            .iter()
            .filter(|r| held.contains(&record_key(r).to_lowercase()))
            .count();
        assert!(held_problems > 0, "the overlap holds problem deliveries");
        if queued == 0 {
            assert_eq!(
                held_detailed, held_problems,
                "every held problem delivery detailed"
            );
        } else {
            assert!(held_detailed > 0, "held problem deliveries get details");
        }
    }
}

/// The stepped clock's start: four days back, so every window stays inside Graph's lookback.
fn v0() -> DateTime<Utc> {
    (Utc::now() - TimeDelta::days(4))
        .duration_trunc(TimeDelta::hours(1))
        .unwrap()
        + TimeDelta::minutes(20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_before_the_earlier_collector_stops_nothing_twice_nothing_missed() {
    let v0 = v0();
    let mut s = Scenario::start(v0).await;

    // The plan: nothing written.
    let plan = s.cutover(false, false).await;
    let t = s.h.devo.held_lines().len();
    assert!(t > 300, "the earlier collector's lines: {t}");
    assert_eq!(plan.plan.action, Action::Start);
    assert!(!plan.written);
    assert!(s.h.checkpoint().await.is_none(), "the plan writes nothing");
    let newest_at_plan = plan.plan.found.as_ref().unwrap().newest;
    assert!(newest_at_plan <= v0 - TimeDelta::minutes(90));

    // The earlier collector writes on after the plan was printed, an hour behind (longer than
    // the fresh pass's delay); then the cut-over is applied while it still runs.
    s.earlier_writes_to(v0 - TimeDelta::hours(1));
    let applied = s.cutover(false, true).await;
    assert!(applied.written);
    let from = applied.plan.cutover.from;
    assert!(applied.plan.found.as_ref().unwrap().newest > newest_at_plan);
    assert_eq!(
        from,
        applied.plan.found.as_ref().unwrap().newest - TimeDelta::hours(25)
    );
    assert_eq!(applied.plan.cutover.until, None);

    // It keeps running for three hours; a record it missed is exposed late meanwhile.
    let late_while_running = s.late(901, v0 + TimeDelta::minutes(40));
    for hour in 0..3 {
        let summary = s.tick().await;
        let end = time(&summary["checkpoint"]);
        assert!(
            end <= s.now() - TimeDelta::hours(25),
            "while it may deliver, the pass waits DELAY_SECONDS: {summary}"
        );
        if hour == 0 {
            s.expose(&late_while_running);
        }
        s.step(TimeDelta::hours(1));
        s.earlier_writes_to(s.now() - TimeDelta::hours(1));
    }

    // Stopped; then the operator says so.
    let stop = s.cutover(true, true).await;
    assert_eq!(stop.plan.action, Action::Stop);
    let until = stop.plan.cutover.until.expect("until");
    assert_eq!(stop.plan.cutover.from, from, "the overlap's start stays");
    s.tick().await;
    s.step(TimeDelta::minutes(10));
    let caught_up = s.tick().await;
    assert!(
        time(&caught_up["checkpoint"]) > s.now() - TimeDelta::minutes(11),
        "{caught_up}"
    );
    // Exposed late after the tick that read their hours: one in the overlap, one after it.
    let late_in_overlap = s.late(902, until - TimeDelta::minutes(75));
    s.expose(&late_in_overlap);
    let late_after = s.late(903, until + TimeDelta::minutes(30));
    s.tick_until(until + TimeDelta::hours(2), TimeDelta::hours(1))
        .await;
    s.expose(&late_after);
    s.tick_until(until + TimeDelta::hours(27), TimeDelta::hours(4))
        .await;

    s.assert_once_each(from, until).await;
    for late in [&late_while_running, &late_in_overlap, &late_after] {
        let key = record_key(late).to_lowercase();
        let n =
            s.h.trace_lines()
                .iter()
                .filter(|l| key_status(l).0 == key)
                .count();
        assert_eq!(n, 1, "{} once", late.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_before_the_cut_over_is_applied_nothing_twice_nothing_missed() {
    let v0 = v0();
    let mut s = Scenario::start(v0).await;
    let plan = s.cutover(false, false).await;
    let newest_at_plan = plan.plan.found.as_ref().unwrap().newest;
    assert!(s.h.checkpoint().await.is_none(), "the plan writes nothing");

    // After the plan was printed, the earlier collector writes more, then is stopped; the
    // cut-over is applied 20 minutes later, saying so.
    s.earlier_writes_to(v0 - TimeDelta::hours(1));
    s.step(TimeDelta::minutes(20));
    let applied = s.cutover(true, true).await;
    assert_eq!(applied.plan.action, Action::StartStopped);
    let found = applied.plan.found.clone().unwrap();
    assert!(
        found.newest > newest_at_plan,
        "the plan is made again when applied"
    );
    let from = applied.plan.cutover.from;
    assert_eq!(from, found.newest - TimeDelta::hours(25));
    let until = applied.plan.cutover.until.expect("until");

    let late_in_overlap = s.late(912, until - TimeDelta::hours(3));
    s.tick().await;
    s.step(TimeDelta::minutes(10));
    s.tick().await;
    s.expose(&late_in_overlap);
    s.tick_until(until + TimeDelta::hours(27), TimeDelta::hours(3))
        .await;

    s.assert_once_each(from, until).await;
    let (checkpoint, _) = s.h.checkpoint().await.unwrap();
    assert_eq!(checkpoint["cutover"]["until"], json!(until), "{checkpoint}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_repair_sends_nothing_before_the_overlaps_end() {
    let v0 = v0();
    let mut s = Scenario::start(v0).await;
    let from = s.cutover(false, true).await.plan.cutover.from;
    // Far enough for the pass to have sent records the earlier collector missed: Devo holds
    // lines of this hostname in the range, so a repair is not refused for want of them.
    for _ in 0..7 {
        s.tick().await;
        s.step(TimeDelta::hours(1));
        s.earlier_writes_to(s.now() - TimeDelta::hours(1));
    }
    let complete = time(&s.summaries.last().unwrap()["complete_until"]);
    assert!(
        complete > from + TimeDelta::hours(2),
        "hours of the overlap are complete: {complete}"
    );
    let sent = s.h.trace_lines().len();

    // Open: the earlier collector's records are in every hour; none is audited or sent.
    let open = s.audit_repair(from - TimeDelta::hours(2), complete).await;
    assert_eq!(
        s.h.trace_lines().len(),
        sent,
        "nothing sent: {:?}",
        open.repairs
    );
    assert_eq!(open.failure, None);
    assert!(open.hours.is_empty(), "{:?}", open.hours);
    assert!(open.repairs.is_empty());
    let hour = |t: DateTime<Utc>| t.duration_trunc(TimeDelta::hours(1)).unwrap();
    let first = &open.skipped[0];
    assert_eq!(
        (first.reason, first.from, first.to),
        ("cutover", hour(from) - TimeDelta::hours(2), hour(complete)),
        "every complete hour: {:?}",
        open.skipped
    );

    // Stopped, and caught up past its end: the hours after it are audited (clean), the
    // others still skipped, nothing sent.
    let until = s.cutover(true, true).await.plan.cutover.until.unwrap();
    s.tick().await;
    s.step(TimeDelta::minutes(10));
    s.tick_until(until + TimeDelta::hours(27), TimeDelta::hours(4))
        .await;
    let sent = s.h.trace_lines().len();
    let after = TimeDelta::hours(3);
    let stopped = s
        .audit_repair(until - TimeDelta::hours(2), until + after)
        .await;
    assert_eq!(stopped.failure, None);
    let first = hour(until) + TimeDelta::hours(1);
    assert_eq!(stopped.hours.first().map(|r| r.hour), Some(first));
    assert!(
        stopped.hours.iter().all(|r| r.missing == 0),
        "{:?}",
        stopped.hours
    );
    assert_eq!(
        (stopped.skipped[0].reason, stopped.skipped[0].to),
        ("cutover", first)
    );
    assert!(stopped.repairs.is_empty());
    assert_eq!(s.h.trace_lines().len(), sent, "nothing sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_that_cannot_read_the_overlap_fails_with_devo_query_and_sends_nothing() {
    let mut s = Scenario::start(v0()).await;
    s.cutover(false, true).await;
    let (before, _) = s.h.checkpoint().await.unwrap();
    let mut secret = s.h.secret_document();
    secret["devo_query_token"] = "devo-query-REVOKED-3c3c".into();
    s.h.set_secret(&secret).await;
    let revoked = s.h.app(fast_options()).with_time(s.time.clone());
    let failed = s.h.tick_on_clock_typed(&revoked, "tick-revoked").await;
    let (error_type, message) = failed.expect_err("the tick fails rather than send blind");
    assert_eq!(error_type, "DevoQuery", "{message}");
    assert!(message.contains("devo_query_token"), "{message}");
    no_token_in(&[&message]);
    assert!(!message.contains("REVOKED"), "{message}");
    assert!(s.h.trace_lines().is_empty(), "nothing sent");
    let (after, _) = s.h.checkpoint().await.unwrap();
    assert_eq!(after["end"], before["end"], "the position stays");

    // The token back: the next tick reads the overlap and sends only what Devo lacks.
    secret["devo_query_token"] = TOKEN.into();
    s.h.set_secret(&secret).await;
    let summary = s.tick().await;
    assert!(
        summary["cutover_suppressed"].as_u64().unwrap_or(0) > 0,
        "{summary}"
    );
}

/// A harness (real clock) whose Devo holds the earlier collector's lines up to 2 h ago, with
/// the Query API stand-in and the token in the secret.
async fn with_earlier_lines() -> (Harness, DevoQueryApi, Vec<GraphRecord>) {
    let now = Utc::now();
    let records = generate(
        821,
        now - TimeDelta::hours(30),
        now - TimeDelta::minutes(20),
        120,
    );
    let mut h = Harness::start(records.clone(), &[("PAGE_SIZE", "1000")]).await;
    let api = h.with_query_api(TOKEN).await;
    let t = now - TimeDelta::hours(2);
    h.devo.hold_lines(
        records
            .iter()
            .filter(|r| r.received_date_time <= t)
            .map(|r| earlier_line(r, &r.status, false)),
    );
    (h, api, records)
}

fn no_token_in(texts: &[&str]) {
    for text in texts {
        assert!(!text.contains(TOKEN), "the token leaked: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_prints_the_plan_and_writes_only_with_apply() {
    let (h, _api, _) = with_earlier_lines().await;
    // Before any tick can run: the secret holds only the Devo material and the token.
    let mut devo_only = h.secret_document();
    for field in ["tenant_id", "client_id", "client_secret"] {
        devo_only.as_object_mut().unwrap().remove(field);
    }
    devo_only["devo_query_token"] = TOKEN.into();
    h.set_secret(&devo_only).await;
    let env = || {
        h.env
            .clone()
            .into_iter()
            .chain([("LOG_LEVEL".to_owned(), "debug".to_owned())])
    };
    let (code, stdout, stderr) = run_cli(&["cutover", "--organization", DOMAIN], env()).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    for part in [
        "Organization = \"contoso.onmicrosoft.com\"",
        "newest Received",
        "starts at",
        "open: until the earlier collector is stopped",
        "cutover_suppressed",
        "Nothing was written: run again with --apply.",
    ] {
        assert!(stdout.contains(part), "{part} in:\n{stdout}");
    }
    assert!(h.checkpoint().await.is_none(), "the plan writes nothing");

    let (code, stdout, stderr) =
        run_cli(&["cutover", "--organization", DOMAIN, "--apply"], env()).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("Written. Now stop the hosted"), "{stdout}");
    let (checkpoint, _) = h.checkpoint().await.expect("written");
    let cutover = &checkpoint["cutover"];
    assert_eq!(
        cutover["earlier"],
        json!({"field": "Organization", "value": DOMAIN})
    );
    assert_eq!(checkpoint["end"], cutover["from"], "{checkpoint}");
    assert!(cutover.get("until").is_none(), "{checkpoint}");

    let (code, stdout, _) = run_cli(&["cutover", "--apply"], env()).await;
    assert_eq!(code, 0);
    assert!(
        stdout.contains("Already applied; the overlap is open"),
        "{stdout}"
    );
    let (code, stdout, stderr) =
        run_cli(&["--json", "cutover", "--stopped", "--apply"], env()).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let out: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(
        (out["action"].as_str(), out["written"].as_bool()),
        (Some("stop"), Some(true))
    );
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert_eq!(checkpoint["cutover"]["until"], out["cutover"]["until"]);
    no_token_in(&[&stdout, &stderr]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_earlier_line_or_with_a_wrong_token_nothing_is_written_and_the_fix_is_named() {
    let (h, _api, _) = with_earlier_lines().await;
    let (code, stdout, stderr) = run_cli(
        &[
            "cutover",
            "--organization",
            "fabrikam.onmicrosoft.com",
            "--apply",
        ],
        h.env.clone(),
    )
    .await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    for part in [
        "found no line of the earlier collector in cloud.office365.messagetracing (Organization = \"fabrikam.onmicrosoft.com\") in the last 90 days",
        "--organization",
        "\"devo_query_token\" in secret",
        "DEVO_QUERY_URL",
        "nothing was written",
    ] {
        assert!(stderr.contains(part), "{part} in:\n{stderr}");
    }
    // Without --organization, the tenant's hostname: the earlier collector wrote another.
    let (code, _, stderr) = run_cli(&["cutover"], h.env.clone()).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("(hostname = \"test-collector\")"),
        "{stderr}"
    );
    assert!(
        stderr.contains("give its domain with --organization DOMAIN"),
        "{stderr}"
    );
    assert!(h.checkpoint().await.is_none());

    let mut secret = h.secret_document();
    secret["devo_query_token"] = "devo-query-WRONG-22222".into();
    h.set_secret(&secret).await;
    let env = h
        .env
        .clone()
        .into_iter()
        .chain([("LOG_LEVEL".to_owned(), "debug".to_owned())]);
    let ran = run_cli(&["cutover", "--organization", DOMAIN, "--apply"], env).await;
    assert_wrong_token_named(ran, "WRONG-22222", TOKEN);
    assert!(h.checkpoint().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivered_checkpoint_or_a_running_tick_is_not_written_over() {
    let (h, _api, _) = with_earlier_lines().await;
    let now = Utc::now();
    // A tick holds the lease (nothing delivered yet): exit 3, nothing written.
    let leased = json!({"version": 1, "end": null, "updated_at": now,
        "lease": {"owner": "req-running", "expires_at": now + TimeDelta::minutes(5)}});
    h.put_checkpoint(&leased).await;
    let (code, stdout, stderr) = run_cli(
        &["cutover", "--organization", DOMAIN, "--apply"],
        h.env.clone(),
    )
    .await;
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(stderr.contains("(req-running) holds the lease"), "{stderr}");
    assert_eq!(
        h.checkpoint().await.unwrap().0["lease"]["owner"],
        "req-running"
    );

    // A tick that delivered: refused unless --replace-checkpoint.
    h.put_checkpoint(&json!({"version": 1, "end": null, "updated_at": now}))
        .await;
    h.tick(&h.app(fast_options()), "req-delivered")
        .await
        .expect("tick");
    let (before, etag) = h.checkpoint().await.unwrap();
    assert!(before["end"].is_string());
    let (code, _, stderr) = run_cli(
        &["cutover", "--organization", DOMAIN, "--apply"],
        h.env.clone(),
    )
    .await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("has already delivered"), "{stderr}");
    assert!(stderr.contains("--replace-checkpoint"), "{stderr}");
    assert_eq!(h.checkpoint().await.unwrap().1, etag, "unchanged");
    let (code, stdout, stderr) = run_cli(
        &[
            "cutover",
            "--organization",
            DOMAIN,
            "--apply",
            "--replace-checkpoint",
        ],
        h.env.clone(),
    )
    .await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("replaces"), "{stdout}");
    let (after, _) = h.checkpoint().await.unwrap();
    assert_eq!(after["end"], after["cutover"]["from"]);
    assert!(
        time(&after["end"]) <= time(&before["end"]),
        "from where the replaced checkpoint stood at the latest: {after}"
    );
}
