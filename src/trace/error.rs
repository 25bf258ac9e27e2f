//! What can go wrong talking to Microsoft, in words that say what to fix.

use thiserror::Error;

/// A failure of the token endpoint or the message trace API. Never carries a secret or token.
#[derive(Debug, Error)]
pub enum TraceError {
    /// The token endpoint refused the client credentials.
    #[error(
        "token request for tenant {tenant} failed: HTTP {status} {error} {code}: {description}{hint}"
    )]
    Token {
        /// Tenant id from the secret.
        tenant: String,
        /// HTTP status.
        status: u16,
        /// OAuth error, e.g. invalid_client.
        error: String,
        /// The AADSTS code, e.g. AADSTS7000215.
        code: String,
        /// First sentence of the error description.
        description: String,
        /// What to fix.
        hint: &'static str,
    },
    /// The client certificate or its key in the secret cannot sign a client assertion.
    #[error(
        "client certificate for tenant {tenant} cannot be used: {problem} (put the app registration's certificate as client_certificate_pem and its RSA private key, PKCS#8 or PKCS#1 PEM, as client_private_key_pem)"
    )]
    Credential {
        /// Tenant id from the secret.
        tenant: String,
        /// What is wrong, never the key material.
        problem: String,
    },
    /// The API answered with an error status.
    #[error("{api} {what} failed: HTTP {status} {code}: {message}{hint}")]
    Api {
        /// graph or reporting.
        api: &'static str,
        /// What was asked, e.g. "messageTraces 2026-11-20T00:00:00Z..2026-11-20T06:00:00Z".
        what: String,
        /// HTTP status.
        status: u16,
        /// The provider's error code.
        code: String,
        /// The provider's message.
        message: String,
        /// What to fix.
        hint: &'static str,
    },
    /// No answer: connection refused, reset, DNS, timeout.
    #[error("{api} {what}: no answer from {host}: {detail}")]
    Transport {
        /// graph, reporting or login.
        api: &'static str,
        /// What was asked.
        what: String,
        /// The host asked.
        host: String,
        /// The error chain.
        detail: String,
    },
    /// The answer was not the documented JSON.
    #[error("{api} {what}: the answer is not the documented JSON: {problem}")]
    Malformed {
        /// graph or reporting.
        api: &'static str,
        /// What was asked.
        what: String,
        /// What is wrong.
        problem: String,
    },
    /// A nextLink or a redirect pointed outside the origin the credential is for: it was not
    /// followed, and the token (or the token request's client credential) was not sent there.
    #[error(
        "{api} {what}: the {via} points to {target}, outside {allowed} (set by {var} / CLOUD): refused, {} not sent there",
        withheld(api)
    )]
    OffOrigin {
        /// graph, reporting or login.
        api: &'static str,
        /// What was asked.
        what: String,
        /// `nextLink` or `redirect`.
        via: &'static str,
        /// Where it pointed: `scheme://host:port`.
        target: String,
        /// The configured origin: `scheme://host:port`.
        allowed: String,
        /// The variable that configures the origin, e.g. GRAPH_URL.
        var: &'static str,
    },
    /// The time budget ran out while waiting to retry.
    #[error("{api} {what}: still failing ({last}) when the tick's time budget ran out")]
    OutOfTime {
        /// graph or reporting.
        api: &'static str,
        /// What was asked.
        what: String,
        /// The last failure.
        last: String,
    },
}

impl TraceError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            TraceError::Transport { .. } | TraceError::Malformed { .. } => true,
            TraceError::Api { status, .. } | TraceError::Token { status, .. } => {
                *status == 429 || *status == 408 || *status >= 500
            }
            TraceError::OutOfTime { .. }
            | TraceError::Credential { .. }
            | TraceError::OffOrigin { .. } => false,
        }
    }
}

/// What an off-origin link or redirect did not receive: the client credentials of a token
/// request, or an API's access token.
fn withheld(api: &str) -> &'static str {
    if api == "login" {
        "the client credentials were"
    } else {
        "the access token was"
    }
}

/// What to do about an API error status.
pub fn api_hint(status: u16, message: &str) -> &'static str {
    let lower = message.to_ascii_lowercase();
    match status {
        400 => {
            " (the query was refused: check the window bounds above; Graph serves 10 days per query and 90 days back)"
        }
        401 => {
            " (the access token was refused: check tenant_id and client_id in the secret, and the cloud setting CLOUD / GRAPH_URL)"
        }
        403 if lower.contains("service principal") || lower.contains("serviceprincipal") => {
            " (provision the message trace service principal in the tenant: New-MgServicePrincipal -AppId 8bd644d1-64a1-4d4b-ae52-2e0cbf64e373; it can take hours to take effect)"
        }
        403 => {
            " (the app lacks the application permission ExchangeMessageTrace.Read.All with admin consent, or the message trace service principal 8bd644d1-64a1-4d4b-ae52-2e0cbf64e373 is not provisioned)"
        }
        404 => " (check GRAPH_URL / CLOUD: the message trace endpoint was not found)",
        429 => {
            " (throttled: Graph allows 100 message trace requests per 5 minutes per tenant; lower REQUESTS_PER_SECOND or the schedule's rate)"
        }
        _ => "",
    }
}

/// What to do about an AADSTS code from the token endpoint.
pub fn token_hint(code: &str) -> &'static str {
    match code {
        "AADSTS7000215" => {
            " (the client_secret in the secret is wrong: copy the secret's Value, not its ID, from the app registration)"
        }
        "AADSTS7000222" => {
            " (the client secret has expired: create a new one in the app registration and update the secret)"
        }
        "AADSTS700016" => {
            " (no app with this client_id in the tenant: check client_id and tenant_id in the secret, and CLOUD)"
        }
        "AADSTS90002" | "AADSTS900023" => {
            " (the tenant_id in the secret is not a tenant of this cloud: check tenant_id and CLOUD)"
        }
        "AADSTS700027" => {
            " (the client assertion was refused: client_private_key_pem must be the key of client_certificate_pem, and that certificate must be uploaded to the app registration under Certificates & secrets)"
        }
        "AADSTS70011" | "AADSTS1002012" => " (the scope was refused: check GRAPH_URL / CLOUD)",
        "AADSTS50034" | "AADSTS53003" => " (sign-in blocked by the tenant's policy)",
        _ => "",
    }
}
