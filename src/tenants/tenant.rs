//! Whose records a tick moves: the deployment's one tenant, or a registry's.

use chrono::{DateTime, Utc};

use crate::config::Config;

/// Whose records a job moves: where its credentials, its state and its Devo identity are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Its name in the tenant registry; `None` for the deployment's one tenant.
    pub name: Option<String>,
    /// The secret with its Microsoft credentials (and Devo material).
    pub secret_id: String,
    /// Key of its scheduled checkpoint.
    pub state_key: String,
    /// Host field of its lines.
    pub devo_hostname: String,
    /// Devo tag of its lines.
    pub devo_tag: String,
    /// Its `RESET_BEFORE`: a new value restarts its schedule from `HISTORIC_DAYS` back.
    pub reset_before: Option<DateTime<Utc>>,
}

impl Tenant {
    /// The deployment's one tenant: `SECRET_ID`, `STATE_KEY`, `DEVO_HOSTNAME`, `DEVO_TAG`.
    pub fn single(config: &Config) -> Tenant {
        Tenant {
            name: None,
            secret_id: config.secret_id.clone(),
            state_key: config.state_key.clone(),
            devo_hostname: config.devo_hostname.clone(),
            devo_tag: config.devo_tag.clone(),
            reset_before: config.reset_before,
        }
    }

    /// The name metrics and logs use: the registry name, `default` for the one tenant.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(DEFAULT_TENANT)
    }
}

/// The `Tenant` metric dimension and log field of a deployment without a registry.
pub const DEFAULT_TENANT: &str = "default";
