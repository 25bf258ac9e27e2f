//! Step 2 of a tick: the Microsoft credentials and the Devo X.509 material from Secrets Manager.

use std::fmt;

use serde::Deserialize;
use thiserror::Error;

mod query_token;
mod source;

pub use query_token::QueryToken;
pub use source::{MemorySecrets, SecretSource, SecretStore, SecretsManager};

/// Why the secret could not be used. Never carries a secret value.
#[derive(Debug, Error)]
pub enum SecretError {
    /// Secrets Manager refused or failed the read.
    #[error(
        "could not read secret {secret_id} from Secrets Manager: {code}: {message} (check SECRET_ID and that the function's role may call secretsmanager:GetSecretValue on it)"
    )]
    Fetch {
        /// The `SECRET_ID` that was asked for.
        secret_id: String,
        /// The service's error code, e.g. ResourceNotFoundException or AccessDeniedException.
        code: String,
        /// The service's message.
        message: String,
    },
    /// The secret is binary or empty.
    #[error(
        "secret {secret_id} has no SecretString: store the JSON document described in the README as a string"
    )]
    NotText {
        /// The `SECRET_ID`.
        secret_id: String,
    },
    /// The secret is not the expected JSON document.
    #[error(
        "secret {secret_id} is not the expected JSON object: {problem} (the value itself is not shown)"
    )]
    Malformed {
        /// The `SECRET_ID`.
        secret_id: String,
        /// Position and kind of the JSON problem, without content.
        problem: String,
    },
    /// A required key is absent or empty.
    #[error("secret {secret_id} lacks \"{key}\": {hint}")]
    MissingKey {
        /// The `SECRET_ID`.
        secret_id: String,
        /// The JSON key.
        key: &'static str,
        /// What the key holds.
        hint: &'static str,
    },
}

/// How the app authenticates to Microsoft Entra ID.
#[derive(Clone)]
pub enum ClientCredential {
    /// A client secret.
    Secret(String),
    /// A certificate and its private key (PEM), for a signed JWT client assertion.
    Certificate {
        /// The app registration's certificate.
        certificate_pem: String,
        /// Its private key.
        private_key_pem: String,
    },
}

impl fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientCredential::Secret(_) => f.write_str("Secret(<redacted>)"),
            ClientCredential::Certificate { .. } => f.write_str("Certificate(<redacted>)"),
        }
    }
}

/// The Devo domain's X.509 material.
#[derive(Clone)]
pub struct DevoCredentials {
    /// The domain's client certificate.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
    /// The CA chain that verifies the relay.
    pub chain_pem: String,
}

impl fmt::Debug for DevoCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DevoCredentials(<redacted>)")
    }
}

/// The secret document, parsed.
#[derive(Clone, Debug)]
pub struct Secret {
    /// Entra tenant id (not secret, but only known from here).
    pub tenant_id: String,
    /// App registration client id.
    pub client_id: String,
    /// Client secret or certificate.
    pub credential: ClientCredential,
    /// Devo certificates.
    pub devo: DevoCredentials,
    /// `devo_query_token`: reads back from Devo's Query API (`audit`); optional. A tenant
    /// whose secret borrows `SECRET_ID`'s Devo material borrows its token too, when it has
    /// none of its own (the same Devo domain).
    pub devo_query_token: Option<QueryToken>,
}

#[derive(Deserialize)]
struct Document {
    tenant_id: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_certificate_pem: Option<String>,
    client_private_key_pem: Option<String>,
    devo_cert_pem: Option<String>,
    devo_key_pem: Option<String>,
    devo_chain_pem: Option<String>,
    devo_query_token: Option<String>,
}

/// A secret's Microsoft credentials, and its Devo material when it has any: a tenant's secret
/// may leave the Devo material to `SECRET_ID` (one Devo domain for every tenant).
#[derive(Clone, Debug)]
pub struct Partial {
    secret_id: String,
    tenant_id: String,
    client_id: String,
    credential: ClientCredential,
    devo: Option<DevoCredentials>,
    query_token: Option<QueryToken>,
}

fn document(secret_id: &str, text: &str) -> Result<Document, SecretError> {
    serde_json::from_str(text).map_err(|e| SecretError::Malformed {
        secret_id: secret_id.to_owned(),
        // serde_json's messages name the line/column and the expected kind, never the content
        // of a string value, except for "unknown variant"/"invalid type" which are not used here.
        problem: format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        ),
    })
}

