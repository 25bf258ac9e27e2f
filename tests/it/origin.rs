//! The token goes only where it was issued for: a nextLink or a redirect to another origin is
//! refused with an error naming the host, and that host never receives the token or the
//! client secret. The "other host" is a tiny local server that records what it was sent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;
use m365_trace_devtools::graph::Fault;
use m365_trace_to_devo::app::http_client;
use m365_trace_to_devo::secret::Secret;
use m365_trace_to_devo::trace::TraceError;
use m365_trace_to_devo::trace::auth::TokenSource;
use m365_trace_to_devo::trace::fetch::Spent;
use m365_trace_to_devo::trace::graph::GraphClient;
use m365_trace_to_devo::trace::http::Budget;
use m365_trace_to_devo::trace::reporting::{MESSAGE_TRACE_PATH, ReportingClient};
use m365_trace_to_devo::trace::request_budget::RequestBudget;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request as the tiny server read it.
#[derive(Debug, Clone)]
struct Seen {
    /// Whether it carried an Authorization header.
    authorization: bool,
    /// The whole request as text (headers and what arrived of the body).
    text: String,
}

/// A local HTTP/1.1 server on 127.0.0.1 that answers every request with `answer(request line)`
/// and records what it received; it stops when dropped.
struct Tiny {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Tiny {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Tiny {
    async fn start(answer: impl Fn(&str) -> String + Send + Sync + 'static) -> Tiny {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        let answer = Arc::new(answer);
        let task = tokio::spawn(async move {
            // Bounded: a handful of connections, each read for at most two seconds.
            for _ in 0..32 {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = vec![0u8; 64 * 1024];
                let mut len = 0;
                while len < buf.len() {
                    let read = tokio::time::timeout(
                        Duration::from_millis(300),
                        stream.read(&mut buf[len..]),
                    );
                    match read.await {
                        Ok(Ok(n)) if n > 0 => len += n,
                        _ => break,
                    }
                }
                let text = String::from_utf8_lossy(&buf[..len]).into_owned();
                let line = text.lines().next().unwrap_or_default().to_owned();
                let authorization = text
                    .lines()
                    .any(|l| l.to_ascii_lowercase().starts_with("authorization:"));
                let reply = answer(&line);
                record.lock().unwrap().push(Seen {
                    authorization,
                    text,
                });
                let _ = stream.write_all(reply.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        });
        Tiny { url, seen, task }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn reply(status: &str, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
        body.len()
    )
}

fn secret() -> Secret {
    Secret::parse(
        "test",
        &json!({"tenant_id": TENANT, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "devo_cert_pem": "x", "devo_key_pem": "x", "devo_chain_pem": "x"})
        .to_string(),
    )
    .expect("secret")
}

fn budget() -> Budget {
    Budget::new(
        tokio::time::Instant::now() + Duration::from_secs(20),
        Duration::from_secs(5),
        Duration::from_millis(20),
    )
}

#[tokio::test]
async fn a_next_link_to_another_host_fails_the_window_naming_it_and_gets_no_token() {
    let evil = Tiny::start(|_| reply("200 OK", "", r#"{"value":[]}"#)).await;
    let h = Harness::start(Vec::new(), &[]).await;
    let link = format!(
        "{}/v1.0/admin/exchange/tracing/messageTraces?$skiptoken=abc",
        evil.url
    );
    h.graph.inject(Fault::TraceStatus {
        status: 200,
        body: json!({"value": [], "@odata.nextLink": link}).to_string(),
        retry_after: None,
    });
    let app = h.app(fast_options());

    let err = h
        .tick(&app, "req-offsite")
        .await
        .expect_err("the window fails");

    let host = evil.url.trim_start_matches("http://");
    assert!(err.contains(host), "the host is named: {err}");
    assert!(err.contains("nextLink"), "{err}");
    assert!(err.contains("access token was not sent"), "{err}");
    assert!(
        evil.seen().iter().all(|s| !s.authorization),
        "the other host never saw a token: {:?}",
        evil.seen()
    );
    let issued = h.graph.issued_tokens();
    assert!(
        evil.seen()
            .iter()
            .all(|s| issued.iter().all(|t| !s.text.contains(t.as_str()))),
        "no issued token reached the other host"
    );
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed_with_the_token() {
    let evil = Tiny::start(|_| reply("200 OK", "", r#"{"value":[]}"#)).await;
    let to_evil = format!("Location: {}/steal\r\n", evil.url);
    let graph = Tiny::start(move |line| {
        if line.starts_with("POST") {
            reply(
                "200 OK",
                "",
                r#"{"access_token":"token-for-graph-only","expires_in":3600}"#,
            )
        } else {
            reply("307 Temporary Redirect", &to_evil, "")
        }
    })
    .await;
    let http = http_client().expect("client");
    let client = GraphClient::new(http.clone(), &graph.url, 10, 100);
    let mut tokens = TokenSource::new(http, &graph.url, client.scope(), &secret());
    let mut throttle = RequestBudget::new(&[], 1000, chrono::Duration::minutes(5));
    let url = format!(
        "{}/v1.0/admin/exchange/tracing/messageTraces?$top=10",
        graph.url
    );

    let err = client
        .page(
            &url,
            &mut tokens,
            &budget(),
            &mut throttle,
            "messageTraces test",
            &mut Spent::default(),
        )
        .await
        .expect_err("refused");

    assert!(
        matches!(
            &err,
            TraceError::OffOrigin {
                via: "redirect",
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains(evil.url.trim_start_matches("http://")),
        "the host is named: {text}"
    );
    assert!(text.contains("GRAPH_URL"), "{text}");
    assert!(
        evil.seen().is_empty(),
        "the other host got nothing: {:?}",
        evil.seen()
    );
    assert_eq!(graph.seen().len(), 2, "one token request, one page request");
}

#[tokio::test]
async fn a_token_endpoint_redirect_to_another_host_gets_no_client_secret() {
    let evil = Tiny::start(|_| reply("200 OK", "", r#"{"access_token":"x"}"#)).await;
    let to_evil = format!("Location: {}/token\r\n", evil.url);
    let login = Tiny::start(move |_| reply("307 Temporary Redirect", &to_evil, "")).await;
    let http = http_client().expect("client");
    let mut tokens = TokenSource::new(
        http,
        &login.url,
        "https://graph.microsoft.com/.default".into(),
        &secret(),
    );

    let err = tokens.token(&budget()).await.expect_err("refused");

    let text = err.to_string();
    assert!(
        text.contains(evil.url.trim_start_matches("http://")),
        "the host is named: {text}"
    );
    assert!(text.contains("client credentials were not sent"), "{text}");
    assert!(!text.contains(CLIENT_SECRET), "{text}");
    assert!(evil.seen().is_empty(), "{:?}", evil.seen());
    assert!(
        login.seen()[0].text.contains("client_secret"),
        "the secret went to the login host only"
    );
}

#[tokio::test]
async fn reporting_next_links_to_another_host_are_refused_in_both_json_forms() {
    let evil = Tiny::start(|_| reply("200 OK", "", r#"{"value":[]}"#)).await;
    let evil_host = evil.url.trim_start_matches("http://").to_owned();
    // JSON light with an absolute link; verbose JSON with a link whose user info names the
    // reporting host while the host is the other one.
    let light = serde_json::json!({"value": [{"MessageTraceId": "m1", "RecipientAddress": "r@x.com"}],
        "odata.nextLink": format!("{}/ecp/reportingwebservice/reporting.svc/MessageTrace?$skiptoken=1", evil.url)});
    for body in [light, serde_json::Value::Null] {
        let link_host = evil_host.clone();
        let reporting = Tiny::start(move |line| {
            if line.starts_with("POST") {
                return reply(
                    "200 OK",
                    "",
                    r#"{"access_token":"token-for-reporting-only","expires_in":3600}"#,
                );
            }
            let page = if body.is_null() {
                serde_json::json!({"d": {"results": [{"MessageTraceId": "m1", "RecipientAddress": "r@x.com"}],
                    "__next": format!("http://127.0.0.1@{link_host}/ecp/x?$skiptoken=2")}})
            } else {
                body.clone()
            };
            reply("200 OK", "", &page.to_string())
        })
        .await;
        let http = http_client().expect("client");
        let client = ReportingClient::new(http.clone(), &reporting.url, "scope/.default", 100);
        let mut tokens = TokenSource::new(http, &reporting.url, client.scope(), &secret());
        let first = format!("{}{MESSAGE_TRACE_PATH}", reporting.url);

        let page = client
            .page(
                &first,
                &mut tokens,
                &budget(),
                "MessageTrace test",
                &mut Spent::default(),
            )
            .await
            .expect("first page");
        let next = page.next_link.expect("a next link");
        let err = client
            .page(
                &next,
                &mut tokens,
                &budget(),
                "MessageTrace test",
                &mut Spent::default(),
            )
            .await
            .expect_err("refused");

        let text = err.to_string();
        assert!(
            matches!(
                &err,
                TraceError::OffOrigin {
                    via: "nextLink",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(text.contains(&evil_host), "the host is named: {text}");
        assert!(text.contains("REPORTING_URL"), "{text}");
        assert!(!text.contains("token-for-reporting-only"), "{text}");
    }
    assert!(
        evil.seen().is_empty(),
        "the other host got nothing: {:?}",
        evil.seen()
    );
}
