//! `cutover`: take the tenant over from an earlier collector (Devo's hosted "Microsoft 365
//! Exchange Message Tracing" collector) without a gap or a repeat: the plan first, `--apply`
//! writes it.

use std::process::ExitCode;

use clap::Args;
use m365_trace_to_devo::error_chain;
use m365_trace_to_devo::verify::cutover::plan::{Action, Request};
use m365_trace_to_devo::verify::cutover::{self, Outcome};

use crate::Global;
use crate::output::{fail, print_json, time, z};

/// Exit status when a tick holds or changed the checkpoint (nothing was written).
const EXIT_LEASE: u8 = 3;

/// `cutover`: plan (and apply) the take-over.
#[derive(Args)]
pub(crate) struct Cutover {
    /// The tenant's domain as the earlier collector wrote it in the `Organization` field (e.g.
    /// contoso.onmicrosoft.com). Without it, the earlier collector's lines are those with the
    /// tenant's hostname (DEVO_HOSTNAME).
    #[arg(long, value_name = "DOMAIN")]
    organization: Option<String>,
    /// The earlier collector is stopped: the overlap ends now. Before it is, the tick reads an
    /// hour only once it is DELAY_SECONDS old.
    #[arg(long)]
    stopped: bool,
    /// Write the plan (a conditional write of the checkpoint; refused while a tick holds it).
    #[arg(long)]
    apply: bool,
    /// Apply even though the checkpoint has delivered: its progress is replaced by the
    /// cut-over's (what Devo holds, its own lines included, is not sent again in the overlap).
    #[arg(long)]
    replace_checkpoint: bool,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(30..=3_600))]
    time_limit: u64,
}

impl Cutover {
    pub(crate) async fn run(self, global: Global) -> ExitCode {
        let (app, tenant) = match global.open_one("warn", true).await {
            Ok(opened) => opened,
            Err(code) => return code,
        };
        let delay_hours = match app.config() {
            Ok(config) => config.rules.delay.num_hours(),
            Err(e) => return fail(global.json, &format!("configuration: {e}")),
        };
        let request = Request {
            organization: self.organization.filter(|o| !o.trim().is_empty()),
            stopped: self.stopped,
            replace: self.replace_checkpoint,
        };
        let deadline = app.now() + chrono::Duration::seconds(self.time_limit as i64);
        match cutover::run(&app, &tenant, &request, self.apply, deadline).await {
            Ok(outcome) if global.json => {
                print_json(&outcome);
                ExitCode::SUCCESS
            }
            Ok(outcome) => {
                print_plan(&outcome, self.apply, delay_hours);
                ExitCode::SUCCESS
            }
            Err(e) => {
                let code = fail(global.json, &error_chain(&e));
                if e.contended() {
                    ExitCode::from(EXIT_LEASE)
                } else {
                    code
                }
            }
        }
    }
}

fn print_plan(o: &Outcome, apply: bool, delay_hours: i64) {
    let p = &o.plan;
    let c = &p.cutover;
    println!(
        "Earlier collector: its lines in {} where {} = \"{}\"",
        o.table, p.earlier.field, p.earlier.value
    );
    if let Some(f) = &p.found {
        println!(
            "  newest Received   {} (its hour {}: {} lines; {} lines searched in all)",
            z(f.newest),
            z(f.hour),
            f.hour_lines,
            f.lines
        );
    }
    println!("Checkpoint {}", o.checkpoint_object);
    if let Some(end) = p.replaces {
        println!(
            "  replaces          a checkpoint that delivered up to {}",
            z(end)
        );
    }
    match (p.action, p.replaces) {
        (Action::Start | Action::StartStopped, None) => println!(
            "  starts at         {} (the newest Received − DELAY_SECONDS, {delay_hours} h: records Microsoft exposed late that the earlier collector may have missed)",
            time(p.start)
        ),
        (Action::Start | Action::StartStopped, Some(_)) => println!(
            "  starts at         {} (the newest Received − DELAY_SECONDS, {delay_hours} h, or where the replaced checkpoint still owed records)",
            time(p.start)
        ),
        _ => println!("  stands at         {}", time(p.start)),
    }
    match c.until {
        None => println!(
            "  overlap           from {}, open: until the earlier collector is stopped",
            z(c.from)
        ),
        Some(until) => println!(
            "  overlap           {} .. {} (the earlier collector stopped)",
            z(c.from),
            z(until)
        ),
    }
    println!("What happens");
    println!(
        "  In the overlap each tick first reads the keys (MessageTraceId, RecipientAddress, Status) Devo holds for the hours it pulls — the earlier collector's lines and this tenant's — and sends only the records Devo lacks; the summary counts the others in cutover_suppressed."
    );
    if c.until.is_none() {
        println!(
            "  While the overlap is open, a tick pulls an hour only once it is DELAY_SECONDS ({delay_hours} h) old, when the earlier collector has delivered everything it will of it: stopping it before or after this command sends nothing twice and leaves nothing out."
        );
    } else {
        println!(
            "  The ticks catch up to the overlap's end at the fresh pass's delay; after it, this function is the only collector."
        );
    }
    for note in &p.notes {
        println!("Note: {note}");
    }
    println!("{}", next_step(p.action, o.written, apply));
}

fn next_step(action: Action, written: bool, apply: bool) -> &'static str {
    match (action, written, apply) {
        (Action::AlreadyOpen, _, _) => {
            "Already applied; the overlap is open. Once the hosted collector is stopped, run: cutover --stopped --apply"
        }
        (Action::AlreadyStopped, _, _) => {
            "Already applied and stopped: nothing to write. The summaries' cutover_suppressed counts what the overlap did not send again."
        }
        (_, false, _) => "Nothing was written: run again with --apply.",
        (Action::Start, true, _) => {
            "Written. Now stop the hosted \"Microsoft 365 Exchange Message Tracing\" collector in Devo, then run: cutover --stopped --apply"
        }
        (_, true, _) => {
            "Written. The hosted collector must stay stopped; the next ticks send what Devo lacks."
        }
    }
}