fn need(
    secret_id: &str,
    value: Option<String>,
    key: &'static str,
    hint: &'static str,
) -> Result<String, SecretError> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| SecretError::MissingKey {
            secret_id: secret_id.to_owned(),
            key,
            hint,
        })
}

const DEVO_CERT_HINT: &str =
    "the domain's X.509 certificate from Devo (Administration → Credentials → X.509)";

impl DevoCredentials {
    /// The Devo material of a secret that must have it (`SECRET_ID`'s, for a tenant whose own
    /// secret has none); its Microsoft keys, if any, are not read.
    pub fn parse(secret_id: &str, text: &str) -> Result<DevoCredentials, SecretError> {
        let doc = document(secret_id, text)?;
        devo_of(
            secret_id,
            doc.devo_cert_pem,
            doc.devo_key_pem,
            doc.devo_chain_pem,
        )?
        .ok_or_else(|| SecretError::MissingKey {
            secret_id: secret_id.to_owned(),
            key: "devo_cert_pem",
            hint: DEVO_CERT_HINT,
        })
    }
}

/// The `devo_query_token` of a secret's document, if it has a non-empty one.
pub fn query_token_of(secret_id: &str, text: &str) -> Result<Option<QueryToken>, SecretError> {
    Ok(token(document(secret_id, text)?.devo_query_token))
}

fn token(value: Option<String>) -> Option<QueryToken> {
    value
        .filter(|v| !v.trim().is_empty())
        .map(|v| QueryToken::new(&v))
}

/// The three Devo keys: all absent is `None`; some present means all are needed.
fn devo_of(
    secret_id: &str,
    cert: Option<String>,
    key: Option<String>,
    chain: Option<String>,
) -> Result<Option<DevoCredentials>, SecretError> {
    let given = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.trim().is_empty());
    if !given(&cert) && !given(&key) && !given(&chain) {
        return Ok(None);
    }
    Ok(Some(DevoCredentials {
        cert_pem: need(secret_id, cert, "devo_cert_pem", DEVO_CERT_HINT)?,
        key_pem: need(
            secret_id,
            key,
            "devo_key_pem",
            "the private key of the domain's X.509 certificate",
        )?,
        chain_pem: need(
            secret_id,
            chain,
            "devo_chain_pem",
            "the CA chain that verifies the Devo relay (chain.crt)",
        )?,
    }))
}

impl Partial {
    /// Parses the JSON document stored in Secrets Manager; the Devo keys may be absent.
    pub fn parse(secret_id: &str, text: &str) -> Result<Partial, SecretError> {
        let doc = document(secret_id, text)?;
        let credential = match (
            doc.client_secret,
            doc.client_certificate_pem,
            doc.client_private_key_pem,
        ) {
            (_, Some(cert), Some(key)) if !cert.trim().is_empty() && !key.trim().is_empty() => {
                ClientCredential::Certificate {
                    certificate_pem: cert,
                    private_key_pem: key,
                }
            }
            (Some(secret), _, _) if !secret.trim().is_empty() => ClientCredential::Secret(secret),
            _ => {
                return Err(SecretError::MissingKey {
                    secret_id: secret_id.to_owned(),
                    key: "client_secret",
                    hint: "give either client_secret or both client_certificate_pem and client_private_key_pem",
                });
            }
        };
        Ok(Partial {
            secret_id: secret_id.to_owned(),
            tenant_id: need(
                secret_id,
                doc.tenant_id,
                "tenant_id",
                "the Entra ID (Azure AD) tenant id of the Microsoft 365 organization",
            )?,
            client_id: need(
                secret_id,
                doc.client_id,
                "client_id",
                "the application (client) id of the app registration",
            )?,
            credential,
            devo: devo_of(
                secret_id,
                doc.devo_cert_pem,
                doc.devo_key_pem,
                doc.devo_chain_pem,
            )?,
            query_token: token(doc.devo_query_token),
        })
    }

    /// Whether the secret has its own Devo material.
    pub fn has_devo(&self) -> bool {
        self.devo.is_some()
    }

    /// The whole secret: its own Devo material, else `fallback` (`SECRET_ID`'s).
    pub fn complete(self, fallback: Option<DevoCredentials>) -> Result<Secret, SecretError> {
        let devo = self
            .devo
            .or(fallback)
            .ok_or_else(|| SecretError::MissingKey {
                secret_id: self.secret_id.clone(),
                key: "devo_cert_pem",
                hint: DEVO_CERT_HINT,
            })?;
        Ok(Secret {
            tenant_id: self.tenant_id,
            client_id: self.client_id,
            credential: self.credential,
            devo,
            devo_query_token: self.query_token,
        })
    }
}

