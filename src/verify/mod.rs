//! Reading back from Devo: what its Query API holds for a tenant, to compare with what
//! Microsoft has (`audit`) and re-send what is missing.
//!
//! `linq.rs` builds the queries (pure), `answer.rs` reads Devo's answers (pure), `client.rs`
//! sends them (token, origin, pages, retries) and `error.rs` says what failed and what to fix.
//! `hours.rs` chooses the hours an audit looks at and `compare.rs` compares one (pure);
//! `listing.rs` lists Microsoft's records of an hour; `audit.rs` compares hour after hour,
//! `repair.rs` re-sends what one hour lacks, `run.rs` is the command line's audit and
//! `failure.rs` why an audit stopped. `cutover/` takes a tenant over from an earlier collector
//! without a gap or a repeat.

pub mod answer;
pub mod audit;
pub mod client;
pub mod compare;
pub mod cutover;
pub mod error;
pub mod failure;
pub mod hours;
pub mod linq;
pub mod listing;
pub mod repair;
pub mod run;
pub mod services;

pub use client::{HourKeys, QueryClient};
pub use error::QueryError;
pub use linq::Target;
