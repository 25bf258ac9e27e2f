//! m365-trace-to-devo-cli: the operator's command line. The same library and environment as the
//! Lambda: `tick`, `backfill`, `check` and `plan` (of one tenant of the registry with
//! `--tenant`), and `tenants` to edit the registry; human-readable by default, `--json` for
//! scripts.

#[path = "cli/tenants.rs"]
mod tenants_cmd;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Instant;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use m365_trace_to_devo::app::{App, Clients, TickOptions};
use m365_trace_to_devo::checkpoint::backfill::BackfillRequest;
use m365_trace_to_devo::config::Config;
use m365_trace_to_devo::ops::check::{self, CheckResult, Status};
use m365_trace_to_devo::ops::preview::{self, Preview};
use m365_trace_to_devo::summary::{LeaseReport, Summary};
use m365_trace_to_devo::tenants::Tenant;
use m365_trace_to_devo::tick::Target;
use m365_trace_to_devo::tick::WindowDone;
use m365_trace_to_devo::tick::{self, TickRequest};
use m365_trace_to_devo::{error_chain, logging};
use tenants_cmd::TenantsCommand;

/// Exit status when another run holds the state and nothing was pulled.
const EXIT_LEASE: u8 = 3;

#[derive(Parser)]
#[command(
    name = "m365-trace-to-devo-cli",
    version,
    about = "Operate the m365-trace-to-devo collector from a shell, with the Lambda's environment",
    long_about = "Operate the m365-trace-to-devo collector from a shell. It reads the same environment \
variables as the Lambda (SECRET_ID, STATE_BUCKET, …) and AWS credentials from the usual AWS SDK \
sources. Exit status: 0 done, 1 failed (or a check failed), 2 usage error, 3 another run holds the \
state (nothing pulled)."
)]
struct Cli {
    /// Print one JSON document on stdout instead of text (logs stay on stderr).
    #[arg(long, global = true)]
    json: bool,
    /// Run tick, backfill, check or plan for this tenant of the registry (TENANTS_KEY): its
    /// secret, its checkpoint under tenants/NAME/, its Devo hostname and tag.
    #[arg(long, global = true, value_name = "NAME")]
    tenant: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scheduled tick now, exactly as the EventBridge schedule does.
    Tick(Limit),
    /// Pull [START, END) under its own checkpoint and lease; run again with the same arguments
    /// (or the same --name) to resume. The scheduled checkpoint is never moved.
    Backfill {
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
    },
    /// Validate the configuration and the secret; try the token, the API (a one-minute window),
    /// S3 (read, and a conditional PUT that cannot change anything) and the Devo TLS handshake.
    Check,
    /// Print the windows the next tick would pull, without pulling and without taking the
    /// lease; with --start/--end, those of that backfill.
    Plan {
        /// Plan this backfill instead of the schedule: inclusive start, RFC 3339.
        #[arg(long, requires = "end")]
        start: Option<DateTime<Utc>>,
        /// Exclusive end of the backfill, RFC 3339.
        #[arg(long, requires = "start")]
        end: Option<DateTime<Utc>>,
        /// The backfill's name.
        #[arg(long, requires = "start")]
        name: Option<String>,
    },
    /// The tenant registry (TENANTS_KEY): list the tenants with their checkpoint, lag and last
    /// error; add, remove, pause or resume one.
    Tenants {
        #[command(subcommand)]
        command: TenantsCommand,
    },
}

