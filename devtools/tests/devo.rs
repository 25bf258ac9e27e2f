//! The relay stand-in demands a client certificate from the test CA and keeps complete lines.

use std::sync::Arc;
use std::time::Duration;

use m365_trace_devtools::devo::DevoListener;
use m365_trace_devtools::pki::TestPki;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

async fn connect(
    pki: &TestPki,
    addr: &str,
    with_cert: bool,
) -> std::io::Result<TlsStream<TcpStream>> {
    let config = pki.client_config(with_cert)?;
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    if !with_cert {
        // With TLS 1.3 the server's rejection arrives after the client's handshake completes.
        tls.write_all(b"x\n").await?;
        tls.flush().await?;
        let mut buf = [0u8; 16];
        if tls.read(&mut buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(tls)
}

/// Closes the write side and reads until the relay's end of stream (5 s at most).
async fn close_and_read_rest(tls: &mut TlsStream<TcpStream>) -> Vec<u8> {
    tls.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    rest
}

#[tokio::test]
async fn accepts_client_cert_and_stores_lines() {
    let pki = TestPki::generate(&["localhost", "127.0.0.1"]).unwrap();
    let listener = DevoListener::start(&pki).await.unwrap();
    assert!(listener.address().starts_with("127.0.0.1:"));
    let mut tls = connect(&pki, &listener.address(), true).await.unwrap();
    tls.write_all("<14>2026-11-25 12:00:00.123 host tag: {\"a\":\"é😀\"}\nsecond\nthi".as_bytes())
        .await
        .unwrap();
    tls.write_all(b"rd\npartial").await.unwrap();
    // The relay answers end of stream once the client closes its write side.
    assert!(close_and_read_rest(&mut tls).await.is_empty());
    assert!(listener.wait_for_idle(Duration::from_secs(5)).await);
    assert_eq!(
        listener.lines(),
        vec![
            "<14>2026-11-25 12:00:00.123 host tag: {\"a\":\"é😀\"}",
            "second",
            "third"
        ]
    );
    assert_eq!(listener.connections(), 1);
    assert_eq!(listener.handshake_failures(), 0);
    let s = &listener.sessions()[0];
    assert!(s.clean_close && s.finished && !s.cut);
    assert_eq!((s.lines, s.trailing_bytes), (3, 7));
    assert_eq!(s.server_name.as_deref(), Some("localhost"));
}

#[tokio::test]
async fn count_only_counts_lines_and_bytes_without_keeping_them() {
    let pki = TestPki::generate(&["localhost", "127.0.0.1"]).unwrap();
    let listener = DevoListener::start(&pki).await.unwrap();
    listener.set_count_only(true);
    let mut tls = connect(&pki, &listener.address(), true).await.unwrap();
    let body = "a line\n".repeat(50_000);
    tls.write_all(body.as_bytes()).await.unwrap();
    tls.write_all(b"tail\nparti").await.unwrap();
    assert!(close_and_read_rest(&mut tls).await.is_empty());
    assert!(listener.wait_for_idle(Duration::from_secs(5)).await);
    assert!(listener.lines().is_empty());
    assert_eq!(listener.line_count(), 50_001);
    let s = &listener.sessions()[0];
    assert!(s.clean_close && s.finished);
    assert_eq!((s.lines, s.trailing_bytes), (50_001, 5));
    assert_eq!(s.bytes, body.len() as u64 + 10);
    assert!(s.elapsed > Duration::ZERO);
}

#[tokio::test]
async fn rejects_missing_and_foreign_client_certs() {
    let pki = TestPki::generate(&["localhost"]).unwrap();
    let listener = DevoListener::start(&pki).await.unwrap();
    assert!(connect(&pki, &listener.address(), false).await.is_err());
    // A client certificate from another CA.
    let other = TestPki::generate(&["localhost"]).unwrap();
    let foreign = TestPki {
        ca_pem: pki.ca_pem.clone(),
        ..other
    };
    let r = async {
        let mut tls = connect(&foreign, &listener.address(), true).await?;
        tls.write_all(b"x\n").await?;
        tls.flush().await?;
        let mut buf = [0u8; 1];
        tls.read(&mut buf).await
    }
    .await;
    assert!(r.is_err(), "{r:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        listener.handshake_failures(),
        2,
        "{:?}",
        listener.handshake_errors()
    );
    assert_eq!(listener.connections(), 0);
    assert!(listener.lines().is_empty());
}

#[tokio::test]
async fn rejects_expired_client_cert() {
    let pki = TestPki::generate_with_expired_client(&["localhost"]).unwrap();
    let listener = DevoListener::start(&pki).await.unwrap();
    let r = async {
        let mut tls = connect(&pki, &listener.address(), true).await?;
        tls.write_all(b"x\n").await?;
        tls.flush().await?;
        let mut buf = [0u8; 1];
        tls.read(&mut buf).await
    }
    .await;
    assert!(r.is_err(), "{r:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(listener.handshake_failures(), 1);
    assert!(
        listener.handshake_errors()[0]
            .to_lowercase()
            .contains("expired"),
        "{:?}",
        listener.handshake_errors()
    );
}

#[tokio::test]
async fn cut_and_refuse() {
    let pki = TestPki::generate(&["localhost"]).unwrap();
    let listener = DevoListener::start(&pki).await.unwrap();

    listener.refuse_next(2);
    for _ in 0..2 {
        assert!(connect(&pki, &listener.address(), true).await.is_err());
    }
    assert_eq!(listener.refused(), 2);

    listener.cut_next_connection_after(3);
    let mut tls = connect(&pki, &listener.address(), true).await.unwrap();
    let body: String = (0..50).map(|i| format!("line {i}\n")).collect();
    let _ = tls.write_all(body.as_bytes()).await;
    let _ = tls.flush().await;
    let mut rest = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(r.is_err(), "expected a reset, got {r:?}");
    assert!(listener.wait_for_idle(Duration::from_secs(5)).await);
    assert_eq!(listener.lines(), vec!["line 0", "line 1", "line 2"]);
    assert!(listener.sessions()[0].cut);

    // The next connection is normal again.
    let mut tls = connect(&pki, &listener.address(), true).await.unwrap();
    tls.write_all(b"after\n").await.unwrap();
    tls.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tls.read_to_end(&mut rest).await.unwrap();
    assert!(listener.wait_for_lines(4, Duration::from_secs(5)).await);
    assert_eq!(listener.lines()[3], "after");
    assert_eq!(listener.connections(), 2);
}

#[tokio::test]
async fn pki_round_trip_and_file_output() {
    let dir = std::env::temp_dir().join(format!("m365-devtools-test-{}", std::process::id()));
    let pki = TestPki::generate(&["localhost", "127.0.0.1"]).unwrap();
    pki.write_to(&dir).unwrap();
    let back = TestPki::read_from(&dir).unwrap();
    assert_eq!(back.client_key_pem, pki.client_key_pem);
    let out = dir.join("lines.txt");
    let listener = DevoListener::start_on(&back, "127.0.0.1:0".parse().unwrap(), Some(out.clone()))
        .await
        .unwrap();
    let mut tls = connect(&pki, &listener.address(), true).await.unwrap();
    tls.write_all(b"a\nb\n").await.unwrap();
    tls.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tls.read_to_end(&mut rest).await.unwrap();
    assert!(listener.wait_for_idle(Duration::from_secs(5)).await);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "a\nb\n");
    drop(listener);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn drop_stops_listener() {
    let pki = TestPki::generate(&["localhost"]).unwrap();
    let listener = DevoListener::start(&pki).await.unwrap();
    let addr = listener.address();
    drop(listener);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(TcpStream::connect(&addr).await.is_err());
}

#[tokio::test]
async fn idle_session_is_closed_cleanly_and_later_bytes_are_not_counted() {
    let pki = TestPki::generate(&["localhost"]).unwrap();
    let listener = DevoListener::start(&pki).await.unwrap();
    listener.close_idle_after(Some(Duration::from_millis(300)));
    let mut tls = connect(&pki, &listener.address(), true).await.unwrap();
    tls.write_all(b"one\ntwo\n").await.unwrap();
    tls.flush().await.unwrap();
    let started = std::time::Instant::now();
    // The relay ends the idle session: close_notify (read gives Ok(0), not UnexpectedEof)
    // followed by the end of the TCP stream.
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
        .await
        .expect("the listener ends an idle session")
        .expect("a clean end: close_notify, not a bare FIN or a reset");
    assert_eq!(n, 0);
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(listener.wait_for_idle(Duration::from_secs(5)).await);
    let s = &listener.sessions()[0];
    assert!(
        s.idle_closed && s.finished && !s.cut && !s.clean_close,
        "{s:?}"
    );
    assert_eq!(s.lines, 2);

    // What the client writes after the relay's close is never counted.
    let _ = tls.write_all(b"three\n").await;
    let _ = tls.flush().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = tls.write_all(b"four\n").await;
    let _ = tls.flush().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(listener.lines(), vec!["one", "two"]);
    assert_eq!(listener.line_count(), 2);

    // Switched off, a session that pauses longer than that stays open.
    listener.close_idle_after(None);
    let mut tls = connect(&pki, &listener.address(), true).await.unwrap();
    tls.write_all(b"five\n").await.unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    tls.write_all(b"six\n").await.unwrap();
    assert!(close_and_read_rest(&mut tls).await.is_empty());
    assert!(listener.wait_for_idle(Duration::from_secs(5)).await);
    let s = &listener.sessions()[1];
    assert!(s.clean_close && !s.idle_closed, "{s:?}");
    assert_eq!(listener.lines(), vec!["one", "two", "five", "six"]);
}

#[tokio::test]
async fn idle_close_applies_in_count_only_mode() {
    let pki = TestPki::generate(&["localhost"]).unwrap();
    let listener = DevoListener::start(&pki).await.unwrap();
    listener.set_count_only(true);
    listener.close_idle_after(Some(Duration::from_millis(200)));
    let mut tls = connect(&pki, &listener.address(), true).await.unwrap();
    tls.write_all(b"a\nb\nc\n").await.unwrap();
    tls.flush().await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut rest))
        .await
        .unwrap()
        .expect("close_notify then EOF");
    assert!(listener.wait_for_idle(Duration::from_secs(5)).await);
    let s = &listener.sessions()[0];
    assert!(s.idle_closed && s.finished, "{s:?}");
    assert_eq!((s.lines, listener.line_count()), (3, 3));
}
