//! Local stand-ins for development, tests, the demo and the benchmark of m365-trace-to-devo:
//! test certificates ([`pki`]), realistic message trace records ([`records`]), a Graph-like
//! server ([`graph`]), a Devo-relay-like mutual-TLS listener ([`devo`]), a one-shot Lambda
//! Runtime API ([`runtime_api`]) and a Lambda `Invoke` stand-in for the dispatcher ([`lambda`]).
//! Everything binds 127.0.0.1 only and stops when dropped.
#![warn(missing_docs)]

pub mod devo;
pub mod graph;
pub mod lambda;
pub mod pki;
pub mod records;
pub mod runtime_api;
mod util;
