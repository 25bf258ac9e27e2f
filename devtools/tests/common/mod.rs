//! Helpers shared by the Graph stand-in's tests: a minimal HTTP/1.1 client, token requests
//! and messageTraces queries.
#![allow(dead_code)]

use std::time::Duration;

use chrono::Utc;
use m365_trace_devtools::graph::{GraphServer, GraphServerConfig};
use m365_trace_devtools::records::GraphRecord;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Minimal HTTP/1.1 client: one request per connection.
pub async fn http(
    base: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<Reply> {
    let host = base.trim_start_matches("http://");
    let target = target.strip_prefix(base).unwrap_or(target);
    let mut s = TcpStream::connect(host).await?;
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw)).await??;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let reply = Reply {
        status,
        headers,
        body: body.to_string(),
    };
    if let Some(len) = reply
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        && len != reply.body.len()
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("body {} of {len}", reply.body.len()),
        ));
    }
    Ok(reply)
}

pub fn enc(s: &str) -> String {
    s.replace(' ', "%20").replace(':', "%3A")
}

pub fn config(records: Vec<GraphRecord>) -> GraphServerConfig {
    GraphServerConfig {
        tenant_id: "tenant-1".into(),
        client_id: "client-1".into(),
        client_secret: "s3cr3t".into(),
        records,
    }
}

pub async fn token_request(server: &GraphServer, tenant: &str, form: &str) -> Reply {
    http(
        &server.url(),
        "POST",
        &format!("/{tenant}/oauth2/v2.0/token"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form,
    )
    .await
    .unwrap()
}

pub const GOOD_FORM: &str = "grant_type=client_credentials&client_id=client-1&client_secret=s3cr3t&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default";

pub async fn token(server: &GraphServer) -> String {
    let r = token_request(server, "tenant-1", GOOD_FORM).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["access_token"].as_str().unwrap().to_string()
}

pub fn traces_path(start: &str, end: &str, top: Option<usize>) -> String {
    let mut p = format!(
        "/v1.0/admin/exchange/tracing/messageTraces?$filter={}",
        enc(&format!(
            "receivedDateTime ge {start} and receivedDateTime le {end}"
        ))
    );
    if let Some(t) = top {
        p.push_str(&format!("&$top={t}"));
    }
    p
}

pub async fn get(server: &GraphServer, target: &str, token: &str) -> std::io::Result<Reply> {
    http(
        &server.url(),
        "GET",
        target,
        &[("Authorization", &format!("Bearer {token}"))],
        "",
    )
    .await
}

pub fn rfc(t: chrono::DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A token for `tenant`, asked with this client id and secret; panics unless issued.
pub async fn token_for(
    server: &GraphServer,
    tenant: &str,
    client_id: &str,
    secret: &str,
) -> String {
    let form = format!(
        "grant_type=client_credentials&client_id={client_id}&client_secret={secret}&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"
    );
    let r = token_request(server, tenant, &form).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["access_token"].as_str().unwrap().to_string()
}

/// Follows every nextLink from `first` (after `fix`, e.g. a skip token repair); returns every
/// record of every page, in order.
pub async fn all_records(
    server: &GraphServer,
    first: String,
    token: &str,
    fix: impl Fn(&str) -> String,
) -> Vec<GraphRecord> {
    let mut next = Some(first);
    let mut got = Vec::new();
    while let Some(target) = next.take() {
        let r = get(server, &fix(&target), token).await.unwrap();
        assert_eq!(r.status, 200, "{target}: {}", r.body);
        let v = r.json();
        got.extend(serde_json::from_value::<Vec<GraphRecord>>(v["value"].clone()).unwrap());
        next = v["@odata.nextLink"].as_str().map(str::to_string);
    }
    got
}

/// Decodes `%XX` escapes.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The `$skiptoken` of a nextLink, as it appears in the URL (percent-encoded).
pub fn raw_skiptoken(link: &str) -> &str {
    let tail = link.split("$skiptoken=").nth(1).expect("a $skiptoken");
    tail.split('&').next().unwrap()
}

/// The JSON object inside a nextLink's skip token.
pub fn skiptoken_json(link: &str) -> Value {
    use base64::Engine;
    let token = percent_decode(raw_skiptoken(link));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .expect("standard base64 with padding");
    serde_json::from_slice(&bytes).expect("a JSON object")
}

/// The repair devtools/README.md describes: decode the token, strip the extra quotes of each
/// value, encode it again (standard base64 with padding) and percent-encode it.
pub fn repair_skiptoken(link: &str) -> String {
    use base64::Engine;
    if !link.contains("$skiptoken=") {
        return link.to_string();
    }
    let mut json = skiptoken_json(link);
    for value in json.as_object_mut().unwrap().values_mut() {
        if let Some(s) = value.as_str()
            && s.len() >= 2
            && s.starts_with('"')
            && s.ends_with('"')
        {
            *value = Value::String(s[1..s.len() - 1].to_string());
        }
    }
    let token = base64::engine::general_purpose::STANDARD.encode(json.to_string());
    let encoded = token
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    link.replace(raw_skiptoken(link), &encoded)
}
