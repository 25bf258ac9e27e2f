//! The Devo Query API client against the devtools stand-in: the two queries the product sends
//! answer from what the relay holds (lost lines excluded, another collector's included), page
//! by `limit`/`offset` without overlap, and each refusal (401, 403, 429, 5xx) reads as what to
//! fix, without the token.

use std::time::Duration;

use m365_trace_devtools::devo::DevoListener;
use m365_trace_devtools::devo::query::DevoQueryApi;
use m365_trace_devtools::pki::TestPki;
use m365_trace_to_devo::secret::QueryToken;
use m365_trace_to_devo::trace::http::Budget;
use m365_trace_to_devo::verify::{QueryClient, QueryError, Target};

const TOKEN: &str = "qt-SECRET-0123456789";
const TABLE: &str = "cloud.office365.messagetracing";

fn line(time: &str, host: &str, id: &str, status: &str) -> String {
    format!(
        r#"<14>2026-11-24 {time} {host} {TABLE}: {{"MessageTraceId":"{id}","RecipientAddress":"r@contoso.com","Status":"{status}"}}"#
    )
}

fn target() -> Target {
    Target {
        table: TABLE.into(),
        hostname: "contoso".into(),
    }
}

fn budget(seconds: u64) -> Budget {
    Budget::new(
        tokio::time::Instant::now() + Duration::from_secs(seconds),
        Duration::from_secs(10),
        Duration::from_millis(10),
    )
}

fn at(h: u32) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono::Utc.with_ymd_and_hms(2026, 11, 24, h, 0, 0).unwrap()
}

async fn stand_in() -> (DevoListener, DevoQueryApi) {
    let pki = TestPki::generate(&["localhost", "127.0.0.1"]).expect("pki");
    let relay = DevoListener::start(&pki).await.expect("relay");
    let api = DevoQueryApi::start(&relay, TOKEN).await.expect("query api");
    relay.hold_lines([
        line("10:15:00.000", "contoso", "m1", "Pending"),
        line("10:20:00.000", "contoso", "m1", "Delivered"),
        line("10:59:59.999", "contoso", "m2", "Delivered"),
        line("11:00:00.000", "contoso", "m3", "Failed"),
        line("10:30:00.000", "fabrikam", "m9", "Delivered"),
    ]);
    (relay, api)
}

fn client(api: &DevoQueryApi, token: &str) -> QueryClient {
    let http = m365_trace_to_devo::app::http_client().expect("http");
    QueryClient::new(http, &api.url(), QueryToken::new(token), "tenant-secret")
}

#[tokio::test]
async fn counts_per_hour_and_keys_of_an_hour_come_back_paged() {
    let (_relay, api) = stand_in().await;
    let client = client(&api, TOKEN).with_page_rows(2);
    let counts = client
        .lines_per_hour(&target(), at(9), at(12), &budget(30))
        .await
        .expect("counts");
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        [(at(10), 3), (at(11), 1)]
    );
    let held = client
        .keys_of_hour(&target(), at(10), &budget(30))
        .await
        .expect("keys");
    let keys: Vec<(&str, &str, u64)> = held
        .keys
        .iter()
        .map(|k| (k.message_trace_id.as_str(), k.status.as_str(), k.lines))
        .collect();
    assert_eq!(
        keys,
        [
            ("m1", "Delivered", 1),
            ("m1", "Pending", 1),
            ("m2", "Delivered", 1)
        ]
    );
    let pages: Vec<(Option<u64>, Option<u64>)> = api
        .queries()
        .iter()
        .filter(|q| q.query.contains("group every 1h by"))
        .map(|q| (q.limit, q.offset))
        .collect();
    assert_eq!(
        pages,
        [(Some(2), Some(0)), (Some(2), Some(2))],
        "two pages, no overlap"
    );
    let sent = &api.queries()[0];
    assert_eq!(
        (sent.from, sent.to),
        (at(9).timestamp(), at(12).timestamp())
    );
}

#[tokio::test]
async fn a_wrong_token_names_the_secret_field_and_never_the_token() {
    let (_relay, api) = stand_in().await;
    let wrong = "qt-WRONG-9876543210";
    let err = client(&api, wrong)
        .lines_per_hour(&target(), at(9), at(12), &budget(30))
        .await
        .unwrap_err();
    assert!(matches!(err, QueryError::Unauthorized { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("\"devo_query_token\" in secret tenant-secret"),
        "{text}"
    );
    assert!(text.contains("DEVO_QUERY_URL"), "{text}");
    assert!(!text.contains(wrong) && !text.contains(TOKEN), "{text}");
    assert!(!format!("{err:?}").contains(wrong));
}

#[tokio::test]
async fn a_table_outside_the_tokens_scope_names_the_table_and_devo_tag() {
    let (_relay, api) = stand_in().await;
    api.allow_tables(Some(vec!["my.app.other".into()]));
    let err = client(&api, TOKEN)
        .keys_of_hour(&target(), at(10), &budget(30))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, QueryError::Forbidden { .. }), "{text}");
    assert!(
        text.contains("Access not allowed for table 'cloud.office365.messagetracing'"),
        "{text}"
    );
    assert!(
        text.contains("DEVO_TAG") && text.contains("devo_query_token"),
        "{text}"
    );
    assert_eq!(api.queries().len(), 1, "a 403 is not retried");
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_then_reported() {
    let (_relay, api) = stand_in().await;
    api.fail_next(&[429, 503]);
    let counts = client(&api, TOKEN)
        .lines_per_hour(&target(), at(9), at(12), &budget(30))
        .await
        .expect("answered after a 429 and a 503");
    assert_eq!(counts.values().sum::<u64>(), 4);
    assert_eq!(
        api.queries().iter().map(|q| q.status).collect::<Vec<_>>(),
        [429, 503, 200]
    );
    api.fail_next(&[500; 10]);
    let err = client(&api, TOKEN)
        .lines_per_hour(&target(), at(9), at(12), &budget(30))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, QueryError::Unavailable { status: 500, .. }),
        "{text}"
    );
    assert!(
        text.contains("HTTP 500") && text.contains("can be run again"),
        "{text}"
    );
    api.fail_next(&[429; 10]);
    let err = client(&api, TOKEN)
        .lines_per_hour(&target(), at(9), at(12), &budget(30))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("HTTP 429") && err.contains("rate limit"),
        "{err}"
    );
}

#[tokio::test]
async fn a_base_url_that_is_not_the_query_api_says_so() {
    let (_relay, api) = stand_in().await;
    let http = m365_trace_to_devo::app::http_client().expect("http");
    let wrong = api.url().replace("/search", "/elsewhere");
    let err = QueryClient::new(http, &wrong, QueryToken::new(TOKEN), "s")
        .lines_per_hour(&target(), at(9), at(12), &budget(30))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("HTTP 404") && err.contains("check that DEVO_QUERY_URL"),
        "{err}"
    );
}
