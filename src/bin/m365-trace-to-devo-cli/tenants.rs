//! `tenants list | add | remove | pause | resume`: the registry from a shell, every edit a
//! conditional write (an edit racing another is read again and retried, never lost).

use std::process::ExitCode;

use chrono::Utc;
use clap::{Args, Subcommand};
use m365_trace_to_devo::app::App;
use m365_trace_to_devo::config::Config;
use m365_trace_to_devo::error_chain;
use m365_trace_to_devo::state::S3Store;
use m365_trace_to_devo::tenants::Tenant;
use m365_trace_to_devo::tenants::registry::{self, Entry, Registry};
use m365_trace_to_devo::tenants::status::{self, TenantStatus};
use m365_trace_to_devo::tenants::{self, TenantsError, archive::S3Objects, edit};

use crate::Global;
use crate::output::{fail, print_json, z};

/// `tenants`: the registry.
#[derive(Args)]
pub(crate) struct Tenants {
    #[command(subcommand)]
    command: TenantsCommand,
}

impl Tenants {
    pub(crate) async fn run(self, global: Global) -> ExitCode {
        if global.tenant.is_some() {
            return fail(
                global.json,
                "--tenant is for tick, backfill, check and plan; the tenants commands take the name as an argument",
            );
        }
        match global.app("warn").await {
            Ok(app) => run(&app, self.command, global.json).await,
            Err(code) => code,
        }
    }
}

/// What to do with the registry.
#[derive(Subcommand)]
pub(crate) enum TenantsCommand {
    /// Each tenant: enabled, checkpoint, lag, a lease in force and the last error.
    List,
    /// Add a tenant; its ticks start at the next scheduled event.
    Add {
        /// Its name: lowercase letters, digits and '-' (state prefix, event, metric dimension).
        name: String,
        /// The Secrets Manager secret with its Microsoft credentials (and, optionally, its own
        /// Devo material; otherwise SECRET_ID's is used).
        #[arg(long)]
        secret_id: String,
        /// Host field of its lines (default: the name).
        #[arg(long)]
        devo_hostname: Option<String>,
        /// Devo tag of its lines (default: DEVO_TAG).
        #[arg(long)]
        devo_tag: Option<String>,
        /// Add it paused: listed, checked with `check --tenant`, not dispatched.
        #[arg(long)]
        disabled: bool,
        /// Continue from the state an earlier tenant of this name left under
        /// {dir}/tenants/NAME/ (without it, such state refuses the add).
        #[arg(long)]
        keep_state: bool,
    },
    /// Remove a tenant from the registry and move its state (checkpoint, backfills, ledger) to
    /// {dir}/tenants-removed/NAME-{time}/, so that a tenant added again under the name starts
    /// fresh.
    Remove {
        name: String,
        /// Leave its state where it is (a later `add NAME --keep-state` continues from it).
        #[arg(long)]
        keep_state: bool,
    },
    /// Stop dispatching a tenant; its state is kept.
    Pause { name: String },
    /// Dispatch a paused tenant again from the next scheduled event.
    Resume { name: String },
}

/// The tenant `--tenant NAME` names for tick, backfill, check or plan (`paused_ok`: a paused
/// one too); none without a registry; an error, in words, for a registry deployment's command
/// without `--tenant`.
pub(crate) async fn tenant_for(
    app: &App,
    name: Option<&str>,
    paused_ok: bool,
) -> Result<Option<Tenant>, String> {
    let registry = app.config().ok().and_then(|c| c.tenants_key.clone());
    match (name, registry) {
        (Some(name), _) => tenants::tenant(app, name, paused_ok)
            .await
            .map(Some)
            .map_err(|e| error_chain(&e)),
        (None, Some(key)) => Err(format!(
            "TENANTS_KEY={key} is set: this deployment serves the tenants of that registry; name one with --tenant NAME (see `tenants list`)"
        )),
        (None, None) => Ok(None),
    }
}

