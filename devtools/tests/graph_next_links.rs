//! The Graph stand-in's skip tokens look like Microsoft's, and its nextLinks break the ways
//! Graph's are known to break: refused on every follow (elastic/integrations#18985) and
//! double-encoded (elastic/integrations#18134).

mod common;

use chrono::{TimeDelta, Utc};
use common::*;
use m365_trace_devtools::graph::{GraphServer, INVALID_STARTING_RECIPIENT};
use m365_trace_devtools::records::{self, GraphRecord};

/// A server with 60 records in the last two days, and the first page (20 records) of them.
async fn server_and_first_page() -> (GraphServer, String, Vec<GraphRecord>) {
    let now = Utc::now();
    let start = now - TimeDelta::days(2);
    let end = now - TimeDelta::days(1);
    let all = records::generate(5, start, end, 60);
    let server = GraphServer::start(config(all.clone())).await.unwrap();
    let first = traces_path(
        &records::graph_time(&start),
        &records::graph_time(&end),
        Some(20),
    );
    (server, first, all)
}

fn keys(records: &[GraphRecord]) -> Vec<(String, String)> {
    let mut k: Vec<_> = records
        .iter()
        .map(|r| (r.id.clone(), r.recipient_address.clone()))
        .collect();
    k.sort();
    k
}

#[tokio::test]
async fn skip_tokens_are_base64_json_cursors_like_microsoft_s() {
    let (server, first, all) = server_and_first_page().await;
    let t = token(&server).await;
    let r = get(&server, &first, &t).await.unwrap();
    let page: Vec<GraphRecord> = serde_json::from_value(r.json()["value"].clone()).unwrap();
    let link = r.json()["@odata.nextLink"].as_str().unwrap().to_string();
    // Percent-encoded in the URL: no raw '+', '/' or '=' in the value.
    assert!(!raw_skiptoken(&link).contains(['+', '/', '=']), "{link}");
    let json = skiptoken_json(&link);
    let start = first
        .split("ge%20")
        .nth(1)
        .unwrap()
        .split("%20")
        .next()
        .unwrap();
    assert_eq!(
        json["StartDate"].as_str().unwrap(),
        start.replace("%3A", ":")
    );
    assert_eq!(json["ResultSize"], "20");
    // The cursor names the first record of the next page.
    let r2 = get(&server, &link, &t).await.unwrap();
    assert_eq!(r2.status, 200, "{}", r2.body);
    let next: Vec<GraphRecord> = serde_json::from_value(r2.json()["value"].clone()).unwrap();
    assert_eq!(
        json["EndDate"],
        records::graph_time(&next[0].received_date_time)
    );
    assert_eq!(json["StartingRecipientAddress"], next[0].recipient_address);
    assert!(page.last().unwrap().received_date_time >= next[0].received_date_time);
    let got = all_records(&server, first, &t, str::to_string).await;
    assert_eq!(keys(&got), keys(&all), "every record exactly once");
}

#[tokio::test]
async fn refused_next_links_answer_400_on_every_follow_while_first_pages_work() {
    let (server, first, all) = server_and_first_page().await;
    let t = token(&server).await;
    server.set_refuse_next_links(true);
    for _ in 0..3 {
        let r = get(&server, &first, &t).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let link = r.json()["@odata.nextLink"].as_str().unwrap().to_string();
        let r = get(&server, &link, &t).await.unwrap();
        assert_eq!(r.status, 400, "{}", r.body);
        let v = r.json();
        assert_eq!(v["error"]["code"], "BadRequest");
        assert_eq!(v["error"]["message"], INVALID_STARTING_RECIPIENT);
        assert_eq!(
            v["error"]["message"],
            "|System.ArgumentException|Invalid starting recipient address"
        );
        assert!(v["error"]["innerError"]["request-id"].is_string());
        assert!(v["error"]["innerError"]["date"].is_string());
    }
    assert_eq!(server.pending_faults(), 0);
    // Switched off, the same sequence pages through everything.
    server.set_refuse_next_links(false);
    let got = all_records(&server, first, &t, str::to_string).await;
    assert_eq!(keys(&got), keys(&all));
}

#[tokio::test]
async fn double_encoded_skip_token_is_refused_and_the_repaired_one_works() {
    let (server, first, all) = server_and_first_page().await;
    let t = token(&server).await;
    server.set_double_encoded_skip_tokens(true);
    let r = get(&server, &first, &t).await.unwrap();
    let link = r.json()["@odata.nextLink"].as_str().unwrap().to_string();
    let json = skiptoken_json(&link);
    for field in ["StartDate", "EndDate", "StartingRecipientAddress"] {
        let v = json[field].as_str().unwrap();
        assert!(v.starts_with('"') && v.ends_with('"'), "{field}: {v}");
    }
    // Followed as is: refused, every time.
    for _ in 0..2 {
        let r = get(&server, &link, &t).await.unwrap();
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.json()["error"]["code"], "BadRequest");
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(
            message.starts_with("Cannot process argument transformation on parameter 'StartDate'."),
            "{message}"
        );
    }
    // Repaired before each follow: every record exactly once, newest first.
    let got = all_records(&server, first.clone(), &t, repair_skiptoken).await;
    assert_eq!(keys(&got), keys(&all));
    assert!(
        got.windows(2)
            .all(|w| w[0].received_date_time >= w[1].received_date_time)
    );
    // Switched off, links are followed as they are.
    server.set_double_encoded_skip_tokens(false);
    let got = all_records(&server, first, &t, str::to_string).await;
    assert_eq!(keys(&got), keys(&all));
}

#[tokio::test]
async fn pages_split_inside_one_instant_lose_and_repeat_nothing() {
    // Twelve records at one instant (not on Graph's 100 ns grid), several sharing a recipient:
    // the cursor needs the id as well as the time and the address.
    let now = Utc::now();
    let at = now - TimeDelta::hours(30) + TimeDelta::nanoseconds(37);
    let template = records::generate(9, at, at, 1).remove(0);
    let all: Vec<GraphRecord> = (0..12)
        .map(|i| GraphRecord {
            id: format!("00000000-0000-4000-8000-{:012}", 11 - i),
            recipient_address: format!("user{}@contoso.com", i % 3),
            received_date_time: at,
            ..template.clone()
        })
        .collect();
    for prerendered in [false, true] {
        let server = GraphServer::start(config(all.clone())).await.unwrap();
        if prerendered {
            server.prerender();
        }
        let t = token(&server).await;
        let first = traces_path(
            &rfc(now - TimeDelta::days(2)),
            &rfc(now - TimeDelta::hours(1)),
            Some(5),
        );
        let got = all_records(&server, first, &t, str::to_string).await;
        assert_eq!(keys(&got), keys(&all), "prerendered: {prerendered}");
        assert_eq!(server.trace_requests(), 3);
    }
}
