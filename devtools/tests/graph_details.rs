//! The Graph stand-in serves a delivery's details as Graph does, in the same throttle as the
//! list calls, and an evolvable status only to a client that asks for it.

mod common;

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use common::*;
use m365_trace_devtools::graph::{GraphServer, UNKNOWN_FUTURE_VALUE, detail_rows};
use m365_trace_devtools::records::{self, GraphRecord};
use serde_json::Value;

fn record(status: &str, recipient: &str) -> GraphRecord {
    let start = Utc::now() - TimeDelta::days(1);
    let mut r = records::generate(3, start, start + TimeDelta::hours(1), 1).remove(0);
    r.status = status.into();
    r.recipient_address = recipient.into();
    r
}

/// The details path as the product writes it: the address an OData literal, the segment
/// percent-encoded.
fn details_path(r: &GraphRecord) -> String {
    let literal = format!("'{}'", r.recipient_address.replace('\'', "''"));
    let call = format!("getDetailsByRecipient(recipientAddress={literal})");
    let encoded: String = call
        .bytes()
        .map(|b| match b {
            b'a'..=b'z'
            | b'A'..=b'Z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b'@'
            | b'\''
            | b'('
            | b')'
            | b'=' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!(
        "/v1.0/admin/exchange/tracing/messageTraces/{}/{encoded}",
        r.id
    )
}

#[tokio::test]
async fn a_deliverys_details_say_what_happened_to_it() {
    let failed = record("failed", "o'brien+x@contoso.com");
    let spam = record("filteredAsSpam", "lee.gu@contoso.com");
    let quarantined = record("quarantined", "megan.bowen@contoso.com");
    let server = GraphServer::start(config(vec![
        failed.clone(),
        spam.clone(),
        quarantined.clone(),
    ]))
    .await
    .unwrap();
    let t = token(&server).await;
    let r = get(&server, &details_path(&failed), &t).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let rows = r.json()["value"].as_array().unwrap().clone();
    let events: Vec<&str> = rows.iter().map(|v| v["event"].as_str().unwrap()).collect();
    assert_eq!(events.last(), Some(&"Fail"));
    assert!(events.contains(&"Receive"));
    assert!(
        rows.last().unwrap()["description"]
            .as_str()
            .unwrap()
            .contains("550 5.1.10 RESOLVER.ADR.RecipientNotFound")
    );
    for row in &rows {
        assert_eq!(row["id"], Value::from(failed.id.clone()));
        for field in ["messageId", "dateTime", "action", "description", "data"] {
            assert!(row[field].is_string(), "{field} in {row}");
        }
    }
    assert_eq!(rows, detail_rows(&failed), "what the tests expect");
    let spam_rows = get(&server, &details_path(&spam), &t).await.unwrap().json()["value"].clone();
    assert!(
        spam_rows.to_string().contains("Junk Email folder"),
        "{spam_rows}"
    );
    let q_rows = get(&server, &details_path(&quarantined), &t)
        .await
        .unwrap()
        .json()["value"]
        .clone();
    assert_eq!(
        q_rows.as_array().unwrap().last().unwrap()["event"],
        "Quarantine"
    );
    assert!(q_rows.to_string().contains("<root><MEP"), "{q_rows}");
    assert_eq!(server.detail_requests(), 3);
    assert_eq!(server.trace_requests(), 0, "details are not list calls");
}

#[tokio::test]
async fn an_unknown_delivery_is_404_and_a_bad_literal_400() {
    let r = record("failed", "a@contoso.com");
    let server = GraphServer::start(config(vec![r.clone()])).await.unwrap();
    let t = token(&server).await;
    let other = GraphRecord {
        recipient_address: "b@contoso.com".into(),
        ..r.clone()
    };
    let missing = get(&server, &details_path(&other), &t).await.unwrap();
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert_eq!(missing.json()["error"]["code"], "ResourceNotFound");
    let unquoted = format!(
        "/v1.0/admin/exchange/tracing/messageTraces/{}/getDetailsByRecipient(recipientAddress=a@contoso.com)",
        r.id
    );
    assert_eq!(get(&server, &unquoted, &t).await.unwrap().status, 400);
    let single = format!(
        "/v1.0/admin/exchange/tracing/messageTraces/{}/getDetailsByRecipient(recipientAddress='o'brien@contoso.com')",
        r.id
    );
    assert_eq!(get(&server, &single, &t).await.unwrap().status, 400);
    assert_eq!(
        get(&server, &details_path(&r), "nope")
            .await
            .unwrap()
            .status,
        401
    );
}

#[tokio::test]
async fn detail_calls_count_in_the_list_calls_throttle() {
    let now = Utc::now();
    let r = record("failed", "a@contoso.com");
    let server = GraphServer::start(config(vec![r.clone()])).await.unwrap();
    server.set_throttle(Some((2, Duration::from_secs(60))));
    let t = token(&server).await;
    let list = traces_path(&rfc(now - TimeDelta::days(2)), &rfc(now), None);
    assert_eq!(get(&server, &list, &t).await.unwrap().status, 200);
    assert_eq!(
        get(&server, &details_path(&r), &t).await.unwrap().status,
        200
    );
    let throttled = get(&server, &details_path(&r), &t).await.unwrap();
    assert_eq!(throttled.status, 429);
    assert!(throttled.header("retry-after").is_some());
    assert_eq!(get(&server, &list, &t).await.unwrap().status, 429);
}

#[tokio::test]
async fn recalled_is_served_only_to_a_client_that_prefers_the_unknown_enum_members() {
    let now = Utc::now();
    let r = record("recalled", "a@contoso.com");
    let server = GraphServer::start(config(vec![r])).await.unwrap();
    let t = token(&server).await;
    let list = traces_path(&rfc(now - TimeDelta::days(2)), &rfc(now), None);
    let status = |reply: Reply| {
        reply.json()["value"][0]["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        status(get(&server, &list, &t).await.unwrap()),
        UNKNOWN_FUTURE_VALUE
    );
    let bearer = format!("Bearer {t}");
    let preferred = http(
        &server.url(),
        "GET",
        &list,
        &[
            ("Authorization", &bearer),
            ("Prefer", "include-unknown-enum-members"),
        ],
        "",
    )
    .await
    .unwrap();
    assert_eq!(status(preferred), "recalled");
}
