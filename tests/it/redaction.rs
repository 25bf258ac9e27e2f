//! No client secret, access token, private key or certificate body in any log line, error or
//! summary, across succeeding and failing ticks.

use std::io::Write;

use std::sync::{Arc, Mutex};
use tracing_subscriber::prelude::*;

use crate::support::*;
use chrono::{TimeDelta, Utc};
use m365_trace_devtools::graph::Fault;
use m365_trace_devtools::pki::TestPki;
use m365_trace_devtools::records::generate;
use m365_trace_to_devo::app::TickOptions;
use serde_json::json;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The secret-bearing strings: the client secret, and every base64 line of the PEM bodies.
fn secrets(h: &Harness, extra: &[&str]) -> Vec<String> {
    let mut out = vec![CLIENT_SECRET.to_owned()];
    for pem in [
        &h.pki.client_key_pem,
        &h.pki.client_cert_pem,
        &h.pki.ca_pem,
        &h.pki.server_key_pem,
    ] {
        out.extend(
            pem.lines()
                .filter(|l| !l.starts_with("-----") && l.len() >= 16)
                .map(str::to_owned),
        );
    }
    out.extend(extra.iter().map(|s| s.to_string()));
    out
}

#[tokio::test]
async fn logs_errors_and_summaries_never_carry_secrets() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(move || writer.clone())
            .with_filter(m365_trace_to_devo::logging::filter(Some("debug"))),
    );
    let _guard = tracing::subscriber::set_default(subscriber);

    let now = Utc::now();
    let records = generate(
        41,
        now - TimeDelta::days(2),
        now - TimeDelta::hours(25),
        300,
    );
    let h = Harness::start(records, &[("LOG_LEVEL", "debug")]).await;
    let app = h.app(TickOptions {
        devo_attempts: 1,
        ..fast_options()
    });
    let mut outputs: Vec<String> = Vec::new();

    // Succeeding ticks, with retries on the way.
    h.graph.inject(Fault::TokenStatus {
        status: 500,
        body: "{}".into(),
    });
    h.graph.inject(Fault::TraceStatus {
        status: 429,
        body: "{}".into(),
        retry_after: Some(0),
    });
    outputs.push(h.tick(&app, "r1").await.expect("tick").to_string());
    // A relay cut, a truncated page that stays truncated, a 401 from the API, a refused
    // secret, a wrong chain: failing ticks.
    h.put_checkpoint(&json!({"version": 1, "end": now - TimeDelta::hours(40), "updated_at": now}))
        .await;
    h.devo.cut_next_connection_after(3);
    outputs.push(h.tick(&app, "r2").await.expect_err("cut"));
    for _ in 0..10 {
        h.graph.inject(Fault::TruncatedPage);
    }
    outputs.push(h.tick(&app, "r3").await.expect_err("truncated"));
    for _ in 0..3 {
        h.graph.inject(Fault::TraceStatus {
            status: 401,
            body: r#"{"error":{"code":"InvalidAuthenticationToken","message":"Access token validation failure."}}"#.into(),
            retry_after: None,
        });
    }
    outputs.push(h.tick(&app, "r4").await.expect_err("401"));
    let mut secret = h.secret_document();
    secret["client_secret"] = json!(format!("{CLIENT_SECRET}-wrong"));
    h.set_secret(&secret).await;
    outputs.push(h.tick(&app, "r5").await.expect_err("wrong secret"));
    let other = TestPki::generate(&["localhost"]).unwrap();
    let mut secret = h.secret_document();
    secret["devo_chain_pem"] = json!(other.ca_pem);
    h.set_secret(&secret).await;
    outputs.push(h.tick(&app, "r6").await.expect_err("wrong chain"));
    // A secret that is not JSON: its content must not be echoed.
    h.set_secret(&json!(format!(
        "{{\"client_secret\": \"{CLIENT_SECRET}\", "
    )))
    .await;
    outputs.push(h.tick(&app, "r7").await.expect_err("malformed secret"));

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.lines().count() > 10, "logs were captured");
    assert!(logs.contains("\"event\":\"window\"") && logs.contains("\"event\":\"tick_failed\""));
    let tokens = h.graph.issued_tokens();
    assert!(!tokens.is_empty());
    let token_refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let everything = format!("{logs}\n{}", outputs.join("\n"));
    for secret in secrets(&h, &token_refs)
        .iter()
        .chain(secrets(&h, &[]).iter())
    {
        assert!(
            !everything.contains(secret.as_str()),
            "secret material leaked: …{}…",
            &secret[..8.min(secret.len())]
        );
    }
    for word in [
        "Bearer ",
        "BEGIN PRIVATE KEY",
        "BEGIN CERTIFICATE",
        "client_assertion=",
    ] {
        assert!(!everything.contains(word), "{word} leaked");
    }
}
