//! `tenants list`: every tenant of the registry with where its checkpoint stands, its lag, a
//! lease in force and how its last tick failed, so an operator sees which tenant needs a look
//! without reading logs. Reads only.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::checkpoint::{self, LastError};
use crate::config::Config;
use crate::job::Tenant;
use crate::lease::Lease;
use crate::state::StateStore;
use crate::tenants::TenantsError;
use crate::tenants::registry::{self, Entry};

/// One tenant, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct TenantStatus {
    /// Its registry name.
    pub name: String,
    /// Whether the dispatcher starts it.
    pub enabled: bool,
    /// Its secret.
    pub secret_id: String,
    /// Its scheduled checkpoint's key.
    pub checkpoint_key: String,
    /// Its checkpoint's end (`None`: it never ran, or the object cannot be read).
    pub checkpoint: Option<DateTime<Utc>>,
    /// now − the checkpoint's end.
    pub lag_seconds: Option<i64>,
    /// A lease found in the checkpoint (a tick running, or one that died holding it).
    pub lease: Option<Lease>,
    /// How its last tick failed (cleared by the next tick that finishes).
    pub last_error: Option<LastError>,
    /// Why its checkpoint could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Lists the tenants of the registry at `key`, in registry order.
pub async fn list(
    store: &impl StateStore,
    config: &Config,
    key: &str,
    now: DateTime<Utc>,
) -> Result<Vec<TenantStatus>, TenantsError> {
    let loaded = registry::load(store, key).await?;
    let mut rows = Vec::with_capacity(loaded.registry.tenants.len());
    for entry in &loaded.registry.tenants {
        rows.push(status(store, config, entry, now).await);
    }
    Ok(rows)
}

async fn status(
    store: &impl StateStore,
    config: &Config,
    entry: &Entry,
    now: DateTime<Utc>,
) -> TenantStatus {
    let tenant = Tenant::from_entry(entry, config);
    let mut row = TenantStatus {
        name: entry.name.clone(),
        enabled: entry.enabled,
        secret_id: entry.secret_id.clone(),
        checkpoint_key: tenant.state_key.clone(),
        checkpoint: None,
        lag_seconds: None,
        lease: None,
        last_error: None,
        problem: None,
    };
    match checkpoint::load(store, &tenant.state_key).await {
        Ok(Some(stored)) => {
            let c = stored.checkpoint;
            row.checkpoint = c.end;
            row.lag_seconds = c.end.map(|end| (now - end).num_seconds().max(0));
            row.lease = c.lease.filter(|l| l.expires_at > now);
            row.last_error = c.last_error;
        }
        Ok(None) => {}
        Err(e) => row.problem = Some(e.to_string()),
    }
    row
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::checkpoint::Checkpoint;
    use crate::state::{Condition, MemoryStore};
    use crate::tenants::registry::{Registry, add, update};

    fn entry(name: &str, enabled: bool) -> Entry {
        Entry {
            enabled,
            ..Entry::named(name)
        }
    }

    #[tokio::test]
    async fn each_tenant_shows_its_checkpoint_lag_and_last_error() {
        let env: HashMap<&str, &str> = [("SECRET_ID", "s"), ("STATE_BUCKET", "b")].into();
        let config = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        let store = MemoryStore::new();
        let key = "m365-message-trace/tenants.json";
        update(&store, key, |r: &mut Registry| {
            add(r, entry("ran", true))?;
            add(r, entry("never", false))
        })
        .await
        .unwrap();
        let now = Utc::now();
        let mut c = Checkpoint::empty(now);
        c.end = Some(now - chrono::Duration::hours(26));
        c.last_error = Some(LastError {
            at: now,
            error_type: "Microsoft".into(),
            message: "token refused".into(),
        });
        let body = serde_json::to_vec(&c).unwrap();
        store
            .put(
                "m365-message-trace/tenants/ran/checkpoint.json",
                body,
                Condition::Absent,
            )
            .await
            .unwrap();
        let rows = list(&store, &config, key, now).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].lag_seconds, Some(26 * 3600));
        assert_eq!(rows[0].last_error.as_ref().unwrap().error_type, "Microsoft");
        assert_eq!((rows[1].enabled, rows[1].checkpoint), (false, None));
        assert_eq!(
            rows[1].checkpoint_key,
            "m365-message-trace/tenants/never/checkpoint.json"
        );
    }
}
