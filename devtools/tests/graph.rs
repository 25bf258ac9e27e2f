//! The Graph stand-in follows the documented contract.

mod common;

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use common::*;
use m365_trace_devtools::graph::{Fault, GraphServer};
use m365_trace_devtools::records::{self, GraphRecord};
use serde_json::Value;

#[tokio::test]
async fn token_success_and_aadsts_errors() {
    let server = GraphServer::start(config(vec![])).await.unwrap();
    let ok = token_request(&server, "tenant-1", GOOD_FORM).await;
    assert_eq!(ok.status, 200);
    let v = ok.json();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3599);
    assert!(v["access_token"].as_str().unwrap().len() > 20);
    assert_eq!(server.tokens_issued(), 1);

    let cases = [
        (
            "other-tenant",
            GOOD_FORM.to_string(),
            400,
            "invalid_request",
            90002,
        ),
        (
            "tenant-1",
            GOOD_FORM.replace("client-1", "client-2"),
            400,
            "unauthorized_client",
            700016,
        ),
        (
            "tenant-1",
            GOOD_FORM.replace("s3cr3t", "wrong"),
            401,
            "invalid_client",
            7000215,
        ),
        (
            "tenant-1",
            GOOD_FORM.replace("client_credentials", "password"),
            400,
            "unsupported_grant_type",
            70003,
        ),
        (
            "tenant-1",
            GOOD_FORM.replace("%2F.default", "%2FMail.Read"),
            400,
            "invalid_scope",
            1002012,
        ),
        (
            "tenant-1",
            GOOD_FORM.replace("&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default", ""),
            400,
            "invalid_scope",
            70011,
        ),
    ];
    for (tenant, form, status, error, code) in cases {
        let r = token_request(&server, tenant, &form).await;
        assert_eq!(r.status, status, "{form}: {}", r.body);
        let v = r.json();
        assert_eq!(v["error"], error, "{}", r.body);
        assert_eq!(v["error_codes"][0], code);
        let desc = v["error_description"].as_str().unwrap();
        assert!(desc.starts_with(&format!("AADSTS{code}: ")), "{desc}");
        for part in ["Trace ID: ", "Correlation ID: ", "Timestamp: "] {
            assert!(desc.contains(part), "{desc}");
        }
        for key in ["timestamp", "trace_id", "correlation_id", "error_uri"] {
            assert!(v[key].is_string(), "{key}");
        }
    }
    assert_eq!(server.tokens_issued(), 1);

    server.inject(Fault::TokenStatus {
        status: 503,
        body: "{\"error\":\"temporarily_unavailable\"}".into(),
    });
    assert_eq!(
        token_request(&server, "tenant-1", GOOD_FORM).await.status,
        503
    );
    assert_eq!(
        token_request(&server, "tenant-1", GOOD_FORM).await.status,
        200
    );
    let reqs = server.requests();
    assert_eq!(reqs.len(), 9);
    assert!(
        reqs.iter()
            .all(|r| r.method == "POST" && r.path.ends_with("/oauth2/v2.0/token"))
    );
    assert_eq!(reqs[0].status, 200);
    assert_eq!(reqs[1].status, 400);
}

#[tokio::test]
async fn requires_a_token_it_issued() {
    let server = GraphServer::start(config(vec![])).await.unwrap();
    let now = Utc::now();
    let path = traces_path(&rfc(now - TimeDelta::hours(2)), &rfc(now), None);
    let r = http(&server.url(), "GET", &path, &[], "").await.unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "InvalidAuthenticationToken");
    assert!(r.json()["error"]["innerError"]["request-id"].is_string());
    let r = get(&server, &path, "forged").await.unwrap();
    assert_eq!(r.status, 401);
    let t = token(&server).await;
    let r = get(&server, &path, &t).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["value"].as_array().unwrap().len(), 0);
    assert!(r.json().get("@odata.nextLink").is_none());
}

