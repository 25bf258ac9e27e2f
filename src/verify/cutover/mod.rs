//! Taking over from an earlier collector (the command line's `cutover`): find where it stopped
//! in Devo, plan the tenant's checkpoint and its overlap, and with `--apply` write them.
//!
//! `earlier.rs` finds the earlier collector's newest line, `plan.rs` decides (pure), `held.rs`
//! reads the keys Devo holds for the hours a tick pulls in the overlap. The rules a tick follows
//! there are the checkpoint's (`checkpoint/cutover.rs`).

pub mod earlier;
pub mod held;
pub mod plan;

use chrono::{DateTime, Duration, Utc};
use thiserror::Error;

use crate::app::App;
use crate::checkpoint::{self, cutover::LineFilter};
use crate::clock::Clock;
use crate::state::{S3Store, StateError};
use crate::tenants::Tenant;
use crate::verify::audit::client_with_token;
use crate::verify::failure::AuditError;
use crate::verify::{QueryClient, QueryError};
use plan::{Context, Plan, Refusal, Request};

/// Why a cut-over was not planned or not written. Never carries the token.
#[derive(Debug, Error)]
pub enum CutoverError {
    /// No line of the earlier collector in the table.
    #[error(
        "found no line of the earlier collector in {table} ({field} = \"{value}\") in the last {days} days: check {check}, that \"devo_query_token\" in secret {secret_id} may query {table} (DEVO_TAG), and that DEVO_QUERY_URL ({origin}) is your Devo domain's region; nothing was written"
    )]
    NoEarlierLines {
        table: String,
        field: String,
        value: String,
        days: i64,
        /// What to check about the filter.
        check: &'static str,
        secret_id: String,
        origin: String,
    },
    /// The checkpoint has delivered: a cut-over would replace its progress.
    #[error(
        "the checkpoint s3://{bucket}/{key} has already delivered ({end}): a cut-over starts a tenant that has not; to replace its progress with the cut-over anyway (records Devo holds, its own included, are not sent again in the overlap), add --replace-checkpoint; nothing was written"
    )]
    Delivered {
        bucket: String,
        key: String,
        /// `end …`, or what it delivered otherwise.
        end: String,
    },
    /// A cut-over with another filter is applied.
    #[error(
        "the cut-over applied to s3://{bucket}/{key} reads the earlier collector's lines by {field} = \"{value}\"; run without --organization, or with that domain; nothing was written"
    )]
    OtherEarlier {
        bucket: String,
        key: String,
        field: String,
        value: String,
    },
    /// A tick holds the lease.
    #[error(
        "a tick ({owner}) holds the lease on s3://{bucket}/{key} until {until}: nothing was written; run again once it has finished"
    )]
    LeaseHeld {
        bucket: String,
        key: String,
        owner: String,
        until: DateTime<Utc>,
    },
    /// The checkpoint changed between the read and the conditional write.
    #[error(
        "s3://{bucket}/{key} changed while the cut-over was written (a tick wrote it): nothing was written; run the command again to see the new state"
    )]
    Conflict { bucket: String, key: String },
    /// Configuration, secret, checkpoint or Query API (an audit's failures, with their
    /// `errorType`s).
    #[error(transparent)]
    Failed(#[from] AuditError),
}

impl CutoverError {
    /// Whether another run holds or changed the state (the command line's exit status 3).
    pub fn contended(&self) -> bool {
        matches!(
            self,
            CutoverError::LeaseHeld { .. } | CutoverError::Conflict { .. }
        )
    }
}

impl From<QueryError> for CutoverError {
    fn from(e: QueryError) -> CutoverError {
        CutoverError::Failed(AuditError::Query(e))
    }
}

impl From<StateError> for CutoverError {
    fn from(e: StateError) -> CutoverError {
        CutoverError::Failed(AuditError::Checkpoint(e))
    }
}

/// What a run planned and whether it wrote it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// The plan.
    #[serde(flatten)]
    pub plan: Plan,
    /// The table read (`DEVO_TAG`, or the tenant's).
    pub table: String,
    /// `s3://bucket/key` of the checkpoint.
    pub checkpoint_object: String,
    /// Whether the checkpoint was written.
    pub written: bool,
}

