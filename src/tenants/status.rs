//! `tenants list`: every tenant of the registry with where its checkpoint stands, its lag, a
//! lease in force and how its last tick failed, so an operator sees which tenant needs a look
//! without reading logs. The list only reads; [`record_failure`] writes what it shows of a tick
//! that failed before it held the lease (the checkpoint's last error, by a conditional write).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::checkpoint::lease::Lease;
use crate::checkpoint::{self, Checkpoint, LastError};
use crate::config::Config;
use crate::events::Event;
use crate::events::tenants::LastErrorNotRecorded;
use crate::state::StateStore;
use crate::tenants::Tenant;
use crate::tenants::TenantsError;
use crate::tenants::registry::{self, Entry};

/// Records `failure` as the last error in the checkpoint at `key`, for a tick that failed
/// before it held the lease (its secret, its Devo material, its checkpoint): a conditional
/// write over the version read, skipped when another invocation holds a live lease or writes
/// first. Best effort: the failure itself is what the invocation reports.
pub async fn record_failure(
    store: &impl StateStore,
    key: &str,
    failure: LastError,
    now: DateTime<Utc>,
) {
    let found = match checkpoint::load(store, key).await {
        Ok(found) => found,
        Err(e) => {
            LastErrorNotRecorded { key, error: &e }.emit();
            return;
        }
    };
    let (mut c, etag) = match found {
        Some(stored)
            if stored
                .checkpoint
                .lease
                .as_ref()
                .is_some_and(|l| l.live_at(now)) =>
        {
            return;
        }
        Some(stored) => (stored.checkpoint, Some(stored.etag)),
        None => (Checkpoint::empty(now), None),
    };
    c.last_error = Some(failure);
    c.updated_at = now;
    if let Err(e) = checkpoint::write(store, key, &c, etag.as_deref()).await {
        LastErrorNotRecorded { key, error: &e }.emit();
    }
}

/// Checkpoints read at once by [`list`]: a thousand tenants list in seconds, not minutes.
pub const LIST_CONCURRENCY: usize = 32;

/// One tenant, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct TenantStatus {
    /// Its registry name.
    pub name: String,
    /// Whether the dispatcher starts it.
    pub enabled: bool,
    pub secret_id: String,
    /// Its scheduled checkpoint's key.
    pub checkpoint_key: String,
    /// Its checkpoint's end (`None`: it never ran, or the object cannot be read).
    pub checkpoint: Option<DateTime<Utc>>,
    /// Before this instant every record is in Devo in its complete form (with two passes,
    /// the oldest span the reconciliation pass has yet to cover).
    pub complete_until: Option<DateTime<Utc>>,
    /// now − `complete_until`: the lag `LagSeconds` and the lag alarm measure.
    pub lag_seconds: Option<i64>,
    /// now − the checkpoint's end: the fresh pass's lag (`FreshLagSeconds`).
    pub fresh_lag_seconds: Option<i64>,
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
    use futures_util::stream::{self, StreamExt};
    let loaded = registry::load(store, key).await?;
    let rows = stream::iter(&loaded.registry.tenants)
        .map(|entry| status(store, config, entry, now))
        .buffered(LIST_CONCURRENCY)
        .collect()
        .await;
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
        complete_until: None,
        lag_seconds: None,
        fresh_lag_seconds: None,
        lease: None,
        last_error: None,
        problem: None,
    };
    match checkpoint::load(store, &tenant.state_key).await {
        Ok(Some(stored)) => {
            let c = stored.checkpoint;
            let lag = |t: DateTime<Utc>| (now - t).num_seconds().max(0);
            row.checkpoint = c.primary.end;
            row.complete_until = c.complete_until();
            row.lag_seconds = row.complete_until.map(lag);
            row.fresh_lag_seconds = c.primary.end.map(lag);
            row.lease = c.lease.filter(|l| l.live_at(now));
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
    use crate::tenants::registry::{add, update};

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
        update(&store, key, |d, at| {
            add(d, &entry("ran", true), at)?;
            add(d, &entry("never", false), at)
        })
        .await
        .unwrap();
        let now = Utc::now();
        let mut c = Checkpoint::empty(now);
        c.primary.end = Some(now - chrono::Duration::hours(26));
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

    #[tokio::test]
    async fn a_failure_before_the_lease_is_recorded_unless_a_tick_runs() {
        let store = MemoryStore::new();
        let key = "d/tenants/a/checkpoint.json";
        let now = Utc::now();
        let failure = |message: &str| LastError {
            at: now,
            error_type: "Secret".into(),
            message: message.into(),
        };
        record_failure(&store, key, failure("no such secret"), now).await;
        let stored = checkpoint::load(&store, key).await.unwrap().unwrap();
        assert_eq!(
            stored.checkpoint.primary.end, None,
            "the same as no checkpoint"
        );
        assert_eq!(
            stored.checkpoint.last_error.unwrap().message,
            "no such secret"
        );
        // A live lease: the running tick owns the object.
        let mut c = checkpoint::load(&store, key)
            .await
            .unwrap()
            .unwrap()
            .checkpoint;
        c.lease = Some(crate::checkpoint::lease::Lease {
            owner: "other".into(),
            expires_at: now + chrono::Duration::minutes(5),
        });
        store.overwrite(key, serde_json::to_vec(&c).unwrap());
        record_failure(&store, key, failure("later"), now).await;
        let stored = checkpoint::load(&store, key).await.unwrap().unwrap();
        assert_eq!(
            stored.checkpoint.last_error.unwrap().message,
            "no such secret"
        );
    }
}
