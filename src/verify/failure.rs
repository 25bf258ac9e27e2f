//! Why an audit stopped: its own setup (configuration, secret, checkpoint), Devo's Query API,
//! or Microsoft and the relay for one hour — each with the stable `errorType` a tick would
//! report for the same failure.

use chrono::{DateTime, Utc};
use thiserror::Error;

use crate::clock::TimeoutTooShort;
use crate::config::ConfigError;
use crate::devo::DevoError;
use crate::secret::SecretError;
use crate::state::StateError;
use crate::trace::TraceError;
use crate::transfer::TransferError;
use crate::verify::QueryError;

/// An audit's failure (and a cut-over's, which reads the same configuration, secret,
/// checkpoint and Query API).
#[derive(Debug, Error)]
pub enum AuditError {
    /// An environment variable.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// The time given is too short.
    #[error("configuration: {0}")]
    Timeout(#[from] TimeoutTooShort),
    /// The tenant's secret.
    #[error("secret: {0}")]
    Secret(#[from] SecretError),
    /// The Devo material in the secret (a repair sends through the relay).
    #[error("secret: the Devo material cannot be used: {0}")]
    DevoSetup(#[source] DevoError),
    /// The checkpoint (its `complete_until` and request budget are read).
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] StateError),
    /// Devo's Query API.
    #[error("Devo query: {0}")]
    Query(#[from] QueryError),
    /// Listing or repairing one hour.
    #[error("hour {start}..{end}: {source}")]
    Hour {
        /// The hour's start.
        start: DateTime<Utc>,
        /// Its end.
        end: DateTime<Utc>,
        /// What failed.
        source: Box<TransferError>,
    },
}

impl AuditError {
    /// The stable `errorType` (docs/operations.md "Error types").
    pub fn error_type(&self) -> &'static str {
        match self {
            AuditError::Config(_) | AuditError::Timeout(_) => "Config",
            AuditError::Secret(_) | AuditError::DevoSetup(_) => "Secret",
            AuditError::Checkpoint(_) => "Checkpoint",
            AuditError::Query(e) => e.error_type(),
            AuditError::Hour { source, .. } => source.error_type(),
        }
    }

    /// Whether it only says the time (or the request budget's share) ran out: the hours left
    /// are for the next run, not a failure.
    pub fn out_of_time(&self) -> bool {
        match self {
            AuditError::Query(QueryError::OutOfTime { .. }) => true,
            AuditError::Hour { source, .. } => matches!(
                source.as_ref(),
                TransferError::Trace(TraceError::OutOfTime { .. })
            ),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_keeps_the_error_type_a_tick_would_report() {
        assert_eq!(
            AuditError::Query(QueryError::NotConfigured).error_type(),
            "Config"
        );
        let no_token = QueryError::NoToken {
            secret_id: "s".into(),
            table: "t".into(),
        };
        assert_eq!(AuditError::Query(no_token).error_type(), "Secret");
        let forbidden = QueryError::Forbidden {
            origin: "https://apiv2-us.devo.com:443".into(),
            table: "cloud.office365.messagetracing".into(),
            secret_id: "s".into(),
            msg: String::new(),
        };
        assert_eq!(AuditError::Query(forbidden).error_type(), "DevoQuery");
        let hour = |source| AuditError::Hour {
            start: Utc::now(),
            end: Utc::now(),
            source: Box::new(source),
        };
        let devo = hour(TransferError::Devo(DevoError::Connect {
            address: "a:1".into(),
            detail: "refused".into(),
        }));
        assert_eq!(devo.error_type(), "Devo");
        let late = hour(TransferError::Trace(TraceError::OutOfTime {
            api: "graph",
            what: "w".into(),
            last: "l".into(),
        }));
        assert_eq!(late.error_type(), "Microsoft");
        assert!(late.out_of_time() && !devo.out_of_time());
        let query_late = AuditError::Query(QueryError::OutOfTime {
            what: "w".into(),
            last: "l".into(),
        });
        assert!(query_late.out_of_time());
    }
}
