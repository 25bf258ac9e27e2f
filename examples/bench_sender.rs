//! Benchmark helper of `scripts/bench` (not part of the Lambda):
//!
//! * `bench_sender lines --records N --out FILE [--seed S]` writes the Devo lines of N generated
//!   records (devtools' deterministic generator), mapped and framed by the product's own code,
//!   exactly as a tick frames them;
//! * `bench_sender send --lines FILE --address HOST:PORT --certs DIR [--server-name NAME]`
//!   sends that file through the product's `DevoSender` (mutual TLS, flush, close, wait for the
//!   relay's end of stream) and prints one JSON line: lines, bytes, seconds, lines per second,
//!   CPU seconds and peak memory of this process.
//!
//! The line-rate comparison with Devo's Python SDK (`devo-sdk`) sends the same file.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, TimeZone, Utc};
use m365_trace_devtools::records;
use m365_trace_devtools::runtime_api::ProcessUsage;
use m365_trace_to_devo::devo::{DevoSender, DevoTls, frame_line};
use m365_trace_to_devo::secret::DevoCredentials;
use m365_trace_to_devo::trace::record::{GraphRecord, MappingContext, to_message_trace};

#[path = "support/options.rs"]
mod support;

use support::{Failure, options, required};

/// About one Graph page of lines per write, as a tick writes them.
const CHUNK: usize = 4 << 20;
const HOSTNAME: &str = "m365-trace-to-devo";
const TAG: &str = "cloud.office365.messagetracing";

fn write_lines(opts: &HashMap<String, String>) -> Result<(), Failure> {
    let count: usize = required(opts, "records")?.parse()?;
    let seed: u64 = opts.get("seed").map_or(Ok(1), |s| s.parse())?;
    let out = required(opts, "out")?;
    let start = Utc
        .with_ymd_and_hms(2026, 11, 24, 0, 0, 0)
        .single()
        .ok_or("bad start")?;
    let end = start + TimeDelta::days(1);
    let context = MappingContext {
        organization: "00000000-0000-0000-0000-000000000001",
        start,
        end,
    };
    let mut buf = Vec::with_capacity(count * 800);
    for (index, generated) in records::generate(seed, start, end, count)
        .iter()
        .rev()
        .enumerate()
    {
        // Through Graph's JSON, as the product receives a record.
        let record: GraphRecord = serde_json::from_slice(&serde_json::to_vec(generated)?)?;
        let trace = to_message_trace(&record, &context, index as u64);
        frame_line(
            &mut buf,
            record.received_date_time.unwrap_or(start),
            HOSTNAME,
            TAG,
            &trace,
        )?;
    }
    std::fs::write(out, &buf)?;
    println!(
        "{}",
        serde_json::json!({"lines": count, "bytes": buf.len(), "bytes_per_line": buf.len() / count.max(1)})
    );
    Ok(())
}

async fn send(opts: &HashMap<String, String>) -> Result<(), Failure> {
    let data = std::fs::read(required(opts, "lines")?)?;
    let certs = std::path::Path::new(required(opts, "certs")?);
    let credentials = DevoCredentials {
        cert_pem: std::fs::read_to_string(certs.join("client.pem"))?,
        key_pem: std::fs::read_to_string(certs.join("client.key"))?,
        chain_pem: std::fs::read_to_string(certs.join("ca.pem"))?,
    };
    let server_name = opts.get("server-name").map_or("localhost", String::as_str);
    let tls = DevoTls::new(&credentials, required(opts, "address")?, server_name)?;
    let timeout = Duration::from_secs(60);

    let started = Instant::now();
    let mut sender = DevoSender::connect(&tls, timeout).await?;
    let mut rest = &data[..];
    while !rest.is_empty() {
        let cut = if rest.len() <= CHUNK {
            rest.len()
        } else {
            rest[..CHUNK]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(rest.len(), |p| p + 1)
        };
        let (chunk, tail) = rest.split_at(cut);
        let lines = chunk.iter().filter(|b| **b == b'\n').count() as u64;
        sender.send(chunk, lines, timeout).await?;
        rest = tail;
    }
    let delivered = sender.finish(timeout).await?;
    let seconds = started.elapsed().as_secs_f64();
    let usage = ProcessUsage::of(std::process::id());
    println!(
        "{}",
        serde_json::json!({
            "sender": "m365-trace-to-devo DevoSender",
            "lines": delivered.lines,
            "bytes": delivered.bytes,
            "seconds": seconds,
            "lines_per_second": delivered.lines as f64 / seconds.max(1e-9),
            "cpu_seconds": usage.map(|u| u.user_seconds + u.system_seconds),
            "peak_rss_kib": usage.map(|u| u.peak_rss_kib),
        })
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = args.split_first().ok_or(
        "usage: bench_sender lines --records N --out FILE | send --lines FILE --address A --certs DIR",
    )?;
    let opts = options(rest)?;
    match command.as_str() {
        "lines" => write_lines(&opts),
        "send" => send(&opts).await,
        other => Err(format!("unknown command {other}").into()),
    }
}
