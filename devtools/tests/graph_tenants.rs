//! One Graph stand-in serves several tenants, each with its own credentials, records and
//! faults; the token's tenant decides whose records a request gets. Records can appear late and
//! change status.

mod common;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::*;
use m365_trace_devtools::graph::{Fault, GraphServer, GraphServerConfig};
use m365_trace_devtools::records::{self, GraphRecord};

fn tenant(id: &str, client: &str, secret: &str, records: Vec<GraphRecord>) -> GraphServerConfig {
    GraphServerConfig {
        tenant_id: id.into(),
        client_id: client.into(),
        client_secret: secret.into(),
        records,
    }
}

fn window() -> (DateTime<Utc>, DateTime<Utc>, String) {
    let now = Utc::now();
    let (start, end) = (now - TimeDelta::days(2), now - TimeDelta::days(1));
    let first = traces_path(
        &records::graph_time(&start),
        &records::graph_time(&end),
        Some(7),
    );
    (start, end, first)
}

fn keys(records: &[GraphRecord]) -> Vec<String> {
    let mut k: Vec<_> = records
        .iter()
        .map(|r| format!("{}|{}", r.id, r.recipient_address))
        .collect();
    k.sort();
    k
}

#[tokio::test]
async fn each_tenant_gets_its_own_records_and_tokens_do_not_cross() {
    let (start, end, first) = window();
    let a_records = records::generate(1, start, end, 30);
    let b_records = records::generate(2, start, end, 20);
    let server = GraphServer::start_tenants(vec![
        tenant("tenant-a", "client-a", "secret-a", a_records.clone()),
        tenant("tenant-b", "client-b", "secret-b", b_records.clone()),
    ])
    .await
    .unwrap();
    assert_eq!(server.tenant_ids(), vec!["tenant-a", "tenant-b"]);
    let a = server.tenant("tenant-a").unwrap();
    let b = server.tenant("tenant-b").unwrap();
    assert!(server.tenant("tenant-c").is_none());

    let ta = token_for(&server, "tenant-a", "client-a", "secret-a").await;
    let tb = token_for(&server, "tenant-b", "client-b", "secret-b").await;
    let got_a = all_records(&server, first.clone(), &ta, str::to_string).await;
    let got_b = all_records(&server, first.clone(), &tb, str::to_string).await;
    assert_eq!(keys(&got_a), keys(&a_records));
    assert_eq!(keys(&got_b), keys(&b_records));
    assert_eq!((a.trace_requests(), b.trace_requests()), (5, 3));
    assert_eq!(server.trace_requests(), 8);
    assert_eq!((a.tokens_issued(), b.tokens_issued()), (1, 1));
    assert!(
        a.requests()
            .iter()
            .all(|r| r.tenant.as_deref() == Some("tenant-a"))
    );

    // A's credentials at B's token endpoint, and B's client with A's secret: refused.
    let form = |client: &str, secret: &str| {
        format!(
            "grant_type=client_credentials&client_id={client}&client_secret={secret}&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"
        )
    };
    let r = token_request(&server, "tenant-b", &form("client-a", "secret-a")).await;
    assert_eq!(
        (r.status, r.json()["error_codes"][0].as_u64()),
        (400, Some(700016))
    );
    let r = token_request(&server, "tenant-b", &form("client-b", "secret-a")).await;
    assert_eq!(
        (r.status, r.json()["error_codes"][0].as_u64()),
        (401, Some(7000215))
    );
    assert_eq!(b.tokens_issued(), 1);

    // A nextLink issued for A's token is not valid with B's token.
    let r = get(&server, &first, &ta).await.unwrap();
    let link = r.json()["@odata.nextLink"].as_str().unwrap().to_string();
    let r = get(&server, &link, &tb).await.unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(get(&server, &link, &ta).await.unwrap().status, 200);

    // Faults and revocation are per tenant.
    b.inject(Fault::TraceStatus {
        status: 503,
        body: "{}".into(),
        retry_after: None,
    });
    assert_eq!(get(&server, &first, &ta).await.unwrap().status, 200);
    assert_eq!(get(&server, &first, &tb).await.unwrap().status, 503);
    a.revoke_tokens();
    assert_eq!(get(&server, &first, &ta).await.unwrap().status, 401);
    assert_eq!(get(&server, &first, &tb).await.unwrap().status, 200);
}

#[tokio::test]
async fn a_multi_tenant_app_gets_the_data_of_the_tenant_in_the_token_path() {
    let (start, end, first) = window();
    let ids = ["t-0", "t-1", "t-2"];
    let configs = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            tenant(
                id,
                "mssp-app",
                "mssp-secret",
                records::generate(i as u64, start, end, 5 + i),
            )
        })
        .collect();
    let server = GraphServer::start_tenants(configs).await.unwrap();
    for (i, id) in ids.iter().enumerate() {
        let t = token_for(&server, id, "mssp-app", "mssp-secret").await;
        let got = all_records(&server, first.clone(), &t, str::to_string).await;
        assert_eq!(
            keys(&got),
            keys(&records::generate(i as u64, start, end, 5 + i)),
            "{id}"
        );
        assert_eq!(server.tenant(id).unwrap().records().len(), 5 + i);
    }
    let twice = GraphServer::start_tenants(vec![
        tenant("same", "c", "s", vec![]),
        tenant("same", "c", "s", vec![]),
    ])
    .await;
    assert!(twice.is_err());
    assert!(GraphServer::start_tenants(vec![]).await.is_err());
}

#[tokio::test]
async fn late_records_appear_at_their_instant_and_statuses_change() {
    let (start, end, first) = window();
    let early = records::generate(3, start, end, 10);
    let late = records::generate(4, start, end, 2);
    let server = GraphServer::start(config(early.clone())).await.unwrap();
    let t = token(&server).await;
    let visible_from = Utc::now() + TimeDelta::milliseconds(700);
    for r in &late {
        server.add_late_record(r.clone(), visible_from);
    }
    let before = all_records(&server, first.clone(), &t, str::to_string).await;
    assert_eq!(
        keys(&before),
        keys(&early),
        "late records hidden before their instant"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let after = all_records(&server, first.clone(), &t, str::to_string).await;
    let mut both = early.clone();
    both.extend(late.clone());
    assert_eq!(keys(&after), keys(&both));

    let target = &early[4];
    let new_status = if target.status == "failed" {
        "delivered"
    } else {
        "failed"
    };
    assert!(server.set_status(&target.id, &target.recipient_address, new_status));
    assert!(!server.set_status("no-such-id", "nobody@example.com", "failed"));
    let changed = all_records(&server, first, &t, str::to_string).await;
    let seen = changed
        .iter()
        .find(|r| r.id == target.id && r.recipient_address == target.recipient_address)
        .unwrap();
    assert_eq!(seen.status, new_status);
}
