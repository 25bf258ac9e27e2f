//! Why reading back from Devo failed, in words that name what to change: the secret field
//! `devo_query_token`, `DEVO_QUERY_URL`, or the table's access. Never carries the token.

use thiserror::Error;

/// A failure of Devo's Query API, or of what it needs.
#[derive(Debug, Error)]
pub enum QueryError {
    /// No Query API is configured.
    #[error(
        "DEVO_QUERY_URL is not set: set it to the Query API of your Devo domain's region (us, eu, ca, es or apac) or its base URL, e.g. https://apiv2-us.devo.com/search"
    )]
    NotConfigured,
    /// The secret has no Query API token.
    #[error(
        "secret {secret_id} has no \"devo_query_token\": add a Devo authentication token allowed to query the table {table} (Administration → Credentials → Authentication tokens, \"Query data using REST API\")"
    )]
    NoToken {
        /// The secret read (the tenant's, and `SECRET_ID` when it borrows its Devo material).
        secret_id: String,
        /// The table the token must be allowed to read.
        table: String,
    },
    /// 401: the token is not accepted.
    #[error(
        "Devo's Query API at {origin} refused the token (HTTP 401{msg}): check that \"devo_query_token\" in secret {secret_id} is a current Query API token of your Devo domain, and that DEVO_QUERY_URL is your domain's region"
    )]
    Unauthorized {
        /// `scheme://host:port` of `DEVO_QUERY_URL`.
        origin: String,
        /// The secret holding the token.
        secret_id: String,
        /// `: <Devo's message>`, or empty.
        msg: String,
    },
    /// 403: the token may not read the table.
    #[error(
        "Devo's Query API at {origin} refused access to table {table} (HTTP 403{msg}): the token \"devo_query_token\" in secret {secret_id} must be allowed to query {table} (DEVO_TAG), and the table must exist in the domain"
    )]
    Forbidden {
        /// `scheme://host:port`.
        origin: String,
        /// The table (`DEVO_TAG`, or the tenant's tag).
        table: String,
        /// The secret holding the token.
        secret_id: String,
        /// `: <Devo's message>`, e.g. `Access not allowed for table '…'`.
        msg: String,
    },
    /// 429 or 5xx until the retries or the time ran out.
    #[error(
        "Devo's Query API at {origin} kept failing ({what}): HTTP {status}{msg}; the audit stopped and can be run again{hint}"
    )]
    Unavailable {
        /// `scheme://host:port`.
        origin: String,
        /// The query, e.g. "line counts of 2026-11-24T10:00Z..2026-11-24T12:00Z".
        what: String,
        /// The last status.
        status: u16,
        /// `: <Devo's message>`, or empty.
        msg: String,
        /// What to do about it (429: other queries of the domain share its limit).
        hint: &'static str,
    },
    /// Another answer that is not a result: a 4xx, or a 200 whose `status` is not 0.
    #[error(
        "Devo's Query API at {origin} refused the query ({what}): HTTP {status}, Devo status {devo_status}{msg} (check DEVO_TAG and that the table has the fields MessageTraceId, RecipientAddress and Status)"
    )]
    Refused {
        /// `scheme://host:port`.
        origin: String,
        /// The query.
        what: String,
        /// HTTP status.
        status: u16,
        /// The `status` of Devo's body (0 is success), or `-` without one.
        devo_status: String,
        /// `: <Devo's message>`, or empty.
        msg: String,
    },
    /// The answer is not the Query API's JSON.
    #[error(
        "the answer of {origin} to {what} is not Devo's Query API JSON ({problem}): check that DEVO_QUERY_URL is the Query API's base URL, e.g. https://apiv2-us.devo.com/search"
    )]
    Malformed {
        /// `scheme://host:port`.
        origin: String,
        /// The query.
        what: String,
        /// What was wrong, without the content.
        problem: String,
    },
    /// No answer: connection, TLS or timeout.
    #[error(
        "could not reach Devo's Query API at {origin} ({what}): {detail} (check DEVO_QUERY_URL and the network path to it)"
    )]
    Transport {
        /// `scheme://host:port`.
        origin: String,
        /// The query.
        what: String,
        /// The cause.
        detail: String,
    },
    /// A redirect away from `DEVO_QUERY_URL`'s origin.
    #[error(
        "Devo's Query API at {origin} redirected {what} to {target}, outside DEVO_QUERY_URL: the token is not sent there (set DEVO_QUERY_URL to the address that answers)"
    )]
    OffOrigin {
        /// `scheme://host:port` of `DEVO_QUERY_URL`.
        origin: String,
        /// The query.
        what: String,
        /// Where the redirect pointed (`scheme://host:port`).
        target: String,
    },
    /// The time budget ran out before the query was answered.
    #[error("out of time for {what} at Devo's Query API; the last failure: {last}")]
    OutOfTime {
        /// The query.
        what: String,
        /// The last failure, if any.
        last: String,
    },
}

impl QueryError {
    /// The stable `errorType`: the setting to fix, or `DevoQuery` for the Query API itself.
    pub fn error_type(&self) -> &'static str {
        match self {
            QueryError::NotConfigured => "Config",
            QueryError::NoToken { .. } => "Secret",
            _ => "DevoQuery",
        }
    }
}

/// `: <Devo's message>` (at most 300 characters, on one line), or empty.
pub(crate) fn devo_msg(msg: Option<&str>) -> String {
    match msg.map(str::trim).filter(|m| !m.is_empty()) {
        None => String::new(),
        Some(m) => {
            let one_line: String = m
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .take(300)
                .collect();
            format!(": {one_line}")
        }
    }
}