#[derive(Args)]
struct Limit {
    /// Stop pulling after this many seconds, like a Lambda deadline; what is left resumes at
    /// the next run. The lease is held until then plus 60 s.
    #[arg(long, default_value_t = 900, value_parser = clap::value_parser!(u64).range(30..=43_200))]
    time_limit: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let pulls = matches!(cli.command, Command::Tick(_) | Command::Backfill { .. });
    let live = pulls && !cli.json && std::io::stderr().is_terminal();
    // On a terminal the live line shows progress: logs keep to warnings and errors. Otherwise
    // every window is logged as a JSON line on stderr.
    logging::init_stderr(if live || !pulls { "warn" } else { "info" });
    let clients = match Clients::from_env().await {
        Ok(c) => c,
        Err(e) => return fail(cli.json, &format!("HTTP client: {}", error_chain(&e))),
    };
    let app = App::new(Config::from_env(), clients, TickOptions::default());
    let editing = matches!(cli.command, Command::Tenants { .. });
    let paused_ok = matches!(cli.command, Command::Check | Command::Plan { .. });
    let tenant =
        match tenants_cmd::tenant_for(&app, cli.tenant.as_deref(), editing, paused_ok).await {
            Ok(tenant) => tenant,
            Err(message) => return fail(cli.json, &message),
        };
    match cli.command {
        Command::Tick(limit) => pull(&app, tenant, Target::Scheduled, &limit, cli.json, live).await,
        Command::Backfill {
            start,
            end,
            name,
            limit,
        } => {
            let target = Target::Backfill(BackfillRequest { start, end, name });
            pull(&app, tenant, target, &limit, cli.json, live).await
        }
        Command::Check => {
            let results = check::run_for(&app, tenant).await;
            print_checks(&results, cli.json);
            if results.iter().all(|r| r.status == Status::Ok) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Plan { start, end, name } => {
            let target = match (start, end) {
                (Some(start), Some(end)) => Target::Backfill(BackfillRequest { start, end, name }),
                _ => Target::Scheduled,
            };
            let planned = match tenant {
                Some(tenant) => preview::preview_for(&app, tenant, &target).await,
                None => preview::preview(&app, &target).await,
            };
            match planned {
                Ok(p) => {
                    print_preview(&p, cli.json);
                    ExitCode::SUCCESS
                }
                Err(e) => fail(cli.json, &error_chain(&e)),
            }
        }
        Command::Tenants { command } => tenants_cmd::run(&app, command, cli.json).await,
    }
}

async fn pull(
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
        Some(tenant) => tick::run_for(app, &request, tenant, &target, &mut on_window).await,
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

fn fail(json: bool, message: &str) -> ExitCode {
    if json {
        println!("{}", serde_json::json!({ "error": message }));
    }
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

fn print_json(value: &impl serde::Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: cannot write JSON: {e}"),
    }
}

/// An instant as RFC 3339 in UTC with `Z`, as the events and the checkpoint write it.
fn z(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "none".to_owned(), z)
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
    match &s.lease {
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
    println!(
        "checkpoint: {}{}",
        time(s.checkpoint),
        match (&s.partial, s.caught_up) {
            (Some(p), _) => format!(" (window {}..{} left part-way)", z(p.start), z(p.end)),
            (None, true) => " (caught up)".to_owned(),
            (None, false) => " (behind: run again)".to_owned(),
        }
    );
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

fn print_checks(results: &[CheckResult], json: bool) {
    if json {
        let ok = results.iter().all(|r| r.status == Status::Ok);
        return print_json(&serde_json::json!({ "ok": ok, "checks": results }));
    }
    for r in results {
        let status = match r.status {
            Status::Ok => "ok",
            Status::Failed => "FAILED",
            Status::Skipped => "skipped",
        };
        println!("{:<8} {:<9} {}", r.check, status, r.detail);
    }
}

fn print_preview(p: &Preview, json: bool) {
    if json {
        return print_json(p);
    }
    println!(
        "checkpoint {}: {}",
        p.checkpoint_object,
        if p.checkpoint_found {
            format!("end {}", time(p.checkpoint))
        } else {
            "none yet".to_owned()
        }
    );
    if let Some(lease) = &p.lease {
        println!(
            "lease: held by {} until {}",
            lease.owner,
            z(lease.expires_at)
        );
    }
    if let Some(r) = &p.reset {
        println!(
            "reset: RESET_BEFORE={} is new: the next tick restarts from HISTORIC_DAYS back",
            z(r.reset_before)
        );
    }
    if let Some(s) = &p.plan.skipped {
        println!(
            "skipped: {}..{} is outside the API's lookback",
            z(s.from),
            z(s.to)
        );
    }
    let windows = &p.plan.windows;
    match (windows.first(), windows.last()) {
        (Some(first), Some(last)) => println!(
            "{} windows from {} to {}:",
            windows.len(),
            z(first.start),
            z(last.end)
        ),
        _ => println!("nothing to pull: caught up to {}", z(p.plan.horizon)),
    }
    for w in windows {
        let resumed = w
            .resume
            .as_ref()
            .map_or_else(String::new, |r| format!("  (resumes below {})", z(r.until)));
        println!(
            "  {}  {}  {:>6} s{resumed}",
            z(w.start),
            z(w.end),
            (w.end - w.start).num_seconds()
        );
    }
}
