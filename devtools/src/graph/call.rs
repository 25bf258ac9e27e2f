//! [`Call`]: one request to the Graph stand-in as an endpoint sees it.
//!
//! Exists so the endpoints read the query, the bearer token and the shared state the same way,
//! and report the tenant a request was for back to the router.

use bytes::Bytes;
use hyper::Method;

use super::state::Shared;
use crate::util::parse_pairs;

/// One request, as the endpoints see it.
pub(super) struct Call<'a> {
    pub shared: &'a Shared,
    pub method: Method,
    /// The raw (still percent-encoded) query.
    pub raw_query: String,
    /// The `Authorization` header.
    pub auth: Option<String>,
    /// The `Prefer` header.
    pub prefer: Option<String>,
    /// The `client-request-id` header, or a new id.
    pub crid: String,
    /// The `Accept-Encoding` header.
    pub accept_encoding: Option<String>,
    pub body: Bytes,
    /// Set by the endpoint: the tenant (index) the request was for.
    pub tenant: Option<usize>,
}

impl Call<'_> {
    /// The decoded value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<String> {
        parse_pairs(&self.raw_query)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// Whether the answer's body may be gzip-compressed: the request accepts it and the server
    /// serves it.
    pub fn gzip(&self) -> bool {
        self.shared.lock().gzip && super::gzip::accepts_gzip(self.accept_encoding.as_deref())
    }

    /// The bearer token, if the request carries a non-empty one.
    pub fn bearer(&self) -> Option<&str> {
        self.auth
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }
}
