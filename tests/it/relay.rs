//! Streams the relay ends while they sit idle (issue 11 §1, issue 17): a stream the relay ended
//! cleanly while idle, with nothing written since, confirms what it carried — between pages and
//! at the close alike — and is replaced; a line written as it closed (a reset behind the end)
//! is never counted; the product also closes its own idle streams after `DEVO_IDLE_SECONDS`.

use std::time::Duration;

use crate::support::*;
use chrono::{TimeDelta, Utc};
use m365_trace_devtools::devo::DevoListener;
use m365_trace_devtools::graph::Fault;
use m365_trace_devtools::pki::TestPki;
use m365_trace_devtools::records::{GraphRecord, generate};
use m365_trace_to_devo::devo::{DevoSender, DevoTls};
use m365_trace_to_devo::secret::DevoCredentials;
use serde_json::json;

/// The second trace request (page 2 of the first window) sleeps `pause`.
fn pause_before_page_two(h: &Harness, pause: Duration) {
    h.graph.inject(Fault::Delay(Duration::ZERO));
    h.graph.inject(Fault::Delay(pause));
}

#[tokio::test]
async fn a_stream_the_relay_ended_while_idle_is_replaced_and_nothing_is_lost() {
    let records = first_window_records(201, 60);
    // DEVO_IDLE_SECONDS stays at its default (30 s): only the relay closes the idle stream.
    let h = Harness::start(records.clone(), &[("PAGE_SIZE", "20")]).await;
    h.devo.close_idle_after(Some(Duration::from_secs(1)));
    pause_before_page_two(&h, Duration::from_millis(1500));
    let app = h.app(fast_options());

    let summary = h.tick(&app, "req-idle-relay").await.expect("tick");

    assert_same_keys(
        h.received_keys(),
        records.iter().map(record_key).collect(),
        "each record exactly once: page 1 before the relay's idle close, pages 2 and 3 after",
    );
    assert_eq!(summary["events_sent"], json!(60), "{summary}");
    assert_eq!(summary["caught_up"], json!(true), "{summary}");
    let (checkpoint, _) = h.checkpoint().await.unwrap();
    assert_eq!(
        checkpoint["partial"],
        json!(null),
        "the window completed: {checkpoint}"
    );
    let sessions = trace_sessions(&h.devo);
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert!(
        sessions[0].idle_closed && sessions[0].lines == 20,
        "the relay ended the first stream after page 1: {sessions:?}"
    );
    assert!(
        sessions[1].clean_close && sessions[1].lines == 40,
        "pages 2 and 3 went on a new stream that we closed: {sessions:?}"
    );
}

#[tokio::test]
async fn the_product_closes_a_stream_idle_for_devo_idle_seconds_and_opens_a_new_one() {
    let records = first_window_records(202, 60);
    let h = Harness::start(
        records.clone(),
        &[("PAGE_SIZE", "20"), ("DEVO_IDLE_SECONDS", "1")],
    )
    .await;
    pause_before_page_two(&h, Duration::from_millis(1500));
    let app = h.app(fast_options());

    let summary = h.tick(&app, "req-idle-ours").await.expect("tick");

    assert_same_keys(
        h.received_keys(),
        records.iter().map(record_key).collect(),
        "each record exactly once",
    );
    assert_eq!(summary["caught_up"], json!(true), "{summary}");
    let sessions = trace_sessions(&h.devo);
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert!(
        sessions[0].clean_close && !sessions[0].idle_closed && sessions[0].lines == 20,
        "we closed the idle stream after page 1 ourselves: {sessions:?}"
    );
    assert!(
        sessions[1].clean_close && sessions[1].lines == 40,
        "{sessions:?}"
    );
}

