//! Many tenants from one deployment: the registry (`TENANTS_KEY`), how a registry entry becomes
//! a [`Tenant`] with its own secret, state and Devo identity, and the dispatcher that starts
//! one invocation per tenant. Without `TENANTS_KEY` none of this runs: one tenant, as always.

pub mod archive;
pub mod dispatch;
pub mod edit;
pub mod entry;
pub mod error;
pub(crate) mod invoke;
pub mod registry;
pub mod retry;
pub mod status;
mod tenant;

use crate::app::App;
use crate::config::Config;
use crate::events::Event;
use crate::events::metrics::{Dimensions, DispatchCounts};
use crate::events::tenants::{Dispatched, EntryInvalid, FieldUnknown, NoTenants, NotStarted};
use crate::state::{S3Store, StateStore};
pub use tenant::{DEFAULT_TENANT, Tenant};

pub use error::TenantsError;
use registry::{Entry, Location, Registry};

impl Tenant {
    /// The tenant of a registry entry: its secret; its state under
    /// `{dir of STATE_KEY}/tenants/NAME/`; host field = `devo_hostname` or the name; tag =
    /// `devo_tag` or `DEVO_TAG`; `reset_before` or `RESET_BEFORE`.
    pub fn from_entry(entry: &Entry, config: &Config) -> Tenant {
        Tenant {
            name: Some(entry.name.clone()),
            secret_id: entry.secret_id.clone(),
            state_key: format!(
                "{}checkpoint.json",
                state_dir(&config.state_key, &entry.name)
            ),
            devo_hostname: entry
                .devo_hostname
                .clone()
                .unwrap_or_else(|| entry.name.clone()),
            devo_tag: entry
                .devo_tag
                .clone()
                .unwrap_or_else(|| config.devo_tag.clone()),
            reset_before: entry.reset_before.or(config.reset_before),
        }
    }
}

/// The prefix of everything a tenant keeps in the state bucket: `{dir of STATE_KEY}/tenants/NAME/`.
pub fn state_dir(state_key: &str, name: &str) -> String {
    match state_key.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/tenants/{name}/"),
        None => format!("tenants/{name}/"),
    }
}

/// The entry an event's tenant runs as: refused when it is not listed, disabled or invalid
/// (only its own entry counts: a bad neighbour does not stop it). `paused_ok` accepts a
/// disabled one (the operator's `check` and `plan` of a tenant not yet enabled).
pub fn resolve<'r>(
    registry: &'r Registry,
    name: &str,
    at: Location<'_>,
    paused_ok: bool,
) -> Result<&'r Entry, TenantsError> {
    if let Some(invalid) = registry.find_invalid(name) {
        return Err(TenantsError::Entry {
            bucket: at.bucket.to_owned(),
            key: at.key.to_owned(),
            index: invalid.index,
            name: invalid.name.clone(),
            problem: invalid.problem.clone(),
        });
    }
    match registry.find(name) {
        Some(entry) if entry.enabled || paused_ok => Ok(entry),
        Some(_) => Err(TenantsError::Disabled {
            name: name.to_owned(),
            bucket: at.bucket.to_owned(),
            key: at.key.to_owned(),
        }),
        None => Err(TenantsError::Unknown {
            name: name.to_owned(),
            bucket: at.bucket.to_owned(),
            key: at.key.to_owned(),
        }),
    }
}

/// The registry's key, or the error for an event that names a tenant without one.
pub fn registry_key<'c>(config: &'c Config, name: &str) -> Result<&'c str, TenantsError> {
    config
        .tenants_key
        .as_deref()
        .ok_or_else(|| TenantsError::NoRegistry {
            name: name.to_owned(),
        })
}

/// Reads the registry and resolves the enabled tenant `name` (a paused one too when
/// `paused_ok`: the operator's `check` and `plan` of a tenant not yet enabled).
pub async fn tenant(app: &App, name: &str, paused_ok: bool) -> Result<Tenant, TenantsError> {
    let config = app.config()?;
    let key = registry_key(config, name)?;
    let store = S3Store::new(app.s3().clone(), config.state_bucket.clone());
    let loaded = registry::load(&store, key).await?;
    let at = Location {
        bucket: &config.state_bucket,
        key,
    };
    let entry = resolve(&loaded.registry, name, at, paused_ok)?;
    Ok(Tenant::from_entry(entry, config))
}

