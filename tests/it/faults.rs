//! Faults at every point a tick meets them, against the real local servers: each test says
//! what the user gets (records delivered once, checkpoint in place, an error naming the fix).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::support::*;
use chrono::{TimeDelta, Utc};
use m365_trace_devtools::devo::DevoListener;
use m365_trace_devtools::graph::Fault;
use m365_trace_devtools::pki::TestPki;
use m365_trace_devtools::records::{GraphRecord, generate};
use m365_trace_to_devo::app::TickOptions;
use serde_json::json;

/// Records over the two days a fresh start covers, and a harness serving them.
async fn setup(seed: u64, count: usize, env: &[(&str, &str)]) -> (Harness, Vec<GraphRecord>) {
    let now = Utc::now();
    let records = generate(
        seed,
        now - TimeDelta::days(2),
        now - TimeDelta::hours(25),
        count,
    );
    (Harness::start(records.clone(), env).await, records)
}

/// Asserts every record of [start, checkpoint) arrived exactly once.
fn assert_exactly_once(h: &Harness, records: &[GraphRecord], summary: &serde_json::Value) {
    let end = time(&summary["checkpoint"]);
    let start = end + TimeDelta::seconds(FRESH_DELAY_SECONDS) - TimeDelta::days(2);
    assert_same_keys(
        h.received_keys(),
        expected_keys(records, start, end),
        &summary.to_string(),
    );
}

#[tokio::test]
async fn throttling_429_waits_for_retry_after_and_delivers() {
    let (h, records) = setup(21, 150, &[]).await;
    h.graph.inject(Fault::TraceStatus {
        status: 429,
        body: r#"{"error":{"code":"TooManyRequests","message":"Too many requests"}}"#.into(),
        retry_after: Some(1),
    });
    let app = h.app(fast_options());
    let started = Instant::now();

    let summary = h.tick(&app, "req-429").await.expect("tick");

    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_exactly_once(&h, &records, &summary);
    let traces = h.trace_requests();
    assert_eq!(traces[0].status, 429);
    assert_eq!(traces[1].status, 200);
    assert_eq!(
        traces[0].query, traces[1].query,
        "the same page asked again"
    );
}

#[tokio::test]
async fn the_request_budget_survives_between_ticks() {
    let (h, records) = setup(22, 150, &[]).await;
    let now = Utc::now();
    // 90 requests (the budget) in the last 5 minutes, the oldest leaving it in 4 s.
    let recent: Vec<_> = (0..90)
        .map(|i| now - TimeDelta::seconds(296) + TimeDelta::milliseconds(i))
        .collect();
    h.put_checkpoint(&json!({"version": 1, "end": now - TimeDelta::days(2), "updated_at": now, "recent_requests": recent}))
        .await;
    let app = h.app(fast_options());
    let started = Instant::now();

    let summary = h.tick(&app, "req-budget").await.expect("tick");

    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "waited for the budget: {:?}",
        started.elapsed()
    );
    assert_exactly_once(&h, &records, &summary);
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    let kept = checkpoint["recent_requests"]
        .as_array()
        .expect("history kept");
    assert!(
        kept.len() >= 4 && kept.len() <= 90,
        "old requests pruned, new ones kept: {}",
        kept.len()
    );

    // A budget used up for minutes: the tick stops without a request and without an error.
    let recent: Vec<_> = (0..90)
        .map(|i| Utc::now() - TimeDelta::seconds(60) + TimeDelta::milliseconds(i))
        .collect();
    let mut cp = checkpoint.clone();
    cp["recent_requests"] = json!(recent);
    cp["end"] = json!(Utc::now() - TimeDelta::hours(30));
    h.put_checkpoint(&cp).await;
    let before = h.trace_requests().len();
    let summary = h
        .invoke(
            &app,
            scheduled_event(),
            "req-budget-2",
            Duration::from_secs(8),
        )
        .await
        .expect("no error");
    assert_eq!(summary["caught_up"], json!(false));
    assert_eq!(
        h.trace_requests().len(),
        before,
        "no request beyond the budget"
    );
    assert_eq!(
        time(&summary["checkpoint"]),
        time(&cp["end"]),
        "checkpoint unchanged"
    );
}

