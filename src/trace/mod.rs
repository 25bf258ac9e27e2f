//! Step 5 of a tick: Microsoft message trace records, from the token to the pages.

pub mod auth;
pub mod budget_gate;
pub mod detail;
pub mod error;
pub mod fetch;
pub mod graph;
pub mod http;
pub mod origin;
pub mod page;
pub mod record;
pub mod reporting;
pub mod request_budget;
pub mod row;
pub mod skiptoken;
pub mod source;

pub use error::TraceError;
