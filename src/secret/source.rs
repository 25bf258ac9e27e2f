//! Where a secret's text comes from — Secrets Manager in production, a map in unit tests — and
//! how a tenant's secret borrows the deployment's Devo material.

use std::collections::HashMap;
use std::future::Future;

use crate::secret::{DevoCredentials, Partial, Secret, SecretError, query_token_of};

/// A store of secrets by id, read as text.
pub trait SecretStore: Send + Sync {
    /// The secret's string.
    fn text(&self, secret_id: &str) -> impl Future<Output = Result<String, SecretError>> + Send;
}

/// Secrets Manager, through a client built once at cold start.
#[derive(Clone, Debug)]
pub struct SecretsManager {
    client: aws_sdk_secretsmanager::Client,
}

impl SecretsManager {
    /// Wraps a client built once at cold start.
    pub fn new(client: aws_sdk_secretsmanager::Client) -> SecretsManager {
        SecretsManager { client }
    }
}

impl SecretStore for SecretsManager {
    async fn text(&self, secret_id: &str) -> Result<String, SecretError> {
        use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
        let out = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| SecretError::Fetch {
                secret_id: secret_id.to_owned(),
                code: e.code().unwrap_or("request failed").to_owned(),
                message: e
                    .message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| crate::error_chain(&e)),
            })?;
        out.secret_string()
            .map(str::to_owned)
            .ok_or_else(|| SecretError::NotText {
                secret_id: secret_id.to_owned(),
            })
    }
}

/// Secrets in a map, for unit tests; counts the reads.
#[derive(Debug, Default)]
pub struct MemorySecrets {
    texts: HashMap<String, String>,
    reads: std::sync::atomic::AtomicUsize,
}

impl MemorySecrets {
    /// A store holding `texts` by id.
    pub fn new(texts: &[(&str, &str)]) -> MemorySecrets {
        MemorySecrets {
            texts: texts
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            reads: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Reads so far.
    pub fn reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl SecretStore for MemorySecrets {
    async fn text(&self, secret_id: &str) -> Result<String, SecretError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.texts
            .get(secret_id)
            .cloned()
            .ok_or_else(|| SecretError::Fetch {
                secret_id: secret_id.to_owned(),
                code: "ResourceNotFoundException".into(),
                message: "no such secret".into(),
            })
    }
}

/// Reads and parses secrets from a [`SecretStore`].
#[derive(Clone, Debug)]
pub struct SecretSource<S: SecretStore> {
    store: S,
}

impl<S: SecretStore> SecretSource<S> {
    /// Reads from `store`.
    pub fn new(store: S) -> SecretSource<S> {
        SecretSource { store }
    }

    /// Fetches and parses the secret.
    pub async fn load(&self, secret_id: &str) -> Result<Secret, SecretError> {
        Secret::parse(secret_id, &self.store.text(secret_id).await?)
    }

    /// Fetches a tenant's secret `secret_id`; when it has no Devo material, the Devo material
    /// of `devo_fallback_id` (`SECRET_ID`) is read too, and only then (with its
    /// `devo_query_token` when the tenant's secret has none).
    pub async fn load_for(
        &self,
        secret_id: &str,
        devo_fallback_id: &str,
    ) -> Result<Secret, SecretError> {
        let partial = Partial::parse(secret_id, &self.store.text(secret_id).await?)?;
        if partial.has_devo() || secret_id == devo_fallback_id {
            return partial.complete(None);
        }
        let text = self.store.text(devo_fallback_id).await?;
        let fallback = DevoCredentials::parse(devo_fallback_id, &text)?;
        let mut secret = partial.complete(Some(fallback))?;
        if secret.devo_query_token.is_none() {
            secret.devo_query_token = query_token_of(devo_fallback_id, &text)?;
        }
        Ok(secret)
    }

    /// The `devo_query_token` of a tenant's secret `secret_id`, or else of `devo_fallback_id`
    /// (`SECRET_ID`), without requiring the rest: a cut-over can be planned and applied while
    /// the secret holds only the Devo material, before any tick can run.
    pub async fn query_token_for(
        &self,
        secret_id: &str,
        devo_fallback_id: &str,
    ) -> Result<Option<crate::secret::QueryToken>, SecretError> {
        let own = query_token_of(secret_id, &self.store.text(secret_id).await?)?;
        if own.is_some() || secret_id == devo_fallback_id {
            return Ok(own);
        }
        query_token_of(devo_fallback_id, &self.store.text(devo_fallback_id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEVO: &str = r#""devo_cert_pem":"C","devo_key_pem":"K","devo_chain_pem":"A""#;

    #[tokio::test]
    async fn the_query_token_alone_is_read_from_a_secret_that_is_not_complete_yet() {
        let devo_only = format!(r#"{{{DEVO},"devo_query_token":"Q"}}"#);
        let tenant = r#"{"tenant_id":"t","client_id":"c","client_secret":"s"}"#;
        let source = SecretSource::new(MemorySecrets::new(&[
            ("main", devo_only.as_str()),
            ("tenant", tenant),
        ]));
        let token = |t: Option<crate::secret::QueryToken>| t.map(|t| t.bearer());
        assert_eq!(
            token(source.query_token_for("main", "main").await.unwrap()).as_deref(),
            Some("Bearer Q"),
            "no Microsoft credentials needed"
        );
        assert_eq!(
            token(source.query_token_for("tenant", "main").await.unwrap()).as_deref(),
            Some("Bearer Q"),
            "borrowed from SECRET_ID"
        );
        let lone = SecretSource::new(MemorySecrets::new(&[("tenant", tenant)]));
        assert!(
            lone.query_token_for("tenant", "tenant")
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_tenant_secret_without_devo_material_borrows_the_deployments_only_then() {
        let tenant = r#"{"tenant_id":"t","client_id":"c","client_secret":"s"}"#;
        let own = format!(r#"{{"tenant_id":"t","client_id":"c","client_secret":"s",{DEVO}}}"#);
        let main = format!(r#"{{{DEVO},"devo_query_token":"Q"}}"#);
        let store = MemorySecrets::new(&[("tenant", tenant), ("own", &own), ("main", &main)]);
        let source = SecretSource::new(store);
        let borrowed = source.load_for("tenant", "main").await.expect("borrowed");
        assert_eq!(borrowed.devo.cert_pem, "C");
        assert_eq!(
            borrowed.devo_query_token.map(|t| t.bearer()).as_deref(),
            Some("Bearer Q")
        );
        assert_eq!(source.store.reads(), 2);
        let own = source.load_for("own", "main").await.expect("own material");
        assert_eq!(
            own.devo_query_token, None,
            "its own Devo domain, no token of its own"
        );
        assert_eq!(
            source.store.reads(),
            3,
            "the deployment's secret is not read"
        );
        let missing = source.load_for("tenant", "absent").await.unwrap_err();
        assert!(missing.to_string().contains("absent"), "{missing}");
    }
}
