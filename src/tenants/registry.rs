//! The tenant registry: one JSON object in `STATE_BUCKET` at `TENANTS_KEY` that lists the
//! tenants, read at every scheduled event (so an edit takes effect at the next tick, without a
//! deploy) and edited by the command line with conditional writes. The object is kept as
//! written ([`Document`]): an edit never drops a field or an entry this version cannot read.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::state::{Condition, StateError, StateStore};
use crate::tenants::TenantsError;
pub use crate::tenants::entry::{
    Entries, Entry, Invalid, MAX_NAME_LEN, UnknownField, entry_problem, valid_name,
};
use crate::tenants::entry::{name_of, read_entries};

/// Conditional writes tried by [`update`] before it gives up.
pub const UPDATE_ATTEMPTS: u32 = 5;

/// The registry object as written: `{"tenants": [...]}`, each entry as its JSON, and any field
/// beside `tenants` kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// The entries, in the order written.
    pub tenants: Vec<Value>,
    /// Fields beside `tenants` (a newer version's), kept and reported.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// The registry as this version reads it: the entries that can run, and what it cannot use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Registry {
    /// The valid entries, in the order written.
    pub tenants: Vec<Entry>,
    /// Entries that cannot run (refused alone: the others run).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invalid: Vec<Invalid>,
    /// Fields not read (accepted with a warning).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown_fields: Vec<UnknownField>,
}

/// Where the registry lives, for messages.
#[derive(Debug, Clone, Copy)]
pub struct Location<'a> {
    /// `STATE_BUCKET`.
    pub bucket: &'a str,
    /// `TENANTS_KEY`.
    pub key: &'a str,
}

impl Document {
    /// Parses the object's bytes; only an object that is not `{"tenants": [...]}` is refused.
    pub fn parse(at: Location<'_>, bytes: &[u8]) -> Result<Document, TenantsError> {
        serde_json::from_slice(bytes).map_err(|e| TenantsError::Malformed {
            bucket: at.bucket.to_owned(),
            key: at.key.to_owned(),
            problem: e.to_string(),
        })
    }

    /// Reads each entry on its own.
    pub fn registry(&self) -> Registry {
        let Entries {
            valid,
            invalid,
            mut unknown_fields,
        } = read_entries(&self.tenants);
        let beside = self.other.keys().map(|field| UnknownField {
            index: None,
            name: String::new(),
            field: field.clone(),
        });
        unknown_fields.splice(0..0, beside);
        Registry {
            tenants: valid,
            invalid,
            unknown_fields,
        }
    }

    /// The JSON written back by the command line (pretty, entries in order).
    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut bytes = serde_json::to_vec_pretty(self)?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

impl Registry {
    /// Parses the object's bytes: [`TenantsError::Malformed`] only when the object as a whole
    /// is not the registry's JSON; a bad entry is listed in [`Registry::invalid`].
    pub fn parse(at: Location<'_>, bytes: &[u8]) -> Result<Registry, TenantsError> {
        Ok(Document::parse(at, bytes)?.registry())
    }

    /// The valid entry named `name`.
    pub fn find(&self, name: &str) -> Option<&Entry> {
        self.tenants.iter().find(|e| e.name == name)
    }

    /// The invalid entry named `name` (the first, for a duplicated name).
    pub fn find_invalid(&self, name: &str) -> Option<&Invalid> {
        self.invalid.iter().find(|i| i.name == name)
    }

    /// The enabled valid tenants, in order.
    pub fn enabled(&self) -> impl Iterator<Item = &Entry> {
        self.tenants.iter().filter(|e| e.enabled)
    }
}

/// The registry as read, with the ETag a replacement must match.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The object as written.
    pub document: Document,
    /// The content as this version reads it.
    pub registry: Registry,
    /// The object's ETag.
    pub etag: String,
}

/// Reads the registry at `key`; a missing object is [`TenantsError::Missing`].
pub async fn load(store: &impl StateStore, key: &str) -> Result<Loaded, TenantsError> {
    let at = Location {
        bucket: store.bucket(),
        key,
    };
    match store.get(key).await? {
        Some(object) => {
            let document = Document::parse(at, &object.body)?;
            Ok(Loaded {
                registry: document.registry(),
                document,
                etag: object.etag,
            })
        }
        None => Err(TenantsError::Missing {
            bucket: at.bucket.to_owned(),
            key: key.to_owned(),
        }),
    }
}

