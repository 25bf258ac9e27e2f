//! The command line's `check`: tries each dependency of a tick once, without pulling a window
//! or moving a checkpoint, and reports each as ok, failed (with the precise error) or skipped.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;

use crate::app::App;
use crate::checkpoint::{self, Checkpoint};
use crate::config::Config;
use crate::devo::{DevoSender, DevoTls};
use crate::error_chain;
use crate::secret::Secret;
use crate::state::{S3Store, StateError};
use crate::tenants::Tenant;
use crate::trace::auth::TokenSource;
use crate::trace::fetch::Spent;
use crate::trace::http::Budget;
use crate::trace::request_budget::{GRAPH_LIMIT, GRAPH_PERIOD, RequestBudget};
use crate::window::Window;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It works.
    Ok,
    /// It does not: `detail` says why.
    Failed,
    /// Not tried because an earlier check it needs failed.
    Skipped,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// `config`, `secret`, `token`, `api`, `s3_read`, `s3_write` or `devo`.
    pub check: &'static str,
    pub status: Status,
    /// What was found, or the error.
    pub detail: String,
}

fn result(check: &'static str, outcome: Result<String, String>) -> CheckResult {
    match outcome {
        Ok(detail) => CheckResult {
            check,
            status: Status::Ok,
            detail,
        },
        Err(detail) => CheckResult {
            check,
            status: Status::Failed,
            detail,
        },
    }
}

fn skipped(check: &'static str, needs: &str) -> CheckResult {
    CheckResult {
        check,
        status: Status::Skipped,
        detail: format!("needs {needs}"),
    }
}

/// Runs every check in order for the deployment's one tenant; a check whose input failed is
/// skipped.
pub async fn run(app: &App) -> Vec<CheckResult> {
    run_for(app, None).await
}

/// Runs every check in order for `tenant` (a registry's tenant: its secret, with the Devo
/// material of `SECRET_ID` when it has none, and its checkpoint), or the one tenant.
pub async fn run_for(app: &App, tenant: Option<Tenant>) -> Vec<CheckResult> {
    let now = app.now().trunc_subsecs(0);
    let mut out = Vec::new();
    let config = match app.config() {
        Ok(c) => c,
        Err(e) => {
            out.push(result("config", Err(e.to_string())));
            for check in ["secret", "token", "api", "s3_read", "s3_write", "devo"] {
                out.push(skipped(check, "a valid configuration"));
            }
            return out;
        }
    };

    let tenant = tenant.unwrap_or_else(|| Tenant::single(config));
    out.push(result(
        "config",
        Ok(format!(
            "TRACE_API={} CLOUD={} STATE=s3://{}/{} DEVO_ADDRESS={}",
            config.trace_api.as_str(),
            config.cloud.as_str(),
            config.state_bucket,
            tenant.state_key,
            config.devo_address
        )),
    ));
    // S3 does not depend on the secret: check it first so that its result is always known.
    let (s3_read, s3_write) = check_state(app, config, &tenant.state_key, now).await;

    let loaded = app
        .secrets()
        .load_for(&tenant.secret_id, &config.secret_id)
        .await;
    let secret = match loaded {
        Ok(secret) => secret,
        Err(e) => {
            out.push(result("secret", Err(e.to_string())));
            out.extend([
                skipped("token", "the secret"),
                skipped("api", "the secret"),
                s3_read,
                s3_write,
                skipped("devo", "the secret"),
            ]);
            return out;
        }
    };
    let devo = DevoTls::new(&secret.devo, &config.devo_address, &config.devo_server_name);
    out.push(result(
        "secret",
        match &devo {
            Ok(_) => Ok(format!(
                "{}: tenant {}, client {}, Devo certificate and chain usable",
                tenant.secret_id, secret.tenant_id, secret.client_id
            )),
            Err(e) => Err(e.to_string()),
        },
    ));
    out.extend(check_microsoft(app, config, &secret, now).await);
    out.push(s3_read);
    out.push(s3_write);
    out.push(match devo {
        Err(_) => skipped("devo", "usable Devo material in the secret"),
        Ok(devo) => result("devo", handshake(&devo, config.request_timeout).await),
    });
    out
}

