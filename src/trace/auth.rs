//! Access tokens by OAuth 2.0 client credentials, cached for the tick.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use crate::secret::{ClientCredential, Secret};
use crate::trace::error::{TraceError, token_hint};
use crate::trace::http::{Budget, describe_transport};
use crate::trace::origin::Origin;

/// `client_assertion_type` of a signed JWT client assertion (RFC 7523).
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long a client assertion is valid: Entra ID only needs it for the one token request.
const ASSERTION_LIFETIME_SECONDS: i64 = 600;

/// Refresh a token this long before it expires.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(120);

/// A bearer token; prints redacted.
#[derive(Clone)]
pub struct AccessToken(String);

impl AccessToken {
    /// The value for the `Authorization` header.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// Gets and caches tokens for one tenant, app and scope.
pub struct TokenSource {
    http: reqwest::Client,
    token_url: String,
    scope: String,
    tenant: String,
    client_id: String,
    credential: ClientCredential,
    cached: Option<(AccessToken, Instant)>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("token_url", &self.token_url)
            .field("scope", &self.scope)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The claims of a client assertion (Microsoft identity platform "certificate credentials").
#[derive(serde::Serialize)]
struct AssertionClaims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: String,
    nbf: i64,
    iat: i64,
    exp: i64,
}

/// Signs a client assertion for `audience` (the token endpoint URL) with the certificate's key:
/// PS256, `x5t#S256` = base64url SHA-256 of the certificate's DER, `iss` = `sub` = the client id,
/// a random `jti`, valid from `now` for ten minutes. The error never contains key material.
pub fn client_assertion(
    certificate_pem: &str,
    private_key_pem: &str,
    audience: &str,
    client_id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, String> {
    client_assertion_at(
        certificate_pem,
        private_key_pem,
        audience,
        client_id,
        now.timestamp(),
    )
}

/// [`client_assertion`] issued at `now` (seconds since the epoch), for tests of its validity.
pub fn client_assertion_at(
    certificate_pem: &str,
    private_key_pem: &str,
    audience: &str,
    client_id: &str,
    now: i64,
) -> Result<String, String> {
    use base64::Engine;
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    let certificate = CertificateDer::pem_slice_iter(certificate_pem.as_bytes())
        .next()
        .ok_or_else(|| "client_certificate_pem holds no PEM CERTIFICATE block".to_owned())?
        .map_err(|e| format!("client_certificate_pem is not valid PEM: {e}"))?;
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key_pem.as_bytes())
        .map_err(|e| format!("client_private_key_pem is not an RSA private key in PEM: {e}"))?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, certificate.as_ref());
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::PS256);
    header.x5t_s256 = Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest));
    let mut jti = [0u8; 16];
    aws_lc_rs::rand::fill(&mut jti).map_err(|_| "no random bytes for the jti claim".to_owned())?;
    let claims = AssertionClaims {
        aud: audience,
        iss: client_id,
        sub: client_id,
        jti: jti.iter().map(|b| format!("{b:02x}")).collect(),
        nbf: now,
        iat: now,
        exp: now + ASSERTION_LIFETIME_SECONDS,
    };
    jsonwebtoken::encode(&header, &claims, &key)
        .map_err(|e| format!("signing the client assertion failed: {e}"))
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: Option<u64>,
}

#[derive(Deserialize, Default)]
struct TokenFailure {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    error_codes: Vec<u64>,
}

impl TokenSource {
    /// A source for `scope` at `{login}/{tenant}/oauth2/v2.0/token`.
    pub fn new(http: reqwest::Client, login: &str, scope: String, secret: &Secret) -> TokenSource {
        TokenSource {
            http,
            token_url: format!("{login}/{}/oauth2/v2.0/token", secret.tenant_id),
            scope,
            tenant: secret.tenant_id.clone(),
            client_id: secret.client_id.clone(),
            credential: secret.credential.clone(),
            cached: None,
        }
    }

    /// A valid token, from the cache while it has more than two minutes to live.
    pub async fn token(&mut self, budget: &Budget) -> Result<AccessToken, TraceError> {
        if let Some((token, expires)) = &self.cached
            && Instant::now() + REFRESH_BEFORE_EXPIRY < *expires
        {
            return Ok(token.clone());
        }
        let mut backoff = budget.backoff();
        loop {
            match self.request(budget).await {
                Ok((token, lifetime)) => {
                    self.cached = Some((token.clone(), Instant::now() + lifetime));
                    return Ok(token);
                }
                Err(e) if e.is_retryable() => budget.wait_to_retry(&mut backoff, None, e).await?,
                Err(e) => return Err(e),
            }
        }
    }

