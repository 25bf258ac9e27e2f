//! `audit` end to end, with the default two passes: a relay that accepts every line and loses
//! 1 % of the records; the audit reads back from the Devo Query API stand-in, reports exactly
//! the hours and counts lost, `--repair` sends exactly those records (nothing twice), and a
//! second audit is clean. The token goes nowhere but the Query API.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use m365_trace_devtools::devo::query::DevoQueryApi;
use m365_trace_devtools::devo::query::table::parse_line;
use m365_trace_to_devo::app::TimeSource;
use m365_trace_to_devo::tenants::Tenant;
use m365_trace_to_devo::verify::audit::{AuditReport, RepairMode};
use m365_trace_to_devo::verify::run::{self as audit, AuditRequest};

use crate::support::*;

const TOKEN: &str = "devo-query-TOKEN-7f3a9c";

/// A harness whose relay loses `per_mille` of the records while the first tick delivers,
/// with the Query API stand-in and the token in the secret.
async fn delivered_with_losses(records: usize, per_mille: u32) -> (Harness, DevoQueryApi) {
    let records = first_window_records(20, records);
    // One page per hour's listing keeps the audit inside Graph's request budget.
    let mut h = Harness::start(records, &[("PAGE_SIZE", "1000")]).await;
    let api = h.with_query_api(TOKEN).await;
    h.devo.lose_fraction(Some(per_mille));
    h.tick(&h.app(fast_options()), "tick-1")
        .await
        .expect("tick");
    h.devo.lose_fraction(None);
    (h, api)
}

fn hour_of(line: &str) -> DateTime<Utc> {
    parse_line(line)
        .expect("a Devo line")
        .eventdate
        .duration_trunc(TimeDelta::hours(1))
        .unwrap()
}

/// Lost records per hour (distinct keys).
fn lost_by_hour(h: &Harness) -> BTreeMap<DateTime<Utc>, BTreeSet<String>> {
    let mut out: BTreeMap<DateTime<Utc>, BTreeSet<String>> = BTreeMap::new();
    for line in h.devo.lost_lines().into_iter().filter(|l| is_trace_line(l)) {
        out.entry(hour_of(&line))
            .or_default()
            .insert(line_key(&line));
    }
    out
}

