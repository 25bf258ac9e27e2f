//! Why the tenant registry could not be used, or an event's tenant cannot run: each message names
//! the object, the entry or the tenant, and what to change.

use thiserror::Error;

use crate::config::ConfigError;
use crate::state::StateError;

/// A problem with the tenant registry, a tenant named by an event, or the dispatch.
#[derive(Debug, Error)]
pub enum TenantsError {
    /// `TENANTS_KEY` names an object that does not exist.
    #[error(
        "the tenant registry s3://{bucket}/{key} (TENANTS_KEY) does not exist: create it with `m365-trace-to-devo-cli tenants add NAME --secret-id ID`, or unset TENANTS_KEY to serve one tenant"
    )]
    Missing {
        /// `STATE_BUCKET`.
        bucket: String,
        /// `TENANTS_KEY`.
        key: String,
    },
    /// The object is not the registry's JSON.
    #[error(
        "the tenant registry s3://{bucket}/{key} (TENANTS_KEY) is not valid: {problem}; expected {{\"tenants\": [{{\"name\": \"contoso\", \"secret_id\": \"m365-trace-to-devo/contoso\"}}]}}"
    )]
    Malformed {
        /// `STATE_BUCKET`.
        bucket: String,
        /// `TENANTS_KEY`.
        key: String,
        /// The JSON problem, with its line and column.
        problem: String,
    },
    /// One entry breaks a rule.
    #[error(
        "the tenant registry s3://{bucket}/{key} (TENANTS_KEY), entry {index} ({name:?}): {problem}"
    )]
    Entry {
        /// `STATE_BUCKET`.
        bucket: String,
        /// `TENANTS_KEY`.
        key: String,
        /// Position of the entry in `tenants`, from 0.
        index: usize,
        /// Its name as written.
        name: String,
        /// What is wrong and what is accepted.
        problem: String,
    },
    /// The configuration, read to find the registry.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// Reading or writing the registry object failed.
    #[error("the tenant registry (TENANTS_KEY): {0}")]
    State(#[from] StateError),
    /// An event names a tenant the registry does not list.
    #[error(
        "tenant {name:?} is not in the registry s3://{bucket}/{key}: add it with `m365-trace-to-devo-cli tenants add {name} --secret-id ID`, or correct the event's \"tenant\""
    )]
    Unknown {
        /// The name asked for.
        name: String,
        /// `STATE_BUCKET`.
        bucket: String,
        /// `TENANTS_KEY`.
        key: String,
    },
    /// An event names a tenant that is paused.
    #[error(
        "tenant {name:?} is disabled in the registry s3://{bucket}/{key}: set its \"enabled\" to true to run it (nothing was pulled)"
    )]
    Disabled {
        /// The name asked for.
        name: String,
        /// `STATE_BUCKET`.
        bucket: String,
        /// `TENANTS_KEY`.
        key: String,
    },
    /// An event names a tenant in a deployment that has no registry.
    #[error(
        "the event names tenant {name:?} but TENANTS_KEY is not set: this deployment serves one tenant; drop \"tenant\" from the event, or set TENANTS_KEY to the registry's key"
    )]
    NoRegistry {
        /// The name asked for.
        name: String,
    },
    /// A backfill without a tenant, in a deployment with a registry.
    #[error(
        "this deployment serves the tenants of s3://{bucket}/{key} (TENANTS_KEY): a backfill must name its tenant, as {{\"tenant\": \"NAME\", \"backfill\": {{\"start\": \"…\", \"end\": \"…\"}}}}"
    )]
    BackfillNeedsTenant {
        /// `STATE_BUCKET`.
        bucket: String,
        /// `TENANTS_KEY`.
        key: String,
    },
    /// `tenants add` of a name the registry has.
    #[error(
        "tenant {name:?} is already in the registry: remove it first, or edit its entry in the registry object"
    )]
    Exists { name: String },
    /// `tenants add` of a name whose state is still in the bucket.
    #[error(
        "tenant {name:?} has state under s3://{bucket}/{prefix} ({objects} objects: checkpoint, backfills, ledger) from an earlier tenant of that name: add it with --keep-state to continue from that position, or move or delete that prefix to start fresh from HISTORIC_DAYS back"
    )]
    StateExists {
        name: String,
        /// `STATE_BUCKET`.
        bucket: String,
        /// The tenant's state prefix.
        prefix: String,
        /// Objects found there.
        objects: usize,
    },
    /// `tenants remove` edited the registry but could not move all of the tenant's state.
    #[error(
        "tenant {name:?} was removed from the registry, but its state under s3://{bucket}/{prefix} could not all be moved aside: {error}; until that prefix is moved or deleted, `tenants add {name}` refuses the name (or continues from it with --keep-state)"
    )]
    NotMoved {
        name: String,
        /// `STATE_BUCKET`.
        bucket: String,
        /// The tenant's state prefix.
        prefix: String,
        /// The S3 failure.
        error: String,
    },
    /// The registry kept changing under a conditional update.
    #[error(
        "the tenant registry s3://{bucket}/{key} changed under each of {attempts} conditional writes: another edit is in progress; try again"
    )]
    Contended {
        /// `STATE_BUCKET`.
        bucket: String,
        /// `TENANTS_KEY`.
        key: String,
        /// Writes tried.
        attempts: u32,
    },
    /// The dispatcher could not start any tenant's tick.
    #[error(
        "dispatch: none of the {total} tenant ticks could be started ({names}): {first_error}; they are tried again at the next scheduled event"
    )]
    Dispatch {
        /// How many invocations failed.
        failed: usize,
        /// How many were tried.
        total: usize,
        /// The failed tenants' names (the first 20).
        names: String,
        /// The first failure.
        first_error: String,
    },
    /// The dispatcher does not know which function it is.
    #[error(
        "dispatch: the function's own name is unknown (AWS_LAMBDA_FUNCTION_NAME is not set): the dispatcher invokes its own function once per tenant"
    )]
    NoFunctionName,
}

impl TenantsError {
    /// The stable `errorType`: `Tenant` for an event's tenant (its own entry included),
    /// `Dispatch` for a fan-out that started nobody, `Registry` for the registry object as a
    /// whole (missing, unreadable, not `{"tenants": [...]}`).
    pub fn error_type(&self) -> &'static str {
        match self {
            TenantsError::Unknown { .. }
            | TenantsError::Disabled { .. }
            | TenantsError::NoRegistry { .. }
            | TenantsError::BackfillNeedsTenant { .. }
            | TenantsError::Entry { .. }
            | TenantsError::StateExists { .. }
            | TenantsError::Exists { .. } => "Tenant",
            TenantsError::Dispatch { .. } | TenantsError::NoFunctionName => "Dispatch",
            TenantsError::Config(_) => "Config",
            TenantsError::Missing { .. }
            | TenantsError::Malformed { .. }
            | TenantsError::State(_)
            | TenantsError::NotMoved { .. }
            | TenantsError::Contended { .. } => "Registry",
        }
    }
}