/// Applies `change` to the registry at `key` and writes it back only if nobody wrote it in
/// between (`If-Match`, or `If-None-Match` when it does not exist yet); on a conflict it reads
/// again and retries, up to [`UPDATE_ATTEMPTS`] writes. Entries and fields the change does not
/// touch are written back as they were. Returns the registry written.
pub async fn update<F>(
    store: &impl StateStore,
    key: &str,
    change: F,
) -> Result<Registry, TenantsError>
where
    F: Fn(&mut Document, Location<'_>) -> Result<(), TenantsError>,
{
    let at = Location {
        bucket: store.bucket(),
        key,
    };
    for _ in 0..UPDATE_ATTEMPTS {
        let (mut document, etag) = match load(store, key).await {
            Ok(loaded) => (loaded.document, Some(loaded.etag)),
            Err(TenantsError::Missing { .. }) => (Document::default(), None),
            Err(e) => return Err(e),
        };
        change(&mut document, at)?;
        let condition = Condition::from_etag(etag.as_deref());
        let body = document.to_bytes().map_err(|e| TenantsError::Malformed {
            bucket: at.bucket.to_owned(),
            key: key.to_owned(),
            problem: format!("the edited registry cannot be written as JSON: {e}"),
        })?;
        match store.put(key, body, condition).await {
            Ok(_) => return Ok(document.registry()),
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

/// Adds `entry`, valid, after the others; refuses a name already written (valid or not).
pub fn add(document: &mut Document, entry: &Entry, at: Location<'_>) -> Result<(), TenantsError> {
    if document.tenants.iter().any(|v| name_of(v) == entry.name) {
        return Err(TenantsError::Exists {
            name: entry.name.clone(),
        });
    }
    if let Some(problem) = entry_problem(entry) {
        return Err(TenantsError::Entry {
            bucket: at.bucket.to_owned(),
            key: at.key.to_owned(),
            index: document.tenants.len(),
            name: entry.name.clone(),
            problem,
        });
    }
    let value = serde_json::to_value(entry).map_err(|e| TenantsError::Malformed {
        bucket: at.bucket.to_owned(),
        key: at.key.to_owned(),
        problem: format!("the new entry cannot be written as JSON: {e}"),
    })?;
    document.tenants.push(value);
    Ok(())
}

/// Removes every entry named `name` (a duplicated name too); refuses a name not written.
pub fn remove(document: &mut Document, name: &str, at: Location<'_>) -> Result<(), TenantsError> {
    let before = document.tenants.len();
    document.tenants.retain(|v| name_of(v) != name);
    if document.tenants.len() == before {
        return Err(unknown(name, at));
    }
    Ok(())
}

/// Sets `enabled` on every entry named `name`, keeping its other fields.
pub fn set_enabled(
    document: &mut Document,
    name: &str,
    enabled: bool,
    at: Location<'_>,
) -> Result<(), TenantsError> {
    let mut found = false;
    for object in document.tenants.iter_mut().filter_map(Value::as_object_mut) {
        if object.get("name").and_then(Value::as_str) == Some(name) {
            object.insert("enabled".into(), Value::Bool(enabled));
            found = true;
        }
    }
    if found {
        Ok(())
    } else {
        Err(unknown(name, at))
    }
}

fn unknown(name: &str, at: Location<'_>) -> TenantsError {
    TenantsError::Unknown {
        name: name.to_owned(),
        bucket: at.bucket.to_owned(),
        key: at.key.to_owned(),
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
            secret_id: format!("m365-trace-to-devo/{name}"),
            ..Entry::named(name)
        }
    }

    fn names(r: &Registry) -> Vec<&str> {
        r.tenants.iter().map(|e| e.name.as_str()).collect()
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
        assert!(r.invalid.is_empty() && r.unknown_fields.is_empty());
    }

    #[test]
    fn only_an_object_that_is_not_a_registry_is_refused_whole() {
        let err = Registry::parse(AT, b"{\"tenants\": [").unwrap_err();
        assert_eq!(err.error_type(), "Registry");
        let text = err.to_string();
        assert!(
            text.contains("s3://b/m365-message-trace/tenants.json (TENANTS_KEY) is not valid"),
            "{text}"
        );
        assert!(text.contains("line 1"), "{text}");
        for bad in [&br#"[{"name":"a"}]"#[..], br#"{"tenants": 7}"#, b"{}"] {
            let err = Registry::parse(AT, bad).unwrap_err().to_string();
            assert!(err.contains("expected {\"tenants\""), "{err}");
        }
        // A bad entry, an unknown field, a field beside "tenants": read, reported, not fatal.
        let r = Registry::parse(
            AT,
            br#"{"version": 2, "tenants":[{"name":"a","secret_id":"s","enable":false},{"name":"B","secret_id":"s"}]}"#,
        )
        .unwrap();
        assert_eq!(names(&r), ["a"]);
        assert!(r.tenants[0].enabled, "the typo `enable` is not read");
        assert_eq!((r.invalid[0].index, r.invalid[0].name.as_str()), (1, "B"));
        let fields: Vec<(Option<usize>, &str)> = r
            .unknown_fields
            .iter()
            .map(|u| (u.index, u.field.as_str()))
            .collect();
        assert_eq!(fields, [(None, "version"), (Some(0), "enable")]);
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
    async fn updates_create_add_pause_and_remove_with_conditional_writes() {
        let store = MemoryStore::new();
        update(&store, AT.key, |d, at| add(d, &entry("contoso"), at))
            .await
            .unwrap();
        update(&store, AT.key, |d, at| add(d, &entry("fabrikam"), at))
            .await
            .unwrap();
        let err = update(&store, AT.key, |d, at| add(d, &entry("contoso"), at))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "Tenant");
        let r = update(&store, AT.key, |d, at| {
            set_enabled(d, "fabrikam", false, at)
        })
        .await
        .unwrap();
        assert!(!r.tenants[1].enabled);
        let r = update(&store, AT.key, |d, at| remove(d, "contoso", at))
            .await
            .unwrap();
        assert_eq!(
            r.tenants,
            vec![Entry {
                enabled: false,
                ..entry("fabrikam")
            }]
        );
        let err = update(&store, AT.key, |d, at| remove(d, "nobody", at))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("\"nobody\" is not in the registry"),
            "{err}"
        );
        let err = update(&store, AT.key, |d, at| add(d, &entry("Bad"), at))
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
    async fn an_edit_keeps_what_this_version_does_not_read() {
        let store = MemoryStore::new();
        let written = br#"{"version": 2, "tenants": [{"name": "a", "secret_id": "s", "comment": "onboarded 2026-11"}, {"name": "Broken"}]}"#;
        store.overwrite(AT.key, written.to_vec());
        let r = update(&store, AT.key, |d, at| add(d, &entry("b"), at))
            .await
            .unwrap();
        assert_eq!(names(&r), ["a", "b"]);
        assert_eq!(r.invalid[0].name, "Broken");
        let document = load(&store, AT.key).await.unwrap().document;
        assert_eq!(document.other["version"], 2);
        assert_eq!(document.tenants[0]["comment"], "onboarded 2026-11");
        assert_eq!(document.tenants[1], serde_json::json!({"name": "Broken"}));
        update(&store, AT.key, |d, at| set_enabled(d, "a", false, at))
            .await
            .unwrap();
        let document = load(&store, AT.key).await.unwrap().document;
        assert_eq!(document.tenants[0]["comment"], "onboarded 2026-11");
        assert_eq!(document.tenants[0]["enabled"], false);
    }

    #[tokio::test]
    async fn an_update_racing_another_edit_reads_again_and_keeps_both() {
        let store = MemoryStore::new();
        update(&store, AT.key, |d, at| add(d, &entry("a"), at))
            .await
            .unwrap();
        let raced = std::sync::atomic::AtomicBool::new(false);
        let r = update(&store, AT.key, |d, at| {
            if !raced.swap(true, std::sync::atomic::Ordering::SeqCst) {
                // Another operator's edit lands between our read and our write.
                let mut theirs = d.clone();
                add(&mut theirs, &entry("theirs"), at)?;
                store.overwrite(AT.key, theirs.to_bytes().unwrap());
            }
            add(d, &entry("ours"), at)
        })
        .await
        .unwrap();
        assert_eq!(names(&r), ["a", "theirs", "ours"]);
    }
}
