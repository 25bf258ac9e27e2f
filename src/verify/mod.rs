//! Reading back from Devo: what its Query API holds for a tenant, to compare with what
//! Microsoft has (`audit`) and re-send what is missing.
//!
//! `linq.rs` builds the queries (pure), `answer.rs` reads Devo's answers (pure), `client.rs`
//! sends them (token, origin, pages, retries) and `error.rs` says what failed and what to fix.

pub mod answer;
pub mod client;
pub mod error;
pub mod linq;

pub use client::{HourKeys, QueryClient};
pub use error::QueryError;
pub use linq::Target;