async fn run_audit(h: &Harness, repair: bool) -> AuditReport {
    let app = h.app(fast_options());
    let tenant = Tenant::single(app.config().expect("config"));
    let request = AuditRequest {
        from: Utc::now() - TimeDelta::days(3),
        to: Utc::now(),
        repair: if repair {
            RepairMode::Missing
        } else {
            RepairMode::Off
        },
    };
    audit::run(
        &app,
        &tenant,
        &request,
        Utc::now() + TimeDelta::seconds(120),
    )
    .await
    .expect("audit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_records_are_reported_by_hour_and_repaired_exactly_once() {
    let (h, api) = delivered_with_losses(3000, 10).await;
    let lost = lost_by_hour(&h);
    let lost_total: usize = lost.values().map(BTreeSet::len).sum();
    assert!(
        lost_total > 5,
        "the relay lost {lost_total} records: too few to test"
    );
    // Status changes put a second line of a record in Devo: one record, not an extra one.
    let earlier_status: Vec<String> = h
        .devo
        .held_lines()
        .iter()
        .step_by(50)
        .map(|l| l.replacen("\"Status\":\"", "\"Status\":\"Was", 1))
        .collect();
    assert!(earlier_status.len() > 10);
    h.devo.hold_lines(earlier_status);

    let report = run_audit(&h, false).await;
    assert_eq!(report.failure, None);
    let found: BTreeMap<DateTime<Utc>, u64> = report
        .hours
        .iter()
        .filter(|r| r.missing > 0)
        .map(|r| (r.hour, r.missing))
        .collect();
    let expected: BTreeMap<DateTime<Utc>, u64> = lost
        .iter()
        .map(|(h, keys)| (*h, keys.len() as u64))
        .collect();
    assert_eq!(
        found, expected,
        "exactly the hours and counts the relay lost"
    );
    assert_eq!((report.extra(), report.stale()), (0, 0));
    for row in &report.hours {
        assert_eq!(
            row.devo + row.missing,
            row.microsoft,
            "distinct records: {row:?}"
        );
        assert!(row.devo_lines >= row.devo);
    }
    assert!(
        report.hours.iter().any(|r| r.devo_lines > r.devo),
        "some records have two lines"
    );
    let listed: u64 = report.hours.iter().map(|r| r.microsoft).sum();
    assert_eq!(
        listed, 3000,
        "every record of the complete hours was listed"
    );
    assert!(
        report.skipped.iter().any(|s| s.reason == "not_complete"),
        "the hours the reconciliation pass still owes are skipped: {:?}",
        report.skipped
    );
    let queries = api.queries();
    assert!(queries.iter().all(|q| q.status == 200), "{queries:?}");

    let before = h.trace_lines().len();
    let repaired = run_audit(&h, true).await;
    assert_eq!(repaired.failure, None);
    let sent: Vec<String> = h.trace_lines()[before..]
        .iter()
        .map(|l| line_key(l))
        .collect();
    let sent_set: BTreeSet<String> = sent.iter().cloned().collect();
    assert_eq!(
        sent.len(),
        sent_set.len(),
        "nothing sent twice by the repair"
    );
    let lost_keys: BTreeSet<String> = lost.values().flatten().cloned().collect();
    assert!(
        sent_set == lost_keys,
        "the repair sends exactly the {} records Devo lacked, not {} ({} of them lacked)",
        lost_keys.len(),
        sent_set.len(),
        sent_set.intersection(&lost_keys).count()
    );
    assert_eq!(
        repaired.repairs.iter().map(|r| r.missing_sent).sum::<u64>(),
        lost_total as u64
    );
    assert!(
        repaired
            .repairs
            .iter()
            .all(|r| r.complete && r.stale_sent == 0)
    );
    for line in &h.trace_lines()[before..] {
        let json = line_json(line);
        assert_eq!(
            json["Organization"], TENANT,
            "a normal line of the tenant: {line}"
        );
    }

    let again = run_audit(&h, false).await;
    assert_eq!(again.failure, None);
    assert_eq!((again.missing(), again.stale(), again.extra()), (0, 0, 0));
    assert_eq!(again.hours.len(), report.hours.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_prints_the_table_exits_1_on_missing_and_never_shows_the_token() {
    let (h, _api) = delivered_with_losses(600, 30).await;
    let lost_total: usize = lost_by_hour(&h).values().map(BTreeSet::len).sum();
    assert!(lost_total > 0);
    let from = (Utc::now() - TimeDelta::days(3)).to_rfc3339();
    let to = Utc::now().to_rfc3339();
    let env = h
        .env
        .clone()
        .into_iter()
        .chain([("LOG_LEVEL".to_owned(), "debug".to_owned())]);
    let (code, stdout, stderr) = run_cli(&["audit", "--from", &from, "--to", &to], env).await;
    assert_eq!(code, 1, "missing records exit 1: {stdout}\n{stderr}");
    assert!(
        stdout.contains("hour") && stdout.contains("missing") && stdout.contains("extra"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{lost_total} missing, 0 extra")),
        "{stdout}"
    );
    assert!(
        stdout.contains("skipped") && stdout.contains("complete_until"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(TOKEN) && !stderr.contains(TOKEN),
        "the token leaked:\n{stdout}\n{stderr}"
    );

    let (code, stdout, stderr) = run_cli(
        &["audit", "--repair", "--from", &from, "--to", &to],
        h.env.clone(),
    )
    .await;
    assert_eq!(
        code, 1,
        "the repair's own audit still saw them missing: {stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("({lost_total} missing, 0 stale)")) || stdout.contains("repaired"),
        "{stdout}"
    );
    let (code, stdout, stderr) = run_cli(
        &["--json", "audit", "--from", &from, "--to", &to],
        h.env.clone(),
    )
    .await;
    assert_eq!(code, 0, "clean after the repair: {stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    assert!(report["hours"].as_array().is_some_and(|a| !a.is_empty()));
    assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_names_the_secret_field_and_the_right_one_is_never_printed() {
    let (h, _api) = delivered_with_losses(100, 0).await;
    let mut secret = h.secret_document();
    secret["devo_query_token"] = "devo-query-WRONG-11111".into();
    h.set_secret(&secret).await;
    let from = (Utc::now() - TimeDelta::days(3)).to_rfc3339();
    let to = Utc::now().to_rfc3339();
    let ran = run_cli(&["audit", "--from", &from, "--to", &to], h.env.clone()).await;
    assert_wrong_token_named(ran, "WRONG-11111", TOKEN);
    // Without a token at all, the secret field is named too.
    h.set_secret(&h.secret_document()).await;
    let (code, _, stderr) = run_cli(&["audit", "--from", &from, "--to", &to], h.env.clone()).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("has no \"devo_query_token\""), "{stderr}");
    // Without DEVO_QUERY_URL, the variable is named.
    let env = h
        .env
        .clone()
        .into_iter()
        .filter(|(k, _)| k != "DEVO_QUERY_URL");
    let (code, _, stderr) = run_cli(&["audit", "--from", &from, "--to", &to], env).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("DEVO_QUERY_URL is not set"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_audit_reports_each_complete_hour_once_and_resumes_where_it_stopped() {
    let (mut h, _api) = delivered_with_losses(3000, 10).await;
    // The first tick (delivered_with_losses) ran without the audit; switch it on.
    h.env.insert("AUDIT_HOURS".into(), "2".into());
    let lost = lost_by_hour(&h);
    let first_hour = *lost.keys().next().expect("a lost record");
    // Ticks five minutes apart, as scheduled: the requests of the tick before (its delivery
    // details took up to half of the request budget) have left the budget's five minutes. In
    // each tick the audit comes before the details, whose queue (the problem deliveries among
    // the 3,000) would otherwise take that half.
    let time = TimeSource::stepped(Utc::now());
    let app = h.app(fast_options()).with_time(time.clone());
    time.advance(TimeDelta::minutes(5));
    let first = h.tick(&app, "tick-2").await.expect("tick with audit");
    let audit = &first["audit"];
    assert_eq!(
        audit["hours"], 1,
        "first enabled: the last complete hour only: {audit}"
    );
    let (mut checkpoint, _) = h.checkpoint().await.expect("checkpoint");
    let until: DateTime<Utc> =
        serde_json::from_value(checkpoint["audit"]["until"].clone()).unwrap();
    assert_eq!(until, until.duration_trunc(TimeDelta::hours(1)).unwrap());
    // Move the position back to the hours with records, as if enabled two days ago.
    let start = first_hour - TimeDelta::hours(1);
    checkpoint["audit"] = serde_json::json!({ "until": start });
    h.put_checkpoint(&checkpoint).await;
    let mut expected_missing = 0;
    for (i, tick) in ["tick-3", "tick-4"].iter().enumerate() {
        time.advance(TimeDelta::minutes(5));
        let summary = h.tick(&app, tick).await.expect("tick with audit");
        let from = start + TimeDelta::hours(2 * i as i64);
        let to = from + TimeDelta::hours(2);
        let missing: usize = lost.range(from..to).map(|(_, keys)| keys.len()).sum();
        expected_missing += missing;
        assert_eq!(summary["audit"]["hours"], 2, "{summary}");
        assert_eq!(
            summary["audit"]["missing"], missing as u64,
            "hours {from}..{to}: {summary}"
        );
        assert_eq!(summary["audit"]["extra"], 0);
        let (checkpoint, _) = h.checkpoint().await.expect("checkpoint");
        let until: DateTime<Utc> =
            serde_json::from_value(checkpoint["audit"]["until"].clone()).unwrap();
        assert_eq!(
            until, to,
            "the position resumes where the last tick stopped"
        );
    }
    assert!(expected_missing > 0, "the audited hours held lost records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_audit_that_cannot_read_devo_reports_it_and_the_tick_still_delivers() {
    let (mut h, api) = delivered_with_losses(200, 0).await;
    h.env.insert("AUDIT_HOURS".into(), "2".into());
    api.fail_next(&[403]);
    let summary = h
        .tick(&h.app(fast_options()), "tick-2")
        .await
        .expect("the tick succeeds");
    let failure = summary["audit"]["failure"]
        .as_str()
        .expect("the failure is in the summary");
    assert!(
        failure.starts_with("DevoQuery: ") && failure.contains("devo_query_token"),
        "{failure}"
    );
    assert!(!failure.contains(TOKEN));
    assert_eq!(summary["audit"]["hours"], 0);
    let (checkpoint, _) = h.checkpoint().await.expect("checkpoint");
    assert!(
        checkpoint
            .get("audit")
            .is_none_or(|a| a["until"] == summary["audit"]["until"]),
        "a failed hour is not passed over: {checkpoint}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repair_under_a_hostname_devo_never_saw_sends_nothing_and_says_why() {
    let (h, _api) = delivered_with_losses(300, 0).await;
    let before = h.trace_lines().len();
    let from = (Utc::now() - TimeDelta::days(3)).to_rfc3339();
    let to = Utc::now().to_rfc3339();
    // The function's hostname is its name; a shell without DEVO_HOSTNAME reads another one.
    let env = h
        .env
        .clone()
        .into_iter()
        .filter(|(k, _)| k != "DEVO_HOSTNAME");
    let (code, stdout, stderr) =
        run_cli(&["audit", "--repair", "--from", &from, "--to", &to], env).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("hostname m365-trace-to-devo"), "{stdout}");
    assert!(stdout.contains("300 missing"), "{stdout}");
    assert!(
        stderr.contains("repair refused") && stderr.contains("DEVO_HOSTNAME"),
        "{stderr}"
    );
    assert_eq!(h.trace_lines().len(), before, "nothing was sent");
}
