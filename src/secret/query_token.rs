//! The Devo Query API token (`devo_query_token`): it reads the tenant's data back from Devo, so
//! it is a credential like the others — it prints redacted and is handed out only to build the
//! `Authorization` header of a request to `DEVO_QUERY_URL`.

use std::fmt;

/// A Devo authentication token for the Query API ("Query data using REST API", restricted to
/// the table `DEVO_TAG`).
#[derive(Clone, PartialEq, Eq)]
pub struct QueryToken(String);

impl QueryToken {
    /// The token as stored in the secret (surrounding spaces and newlines dropped, as a
    /// paste leaves them).
    pub fn new(token: &str) -> QueryToken {
        QueryToken(token.trim().to_owned())
    }

    /// The `Authorization` header value; the only way to read the token.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

impl fmt::Debug for QueryToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueryToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted_and_the_header_is_bearer() {
        let t = QueryToken::new(" SECRETTOKEN\n");
        assert_eq!(format!("{t:?}"), "QueryToken(<redacted>)");
        assert_eq!(t.bearer(), "Bearer SECRETTOKEN");
    }
}