#[tokio::test]
async fn filter_and_top_validation() {
    let server = GraphServer::start(config(vec![])).await.unwrap();
    let t = token(&server).await;
    let now = Utc::now();
    let s = rfc(now - TimeDelta::days(2));
    let e = rfc(now - TimeDelta::days(1));
    let bad = [
        (
            format!(
                "/v1.0/admin/exchange/tracing/messageTraces?$filter={}",
                enc(&format!("receivedDateTime ge {s}"))
            ),
            "both bounds",
        ),
        (
            "/v1.0/admin/exchange/tracing/messageTraces".to_string(),
            "$filter",
        ),
        (
            traces_path(&rfc(now - TimeDelta::days(12)), &e, None),
            "cannot exceed 10 days",
        ),
        (
            traces_path(
                &rfc(now - TimeDelta::days(91)),
                &rfc(now - TimeDelta::days(85)),
                None,
            ),
            "last 90 days",
        ),
        (traces_path(&e, &s, None), "later than its end"),
        (traces_path(&s, &e, Some(0)), "$top"),
        (traces_path(&s, &e, Some(5001)), "$top"),
        (
            traces_path("2026-13-01T00:00:00Z", &e, None),
            "DateTimeOffset",
        ),
        (
            format!("{}&$skiptoken=bogus", traces_path(&s, &e, None)),
            "skip token",
        ),
    ];
    for (path, needle) in bad {
        let r = get(&server, &path, &t).await.unwrap();
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        let v = r.json();
        assert_eq!(v["error"]["code"], "BadRequest");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{path}: {msg}");
    }
    // Fractional seconds, exactly 10 days, $top 5000 and an unknown $orderby are fine.
    let ok = format!(
        "{}&$orderby=receivedDateTime%20asc",
        traces_path(
            "2026-01-01T00:00:00.1234567Z",
            "2026-01-11T00:00:00.1234567Z",
            Some(5000)
        )
        .replace(
            "2026-01-01",
            &(now - TimeDelta::days(20)).format("%Y-%m-%d").to_string()
        )
        .replace(
            "2026-01-11",
            &(now - TimeDelta::days(10)).format("%Y-%m-%d").to_string()
        )
    );
    let r = get(&server, &ok, &t).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
}

fn assert_context(page: &Value, server: &GraphServer) {
    assert_eq!(
        page["@odata.context"],
        format!(
            "{}/v1.0/$metadata#admin/exchange/tracing/messageTraces",
            server.url()
        )
    );
}

#[tokio::test]
async fn pages_newest_first_and_every_record_once() {
    let now = Utc::now();
    let start = now - TimeDelta::days(3);
    let end = now - TimeDelta::days(1);
    let all = records::generate(
        42,
        start - TimeDelta::hours(6),
        end + TimeDelta::hours(6),
        3000,
    );
    let expected: Vec<&GraphRecord> = all
        .iter()
        .filter(|r| r.received_date_time >= start && r.received_date_time <= end)
        .collect();
    assert!(expected.len() > 1000);
    let server = GraphServer::start(config(all.clone())).await.unwrap();
    let t = token(&server).await;
    let mut next = Some(traces_path(
        &records::graph_time(&start),
        &records::graph_time(&end),
        Some(400),
    ));
    let mut got: Vec<GraphRecord> = Vec::new();
    let mut pages = 0;
    while let Some(target) = next.take() {
        let r = get(&server, &target, &t).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            r.header("content-type")
                .unwrap()
                .starts_with("application/json")
        );
        let v = r.json();
        assert_context(&v, &server);
        let page: Vec<GraphRecord> = serde_json::from_value(v["value"].clone()).unwrap();
        assert!(page.len() <= 400);
        got.extend(page);
        next = v["@odata.nextLink"].as_str().map(str::to_string);
        if let Some(n) = &next {
            assert!(n.starts_with(&server.url()), "{n}");
            assert!(n.contains("$top=400") && n.contains("$skiptoken="), "{n}");
        }
        pages += 1;
    }
    assert!(pages >= 3);
    assert_eq!(got.len(), expected.len());
    assert!(
        got.windows(2)
            .all(|w| w[0].received_date_time >= w[1].received_date_time)
    );
    let mut a: Vec<_> = got
        .iter()
        .map(|r| (r.id.clone(), r.recipient_address.clone()))
        .collect();
    a.sort();
    a.dedup();
    assert_eq!(a.len(), expected.len(), "duplicates across pages");
    let reqs = server.requests();
    assert_eq!(reqs.len(), pages + 1);
    assert!(
        reqs[2].query.contains("receivedDateTime ge ") && reqs[2].query.contains("$skiptoken="),
        "{:?}",
        reqs[2]
    );
    // A skiptoken does not work with another filter.
    let link = reqs[2].query.clone();
    let tok = link.split("$skiptoken=").nth(1).unwrap().to_string();
    let other = format!(
        "{}&$skiptoken={tok}",
        traces_path(&rfc(start), &rfc(end), Some(400))
    );
    let r = get(&server, &other, &t).await.unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
}

