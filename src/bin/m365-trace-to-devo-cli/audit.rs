//! `audit`: per hour, what Microsoft lists against what Devo holds for the tenant, as a table;
//! with `--repair`, the records Devo lacks sent again.

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Args;
use m365_trace_to_devo::error_chain;
use m365_trace_to_devo::verify::audit::{AuditReport, RepairMode};
use m365_trace_to_devo::verify::hours::explain;
use m365_trace_to_devo::verify::run::{self as audit, AuditRequest};

use crate::Global;
use crate::output::{fail, print_json, time, z};

/// `audit`: compare an hour range with Devo (and repair it). Reads the lines of DEVO_HOSTNAME
/// in DEVO_TAG: set DEVO_HOSTNAME as the function has it (its default there is the function's
/// name).
#[derive(Args)]
pub(crate) struct Audit {
    /// Start, RFC 3339 (widened down to its hour), e.g. 2026-11-24T00:00:00Z.
    #[arg(long)]
    from: DateTime<Utc>,
    /// End, RFC 3339 (widened up to an hour). Hours not complete yet (at or after the
    /// checkpoint's complete_until) are skipped and named.
    #[arg(long)]
    to: DateTime<Utc>,
    /// Send the records Devo lacks (missing, or only with an older status) through the relay,
    /// with the tenant's hostname and tag; nothing Devo holds is sent again.
    #[arg(long)]
    repair: bool,
    /// With --repair: send even when Devo holds no line at all of the range under this
    /// hostname (otherwise refused: DEVO_HOSTNAME or DEVO_TAG is likelier wrong than every
    /// line lost).
    #[arg(long, requires = "repair")]
    force: bool,
    /// Stop after this many seconds; the hours not reached are named (run again from there).
    #[arg(long, default_value_t = 900, value_parser = clap::value_parser!(u64).range(30..=43_200))]
    time_limit: u64,
}

impl Audit {
    pub(crate) async fn run(self, global: Global) -> ExitCode {
        if self.to <= self.from {
            return fail(global.json, "--to must be later than --from");
        }
        let (app, tenant) = match global.open_one("warn", true).await {
            Ok(opened) => opened,
            Err(code) => return code,
        };
        let deadline = app.now() + chrono::Duration::seconds(self.time_limit as i64);
        let request = AuditRequest {
            from: self.from,
            to: self.to,
            repair: match (self.repair, self.force) {
                (false, _) => RepairMode::Off,
                (true, false) => RepairMode::Missing,
                (true, true) => RepairMode::Force,
            },
        };
        match audit::run(&app, &tenant, &request, deadline).await {
            Err(e) => fail(global.json, &error_chain(&e)),
            Ok(report) => {
                if global.json {
                    print_json(&report);
                } else {
                    print_table(&report);
                }
                exit_code(&report)
            }
        }
    }
}

/// 0 when Devo holds every record of every hour compared and nothing stopped the audit;
/// 1 otherwise (after a repair too: audit again to see it clean).
fn exit_code(report: &AuditReport) -> ExitCode {
    let clean = report.missing() == 0 && report.stale() == 0;
    if report.failure.is_none() && report.repair_refused.is_none() && clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_table(r: &AuditReport) {
    println!(
        "Devo table {} hostname {}; complete until {}",
        r.table,
        r.hostname,
        time(r.complete_until)
    );
    println!(
        "{:<21} {:>10} {:>10} {:>8} {:>8} {:>8}",
        "hour", "microsoft", "devo", "missing", "extra", "stale"
    );
    for h in &r.hours {
        println!(
            "{:<21} {:>10} {:>10} {:>8} {:>8} {:>8}",
            z(h.hour),
            h.microsoft,
            h.devo,
            h.missing,
            h.extra,
            h.stale
        );
    }
    println!(
        "{} hours: {} missing, {} extra, {} stale",
        r.hours.len(),
        r.missing(),
        r.extra(),
        r.stale()
    );
    for rep in &r.repairs {
        println!(
            "repaired {}: sent {} lines ({} missing, {} stale){}",
            z(rep.hour),
            rep.sent,
            rep.missing_sent,
            rep.stale_sent,
            if rep.complete {
                ""
            } else {
                "; not finished: run --repair again"
            }
        );
    }
    for s in &r.skipped {
        let why = match s.reason {
            "deadline" => "not reached before --time-limit: run again from here",
            "failed" => "not audited: the audit stopped on the failure below",
            other => explain(other),
        };
        println!("skipped {}..{}: {why}", z(s.from), z(s.to));
    }
    if let Some(refused) = &r.repair_refused {
        eprintln!("repair refused: {refused}");
    }
    if let Some(f) = &r.failure {
        eprintln!("error ({}): {}", f.error_type, f.error);
    }
}