/// Records in a tenant's checkpoint at `key` a failure its tick could not record itself: one
/// before the lease (its secret, its Devo material, its checkpoint), as its `errorType` and
/// message.
pub async fn note_failure(app: &App, key: &str, error_type: &str, message: String) {
    let Ok(config) = app.config() else { return };
    let store = S3Store::new(app.s3().clone(), config.state_bucket.clone());
    let now = app.now();
    let last = crate::checkpoint::LastError {
        at: now,
        error_type: error_type.to_owned(),
        message,
    };
    status::record_failure(&store, key, last, now).await;
}

/// Reads the registry at `key` and starts every enabled valid tenant's tick through `invoker`;
/// each invalid entry, unknown field and tenant not started is logged, and the counts are
/// metrics with `dimensions`.
pub async fn run_dispatch<I: dispatch::Invoker>(
    store: &impl StateStore,
    key: &str,
    invoker: &I,
    pace: dispatch::Pace,
    dimensions: Dimensions<'_>,
) -> Result<dispatch::DispatchSummary, TenantsError> {
    let loaded = registry::load(store, key).await?;
    let registry = &loaded.registry;
    let location = format!("s3://{}/{key}", store.bucket());
    if registry.tenants.is_empty() && registry.invalid.is_empty() {
        NoTenants {
            registry: &location,
        }
        .emit();
    }
    for f in &registry.unknown_fields {
        let (index, name, field) = (f.index, f.name.as_str(), f.field.as_str());
        let registry = &location;
        FieldUnknown {
            registry,
            index,
            name,
            field,
        }
        .emit();
    }
    for e in &registry.invalid {
        let (index, name, problem) = (e.index, e.name.as_str(), e.problem.as_str());
        let registry = &location;
        EntryInvalid {
            registry,
            index,
            name,
            problem,
        }
        .emit();
    }
    let summary = dispatch::dispatch(invoker, registry, pace).await;
    for f in &summary.failed {
        let (tenant, attempts, error) = (f.tenant.as_str(), f.attempts, f.error.as_str());
        NotStarted {
            tenant,
            attempts,
            error,
        }
        .emit();
    }
    let failed: Vec<&str> = summary.failed.iter().map(|f| f.tenant.as_str()).collect();
    let invalid: Vec<&str> = summary.invalid.iter().map(|i| i.name.as_str()).collect();
    Dispatched {
        registry: &location,
        tenants: summary.tenants,
        counts: DispatchCounts {
            dispatched: summary.dispatched.len(),
            failed: failed.len(),
            registry_errors: invalid.len(),
            duration_ms: summary.duration_ms,
        },
        disabled: summary.disabled.len(),
        invalid: &invalid,
        failed: &failed,
        retries: summary.retries,
        dimensions,
    }
    .emit();
    summary.into_result()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(extra: &[(&str, &str)]) -> Config {
        let mut env: HashMap<&str, &str> = [
            ("SECRET_ID", "shared-devo"),
            ("STATE_BUCKET", "b"),
            ("DEVO_TAG", "my.table"),
            ("TENANTS_KEY", "m365-message-trace/tenants.json"),
        ]
        .into_iter()
        .collect();
        env.extend(extra.iter().copied());
        Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap()
    }

    fn entry(name: &str, enabled: bool) -> Entry {
        Entry {
            enabled,
            ..Entry::named(name)
        }
    }

    #[test]
    fn an_entry_gets_its_own_state_hostname_and_the_deployment_tag() {
        let t = Tenant::from_entry(&entry("contoso", true), &config(&[]));
        assert_eq!(t.name.as_deref(), Some("contoso"));
        assert_eq!(t.label(), "contoso");
        assert_eq!(
            t.state_key,
            "m365-message-trace/tenants/contoso/checkpoint.json"
        );
        assert_eq!(
            (t.devo_hostname.as_str(), t.devo_tag.as_str()),
            ("contoso", "my.table")
        );
        assert_eq!(t.secret_id, "s/contoso");
        let own = Entry {
            devo_hostname: Some("contoso-mail".into()),
            devo_tag: Some("other.table".into()),
            ..entry("contoso", true)
        };
        let t = Tenant::from_entry(&own, &config(&[("STATE_KEY", "checkpoint.json")]));
        assert_eq!(t.state_key, "tenants/contoso/checkpoint.json");
        assert_eq!(
            (t.devo_hostname.as_str(), t.devo_tag.as_str()),
            ("contoso-mail", "other.table")
        );
    }

    #[test]
    fn an_unknown_or_disabled_tenant_is_refused_by_name() {
        let registry = Registry::parse(
            Location { bucket: "b", key: "k" },
            br#"{"tenants": [{"name": "on", "secret_id": "s"}, {"name": "off", "secret_id": "s", "enabled": false},
                {"name": "bad", "secret_id": ""}, {"name": "Nope", "secret_id": "s"}]}"#,
        )
        .unwrap();
        let at = Location {
            bucket: "b",
            key: "k",
        };
        assert_eq!(resolve(&registry, "on", at, false).unwrap().name, "on");
        assert_eq!(resolve(&registry, "off", at, true).unwrap().name, "off");
        // Its own entry is what counts: "on" runs beside two bad entries.
        let err = resolve(&registry, "bad", at, false).unwrap_err();
        assert_eq!(err.error_type(), "Tenant");
        assert!(
            err.to_string()
                .contains("entry 2 (\"bad\"): \"secret_id\" is empty"),
            "{err}"
        );
        let err = resolve(&registry, "off", at, false).unwrap_err();
        assert_eq!(err.error_type(), "Tenant");
        assert!(
            err.to_string().starts_with("tenant \"off\" is disabled"),
            "{err}"
        );
        let err = resolve(&registry, "ghost", at, false).unwrap_err();
        assert_eq!(err.error_type(), "Tenant");
        assert!(
            err.to_string()
                .contains("\"ghost\" is not in the registry s3://b/k"),
            "{err}"
        );
    }

    #[derive(Clone, Default)]
    struct Count(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl dispatch::Invoker for Count {
        async fn invoke(&self, _payload: Vec<u8>) -> Result<(), dispatch::Refused> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_dispatcher_reads_the_registry_or_says_which_object_is_wrong() {
        use crate::state::{Condition, MemoryStore};
        let store = MemoryStore::new();
        let key = "m365-message-trace/tenants.json";
        let invoker = Count::default();
        let pace = dispatch::Pace {
            concurrency: 4,
            retry_min_delay: std::time::Duration::from_millis(1),
            until: tokio::time::Instant::now() + std::time::Duration::from_secs(60),
        };
        let dims = Dimensions {
            function_name: "f",
            api: "graph",
            tenant: "dispatch",
            per_tenant: false,
        };
        let err = run_dispatch(&store, key, &invoker, pace, dims)
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "Registry");
        assert!(
            err.to_string()
                .contains("tenants.json (TENANTS_KEY) does not exist"),
            "{err}"
        );
        store
            .put(key, b"{\"tenants\": 7}".to_vec(), Condition::Absent)
            .await
            .unwrap();
        let err = run_dispatch(&store, key, &invoker, pace, dims)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("tenants.json (TENANTS_KEY) is not valid"),
            "{err}"
        );
        store.overwrite(key, b"{\"tenants\": []}".to_vec());
        let summary = run_dispatch(&store, key, &invoker, pace, dims)
            .await
            .unwrap();
        assert_eq!((summary.tenants, summary.dispatched.len()), (0, 0));
        let registry = r#"{"tenants": [{"name": "a", "secret_id": "s/a", "comment": "x"}, {"name": "b", "secret_id": "s/b", "enabled": false}, {"name": "C"}]}"#;
        store.overwrite(key, registry.as_bytes().to_vec());
        let summary = run_dispatch(&store, key, &invoker, pace, dims)
            .await
            .unwrap();
        assert_eq!(
            (summary.dispatched, summary.disabled),
            (vec!["a".to_owned()], vec!["b".to_owned()])
        );
        assert_eq!((summary.tenants, summary.invalid.len()), (3, 1));
        assert_eq!(summary.unknown_fields[0].field, "comment");
        assert_eq!(
            invoker.0.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "the disabled and the invalid one are skipped"
        );
    }

    #[test]
    fn a_tenant_event_without_a_registry_says_how_to_fix_it() {
        let mut c = config(&[]);
        c.tenants_key = None;
        let err = registry_key(&c, "contoso").unwrap_err().to_string();
        assert!(err.contains("TENANTS_KEY is not set"), "{err}");
    }
}
