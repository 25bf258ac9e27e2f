//! The tenant registry: one JSON object in `STATE_BUCKET` at `TENANTS_KEY` that lists the
//! tenants, read at every scheduled event (so an edit takes effect at the next tick, without a
//! deploy) and edited by the command line with conditional writes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::state::{Condition, StateError, StateStore};
use crate::tenants::TenantsError;

/// Longest tenant name: it is a path segment of S3 keys and a metric dimension value.
pub const MAX_NAME_LEN: usize = 63;

/// Conditional writes tried by [`update`] before it gives up.
pub const UPDATE_ATTEMPTS: u32 = 5;

/// The registry object: `{"tenants": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    /// The tenants, in the order written.
    pub tenants: Vec<Entry>,
}

/// One tenant of the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// `[a-z0-9][a-z0-9-]{0,62}`: its state prefix, event payload and metric dimension.
    pub name: String,
    /// The Secrets Manager secret with its Microsoft credentials (and maybe Devo material).
    pub secret_id: String,
    /// A disabled tenant is not dispatched and its events are refused; its state is kept.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Host field of its lines; default: the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devo_hostname: Option<String>,
    /// Devo tag of its lines; default: `DEVO_TAG`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devo_tag: Option<String>,
    /// Its own `RESET_BEFORE`; default: the deployment's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_before: Option<DateTime<Utc>>,
}

fn enabled_by_default() -> bool {
    true
}

/// Where the registry lives, for messages.
#[derive(Debug, Clone, Copy)]
pub struct Location<'a> {
    /// `STATE_BUCKET`.
    pub bucket: &'a str,
    /// `TENANTS_KEY`.
    pub key: &'a str,
}

/// Whether `name` can be a tenant's name: `[a-z0-9][a-z0-9-]{0,62}`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= MAX_NAME_LEN
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// What is wrong with `entry`, if anything.
pub fn entry_problem(entry: &Entry) -> Option<String> {
    if !valid_name(&entry.name) {
        return Some(format!(
            "\"name\" must match [a-z0-9][a-z0-9-]{{0,{}}} (lowercase letters, digits and '-', starting with a letter or digit, at most {MAX_NAME_LEN} characters)",
            MAX_NAME_LEN - 1
        ));
    }
    if entry.secret_id.trim().is_empty() {
        return Some("\"secret_id\" is empty: give the name or ARN of the tenant's secret".into());
    }
    if let Some(host) = &entry.devo_hostname
        && (host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Some(
            "\"devo_hostname\" must be one word without spaces or control characters".into(),
        );
    }
    if let Some(tag) = &entry.devo_tag
        && !crate::config::is_tag(tag)
    {
        return Some(
            "\"devo_tag\" must be dot-separated words of letters, digits, '_' or '-', such as cloud.office365.messagetracing".into(),
        );
    }
    None
}

impl Registry {
    /// Parses and validates the object's bytes: valid JSON of the expected shape, every entry
    /// valid, names unique.
    pub fn parse(at: Location<'_>, bytes: &[u8]) -> Result<Registry, TenantsError> {
        let registry: Registry =
            serde_json::from_slice(bytes).map_err(|e| TenantsError::Malformed {
                bucket: at.bucket.to_owned(),
                key: at.key.to_owned(),
                problem: e.to_string(),
            })?;
        registry.validate(at)?;
        Ok(registry)
    }

    /// Checks every entry and that no name appears twice.
    pub fn validate(&self, at: Location<'_>) -> Result<(), TenantsError> {
        let entry_error = |index: usize, name: &str, problem: String| TenantsError::Entry {
            bucket: at.bucket.to_owned(),
            key: at.key.to_owned(),
            index,
            name: name.to_owned(),
            problem,
        };
        let mut seen = std::collections::HashMap::new();
        for (index, entry) in self.tenants.iter().enumerate() {
            if let Some(problem) = entry_problem(entry) {
                return Err(entry_error(index, &entry.name, problem));
            }
            if let Some(first) = seen.insert(entry.name.as_str(), index) {
                let problem = format!("the name is used by entry {first} too: names are unique");
                return Err(entry_error(index, &entry.name, problem));
            }
        }
        Ok(())
    }

    /// The entry named `name`.
    pub fn find(&self, name: &str) -> Option<&Entry> {
        self.tenants.iter().find(|e| e.name == name)
    }

    /// The enabled tenants, in order.
    pub fn enabled(&self) -> impl Iterator<Item = &Entry> {
        self.tenants.iter().filter(|e| e.enabled)
    }

