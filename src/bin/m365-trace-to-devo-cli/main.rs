//! m365-trace-to-devo-cli: the operator's command line. The same library and environment as the
//! Lambda: `tick`, `backfill`, `check`, `plan`, `audit` and `cutover` (of one tenant of the
//! registry with `--tenant`), and `tenants` to edit the registry; human-readable by default, `--json` for
//! scripts.

mod audit;
mod check;
mod cutover;
mod output;
mod plan;
mod pull;
mod tenants;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use m365_trace_to_devo::app::{App, Clients, TickOptions};
use m365_trace_to_devo::config::Config;
use m365_trace_to_devo::tenants::Tenant;
use m365_trace_to_devo::{error_chain, logging};

use output::fail;

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
    /// Run tick, backfill, check, plan, audit or cutover for this tenant of the registry (TENANTS_KEY): its
    /// secret, its checkpoint under tenants/NAME/, its Devo hostname and tag.
    #[arg(long, global = true, value_name = "NAME")]
    tenant: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scheduled tick now, exactly as the EventBridge schedule does.
    Tick(pull::Tick),
    /// Pull [START, END) under its own checkpoint and lease; run again with the same arguments
    /// (or the same --name) to resume. The scheduled checkpoint is never moved.
    Backfill(pull::Backfill),
    /// Validate the configuration and the secret; try the token, the API (a one-minute window),
    /// S3 (read, and a conditional PUT that cannot change anything) and the Devo TLS handshake.
    Check(check::Check),
    /// Print the windows the next tick would pull, without pulling and without taking the
    /// lease; with --start/--end, those of that backfill.
    Plan(plan::Plan),
    /// Compare, hour by hour, what Microsoft lists with what Devo holds for the tenant
    /// (DEVO_QUERY_URL, the secret's devo_query_token); --repair sends what Devo lacks. Exit 1
    /// when a record is missing.
    Audit(audit::Audit),
    /// Take the tenant over from an earlier collector (Devo's hosted "Microsoft 365 Exchange
    /// Message Tracing" collector) in the same table: find its newest line, start the
    /// checkpoint there and, in the overlap, send only what Devo does not hold. Prints the
    /// plan; --apply writes it; --stopped once the earlier collector is stopped.
    Cutover(cutover::Cutover),
    /// The tenant registry (TENANTS_KEY): list the tenants with their checkpoint, lag and last
    /// error; add, remove, pause or resume one.
    Tenants(tenants::Tenants),
}

impl Command {
    /// Each subcommand runs itself.
    async fn run(self, global: Global) -> ExitCode {
        match self {
            Command::Tick(c) => c.run(global).await,
            Command::Backfill(c) => c.run(global).await,
            Command::Check(c) => c.run(global).await,
            Command::Plan(c) => c.run(global).await,
            Command::Tenants(c) => c.run(global).await,
            Command::Audit(c) => c.run(global).await,
            Command::Cutover(c) => c.run(global).await,
        }
    }
}

/// The global flags every subcommand is given.
pub(crate) struct Global {
    json: bool,
    tenant: Option<String>,
}

impl Global {
    /// Logs on stderr at `log_level` (unless `LOG_LEVEL` says otherwise), the application with
    /// the Lambda's environment, and the tenant `--tenant` names (`paused_ok`: a paused one
    /// too; none without a registry). Failures are printed; the exit code is returned.
    async fn open(
        &self,
        log_level: &str,
        paused_ok: bool,
    ) -> Result<(App, Option<Tenant>), ExitCode> {
        let app = self.app(log_level).await?;
        match tenants::tenant_for(&app, self.tenant.as_deref(), paused_ok).await {
            Ok(tenant) => Ok((app, tenant)),
            Err(message) => Err(fail(self.json, &message)),
        }
    }

    /// Like [`Global::open`], the deployment's own tenant when `--tenant` names none (a
    /// configuration that cannot be read is printed then).
    async fn open_one(&self, log_level: &str, paused_ok: bool) -> Result<(App, Tenant), ExitCode> {
        let (app, tenant) = self.open(log_level, paused_ok).await?;
        let tenant = match (tenant, app.config()) {
            (Some(t), _) => t,
            (None, Ok(config)) => Tenant::single(config),
            (None, Err(e)) => return Err(fail(self.json, &format!("configuration: {e}"))),
        };
        Ok((app, tenant))
    }

    /// Logs on stderr at `log_level`, and the application with the Lambda's environment.
    async fn app(&self, log_level: &str) -> Result<App, ExitCode> {
        logging::init_stderr(log_level);
        match Clients::from_env().await {
            Ok(clients) => Ok(App::new(
                Config::from_env(),
                clients,
                TickOptions::default(),
            )),
            Err(e) => Err(fail(
                self.json,
                &format!("HTTP client: {}", error_chain(&e)),
            )),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let global = Global {
        json: cli.json,
        tenant: cli.tenant,
    };
    cli.command.run(global).await
}
