//! `check`: the configuration, the secret, the token, the API, S3 and the Devo handshake.

use std::process::ExitCode;

use clap::Args;
use m365_trace_to_devo::ops::check::{self, CheckResult, Status};

use crate::Global;
use crate::output::print_json;

/// `check`: every dependency tried once.
#[derive(Args)]
pub(crate) struct Check {}

impl Check {
    pub(crate) async fn run(self, global: Global) -> ExitCode {
        let (app, tenant) = match global.open("warn", true).await {
            Ok(opened) => opened,
            Err(code) => return code,
        };
        let results = check::run_for(&app, tenant).await;
        print_checks(&results, global.json);
        if results.iter().all(|r| r.status == Status::Ok) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
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