    /// The JSON written back by the command line (pretty, entries in order).
    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut bytes = serde_json::to_vec_pretty(self)?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

/// The registry as read, with the ETag a replacement must match.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The content.
    pub registry: Registry,
    /// The object's ETag.
    pub etag: String,
}

/// Reads and validates the registry at `key`; a missing object is [`TenantsError::Missing`].
pub async fn load(store: &impl StateStore, key: &str) -> Result<Loaded, TenantsError> {
    let at = Location {
        bucket: store.bucket(),
        key,
    };
    match store.get(key).await? {
        Some(object) => Ok(Loaded {
            registry: Registry::parse(at, &object.body)?,
            etag: object.etag,
        }),
        None => Err(TenantsError::Missing {
            bucket: at.bucket.to_owned(),
            key: key.to_owned(),
        }),
    }
}

/// Applies `change` to the registry at `key` and writes it back only if nobody wrote it in
/// between (`If-Match`, or `If-None-Match` when it does not exist yet); on a conflict it reads
/// again and retries, up to [`UPDATE_ATTEMPTS`] writes. Returns the registry written.
pub async fn update<F>(
    store: &impl StateStore,
    key: &str,
    change: F,
) -> Result<Registry, TenantsError>
where
    F: Fn(&mut Registry) -> Result<(), TenantsError>,
{
    let at = Location {
        bucket: store.bucket(),
        key,
    };
    for _ in 0..UPDATE_ATTEMPTS {
        let (mut registry, etag) = match load(store, key).await {
            Ok(loaded) => (loaded.registry, Some(loaded.etag)),
            Err(TenantsError::Missing { .. }) => (Registry::default(), None),
            Err(e) => return Err(e),
        };
        change(&mut registry)?;
        registry.validate(at)?;
        let condition = Condition::from_etag(etag.as_deref());
        let body = registry.to_bytes().map_err(|e| TenantsError::Malformed {
            bucket: at.bucket.to_owned(),
            key: key.to_owned(),
            problem: format!("the edited registry cannot be written as JSON: {e}"),
        })?;
        match store.put(key, body, condition).await {
            Ok(_) => return Ok(registry),
            Err(StateError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(TenantsError::Contended {
        bucket: at.bucket.to_owned(),
        key: key.to_owned(),
        attempts: UPDATE_ATTEMPTS,
    })
}

/// Adds `entry`; refuses a name already listed.
pub fn add(registry: &mut Registry, entry: Entry) -> Result<(), TenantsError> {
    if registry.find(&entry.name).is_some() {
        return Err(TenantsError::Exists { name: entry.name });
    }
    registry.tenants.push(entry);
    Ok(())
}

/// Removes the entry named `name`; refuses a name not listed.
pub fn remove(registry: &mut Registry, name: &str, at: Location<'_>) -> Result<(), TenantsError> {
    let before = registry.tenants.len();
    registry.tenants.retain(|e| e.name != name);
    if registry.tenants.len() == before {
        return Err(TenantsError::Unknown {
            name: name.to_owned(),
            bucket: at.bucket.to_owned(),
            key: at.key.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
impl Entry {
    /// An enabled entry with secret `s/NAME` and nothing overridden, for tests.
    pub(crate) fn named(name: &str) -> Entry {
        Entry {
            name: name.into(),
            secret_id: format!("s/{name}"),
            enabled: true,
            devo_hostname: None,
            devo_tag: None,
            reset_before: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemoryStore;

    const AT: Location<'static> = Location {
        bucket: "b",
        key: "m365-message-trace/tenants.json",
    };

    fn entry(name: &str) -> Entry {
        Entry {
            name: name.into(),
            secret_id: format!("m365-trace-to-devo/{name}"),
            enabled: true,
            devo_hostname: None,
            devo_tag: None,
            reset_before: None,
        }
    }

    #[test]
    fn a_registry_parses_with_defaults() {
        let r = Registry::parse(
            AT,
            br#"{"tenants":[{"name":"contoso","secret_id":"s/contoso"},
                {"name":"fabrikam-2","secret_id":"s/f","enabled":false,"devo_hostname":"fab","devo_tag":"my.table"}]}"#,
        )
        .unwrap();
        assert!(r.tenants[0].enabled, "enabled by default");
        assert_eq!(r.tenants[1].devo_hostname.as_deref(), Some("fab"));
        assert_eq!(
            r.enabled().map(|e| e.name.as_str()).collect::<Vec<_>>(),
            ["contoso"]
        );
        let again = Registry::parse(AT, &r.to_bytes().unwrap()).unwrap();
        assert_eq!(again, r, "round trip");
    }

    #[test]
    fn names_follow_the_rule() {
        for ok in ["a", "contoso", "0day", "a-b-c", &"x".repeat(63)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "Contoso",
            "a_b",
            "a.b",
            "a/b",
            &"x".repeat(64),
            "é",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_bad_entry_is_named_with_the_key_and_its_position() {
        let err = Registry::parse(
            AT,
            br#"{"tenants":[{"name":"ok","secret_id":"s"},{"name":"Bad Name","secret_id":"s"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("s3://b/m365-message-trace/tenants.json"),
            "{err}"
        );
        assert!(
            err.contains("entry 1 (\"Bad Name\")") && err.contains("[a-z0-9]"),
            "{err}"
        );
        let err = Registry::parse(
            AT,
            br#"{"tenants":[{"name":"a","secret_id":"s"},{"name":"a","secret_id":"t"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("entry 1 (\"a\")") && err.contains("entry 0 too"),
            "{err}"
        );
        let err = Registry::parse(AT, br#"{"tenants":[{"name":"a","secret_id":" "}]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("secret_id"), "{err}");
        let err = Registry::parse(
            AT,
            br#"{"tenants":[{"name":"a","secret_id":"s","devo_tag":"one"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("devo_tag"), "{err}");
    }

    #[test]
    fn malformed_json_and_unknown_fields_name_the_key_and_the_problem() {
        let err = Registry::parse(AT, b"{\"tenants\": [").unwrap_err();
        assert_eq!(err.error_type(), "Registry");
        let text = err.to_string();
        assert!(
            text.contains("s3://b/m365-message-trace/tenants.json (TENANTS_KEY) is not valid"),
            "{text}"
        );
        assert!(text.contains("line 1"), "{text}");
        let err = Registry::parse(
            AT,
            br#"{"tenants":[{"name":"a","secret_id":"s","enable":false}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("unknown field `enable`"),
            "a typo is not silently ignored: {err}"
        );
        let err = Registry::parse(AT, br#"[{"name":"a"}]"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected {\"tenants\""), "{err}");
    }

    #[tokio::test]
    async fn a_missing_registry_names_the_bucket_and_key() {
        let store = MemoryStore::new();
        let err = load(&store, AT.key).await.unwrap_err();
        assert!(matches!(err, TenantsError::Missing { .. }));
        assert!(
            err.to_string()
                .contains("m365-message-trace/tenants.json (TENANTS_KEY) does not exist"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn updates_create_add_and_remove_with_conditional_writes() {
        let store = MemoryStore::new();
        update(&store, AT.key, |r| add(r, entry("contoso")))
            .await
            .unwrap();
        update(&store, AT.key, |r| add(r, entry("fabrikam")))
            .await
            .unwrap();
        let err = update(&store, AT.key, |r| add(r, entry("contoso")))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "Tenant");
        let at = AT;
        let r = update(&store, AT.key, |r| remove(r, "contoso", at))
            .await
            .unwrap();
        assert_eq!(r.tenants, vec![entry("fabrikam")]);
        let err = update(&store, AT.key, |r| remove(r, "nobody", at))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("\"nobody\" is not in the registry"),
            "{err}"
        );
        let err = update(&store, AT.key, |r| add(r, entry("Bad")))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("entry 1 (\"Bad\")"), "{err}");
        assert_eq!(
            load(&store, AT.key).await.unwrap().registry.tenants.len(),
            1,
            "nothing written"
        );
    }

    #[tokio::test]
    async fn an_update_racing_another_edit_reads_again_and_keeps_both() {
        let store = MemoryStore::new();
        update(&store, AT.key, |r| add(r, entry("a")))
            .await
            .unwrap();
        let raced = std::sync::atomic::AtomicBool::new(false);
        let r = update(&store, AT.key, |r| {
            if !raced.swap(true, std::sync::atomic::Ordering::SeqCst) {
                // Another operator's edit lands between our read and our write.
                let mut theirs = r.clone();
                theirs.tenants.push(entry("theirs"));
                store.overwrite(AT.key, theirs.to_bytes().unwrap());
            }
            add(r, entry("ours"))
        })
        .await
        .unwrap();
        let names: Vec<&str> = r.tenants.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "theirs", "ours"]);
    }
}