/// Every page of the query, as (records, nextLink present) per page.
async fn all_pages(server: &GraphServer, first: String) -> Vec<(Value, bool)> {
    let t = token(server).await;
    let mut next = Some(first);
    let mut pages = Vec::new();
    while let Some(target) = next.take() {
        let r = get(server, &target, &t).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        assert_context(&v, server);
        next = v["@odata.nextLink"].as_str().map(str::to_string);
        pages.push((v["value"].clone(), next.is_some()));
    }
    pages
}

#[tokio::test]
async fn prerendered_pages_are_the_same_pages() {
    let now = Utc::now();
    let start = now - TimeDelta::days(3);
    let end = now - TimeDelta::days(1);
    let all = records::generate(
        7,
        start - TimeDelta::hours(6),
        end + TimeDelta::hours(6),
        2000,
    );
    let first = traces_path(
        &records::graph_time(&start),
        &records::graph_time(&end),
        Some(300),
    );
    let plain = GraphServer::start(config(all.clone())).await.unwrap();
    let expected = all_pages(&plain, first.clone()).await;
    let fast = GraphServer::start(config(all)).await.unwrap();
    let average = fast.prerender();
    assert!(average > 200, "{average} bytes per record");
    let got = all_pages(&fast, first).await;
    assert!(expected.len() >= 3);
    assert_eq!(got, expected);
    assert_eq!(fast.trace_requests(), expected.len());
    // An empty query is one empty page.
    let none = traces_path(
        &records::graph_time(&(now - TimeDelta::days(80))),
        &records::graph_time(&(now - TimeDelta::days(79))),
        None,
    );
    let got = all_pages(&fast, none).await;
    assert_eq!(got, vec![(Value::Array(Vec::new()), false)]);
}