/// A reconciliation window of 404 records in pages of 100 taking 1.5 s, the 4 late ones on
/// its third page: the two pages after it send no line. The relay ends streams idle for
/// `relay_idle`; `env` adds settings. Returns the reconciliation tick's summary (or its error)
/// and the expected keys, each once.
async fn reconcile_with_idle_pages(
    seed: u64,
    relay_idle: Duration,
    extra: &[(&'static str, &'static str)],
) -> (Harness, Result<serde_json::Value, String>, Vec<String>) {
    let t0 = Utc::now();
    let records = generate(
        seed,
        t0 - TimeDelta::seconds(10),
        t0 - TimeDelta::seconds(4),
        400,
    );
    let mut env = vec![
        ("DELAY_SECONDS", "12"),
        ("FRESH_DELAY_SECONDS", "2"),
        ("PAGE_SIZE", "100"),
    ];
    env.extend_from_slice(extra);
    let h = Harness::start(records.clone(), &env).await;
    // Received inside the span, exposed only after the fresh pass looked at it.
    let late: Vec<GraphRecord> = generate(
        seed + 1,
        t0 - TimeDelta::seconds(8),
        t0 - TimeDelta::seconds(7),
        4,
    );
    let app = h.app(fast_options());
    h.tick(&app, "req-fresh").await.expect("fresh tick");
    for r in &late {
        h.graph.add_late_record(r.clone(), Utc::now());
    }
    assert_eq!(h.trace_lines().len(), 400);

    h.graph.set_page_latency(Duration::from_millis(1500));
    h.devo.close_idle_after(Some(relay_idle));
    if let Ok(d) = (t0 + TimeDelta::seconds(12) - Utc::now()).to_std() {
        tokio::time::sleep(d).await;
    }
    let summary = h.tick(&app, "req-reconcile").await;
    let mut expected: Vec<String> = records.iter().map(record_key).collect();
    expected.extend(late.iter().map(record_key));
    (h, summary, expected)
}

/// The reconciliation pass behind a relay that ends streams idle for 1 s (issue 17, bullet 3):
/// the relay ends the stream during the pages without lines. That end confirms what the stream
/// carried: the window completes in one tick and each late record arrives once (before: every
/// tick failed with `Devo` after three attempts, each late record re-sent each time).
#[tokio::test]
async fn reconciliation_behind_a_relay_that_ends_idle_streams_sends_each_late_record_once() {
    let (h, summary, expected) = reconcile_with_idle_pages(203, Duration::from_secs(1), &[]).await;

    let summary = summary.expect("the relay's idle close lost nothing: the tick succeeds");
    let reconcile = summary["passes"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["pass"] == json!("reconcile")))
        .unwrap_or_else(|| panic!("no reconcile pass in {summary}"));
    assert_eq!(reconcile["late_records"], json!(4), "{summary}");
    assert_eq!(reconcile["caught_up"], json!(true), "{summary}");
    assert_same_keys(
        h.received_keys(),
        expected,
        "every record once, the late ones included: never re-sent for an idle close",
    );
}

/// `DEVO_IDLE_SECONDS` applies between pages without lines too: the product closes its idle
/// stream itself before the relay (idle limit 2.5 s) ends it.
#[tokio::test]
async fn reconciliation_closes_its_idle_stream_itself_between_pages_without_lines() {
    let (h, summary, expected) = reconcile_with_idle_pages(
        205,
        Duration::from_millis(2500),
        &[("DEVO_IDLE_SECONDS", "1")],
    )
    .await;

    let summary = summary.expect("tick");
    assert_same_keys(
        h.received_keys(),
        expected,
        &format!("every record once: {summary}"),
    );
    let sessions = trace_sessions(&h.devo);
    assert!(
        sessions.iter().all(|s| s.clean_close && !s.idle_closed),
        "every stream closed by us, none left for the relay to end: {sessions:?}"
    );
}

/// A listener and a sender's TLS settings for it.
async fn relay() -> (DevoListener, DevoTls) {
    let pki = TestPki::generate(&["localhost", "127.0.0.1"]).expect("pki");
    let listener = DevoListener::start(&pki).await.expect("listener");
    let credentials = DevoCredentials {
        cert_pem: pki.client_cert_pem.clone(),
        key_pem: pki.client_key_pem.clone(),
        chain_pem: pki.ca_pem.clone(),
    };
    let tls = DevoTls::new(&credentials, &listener.address(), "localhost").expect("tls");
    (listener, tls)
}