impl Secret {
    /// Parses the JSON document stored in Secrets Manager: Microsoft credentials and Devo
    /// material.
    pub fn parse(secret_id: &str, text: &str) -> Result<Secret, SecretError> {
        Partial::parse(secret_id, text)?.complete(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"{"tenant_id":"t","client_id":"c","client_secret":"SUPERSECRET",
        "devo_cert_pem":"CERTBODY","devo_key_pem":"KEYBODY","devo_chain_pem":"CHAINBODY",
        "devo_query_token":"QUERYTOKEN"}"#;

    #[test]
    fn parses_client_secret_form_and_debug_is_redacted() {
        let s = Secret::parse("id", FULL).unwrap();
        assert_eq!(s.tenant_id, "t");
        let debug = format!("{s:?}");
        for secret in [
            "SUPERSECRET",
            "CERTBODY",
            "KEYBODY",
            "CHAINBODY",
            "QUERYTOKEN",
        ] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(matches!(s.credential, ClientCredential::Secret(ref v) if v == "SUPERSECRET"));
        assert_eq!(s.devo_query_token, Some(QueryToken::new("QUERYTOKEN")));
        let without = FULL.replace(
            r#""devo_query_token":"QUERYTOKEN""#,
            r#""devo_query_token":" ""#,
        );
        assert_eq!(
            Secret::parse("id", &without).unwrap().devo_query_token,
            None
        );
    }

    #[test]
    fn certificate_form_is_preferred_when_complete() {
        let doc = FULL.replace(
            r#""client_secret":"SUPERSECRET","#,
            r#""client_certificate_pem":"C","client_private_key_pem":"K","#,
        );
        let s = Secret::parse("id", &doc).unwrap();
        assert!(matches!(s.credential, ClientCredential::Certificate { .. }));
    }

    #[test]
    fn missing_keys_are_named_without_values() {
        let doc = FULL.replace(r#""client_secret":"SUPERSECRET","#, "");
        let err = Secret::parse("id", &doc).unwrap_err().to_string();
        assert!(
            err.contains("client_certificate_pem and client_private_key_pem"),
            "{err}"
        );
        let doc = FULL.replace(r#""devo_chain_pem":"CHAINBODY""#, r#""devo_chain_pem":"""#);
        let err = Secret::parse("id", &doc).unwrap_err().to_string();
        assert!(err.contains("devo_chain_pem"), "{err}");
    }

    #[test]
    fn a_tenant_secret_without_devo_material_takes_the_shared_one() {
        let tenant = r#"{"tenant_id":"t","client_id":"c","client_secret":"x"}"#;
        let partial = Partial::parse("tenant", tenant).unwrap();
        assert!(!partial.has_devo());
        let err = partial.clone().complete(None).unwrap_err().to_string();
        assert!(
            err.contains("secret tenant lacks \"devo_cert_pem\""),
            "{err}"
        );
        let shared = DevoCredentials::parse(
            "shared",
            r#"{"devo_cert_pem":"C","devo_key_pem":"K","devo_chain_pem":"H"}"#,
        )
        .unwrap();
        let s = partial.complete(Some(shared)).unwrap();
        assert_eq!((s.tenant_id.as_str(), s.devo.cert_pem.as_str()), ("t", "C"));
        // Its own material wins.
        let own = Partial::parse("tenant", FULL).unwrap();
        let fallback = DevoCredentials::parse(
            "shared",
            r#"{"devo_cert_pem":"C","devo_key_pem":"K","devo_chain_pem":"H"}"#,
        )
        .unwrap();
        assert_eq!(
            own.complete(Some(fallback)).unwrap().devo.cert_pem,
            "CERTBODY"
        );
        // Part of the material is a mistake, not a fallback.
        let half = r#"{"tenant_id":"t","client_id":"c","client_secret":"x","devo_cert_pem":"C"}"#;
        let err = Partial::parse("tenant", half).unwrap_err().to_string();
        assert!(err.contains("devo_key_pem"), "{err}");
        let err = DevoCredentials::parse("shared", tenant)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("secret shared lacks \"devo_cert_pem\""),
            "{err}"
        );
    }

    #[test]
    fn malformed_json_error_shows_no_content() {
        let err = Secret::parse("id", r#"{"client_secret": "SUPERSECRET"#)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("SUPERSECRET"), "{err}");
        assert!(err.contains("line 1"), "{err}");
    }
}