#[tokio::test]
async fn trace_faults() {
    let now = Utc::now();
    let start = now - TimeDelta::days(2);
    let end = now - TimeDelta::days(1);
    let server = GraphServer::start(config(records::generate(1, start, end, 50)))
        .await
        .unwrap();
    let t = token(&server).await;
    let first = traces_path(&rfc(start), &rfc(end), Some(20));

    server.inject(Fault::TraceStatus {
        status: 429,
        body: "{\"error\":{\"code\":\"TooManyRequests\"}}".into(),
        retry_after: Some(7),
    });
    server.inject(Fault::TraceStatus {
        status: 503,
        body: "oops".into(),
        retry_after: None,
    });
    let r = get(&server, &first, &t).await.unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("7"));
    let r = get(&server, &first, &t).await.unwrap();
    assert_eq!(
        (r.status, r.body.as_str(), r.header("retry-after")),
        (503, "oops", None)
    );

    server.inject(Fault::TruncatedPage);
    let err = get(&server, &first, &t).await;
    assert!(err.is_err(), "truncated page read whole");

    server.inject(Fault::Delay(Duration::from_millis(300)));
    let t0 = std::time::Instant::now();
    let r = get(&server, &first, &t).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(t0.elapsed() >= Duration::from_millis(300));
    let next = r.json()["@odata.nextLink"].as_str().unwrap().to_string();

    // ExpireSkipToken waits for a request that carries a skiptoken.
    server.inject(Fault::ExpireSkipToken);
    assert_eq!(get(&server, &first, &t).await.unwrap().status, 200);
    let r = get(&server, &next, &t).await.unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "BadRequest");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("skip token")
    );
    // Stays expired; a restarted sequence works.
    assert_eq!(get(&server, &next, &t).await.unwrap().status, 400);
    let r = get(&server, &first, &t).await.unwrap();
    let next = r.json()["@odata.nextLink"].as_str().unwrap().to_string();
    assert_eq!(get(&server, &next, &t).await.unwrap().status, 200);
    assert_eq!(server.pending_faults(), 0);

    let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        vec![200, 429, 503, 200, 200, 200, 400, 400, 200, 200]
    );

    // set_records takes effect.
    server.set_records(vec![]);
    let r = get(&server, &first, &t).await.unwrap();
    assert_eq!(r.json()["value"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn throttle() {
    let now = Utc::now();
    let server = GraphServer::start(config(vec![])).await.unwrap();
    server.set_throttle(Some((2, Duration::from_secs(60))));
    let t = token(&server).await;
    let p = traces_path(
        &rfc(now - TimeDelta::days(2)),
        &rfc(now - TimeDelta::days(1)),
        None,
    );
    assert_eq!(get(&server, &p, &t).await.unwrap().status, 200);
    assert_eq!(get(&server, &p, &t).await.unwrap().status, 200);
    let r = get(&server, &p, &t).await.unwrap();
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() <= 61);
}

#[tokio::test]
async fn certificate_credential() {
    use m365_trace_devtools::pki::AppCredential;
    let server = GraphServer::start(config(vec![])).await.unwrap();
    let cred = AppCredential::generate("m365-trace-to-devo test app").unwrap();
    let aud = format!("{}/tenant-1/oauth2/v2.0/token", server.url());
    let form = |assertion: &str| {
        format!(
            "grant_type=client_credentials&client_id=client-1&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}"
        )
    };
    let good = cred.client_assertion(&aud, "client-1").unwrap();
    // Not registered yet.
    let r = token_request(&server, "tenant-1", &form(&good)).await;
    assert_eq!(
        (r.status, r.json()["error_codes"][0].as_u64()),
        (401, Some(700027)),
        "{}",
        r.body
    );
    server.add_client_certificate(&cred.cert_pem).unwrap();
    let r = token_request(&server, "tenant-1", &form(&good)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(server.tokens_issued(), 1);

    let other = AppCredential::generate("other").unwrap();
    let forged = {
        let theirs = other.client_assertion(&aud, "client-1").unwrap();
        let mine: Vec<&str> = good.split('.').collect();
        format!(
            "{}.{}.{}",
            mine[0],
            mine[1],
            theirs.split('.').nth(2).unwrap()
        )
    };
    let cases = [
        (forged, 401, 700027),
        (
            cred.client_assertion(
                "https://login.microsoftonline.com/x/oauth2/v2.0/token",
                "client-1",
            )
            .unwrap(),
            401,
            700023,
        ),
        (
            cred.client_assertion(&aud, "someone-else").unwrap(),
            401,
            700021,
        ),
        ("not-a-jwt".to_string(), 400, 50027),
    ];
    for (assertion, status, code) in cases {
        let r = token_request(&server, "tenant-1", &form(&assertion)).await;
        assert_eq!(
            (r.status, r.json()["error_codes"][0].as_u64()),
            (status, Some(code)),
            "{}",
            r.body
        );
    }
    assert_eq!(server.tokens_issued(), 1);
}
