//! The command line binary, run as an operator would, with the environment pointing at moto,
//! the Graph-like server and the mutual-TLS relay: output and exit status of each command.

use crate::support::*;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use m365_trace_devtools::records::generate;
use serde_json::{Value, json};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: stdout {}\nstderr {}", self.stdout, self.stderr))
    }
}

/// Runs the CLI with `args` and the harness's environment (plus `extra`), off the runtime's
/// threads so that the stand-ins keep serving.
async fn cli(h: &Harness, args: &[&str], extra: &[(&str, &str)]) -> Run {
    let env = h
        .env
        .clone()
        .into_iter()
        .chain(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let (code, stdout, stderr) = run_cli(args, env).await;
    Run {
        code,
        stdout,
        stderr,
    }
}

fn hours_ago(hours: i64) -> DateTime<Utc> {
    (Utc::now() - TimeDelta::hours(hours))
        .duration_trunc(TimeDelta::hours(1))
        .unwrap()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_is_offered_for_every_command() {
    let h = Harness::start(Vec::new(), &[]).await;
    let top = cli(&h, &["--help"], &[]).await;
    assert_eq!(top.code, 0, "{}", top.stderr);
    for command in ["tick", "backfill", "check", "plan"] {
        assert!(top.stdout.contains(command), "{}", top.stdout);
        let help = cli(&h, &[command, "--help"], &[]).await;
        assert_eq!(help.code, 0, "{}", help.stderr);
        assert!(
            help.stdout
                .contains(&format!("Usage: m365-trace-to-devo-cli {command}")),
            "{}",
            help.stdout
        );
    }
    let usage = cli(&h, &["backfill", "--start", "yesterday"], &[]).await;
    assert_eq!(usage.code, 2, "a usage error: {}", usage.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_each_dependency_and_fails_on_a_wrong_relay_name() {
    let h = Harness::start(Vec::new(), &[]).await;

    let first = cli(&h, &["check"], &[]).await;
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    for check in [
        "config", "secret", "token", "api", "s3_read", "s3_write", "devo",
    ] {
        assert!(
            first
                .stdout
                .lines()
                .any(|l| l.starts_with(check) && l.contains(" ok ")),
            "{check} ok: {}",
            first.stdout
        );
    }
    assert!(
        first.stdout.contains("does not exist yet"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("HTTP 200, 0 records"),
        "{}",
        first.stdout
    );
    assert!(
        h.graph
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/messageTraces") && r.status == 200),
        "the API was tried"
    );
    assert_eq!(h.devo.connections(), 1, "one handshake");
    assert!(h.trace_lines().is_empty(), "nothing sent");

    // Now that the checkpoint exists, the conditional PUT is refused and nothing is written.
    let (_, etag) = h
        .checkpoint()
        .await
        .expect("an empty checkpoint was created");
    let second = cli(&h, &["check", "--json"], &[]).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    let report = second.json();
    assert_eq!(report["ok"], json!(true));
    let s3_write = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "s3_write")
        .unwrap();
    assert_eq!(s3_write["status"], json!("ok"));
    assert!(
        s3_write["detail"].as_str().unwrap().contains("HTTP 412"),
        "{s3_write}"
    );
    assert_eq!(h.checkpoint().await.unwrap().1, etag, "nothing written");

    let wrong = cli(
        &h,
        &["check", "--json"],
        &[("DEVO_SERVER_NAME", "wrong.example")],
    )
    .await;
    assert_eq!(wrong.code, 1, "a failed check fails the command");
    let devo = wrong.json()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "devo")
        .cloned()
        .unwrap();
    assert_eq!(devo["status"], json!("failed"));
    assert!(
        devo["detail"]
            .as_str()
            .unwrap()
            .contains("verified as wrong.example"),
        "{devo}"
    );

    let bad = cli(&h, &["check"], &[("PAGE_SIZE", "0")]).await;
    assert_eq!(bad.code, 1);
    assert!(
        bad.stdout
            .contains("config   FAILED    PAGE_SIZE=\"0\" is invalid"),
        "{}",
        bad.stdout
    );
    assert!(bad.stdout.contains("devo     skipped"), "{}", bad.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_prints_the_next_windows_without_pulling_or_taking_the_lease() {
    let h = Harness::start(Vec::new(), &[("MAX_WINDOW_SECONDS", "3600")]).await;
    let from = hours_ago(30);
    h.put_checkpoint(&json!({"version": 1, "end": from, "updated_at": Utc::now()}))
        .await;
    let (_, etag) = h.checkpoint().await.unwrap();

    let text = cli(&h, &["plan"], &[]).await;
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(
        text.stdout
            .contains(&format!("windows from {}", rfc3339(from))),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("  3600 s"), "{}", text.stdout);

    let json = cli(&h, &["plan", "--json"], &[]).await.json();
    let windows = json["plan"]["windows"].as_array().unwrap();
    // Two passes (the default): the fresh pass plans up to now − FRESH_DELAY_SECONDS; the
    // reconciliation pass has nothing to pull (no ledger part: the checkpoint predates it).
    assert!(
        (30..=32).contains(&windows.len()),
        "~30 h in 1 h windows: {json}"
    );
    assert_eq!(time(&windows[0]["start"]), from);
    let last_end = time(&windows.last().unwrap()["end"]);
    assert!(
        (Utc::now() - TimeDelta::seconds(FRESH_DELAY_SECONDS) - last_end)
            .num_seconds()
            .abs()
            < 60
    );
    assert_eq!(json["reconcile"]["windows"], json!([]), "{json}");
    assert_eq!(json["lease"], json!(null));

    let backfill = cli(
        &h,
        &[
            "plan",
            "--json",
            "--start",
            &rfc3339(hours_ago(50)),
            "--end",
            &rfc3339(hours_ago(40)),
        ],
        &[],
    )
    .await
    .json();
    assert_eq!(backfill["plan"]["windows"].as_array().unwrap().len(), 10);
    assert_eq!(backfill["backfill"]["remaining_seconds"], json!(36_000));

    assert!(h.graph.requests().is_empty(), "nothing pulled");
    assert_eq!(h.checkpoint().await.unwrap().1, etag, "no lease taken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tick_and_backfill_deliver_and_report_and_refusals_exit_non_zero() {
    let records = generate(31, hours_ago(60), hours_ago(24), 300);
    let h = Harness::start(records.clone(), &[]).await;

    let tick = cli(&h, &["tick", "--json"], &[]).await;
    assert_eq!(tick.code, 0, "{}", tick.stderr);
    let summary = tick.json();
    assert_eq!(summary["caught_up"], json!(true), "{summary}");
    let end = time(&summary["checkpoint"]);
    let start = end + TimeDelta::seconds(FRESH_DELAY_SECONDS) - TimeDelta::days(2);
    assert_eq!(
        sorted(h.received_keys()),
        expected_keys(&records, start, end)
    );
    // Not a terminal: a JSON log line per window on stderr.
    let window_lines = tick
        .stderr
        .lines()
        .filter(|l| l.starts_with('{') && l.contains("\"event\":\"window\""))
        .count();
    assert_eq!(
        window_lines as u64,
        summary["windows"].as_u64().unwrap(),
        "{}",
        tick.stderr
    );

    let again = cli(&h, &["tick"], &[]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stdout.contains("0 events sent") && again.stdout.contains("(caught up)"),
        "{}",
        again.stdout
    );

    let sent = h.received_keys().len();
    let (bf_start, bf_end) = (hours_ago(58), hours_ago(50));
    let backfill = cli(
        &h,
        &[
            "backfill",
            "--start",
            &rfc3339(bf_start),
            "--end",
            &rfc3339(bf_end),
            "--name",
            "onboarding",
        ],
        &[],
    )
    .await;
    assert_eq!(backfill.code, 0, "{}", backfill.stderr);
    assert!(
        backfill.stdout.contains("backfill onboarding: complete"),
        "{}",
        backfill.stdout
    );
    assert_eq!(
        sorted(h.received_keys()[sent..].to_vec()),
        expected_keys(&records, bf_start, bf_end)
    );

    let refused = cli(
        &h,
        &[
            "backfill",
            "--start",
            &rfc3339(hours_ago(30)),
            "--end",
            &rfc3339(Utc::now() + TimeDelta::hours(1)),
        ],
        &[],
    )
    .await;
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("is in the future") && refused.stderr.contains("DELAY_SECONDS"),
        "{}",
        refused.stderr
    );
}