/// Runs `command` against the registry at `TENANTS_KEY`.
async fn run(app: &App, command: TenantsCommand, json: bool) -> ExitCode {
    let config = match app.config() {
        Ok(c) => c,
        Err(e) => return fail(json, &e.to_string()),
    };
    let Some(key) = config.tenants_key.as_deref() else {
        return fail(
            json,
            "TENANTS_KEY is not set: set it to the registry's key in STATE_BUCKET (e.g. m365-message-trace/tenants.json), as the function has it",
        );
    };
    let store = S3Store::new(app.s3().clone(), config.state_bucket.clone());
    let objects = S3Objects::new(app.s3().clone(), config.state_bucket.clone());
    let edited = match command {
        TenantsCommand::List => {
            return match status::list(&store, config, key, Utc::now()).await {
                Ok(rows) => {
                    print_list(&rows, json);
                    ExitCode::SUCCESS
                }
                Err(e) => fail(json, &error_chain(&e)),
            };
        }
        TenantsCommand::Add {
            name,
            secret_id,
            devo_hostname,
            devo_tag,
            disabled,
            keep_state,
        } => {
            let entry = Entry {
                name,
                secret_id,
                enabled: !disabled,
                devo_hostname,
                devo_tag,
                reset_before: None,
            };
            edit::add(&store, &objects, &config.state_key, key, &entry, keep_state).await
        }
        TenantsCommand::Remove { name, keep_state } => {
            remove(&store, &objects, config, &name, keep_state).await
        }
        TenantsCommand::Pause { name } => {
            registry::update(&store, key, |d, at| {
                registry::set_enabled(d, &name, false, at)
            })
            .await
        }
        TenantsCommand::Resume { name } => {
            registry::update(&store, key, |d, at| {
                registry::set_enabled(d, &name, true, at)
            })
            .await
        }
    };
    match edited {
        Ok(registry) => {
            warn_unreadable(&registry);
            if json {
                print_json(&registry);
            } else {
                let enabled = registry.enabled().count();
                println!(
                    "s3://{}/{key}: {} tenants, {enabled} enabled; the change applies from the next scheduled event",
                    config.state_bucket,
                    registry.tenants.len()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(json, &error_chain(&e)),
    }
}

/// `tenants remove`: the entry, then (unless `keep_state`) the tenant's state moved aside,
/// saying where on stderr.
async fn remove(
    store: &S3Store,
    objects: &S3Objects,
    config: &Config,
    name: &str,
    keep_state: bool,
) -> Result<Registry, TenantsError> {
    let key = config.tenants_key.as_deref().unwrap_or_default();
    let (state_key, now) = (&config.state_key, Utc::now());
    let (registry, moved) =
        edit::remove(store, objects, state_key, key, name, keep_state, now).await?;
    if let Some(m) = moved.filter(|m| m.objects > 0) {
        eprintln!(
            "moved {} objects of {name}'s state from s3://{bucket}/{} to s3://{bucket}/{}",
            m.objects,
            m.from,
            m.to,
            bucket = config.state_bucket
        );
    }
    Ok(registry)
}

/// Tells the operator, on stderr, what in the registry does not run or is not read.
fn warn_unreadable(registry: &Registry) {
    for e in &registry.invalid {
        eprintln!(
            "warning: entry {} ({:?}) cannot run: {}",
            e.index, e.name, e.problem
        );
    }
    for f in &registry.unknown_fields {
        match f.index {
            Some(index) => eprintln!(
                "warning: entry {index} ({:?}) has the field {:?}, which this version does not read",
                f.name, f.field
            ),
            None => eprintln!(
                "warning: the registry has the field {:?} beside \"tenants\", which this version does not read",
                f.field
            ),
        }
    }
}

/// `25h 3m`, `4m 10s`: a lag an operator reads at a glance.
fn lag(seconds: i64) -> String {
    match seconds {
        s if s >= 3600 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s => format!("{}m {}s", s / 60, s % 60),
    }
}

fn print_list(rows: &[TenantStatus], json: bool) {
    if json {
        return print_json(&rows);
    }
    if rows.is_empty() {
        println!("the registry lists no tenant: add one with `tenants add NAME --secret-id ID`");
        return;
    }
    println!(
        "{:<24} {:<8} {:<22} {:>9} {:>9}  {:<6} LAST ERROR",
        "TENANT", "ENABLED", "CHECKPOINT", "LAG", "FRESH LAG", "LEASE"
    );
    for r in rows {
        let last_error = match (&r.problem, &r.last_error) {
            (Some(problem), _) => format!("checkpoint unreadable: {problem}"),
            (None, Some(e)) => format!("{} {}: {}", z(e.at), e.error_type, e.message),
            (None, None) => "-".to_owned(),
        };
        println!(
            "{:<24} {:<8} {:<22} {:>9} {:>9}  {:<6} {last_error}",
            r.name,
            if r.enabled { "yes" } else { "paused" },
            r.checkpoint.map_or_else(|| "none yet".to_owned(), z),
            r.lag_seconds.map_or_else(|| "-".to_owned(), lag),
            r.fresh_lag_seconds.map_or_else(|| "-".to_owned(), lag),
            if r.lease.is_some() { "held" } else { "-" },
        );
    }
}
