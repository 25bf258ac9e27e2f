//! `tick` and `backfill`: pull under the lease, with a live progress line on a terminal.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Instant;

use chrono::{DateTime, Utc};
use clap::Args;
use m365_trace_to_devo::app::App;
use m365_trace_to_devo::checkpoint::backfill::BackfillRequest;
use m365_trace_to_devo::error_chain;
use m365_trace_to_devo::summary::{LeaseReport, Summary};
use m365_trace_to_devo::tenants::Tenant;
use m365_trace_to_devo::tick::{self, Target, TickRequest, WindowDone};

use crate::Global;
use crate::output::{fail, print_json, time, z};

/// Exit status when another run holds the state and nothing was pulled.
const EXIT_LEASE: u8 = 3;

/// `tick`: one scheduled tick now.
#[derive(Args)]
pub(crate) struct Tick {
    #[command(flatten)]
    limit: Limit,
}

impl Tick {
    pub(crate) async fn run(self, global: Global) -> ExitCode {
        pull(global, Target::Scheduled, &self.limit).await
    }
}

/// `backfill`: a range under its own checkpoint.
#[derive(Args)]
pub(crate) struct Backfill {
    /// Inclusive start, RFC 3339 (e.g. 2026-11-20T00:00:00Z); not older than the API's
    /// lookback (Graph: now − 90 days + MARGIN_SECONDS).
    #[arg(long)]
    start: DateTime<Utc>,
    /// Exclusive end, RFC 3339; not later than now − DELAY_SECONDS.
    #[arg(long)]
    end: DateTime<Utc>,
    /// Name of the backfill's checkpoint (letters, digits, '.', '_', '-'); default START_END.
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    limit: Limit,
}

impl Backfill {
    pub(crate) async fn run(self, global: Global) -> ExitCode {
        let Backfill {
            start,
            end,
            name,
            limit,
        } = self;
        let target = Target::Backfill(BackfillRequest { start, end, name });
        pull(global, target, &limit).await
    }
}

#[derive(Args)]
pub(crate) struct Limit {
    /// Stop pulling after this many seconds, like a Lambda deadline; what is left resumes at
    /// the next run. The lease is held until then plus 60 s.
    #[arg(long, default_value_t = 900, value_parser = clap::value_parser!(u64).range(30..=43_200))]
    time_limit: u64,
}

/// Pulls `target`: on a terminal the live line shows progress and logs keep to warnings and
/// errors; otherwise every window is logged as a JSON line on stderr.
async fn pull(global: Global, target: Target, limit: &Limit) -> ExitCode {
    let live = !global.json && std::io::stderr().is_terminal();
    let (app, tenant) = match global.open(if live { "warn" } else { "info" }, false).await {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    run_pull(&app, tenant, target, limit, global.json, live).await
}

async fn run_pull(
    app: &App,
    tenant: Option<Tenant>,
    target: Target,
    limit: &Limit,
    json: bool,
    live: bool,
) -> ExitCode {
    let request = TickRequest {
        request_id: format!(
            "cli-{}-{}",
            std::process::id(),
            Utc::now().timestamp_millis()
        ),
        deadline: Utc::now()
            + chrono::Duration::seconds(i64::try_from(limit.time_limit).unwrap_or(900)),
    };
    let started = Instant::now();
    let mut on_window = |w: &WindowDone<'_>| {
        if live {
            let seconds = started.elapsed().as_secs_f64().max(0.001);
            eprint!(
                "\r\x1b[2K{}/{} windows, {} records pulled, {} events sent, {:.0} records/s, at {}",
                w.number,
                w.planned,
                w.counts.records_pulled,
                w.counts.events_sent,
                w.counts.records_pulled as f64 / seconds,
                z(w.window.end)
            );
            let _ = std::io::stderr().flush();
        }
    };
    let result = match tenant {
        Some(tenant) => {
            tick::run_for(app, &request, tenant, &target, &mut on_window)
                .await
                .result
        }
        None => tick::run_target(app, &request, &target, &mut on_window).await,
    };
    if live {
        eprintln!();
    }
    match result {
        Ok(summary) => {
            print_summary(&summary, json);
            match summary.lease {
                LeaseReport::HeldByOther { .. }
                | LeaseReport::Duplicate { .. }
                | LeaseReport::Lost { .. } => ExitCode::from(EXIT_LEASE),
                _ => ExitCode::SUCCESS,
            }
        }
        Err(e) => fail(json, &error_chain(&e)),
    }
}

fn print_summary(s: &Summary, json: bool) {
    if json {
        return print_json(s);
    }
    let c = &s.counts;
    println!(
        "{} windows, {} pages, {} records pulled, {} events sent ({} bytes), {} duplicates skipped, in {:.1} s",
        c.windows,
        c.pages,
        c.records_pulled,
        c.events_sent,
        c.bytes_sent,
        c.duplicates_skipped,
        s.duration_ms as f64 / 1000.0
    );
    print_lease(&s.lease);
    println!(
        "checkpoint: {}{}",
        time(s.checkpoint),
        match (&s.partial, s.caught_up) {
            (Some(p), _) => format!(" (window {}..{} left part-way)", z(p.start), z(p.end)),
            (None, true) => " (caught up)".to_owned(),
            (None, false) => " (behind: run again)".to_owned(),
        }
    );
    if c.details_sent + c.details_queued + c.details_dropped > 0 {
        println!(
            "delivery details: {} lines sent, {} deliveries waiting, {} dropped",
            c.details_sent, c.details_queued, c.details_dropped
        );
    }
    if let Some(skipped) = &s.skipped {
        println!(
            "skipped: {}..{} fell outside the API's lookback",
            z(skipped.from),
            z(skipped.to)
        );
    }
    if let Some(r) = &s.reset {
        println!(
            "reset: RESET_BEFORE={} applied: restarted from HISTORIC_DAYS back (was at {}); records are sent again",
            z(r.reset_before),
            time(r.previous_checkpoint)
        );
    }
    if let Some(b) = &s.backfill {
        if b.complete {
            println!(
                "backfill {}: complete ({}..{})",
                b.name,
                z(b.start),
                z(b.end)
            );
        } else {
            println!(
                "backfill {}: done until {}, {} s left: run the same command again to resume",
                b.name,
                z(b.done_until),
                b.remaining_seconds
            );
        }
    }
}

/// What happened to the lease, in words.
fn print_lease(lease: &LeaseReport) {
    match lease {
        LeaseReport::Acquired { owner, .. } => println!("lease: acquired as {owner}"),
        LeaseReport::TakenOver {
            owner,
            previous_owner,
            ..
        } => println!("lease: taken over from {previous_owner} (expired) as {owner}"),
        LeaseReport::HeldByOther { owner, until } => println!(
            "lease: held by {owner} until {}: nothing pulled; run again later",
            z(*until)
        ),
        LeaseReport::Duplicate { owner, until } => println!(
            "lease: held by this request id ({owner}) until {}: a second delivery of the same run; nothing pulled",
            z(*until)
        ),
        LeaseReport::Lost { at } => {
            println!("lease: lost at {at}: another run wrote the checkpoint; this one stopped")
        }
    }
}