    /// Forgets the cached token (after the API said it was refused).
    pub fn invalidate(&mut self) {
        self.cached = None;
    }

    /// The form of a token request: the grant, and the client secret or a fresh assertion.
    fn form(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<(&'static str, String)>, TraceError> {
        let mut form = vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", self.client_id.clone()),
            ("scope", self.scope.clone()),
        ];
        match &self.credential {
            ClientCredential::Secret(secret) => form.push(("client_secret", secret.clone())),
            ClientCredential::Certificate {
                certificate_pem,
                private_key_pem,
            } => {
                let assertion = client_assertion(
                    certificate_pem,
                    private_key_pem,
                    &self.token_url,
                    &self.client_id,
                    now,
                )
                .map_err(|problem| TraceError::Credential {
                    tenant: self.tenant.clone(),
                    problem,
                })?;
                form.push(("client_assertion_type", JWT_BEARER.to_owned()));
                form.push(("client_assertion", assertion));
            }
        }
        Ok(form)
    }

    async fn request(&self, budget: &Budget) -> Result<(AccessToken, Duration), TraceError> {
        let what = || "token request".to_owned();
        let login = Origin::of(&self.token_url, "LOGIN_URL");
        let off_origin = |via, target| TraceError::OffOrigin {
            api: "login",
            what: what(),
            via,
            target,
            allowed: login.describe(),
            var: login.var(),
        };
        let url = login
            .admit(&self.token_url)
            .map_err(|target| off_origin("token URL", target))?;
        let form = self.form(budget.now())?;
        let response = self
            .http
            .post(url.clone())
            .form(&form)
            .timeout(budget.request_timeout())
            .send()
            .await
            .map_err(|e| describe_transport("login", what(), &e))?;
        let status = response.status();
        // The redirect policy hands back only a redirect that leaves the login origin.
        if status.is_redirection()
            && let Some(target) = login.redirect_target(&url, response.headers())
        {
            return Err(off_origin("redirect", target));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| describe_transport("login", what(), &e))?;
        if status.as_u16() == 200 {
            let answer: TokenAnswer =
                serde_json::from_slice(&body).map_err(|e| TraceError::Malformed {
                    api: "login",
                    what: what(),
                    problem: e.to_string(),
                })?;
            let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3599));
            return Ok((AccessToken(answer.access_token), lifetime));
        }
        Err(self.refusal(status.as_u16(), &body))
    }

    /// The token endpoint's refusal: its OAuth error, AADSTS code, first sentence and hint.
    fn refusal(&self, status: u16, body: &[u8]) -> TraceError {
        let failure: TokenFailure = serde_json::from_slice(body).unwrap_or_default();
        let code = failure
            .error_codes
            .first()
            .map(|c| format!("AADSTS{c}"))
            .or_else(|| {
                failure
                    .error_description
                    .split(':')
                    .next()
                    .filter(|p| p.starts_with("AADSTS"))
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "-".to_owned());
        // The description is "AADSTSn: sentence. Trace ID: … Correlation ID: …": keep the sentence.
        let description = failure
            .error_description
            .split_once(": ")
            .map_or(failure.error_description.as_str(), |(_, rest)| rest)
            .split("\r\n")
            .next()
            .unwrap_or_default()
            .split(" Trace ID:")
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        TraceError::Token {
            tenant: self.tenant.clone(),
            status,
            error: if failure.error.is_empty() {
                "-".into()
            } else {
                failure.error
            },
            hint: token_hint(&code),
            code,
            description,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_certificate_or_key_is_named_without_its_content() {
        let err = client_assertion(
            "not a pem",
            "SECRETKEYBODY",
            "https://l/t",
            "c",
            chrono::Utc::now(),
        )
        .unwrap_err();
        assert!(err.contains("client_certificate_pem"), "{err}");
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let err = client_assertion(
            cert,
            "SECRETKEYBODY",
            "https://l/t",
            "c",
            chrono::Utc::now(),
        )
        .unwrap_err();
        assert!(err.contains("client_private_key_pem"), "{err}");
        assert!(!err.contains("SECRETKEYBODY"), "{err}");
    }
}
