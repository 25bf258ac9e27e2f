//! The Lambda binary itself, driven through a local Lambda Runtime API with the EventBridge
//! scheduled event: the same path as in AWS, minus AWS.

use std::time::Duration;

use crate::support::*;
use chrono::{TimeDelta, Utc};
use m365_trace_devtools::records::generate;
use m365_trace_devtools::runtime_api::{Invocation, invoke_once};
use serde_json::json;

#[tokio::test]
async fn the_binary_runs_one_tick_per_scheduled_event_and_logs_json_without_secrets() {
    let now = Utc::now();
    let records = generate(
        11,
        now - TimeDelta::days(2),
        now - TimeDelta::hours(25),
        300,
    );
    let h = Harness::start(records.clone(), &[]).await;
    let mut env: Vec<(String, String)> =
        h.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    env.extend(
        [
            ("AWS_ENDPOINT_URL", moto_url()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("LOG_LEVEL", "debug".into()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );

    let outcome = invoke_once(Invocation {
        binary: env!("CARGO_BIN_EXE_m365-trace-to-devo").into(),
        env,
        event: scheduled_event(),
        timeout: Duration::from_secs(60),
        function_name: "m365-trace-to-devo-test".into(),
    })
    .await
    .expect("invocation");

    let summary = outcome
        .result
        .unwrap_or_else(|e| panic!("function error {e}\n{}", outcome.stderr));
    assert_eq!(summary["caught_up"], json!(true), "{summary}");
    assert_eq!(summary["lease"]["owner"], json!(outcome.request_id));
    let end = time(&summary["checkpoint"]);
    let start = end + TimeDelta::seconds(FRESH_DELAY_SECONDS) - TimeDelta::days(2);
    assert_eq!(
        sorted(h.received_keys()),
        expected_keys(&records, start, end)
    );

    // Logs: one JSON object per line, a line per window and a summary line, nothing secret.
    let logs = format!("{}{}", outcome.stdout, outcome.stderr);
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines.iter().filter(|l| l["event"] == "window").count() >= 4,
        "{logs}"
    );
    // Each window line names its pass (docs/operations.md: Logs Insights, one pass at a time).
    assert!(
        lines
            .iter()
            .filter(|l| l["event"] == "window")
            .all(|l| l["span"]["pass"].is_string() && l["span"]["tenant"] == "default"),
        "{logs}"
    );
    assert_eq!(
        lines.iter().filter(|l| l["event"] == "summary").count(),
        1,
        "{logs}"
    );
    for secret in [CLIENT_SECRET, h.pki.client_key_pem.lines().nth(1).unwrap()] {
        assert!(!logs.contains(secret), "a secret leaked into the logs");
    }
}
