//! Step 2 of a tick: the Microsoft credentials and the Devo X.509 material from Secrets Manager.

use std::fmt;

use serde::Deserialize;
use thiserror::Error;

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
}

impl Secret {
    /// Parses the JSON document stored in Secrets Manager.
    pub fn parse(secret_id: &str, text: &str) -> Result<Secret, SecretError> {
        let doc: Document = serde_json::from_str(text).map_err(|e| SecretError::Malformed {
            secret_id: secret_id.to_owned(),
            // serde_json's messages name the line/column and the expected kind, never the content
            // of a string value, except for "unknown variant"/"invalid type" which are not used here.
            problem: format!(
                "{:?} error at line {} column {}",
                e.classify(),
                e.line(),
                e.column()
            ),
        })?;
        let need = |value: Option<String>, key: &'static str, hint: &'static str| {
            value
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| SecretError::MissingKey {
                    secret_id: secret_id.to_owned(),
                    key,
                    hint,
                })
        };
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
        Ok(Secret {
            tenant_id: need(
                doc.tenant_id,
                "tenant_id",
                "the Entra ID (Azure AD) tenant id of the Microsoft 365 organization",
            )?,
            client_id: need(
                doc.client_id,
                "client_id",
                "the application (client) id of the app registration",
            )?,
            credential,
            devo: DevoCredentials {
                cert_pem: need(
                    doc.devo_cert_pem,
                    "devo_cert_pem",
                    "the domain's X.509 certificate from Devo (Administration → Credentials → X.509)",
                )?,
                key_pem: need(
                    doc.devo_key_pem,
                    "devo_key_pem",
                    "the private key of the domain's X.509 certificate",
                )?,
                chain_pem: need(
                    doc.devo_chain_pem,
                    "devo_chain_pem",
                    "the CA chain that verifies the Devo relay (chain.crt)",
                )?,
            },
        })
    }
}

/// Reads the secret from Secrets Manager.
#[derive(Clone, Debug)]
pub struct SecretSource {
    client: aws_sdk_secretsmanager::Client,
}

impl SecretSource {
    /// Wraps a client built once at cold start.
    pub fn new(client: aws_sdk_secretsmanager::Client) -> SecretSource {
        SecretSource { client }
    }

    /// Fetches and parses the secret.
    pub async fn load(&self, secret_id: &str) -> Result<Secret, SecretError> {
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
        let text = out.secret_string().ok_or_else(|| SecretError::NotText {
            secret_id: secret_id.to_owned(),
        })?;
        Secret::parse(secret_id, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"{"tenant_id":"t","client_id":"c","client_secret":"SUPERSECRET",
        "devo_cert_pem":"CERTBODY","devo_key_pem":"KEYBODY","devo_chain_pem":"CHAINBODY"}"#;

    #[test]
    fn parses_client_secret_form_and_debug_is_redacted() {
        let s = Secret::parse("id", FULL).unwrap();
        assert_eq!(s.tenant_id, "t");
        let debug = format!("{s:?}");
        for secret in ["SUPERSECRET", "CERTBODY", "KEYBODY", "CHAINBODY"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(matches!(s.credential, ClientCredential::Secret(ref v) if v == "SUPERSECRET"));
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
    fn malformed_json_error_shows_no_content() {
        let err = Secret::parse("id", r#"{"client_secret": "SUPERSECRET"#)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("SUPERSECRET"), "{err}");
        assert!(err.contains("line 1"), "{err}");
    }
}
