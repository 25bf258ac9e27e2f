//! Why a tick failed, and the stable `errorType` each failure reaches Lambda with: the name the
//! console, the logs and alarms show, documented in docs/operations.md ("Error types").

use chrono::{DateTime, Utc};
use lambda_runtime::Diagnostic;
use thiserror::Error;

use crate::checkpoint::backfill::BackfillError;
use crate::clock::TimeoutTooShort;
use crate::config::ConfigError;
use crate::devo::DevoError;
use crate::secret::SecretError;
use crate::state::StateError;
use crate::tenants::TenantsError;
use crate::transfer::TransferError;
use crate::verify::QueryError;

/// Why a tick failed. The checkpoint never moves past what was delivered.
#[derive(Debug, Error)]
pub enum TickError {
    /// Step 1: an environment variable.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// Step 1: the function's timeout.
    #[error("configuration: {0}")]
    Timeout(#[from] TimeoutTooShort),
    /// The invocation's payload (a `lambda::invocation::EventError`, boxed so that this
    /// module stays below the Lambda's room).
    #[error("event: {0}")]
    Event(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Step 1: a backfill range that cannot be pulled.
    #[error("backfill refused: {0}")]
    Backfill(#[from] BackfillError),
    /// Step 2.
    #[error("secret: {0}")]
    Secret(#[from] SecretError),
    /// Step 2: the Devo material in the secret.
    #[error("secret: the Devo material cannot be used: {0}")]
    DevoSetup(#[source] DevoError),
    /// Steps 3 and 7.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] StateError),
    /// Steps 5 and 6, after what the window delivered was committed.
    #[error("window {start}..{end}: {source}")]
    Transfer {
        /// Window start.
        start: DateTime<Utc>,
        /// Window end.
        end: DateTime<Utc>,
        /// What failed.
        source: Box<TransferError>,
    },
    /// The tenant registry, an event's tenant, or the dispatch of the tenants' ticks.
    #[error("{0}")]
    Tenants(#[from] TenantsError),
    /// Reading what Devo holds for a cut-over's overlap (`Config` without `DEVO_QUERY_URL`,
    /// `Secret` without `devo_query_token`, `DevoQuery` for the Query API's refusals): the
    /// window is not sent blind.
    #[error("the cut-over's overlap: Devo query: {0}")]
    Query(#[from] QueryError),
    /// The summary could not be written as JSON.
    #[error("the summary cannot be written as JSON: {0}")]
    Summary(#[from] serde_json::Error),
}

impl TickError {
    /// The stable `errorType` of this failure.
    pub fn error_type(&self) -> &'static str {
        match self {
            TickError::Config(_) | TickError::Timeout(_) => "Config",
            TickError::Event(_) => "Event",
            TickError::Backfill(_) => "Backfill",
            TickError::Secret(_) | TickError::DevoSetup(_) => "Secret",
            TickError::Checkpoint(_) => "Checkpoint",
            TickError::Transfer { source, .. } => source.error_type(),
            TickError::Tenants(e) => e.error_type(),
            TickError::Query(e) => e.error_type(),
            TickError::Summary(_) => "Internal",
        }
    }
}

impl From<TickError> for Diagnostic {
    fn from(error: TickError) -> Diagnostic {
        Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_has_a_stable_error_type() {
        let config = TickError::Config(ConfigError::Missing {
            var: "SECRET_ID",
            hint: "x",
        });
        let d = Diagnostic::from(config);
        assert_eq!(d.error_type, "Config");
        assert!(d.error_message.contains("SECRET_ID"));
        let timeout = TickError::Timeout(TimeoutTooShort { left_ms: 900 });
        assert_eq!(timeout.error_type(), "Config");
        let devo = TickError::Transfer {
            start: Utc::now(),
            end: Utc::now(),
            source: Box::new(TransferError::Devo(DevoError::Connect {
                address: "a:1".into(),
                detail: "refused".into(),
            })),
        };
        assert_eq!(devo.error_type(), "Devo");
        let state = TickError::Checkpoint(StateError::NoBucket { bucket: "b".into() });
        assert_eq!(state.error_type(), "Checkpoint");
        let unknown = TickError::Tenants(TenantsError::Unknown {
            name: "ghost".into(),
            bucket: "b".into(),
            key: "k".into(),
        });
        let d = Diagnostic::from(unknown);
        assert_eq!(d.error_type, "Tenant");
        assert!(d.error_message.contains("\"ghost\""), "{}", d.error_message);
        let registry = TickError::Tenants(TenantsError::Missing {
            bucket: "b".into(),
            key: "k".into(),
        });
        assert_eq!(registry.error_type(), "Registry");
        assert_eq!(
            TickError::Tenants(TenantsError::NoFunctionName).error_type(),
            "Dispatch"
        );
        assert_eq!(
            TickError::Query(QueryError::NotConfigured).error_type(),
            "Config"
        );
        let forbidden = TickError::Query(QueryError::Forbidden {
            origin: "https://apiv2-us.devo.com:443".into(),
            table: "cloud.office365.messagetracing".into(),
            secret_id: "s".into(),
            msg: String::new(),
        });
        assert_eq!(forbidden.error_type(), "DevoQuery");
    }
}
