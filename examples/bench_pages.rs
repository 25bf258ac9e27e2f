//! Benchmark helper of `scripts/bench gzip` (not part of the Lambda): fetches message trace
//! pages from a Graph-like server with the product's own HTTP client (which asks for gzip and
//! decodes it), and prints one JSON line: pages, records, decoded bytes, seconds (from each
//! request to its whole decoded body, the pages one after another), the slowest page, and the
//! seconds the client's inflate alone takes for those pages (each page gzipped here at the
//! default level, then decoded as the client decodes it: the Lambda's own cost of compression).
//!
//! `bench_pages --url URL [--pages N] [--top 5000] [--tenant-id T --client-id C --client-secret S]`
//!
//! The bytes that crossed the wire are the server's to report (its request log).

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use m365_trace_to_devo::app::http_client;
use m365_trace_to_devo::trace::graph::{next_url, parse_page, query_time};

#[path = "support/options.rs"]
mod support;

use support::{Failure, options};

fn get<'a>(opts: &'a HashMap<String, String>, name: &str, default: &'a str) -> &'a str {
    opts.get(name).map_or(default, String::as_str)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = options(&args)?;
    let url = opts
        .get("url")
        .ok_or("--url is required")?
        .trim_end_matches('/');
    let pages: usize = get(&opts, "pages", "10").parse()?;
    let top = get(&opts, "top", "5000");
    let tenant = get(&opts, "tenant-id", "00000000-0000-0000-0000-000000000001");
    let http = http_client()?;
    let token: serde_json::Value = http
        .post(format!("{url}/{tenant}/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_id",
                get(&opts, "client-id", "00000000-0000-0000-0000-000000000002"),
            ),
            (
                "client_secret",
                get(&opts, "client-secret", "local-test-secret"),
            ),
            ("scope", &format!("{url}/.default")),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let bearer = format!(
        "Bearer {}",
        token["access_token"].as_str().ok_or("no access_token")?
    );
    let now = Utc::now();
    let filter = format!(
        "receivedDateTime ge {} and receivedDateTime le {}",
        query_time(now - TimeDelta::days(10) + TimeDelta::minutes(1)),
        query_time(now)
    );
    let mut next = Some(
        reqwest::Url::parse_with_params(
            &format!("{url}/v1.0/admin/exchange/tracing/messageTraces"),
            &[("$filter", filter.as_str()), ("$top", top)],
        )?
        .to_string(),
    );
    let (mut fetched, mut records, mut bytes) = (0usize, 0usize, 0usize);
    let (mut spent, mut slowest, mut inflate) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    while let (Some(page), true) = (next.take(), fetched < pages) {
        let started = Instant::now();
        let body = http
            .get(&page)
            .header(reqwest::header::AUTHORIZATION, &bearer)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let took = started.elapsed();
        spent += took;
        slowest = slowest.max(took);
        inflate += inflate_time(&body)?;
        let (values, link) = parse_page(&body)?;
        fetched += 1;
        records += values.len();
        bytes += body.len();
        next = link.map(|l| next_url(&page, &l));
    }
    println!(
        "{}",
        serde_json::json!({
            "pages": fetched,
            "records": records,
            "decoded_bytes": bytes,
            "seconds": spent.as_secs_f64(),
            "slowest_page_ms": slowest.as_secs_f64() * 1000.0,
            "inflate_seconds": inflate.as_secs_f64(),
        })
    );
    Ok(())
}

/// How long decoding `body`, gzipped at the default level, takes.
fn inflate_time(body: &[u8]) -> Result<Duration, Failure> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body)?;
    let packed = encoder.finish()?;
    let started = Instant::now();
    let mut out = Vec::with_capacity(body.len());
    flate2::read::GzDecoder::new(packed.as_slice()).read_to_end(&mut out)?;
    Ok(started.elapsed())
}