#[tokio::test]
async fn server_errors_on_the_token_endpoint_and_the_api_are_retried() {
    let (h, records) = setup(23, 200, &[]).await;
    h.graph.inject(Fault::TokenStatus {
        status: 503,
        body: "{}".into(),
    });
    h.graph.inject(Fault::TraceStatus {
        status: 500,
        body: "oops".into(),
        retry_after: None,
    });
    h.graph.inject(Fault::TraceStatus {
        status: 502,
        body: "".into(),
        retry_after: None,
    });
    h.graph.inject(Fault::TruncatedPage);
    let app = h.app(fast_options());

    let summary = h.tick(&app, "req-5xx").await.expect("tick");

    assert_exactly_once(&h, &records, &summary);
    let statuses: Vec<u16> = h.trace_requests().iter().map(|r| r.status).collect();
    assert_eq!(&statuses[..2], &[500, 502]);
}

#[tokio::test]
async fn a_page_that_stays_truncated_fails_the_tick_without_moving_the_checkpoint() {
    let (h, _) = setup(24, 200, &[]).await;
    for _ in 0..12 {
        h.graph.inject(Fault::TruncatedPage);
    }
    let app = h.app(fast_options());

    let err = h.tick(&app, "req-trunc").await.expect_err("fails");

    assert!(err.contains("graph messageTraces"), "{err}");
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert!(time(&checkpoint["end"]) <= Utc::now() - TimeDelta::days(2) + TimeDelta::minutes(1));
    assert_eq!(checkpoint["lease"], json!(null));
    assert!(h.trace_lines().is_empty());
}

#[tokio::test]
async fn an_expired_next_link_pulls_the_rest_again_without_loss_or_repeat() {
    let (h, records) = setup(25, 400, &[("PAGE_SIZE", "20")]).await;
    h.graph.inject(Fault::ExpireSkipToken);
    let app = h.app(fast_options());

    let summary = h.tick(&app, "req-skiptoken").await.expect("tick");

    assert_exactly_once(&h, &records, &summary);
    assert!(
        h.trace_requests().iter().any(|r| r.status == 400),
        "the skiptoken did fail"
    );
}

#[tokio::test]
async fn refused_and_cut_relay_connections_are_retried_with_duplicates_only_in_the_cut_window() {
    let (h, records) = setup(26, 300, &[]).await;
    h.devo.refuse_next(1);
    let app = h.app(fast_options());

    let summary = h.tick(&app, "req-refused").await.expect("tick");
    assert_exactly_once(&h, &records, &summary);

    let (h, records) = setup(27, 300, &[]).await;
    h.devo.cut_next_connection_after(10);
    let summary = h
        .tick(&h.app(fast_options()), "req-cut")
        .await
        .expect("tick");
    let end = time(&summary["checkpoint"]);
    let start = end + TimeDelta::seconds(FRESH_DELAY_SECONDS) - TimeDelta::days(2);
    let got = h.received_keys();
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique, expected_keys(&records, start, end));
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for k in &got {
        *seen.entry(k).or_default() += 1;
    }
    let by_key: HashMap<String, &GraphRecord> =
        records.iter().map(|r| (record_key(r), r)).collect();
    for (k, n) in seen {
        if n > 1 {
            assert!(
                by_key[k].received_date_time < start + TimeDelta::hours(6),
                "duplicate outside the cut window"
            );
        }
    }
}

#[tokio::test]
async fn tls_failures_name_their_cause_and_keep_the_checkpoint() {
    // A chain that did not sign the relay.
    let (h, _) = setup(28, 50, &[]).await;
    let other = TestPki::generate(&["localhost"]).unwrap();
    let mut secret = h.secret_document();
    secret["devo_chain_pem"] = json!(other.ca_pem);
    h.set_secret(&secret).await;
    let err = h
        .tick(&h.app(fast_options()), "req-chain")
        .await
        .expect_err("wrong chain");
    assert!(err.contains("not signed by devo_chain_pem"), "{err}");
    assert!(h.checkpoint().await.unwrap().0["end"].is_string());
    assert!(h.trace_lines().is_empty());

    // A relay certificate that does not carry DEVO_SERVER_NAME.
    let (h, _) = setup(29, 50, &[("DEVO_SERVER_NAME", "collector-eu.devo.io")]).await;
    let err = h
        .tick(&h.app(fast_options()), "req-name")
        .await
        .expect_err("wrong name");
    assert!(err.contains("DEVO_SERVER_NAME"), "{err}");

    // An expired client certificate: the relay refuses it.
    let (h, _) = setup(30, 50, &[]).await;
    let expired = TestPki::generate_with_expired_client(&["localhost", "127.0.0.1"]).unwrap();
    let relay = DevoListener::start(&expired).await.unwrap();
    let mut secret = h.secret_document();
    secret["devo_cert_pem"] = json!(expired.client_cert_pem);
    secret["devo_key_pem"] = json!(expired.client_key_pem);
    secret["devo_chain_pem"] = json!(expired.ca_pem);
    h.set_secret(&secret).await;
    let app = h.app_with("DEVO_ADDRESS", &relay.address(), fast_options());
    let err = h
        .tick(&app, "req-expired")
        .await
        .expect_err("expired client certificate");
    assert!(err.to_ascii_lowercase().contains("expired"), "{err}");
    assert!(relay.lines().is_empty());
    assert!(relay.handshake_failures() >= 1);
}

