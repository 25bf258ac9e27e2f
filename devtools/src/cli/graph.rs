//! The `graph` command: a Graph-like server on loopback serving generated records, with the
//! faults, late records and status changes the demo and the benchmark ask for.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DurationRound, TimeDelta, Utc};
use clap::Args;
use m365_trace_devtools::graph::{GraphServer, GraphServerConfig};
use m365_trace_devtools::records;
use serde_json::json;

use crate::{check_loopback, run_until};

/// Arguments of `graph`.
#[derive(Args)]
pub(crate) struct GraphArgs {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Number of records to generate.
    #[arg(long, default_value_t = 5000)]
    records: usize,
    /// Seed of the record generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Records span [now - days - end_seconds_ago, now - end_seconds_ago).
    #[arg(long, default_value_t = 3)]
    days: i64,
    /// Records end this many seconds before the server starts (default 25 h: every record is
    /// past the default DELAY_SECONDS).
    #[arg(long, default_value_t = 90_000)]
    end_seconds_ago: i64,
    /// Records span this many seconds instead of --days (for short two-pass runs).
    #[arg(long)]
    span_seconds: Option<i64>,
    /// Two passes: this many more records in the span, exposed --changes-after-seconds late.
    #[arg(long, default_value_t = 0)]
    late: usize,
    /// Two passes: this many records change status --changes-after-seconds after the server
    /// starts (Pending and Failed become Delivered, any other status Failed).
    #[arg(long, default_value_t = 0)]
    status_changes: usize,
    /// This many more records in the two whole hours that ended an hour before the current
    /// one: hours every pass has long delivered, for the demo's audit.
    #[arg(long, default_value_t = 0)]
    earlier: usize,
    /// When the late records appear and the statuses change.
    #[arg(long, default_value_t = 30)]
    changes_after_seconds: u64,
    /// Tenant id the token endpoint accepts.
    #[arg(long, default_value = "00000000-0000-0000-0000-000000000001")]
    tenant_id: String,
    /// Client (application) id the token endpoint accepts.
    #[arg(long, default_value = "00000000-0000-0000-0000-000000000002")]
    client_id: String,
    /// Client secret the token endpoint accepts.
    #[arg(long, default_value = "local-test-secret")]
    client_secret: String,
    /// PEM certificate registered on the app (certificate credential); repeatable.
    #[arg(long)]
    client_certificate: Vec<PathBuf>,
    /// Enforce Graph's throttling (100 messageTraces requests per 5 minutes).
    #[arg(long)]
    throttle: bool,
    /// Never gzip pages, even for requests that accept it (to measure what gzip saves).
    #[arg(long)]
    no_gzip: bool,
    /// Render every record's JSON once at startup and serve pages by copying bytes (for
    /// benchmarks: the server is then never the bottleneck).
    #[arg(long)]
    prerendered: bool,
    /// Fault: every nextLink followed answers 400 "Invalid starting recipient address".
    #[arg(long)]
    refuse_next_links: bool,
    /// Fault: nextLinks carry double-encoded skip tokens (values in extra quotes).
    #[arg(long)]
    double_encoded_skip_tokens: bool,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 900)]
    max_seconds: u64,
}

/// `graph`: serves generated records until `--max-seconds` or Ctrl-C.
pub(crate) async fn graph(args: GraphArgs) -> std::io::Result<ExitCode> {
    check_loopback(&args.listen)?;
    let now = Utc::now();
    let end = now - TimeDelta::seconds(args.end_seconds_ago.max(0));
    let start = match args.span_seconds {
        Some(span) => end - TimeDelta::seconds(span.max(0)),
        None => end - TimeDelta::days(args.days.max(0)),
    };
    let mut generated = records::generate(args.seed, start, end, args.records);
    let changed = records::status_changes(&generated, args.status_changes);
    if args.earlier > 0 {
        let hour = now.duration_trunc(TimeDelta::hours(1)).unwrap_or(now);
        let (from, to) = (hour - TimeDelta::hours(3), hour - TimeDelta::hours(1));
        generated.extend(records::generate(
            args.seed.wrapping_add(2),
            from,
            to,
            args.earlier,
        ));
    }
    let count = generated.len();
    let server = GraphServer::start_on(
        GraphServerConfig {
            tenant_id: args.tenant_id,
            client_id: args.client_id,
            client_secret: args.client_secret,
            records: generated,
        },
        args.listen,
    )
    .await?;
    let changes_at = now + TimeDelta::seconds(args.changes_after_seconds as i64);
    for r in records::generate(args.seed.wrapping_add(1), start, end, args.late) {
        eprintln!(
            "late record {}|{} received {} exposed from {changes_at}",
            r.id, r.recipient_address, r.received_date_time
        );
        server.add_late_record(r, changes_at);
    }
    server.set_log(true);
    for path in &args.client_certificate {
        let pem = std::fs::read_to_string(path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        server.add_client_certificate(&pem)?;
    }
    server.set_gzip(!args.no_gzip);
    server.set_refuse_next_links(args.refuse_next_links);
    server.set_double_encoded_skip_tokens(args.double_encoded_skip_tokens);
    if args.throttle {
        server.set_throttle(Some((100, Duration::from_secs(300))));
    }
    if args.prerendered {
        let average = server.prerender();
        eprintln!("pre-rendered {count} records, {average} bytes of JSON each on average");
    }
    // Key order kept as documented, for scripts that do not parse JSON.
    println!("{{\"url\":{},\"records\":{count}}}", json!(server.url()));
    let after = Duration::from_secs(args.changes_after_seconds);
    tokio::select! {
        () = run_until(args.max_seconds) => {}
        () = server.set_statuses_after(after, &changed) => {}
    }
    eprintln!("{} messageTraces requests", server.trace_requests());
    Ok(ExitCode::SUCCESS)
}