/// Reads the checkpoint, and proves a conditional write is allowed without changing anything.
async fn check_state(
    app: &App,
    config: &Config,
    key: &str,
    now: DateTime<Utc>,
) -> (CheckResult, CheckResult) {
    let store = S3Store::new(app.s3().clone(), config.state_bucket.clone());
    let object = format!("s3://{}/{key}", config.state_bucket);
    let read = checkpoint::load(&store, key).await;
    let exists = matches!(read, Ok(Some(_)));
    let readable = read.is_ok();
    let s3_read = read.map_err(|e| e.to_string()).map(|found| match found {
        Some(stored) => format!(
            "{object} read: end {}, lease {}",
            stored
                .checkpoint
                .primary
                .end
                .map_or_else(|| "none".to_owned(), |t| t.to_rfc3339()),
            stored
                .checkpoint
                .lease
                .map_or_else(|| "none".to_owned(), |l| l.owner)
        ),
        None => format!("{object} does not exist yet (a first tick starts HISTORIC_DAYS back)"),
    });
    if !readable {
        return (
            result("s3_read", s3_read),
            skipped("s3_write", "a readable checkpoint"),
        );
    }
    // A conditional PUT that cannot change anything: If-None-Match: * on the existing object
    // must fail with 412; on a missing object it creates an empty checkpoint, which means the
    // same as none.
    let s3_write = match checkpoint::write(&store, key, &Checkpoint::empty(now), None).await {
        Err(StateError::Conflict { status, .. }) if exists => Ok(format!(
            "PutObject allowed: a conditional PUT on {object} was refused with HTTP {status} as expected; nothing written"
        )),
        Ok(_) if !exists => Ok(format!(
            "PutObject allowed: created an empty checkpoint at {object} (the same as none)"
        )),
        Ok(_) => Err(format!(
            "a conditional PUT (If-None-Match: *) on the existing {object} succeeded: the store ignores conditional writes, so the lease cannot protect the checkpoint"
        )),
        Err(e) => Err(e.to_string()),
    };
    (result("s3_read", s3_read), result("s3_write", s3_write))
}

/// Gets a token, then asks the API for the first page of the minute before the horizon.
async fn check_microsoft(
    app: &App,
    config: &Config,
    secret: &Secret,
    now: DateTime<Utc>,
) -> Vec<CheckResult> {
    let source = match app.source() {
        Ok(source) => source,
        Err(e) => {
            return vec![
                result("token", Err(e.to_string())),
                skipped("api", "a token"),
            ];
        }
    };
    let timeout = config.request_timeout;
    let budget = Budget::new(
        tokio::time::Instant::now() + 2 * timeout,
        timeout,
        Duration::from_millis(500),
    )
    .with_time(app.time().clone());
    let mut tokens = TokenSource::new(
        app.http().clone(),
        &config.endpoints.login,
        source.scope(),
        secret,
    );
    if let Err(e) = tokens.token(&budget).await {
        return vec![
            result("token", Err(error_chain(&e))),
            skipped("api", "a token"),
        ];
    }
    let token = result(
        "token",
        Ok(format!(
            "token for {} from {}",
            source.scope(),
            config.endpoints.login
        )),
    );
    // One request: the check does not touch the checkpoint's throttle history.
    let mut throttle = RequestBudget::new(&[], GRAPH_LIMIT, GRAPH_PERIOD);
    let end = now - config.rules.delay;
    let window = Window {
        start: end - chrono::Duration::minutes(1),
        end,
        resume: None,
    };
    let what = source.describe_window(&window);
    let url = source.first_page_url(&window);
    let page = source
        .page(
            &url,
            &mut tokens,
            &budget,
            &mut throttle,
            &what,
            &mut Spent::default(),
        )
        .await;
    let api = result(
        "api",
        page.map(|p| {
            format!(
                "{what}: HTTP 200, {} records in the first page",
                p.records.len()
            )
        })
        .map_err(|e| error_chain(&e)),
    );
    vec![token, api]
}

/// Connects, completes the mutual-TLS handshake and closes without sending a line.
async fn handshake(devo: &DevoTls, timeout: Duration) -> Result<String, String> {
    let sender = DevoSender::connect(devo, timeout)
        .await
        .map_err(|e| e.to_string())?;
    sender.finish(timeout).await.map_err(|e| e.to_string())?;
    Ok(format!(
        "mutual-TLS handshake with {} ok (client certificate accepted, relay verified)",
        devo.address()
    ))
}
