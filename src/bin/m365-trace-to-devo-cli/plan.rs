//! `plan`: the windows the next tick (or a backfill) would pull, without pulling.

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Args;
use m365_trace_to_devo::checkpoint::backfill::BackfillRequest;
use m365_trace_to_devo::error_chain;
use m365_trace_to_devo::ops::preview::{self, Preview};
use m365_trace_to_devo::tick::Target;

use crate::Global;
use crate::output::{fail, print_json, time, z};

/// `plan`: the schedule's next windows, or a backfill's.
#[derive(Args)]
pub(crate) struct Plan {
    /// Plan this backfill instead of the schedule: inclusive start, RFC 3339.
    #[arg(long, requires = "end")]
    start: Option<DateTime<Utc>>,
    /// Exclusive end of the backfill, RFC 3339.
    #[arg(long, requires = "start")]
    end: Option<DateTime<Utc>>,
    /// The backfill's name.
    #[arg(long, requires = "start")]
    name: Option<String>,
}

impl Plan {
    pub(crate) async fn run(self, global: Global) -> ExitCode {
        let (app, tenant) = match global.open("warn", true).await {
            Ok(opened) => opened,
            Err(code) => return code,
        };
        let target = match (self.start, self.end) {
            (Some(start), Some(end)) => Target::Backfill(BackfillRequest {
                start,
                end,
                name: self.name,
            }),
            _ => Target::Scheduled,
        };
        let planned = match tenant {
            Some(tenant) => preview::preview_for(&app, tenant, &target).await,
            None => preview::preview(&app, &target).await,
        };
        match planned {
            Ok(p) => {
                print_preview(&p, global.json);
                ExitCode::SUCCESS
            }
            Err(e) => fail(global.json, &error_chain(&e)),
        }
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