#[tokio::test]
async fn non_retryable_api_answers_say_what_to_fix() {
    let (h, _) = setup(31, 50, &[]).await;
    h.graph.inject(Fault::TraceStatus {
        status: 403,
        body: r#"{"error":{"code":"Forbidden","message":"The service principal for the message trace app was not found in the tenant."}}"#.into(),
        retry_after: None,
    });
    let err = h
        .tick(&h.app(fast_options()), "req-403")
        .await
        .expect_err("403");
    assert!(
        err.contains("HTTP 403") && err.contains("8bd644d1-64a1-4d4b-ae52-2e0cbf64e373"),
        "{err}"
    );

    h.graph.inject(Fault::TraceStatus {
        status: 403,
        body: r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation."}}"#.into(),
        retry_after: None,
    });
    let err = h
        .tick(&h.app(fast_options()), "req-403b")
        .await
        .expect_err("403");
    assert!(err.contains("ExchangeMessageTrace.Read.All"), "{err}");

    h.graph.inject(Fault::TraceStatus {
        status: 400,
        body: r#"{"error":{"code":"BadRequest","message":"Invalid filter clause"}}"#.into(),
        retry_after: None,
    });
    let err = h
        .tick(&h.app(fast_options()), "req-400")
        .await
        .expect_err("400");
    assert!(
        err.contains("HTTP 400 BadRequest: Invalid filter clause"),
        "{err}"
    );
    assert!(
        err.contains("messageTraces 20") && err.contains(".."),
        "names the window bounds: {err}"
    );
}

#[tokio::test]
async fn token_errors_carry_the_aadsts_code_and_the_fix() {
    let (h, _) = setup(32, 50, &[]).await;
    let mut secret = h.secret_document();
    secret["client_secret"] = json!("not-the-secret");
    h.set_secret(&secret).await;

    let err = h
        .tick(&h.app(fast_options()), "req-aadsts")
        .await
        .expect_err("bad secret");

    assert!(
        err.contains("HTTP 401 invalid_client AADSTS7000215"),
        "{err}"
    );
    assert!(
        err.contains("client_secret in the secret is wrong"),
        "{err}"
    );
    assert!(
        !err.contains("not-the-secret"),
        "the secret is never printed"
    );
}

#[tokio::test]
async fn s3_and_secrets_manager_problems_are_named() {
    let (h, _) = setup(33, 10, &[("STATE_BUCKET", "no-such-bucket-m365-trace")]).await;
    let err = h
        .tick(&h.app(fast_options()), "req-bucket")
        .await
        .expect_err("no bucket");
    assert!(
        err.contains("STATE_BUCKET no-such-bucket-m365-trace does not exist"),
        "{err}"
    );

    let (h, _) = setup(34, 10, &[("SECRET_ID", "no-such-secret")]).await;
    let err = h
        .tick(&h.app(fast_options()), "req-secret")
        .await
        .expect_err("no secret");
    assert!(
        err.contains("no-such-secret") && err.contains("ResourceNotFoundException"),
        "{err}"
    );
}

#[tokio::test]
async fn a_tick_stops_pulling_in_time_to_commit_before_the_deadline() {
    let (h, _) = setup(35, 300, &[]).await;
    // Every one of the 12 requests a full pull makes is slow: one that did not stop would take
    // 8.4 s, twice the bound.
    for _ in 0..12 {
        h.graph.inject(Fault::Delay(Duration::from_millis(700)));
    }
    let app = h.app(TickOptions {
        commit_reserve: Duration::from_secs(2),
        ..fast_options()
    });
    let deadline = Duration::from_millis(3500);
    let started = Instant::now();

    let summary = h
        .invoke(&app, scheduled_event(), "req-deadline", deadline)
        .await
        .expect("tick");

    assert!(
        started.elapsed() < deadline_bound(deadline),
        "returned by the deadline: {:?}",
        started.elapsed()
    );
    assert_eq!(summary["caught_up"], json!(false));
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert_eq!(checkpoint["lease"], json!(null), "committed and released");
}
