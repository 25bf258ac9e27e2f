//! The failures the Graph stand-in can be told to produce: one-shot [`Fault`]s queued per
//! tenant, and the persistent nextLink faults Graph is known to have.
//!
//! Exists so the product's retry, restart and repair paths are exercised by the same server
//! that serves the data, per tenant, exactly when a test wants them.

use std::time::Duration;

use hyper::header::HeaderValue;

use super::respond::{Resp, graph_error, raw_response};

/// A fault to inject; each one applies to exactly one upcoming request of its target (of the
/// tenant it was injected for: token requests to that tenant's path, messageTraces and report
/// requests with a token issued for it).
#[derive(Clone, Debug)]
pub enum Fault {
    /// next messageTraces request answers with this status and raw body, with an optional
    /// Retry-After header (seconds)
    TraceStatus {
        /// HTTP status.
        status: u16,
        /// Raw body (sent as application/json).
        body: String,
        /// Retry-After header value in seconds.
        retry_after: Option<u64>,
    },
    /// next token request answers with this status and body
    TokenStatus {
        /// HTTP status.
        status: u16,
        /// Raw body (sent as application/json).
        body: String,
    },
    /// next messageTraces page is cut in the middle of its JSON body (status 200): the headers
    /// announce the full Content-Length, half of the body is sent, then the connection is closed
    TruncatedPage,
    /// next messageTraces request sleeps this long before answering normally
    Delay(Duration),
    /// the nextLink (skiptoken) of the current paging sequence stops working: the next request
    /// that carries a $skiptoken gets 400 with a Graph error body (code "BadRequest"), and every
    /// skiptoken issued before it stays invalid
    ExpireSkipToken,
}

impl Fault {
    /// Whether it applies to a message trace or report request (not to a token request).
    pub(super) fn targets_trace(&self) -> bool {
        !matches!(self, Fault::TokenStatus { .. })
    }
}

/// The persistent nextLink faults of one tenant (switches, not one-shot).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct NextLinkFaults {
    /// Every request that carries a `$skiptoken` answers 400 "Invalid starting recipient
    /// address" (elastic/integrations#18985); first pages keep working.
    pub refuse: bool,
    /// Issued skip tokens have their dates, address and id wrapped in extra literal quotes
    /// (elastic/integrations#18134).
    pub double_encode: bool,
}

/// The message of the refused-nextLink fault, as Graph returns it.
pub const INVALID_STARTING_RECIPIENT: &str =
    "|System.ArgumentException|Invalid starting recipient address";

/// The answer to a nextLink while [`NextLinkFaults::refuse`] is on.
pub(super) fn refused_next_link(crid: &str) -> Resp {
    graph_error(400, "BadRequest", INVALID_STARTING_RECIPIENT, crid)
}

/// The answer of a [`Fault::TraceStatus`]: the status, the raw body and `Retry-After`.
pub(super) fn status_fault(status: u16, body: String, retry_after: Option<u64>) -> Resp {
    let mut resp = raw_response(status, body, "application/json; charset=utf-8");
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert("retry-after", HeaderValue::from(secs));
    }
    resp
}