/// Plans the cut-over of `tenant` (and writes it when `apply`), stopping before `deadline`.
pub async fn run(
    app: &App,
    tenant: &Tenant,
    request: &Request,
    apply: bool,
    deadline: DateTime<Utc>,
) -> Result<Outcome, CutoverError> {
    let config = app.config().map_err(AuditError::from)?;
    let clock = Clock::start(app.time(), deadline, app.options().commit_reserve)
        .map_err(AuditError::from)?;
    let budget = clock.pull_budget(config.request_timeout, app.options().retry_min_delay);
    let client = query_client(app, tenant).await?;
    let store = S3Store::new(app.s3().clone(), config.state_bucket.clone());
    let (bucket, key) = (config.state_bucket.clone(), tenant.state_key.clone());
    let found = checkpoint::load(&store, &key).await?;
    let existing = found.as_ref().map(|s| &s.checkpoint);
    let earlier = match (
        &request.organization,
        existing.and_then(|c| c.cutover.as_ref()),
    ) {
        (Some(domain), _) => LineFilter::organization(domain),
        (None, Some(applied)) => applied.earlier.clone(),
        (None, None) => LineFilter::hostname(&tenant.devo_hostname),
    };
    let now = clock.now;
    let searched = (now - config.rules.lookback, now + Duration::hours(1));
    let newest = earlier::find(&client, &tenant.devo_tag, &earlier, searched, &budget).await?;
    let ctx = Context {
        now,
        delay: config.rules.delay,
        served_from: config.rules.earliest(now),
        reset_before: tenant.reset_before,
    };
    let plan = plan::decide(existing, request, earlier.clone(), newest, &ctx).map_err(|r| {
        refused(
            r,
            &earlier,
            tenant,
            &client,
            config.rules.lookback,
            (&bucket, &key),
        )
    })?;
    let mut written = false;
    if let (true, Some(next)) = (apply, &plan.checkpoint) {
        if let Some(lease) = plan::live_lease(existing, now) {
            return Err(CutoverError::LeaseHeld {
                bucket,
                key,
                owner: lease.owner.clone(),
                until: lease.expires_at,
            });
        }
        let etag = found.as_ref().map(|s| s.etag.as_str());
        match checkpoint::write(&store, &key, next, etag).await {
            Ok(_) => written = true,
            Err(e) if e.is_conflict() => return Err(CutoverError::Conflict { bucket, key }),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Outcome {
        plan,
        table: tenant.devo_tag.clone(),
        checkpoint_object: format!("s3://{bucket}/{key}"),
        written,
    })
}

/// The Query API client with the tenant's `devo_query_token` (read alone: the secret may hold
/// only the Devo material yet).
async fn query_client(app: &App, tenant: &Tenant) -> Result<QueryClient, CutoverError> {
    let config = app.config().map_err(AuditError::from)?;
    let token = app
        .secrets()
        .query_token_for(&tenant.secret_id, &config.secret_id)
        .await
        .map_err(AuditError::from)?;
    Ok(client_with_token(app, config, tenant, token)?)
}

/// The error a refusal is reported with.
fn refused(
    refusal: Refusal,
    earlier: &LineFilter,
    tenant: &Tenant,
    client: &QueryClient,
    lookback: Duration,
    (bucket, key): (&str, &str),
) -> CutoverError {
    let (bucket, key) = (bucket.to_owned(), key.to_owned());
    match refusal {
        Refusal::NoEarlierLines => CutoverError::NoEarlierLines {
            table: tenant.devo_tag.clone(),
            field: earlier.field.clone(),
            value: earlier.value.clone(),
            days: lookback.num_days(),
            check: if earlier.field == "Organization" {
                "the domain given to --organization (the Organization the hosted collector wrote, e.g. contoso.onmicrosoft.com)"
            } else {
                "that the earlier collector wrote this hostname, or give its domain with --organization DOMAIN"
            },
            secret_id: tenant.secret_id.clone(),
            origin: client.origin(),
        },
        Refusal::Delivered(end) => CutoverError::Delivered {
            bucket,
            key,
            end: end.map_or_else(
                || "records waiting for their second look".to_owned(),
                |e| format!("its end is {}", e.to_rfc3339()),
            ),
        },
        Refusal::OtherEarlier(applied) => CutoverError::OtherEarlier {
            bucket,
            key,
            field: applied.field,
            value: applied.value,
        },
    }
}
