//! `tenants add` and `tenants remove` with the tenant's state: a removed tenant's state is moved
//! aside, so the name can be given to a new customer who starts fresh; an add over state that
//! is still there is refused unless the operator means to continue from it.

use chrono::{DateTime, Utc};

use crate::state::StateStore;
use crate::tenants::TenantsError;
use crate::tenants::archive::{self, Moved, Objects};
use crate::tenants::registry::{self, Entry, Registry};
use crate::tenants::state_dir;

/// Adds `entry` to the registry at `key`; refused when state of that name is under the tenant's
/// prefix (left by `remove --keep-state`, an older version, or a hand edit), unless
/// `keep_state`: then the tenant continues from it.
pub async fn add(
    store: &impl StateStore,
    objects: &impl Objects,
    state_key: &str,
    key: &str,
    entry: &Entry,
    keep_state: bool,
) -> Result<Registry, TenantsError> {
    if !keep_state {
        let found = archive::state_of(objects, state_key, &entry.name).await?;
        if !found.is_empty() {
            return Err(TenantsError::StateExists {
                name: entry.name.clone(),
                bucket: objects.bucket().to_owned(),
                prefix: state_dir(state_key, &entry.name),
                objects: found.len(),
            });
        }
    }
    registry::update(store, key, |d, at| registry::add(d, entry, at)).await
}

/// Removes tenant `name` from the registry at `key`, then (unless `keep_state`) moves its state
/// aside; returns the registry written and where the state went.
pub async fn remove(
    store: &impl StateStore,
    objects: &impl Objects,
    state_key: &str,
    key: &str,
    name: &str,
    keep_state: bool,
    now: DateTime<Utc>,
) -> Result<(Registry, Option<Moved>), TenantsError> {
    let registry = registry::update(store, key, |d, at| registry::remove(d, name, at)).await?;
    if keep_state {
        return Ok((registry, None));
    }
    match archive::move_aside(objects, state_key, name, now).await {
        Ok(moved) => Ok((registry, Some(moved))),
        Err(e) => Err(TenantsError::NotMoved {
            name: name.to_owned(),
            bucket: objects.bucket().to_owned(),
            prefix: state_dir(state_key, name),
            error: e.to_string(),
        }),
    }
}