const LINES: &[u8] = b"<14>one\n<14>two\n<14>three\n";
const TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn finish_after_the_relay_ended_an_idle_stream_confirms_what_it_carried() {
    // The same state means the same at the close as between pages (issue 17): the relay read
    // every line before its idle close, and nothing was written since.
    let (listener, tls) = relay().await;
    listener.close_idle_after(Some(Duration::from_millis(500)));
    let mut sender = DevoSender::connect(&tls, TIMEOUT).await.expect("connect");
    sender.send(LINES, 3, TIMEOUT).await.expect("send");
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let delivered = sender
        .finish(TIMEOUT)
        .await
        .expect("confirmed by the idle close");

    assert_eq!(delivered.lines, 3);
    assert_eq!(listener.line_count(), 3);
    assert!(listener.sessions()[0].idle_closed);
}

#[tokio::test]
async fn lines_written_after_the_relay_ended_the_stream_are_never_counted_as_delivered() {
    // The data loss of issue 11: the write succeeds into the socket buffer, and the relay's
    // earlier end of stream must not be read as the acknowledgement.
    let (listener, tls) = relay().await;
    listener.close_idle_after(Some(Duration::from_millis(500)));
    let mut sender = DevoSender::connect(&tls, TIMEOUT).await.expect("connect");
    sender.send(LINES, 3, TIMEOUT).await.expect("send");
    tokio::time::sleep(Duration::from_secs(1)).await;

    let second = sender.send(b"<14>four\n<14>five\n", 2, TIMEOUT).await;
    let result = match second {
        Ok(()) => sender.finish(TIMEOUT).await,
        Err(e) => Err(e),
    };

    let error = result.expect_err("the last two lines were never read");
    assert!(error.broke_stream(), "{error}");
    assert_eq!(
        listener.line_count(),
        3,
        "the relay read only the first three"
    );
}

#[tokio::test]
async fn finish_on_an_open_stream_counts_every_line() {
    let (listener, tls) = relay().await;
    let mut sender = DevoSender::connect(&tls, TIMEOUT).await.expect("connect");
    sender.send(LINES, 3, TIMEOUT).await.expect("send");
    tokio::time::sleep(Duration::from_secs(1)).await;

    let delivered = sender.finish(TIMEOUT).await.expect("confirmed");

    assert_eq!(delivered.lines, 3);
    assert_eq!(delivered.bytes, LINES.len() as u64);
    assert!(listener.wait_for_idle(TIMEOUT).await);
    let sessions = listener.sessions();
    assert!(
        sessions[0].clean_close && sessions[0].lines == 3,
        "{sessions:?}"
    );
}

#[tokio::test]
async fn a_line_that_reached_the_relay_after_its_idle_close_is_never_taken_for_read() {
    // The race of a relay closing an idle stream just as a page is written: the page reaches a
    // closed socket, which answers with a reset. The stream then looks ended, but the reset
    // behind its end says the last write was not read: it broke, and its lines go again.
    let (listener, tls) = relay().await;
    listener.close_idle_after(Some(Duration::from_millis(200)));
    let mut sender = DevoSender::connect(&tls, TIMEOUT).await.expect("connect");
    sender.send(LINES, 3, TIMEOUT).await.expect("send");
    // Wait until the relay has closed the session, without looking at the stream ourselves
    // (as if its close were still on the way when we write).
    for _ in 0..100 {
        if listener.sessions().first().is_some_and(|s| s.finished) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        listener.sessions()[0].idle_closed,
        "{:?}",
        listener.sessions()
    );
    let write = sender.send(b"<14>late\n", 1, TIMEOUT).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Either the write itself met the reset, or it went into the socket buffer and the reset
    // came back behind the relay's end, where the close must see it: on both branches the
    // stream confirms nothing (its lines go again) and the error says it broke.
    let outcome = match write {
        Ok(()) => sender.finish(TIMEOUT).await,
        Err(e) => Err(e),
    };
    let error = outcome.expect_err(
        "the late line was never read: a reset behind the relay's end confirms nothing",
    );
    assert!(error.broke_stream(), "{error}");
    assert_eq!(
        listener.line_count(),
        3,
        "the relay never read the late line"
    );
}
