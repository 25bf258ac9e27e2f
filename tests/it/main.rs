//! The integration tests: one binary, one module per area (one link instead of one per file).
//! They talk to moto (S3 + Secrets Manager, started by `scripts/test`; the harness reads
//! `MOTO_URL`), the devtools Graph-like server and the devtools mutual-TLS relay.
//!
//! One area: `cargo test --test it passes::`. The soaks are `#[ignore]`d so `cargo test` stays
//! quick; `scripts/test --soak` (and CI) runs them: `cargo test --test it soak -- --ignored`.

mod support;

mod apis;
mod audit;
mod backfill;
mod binary;
mod cli;
mod confirm;
mod cutover;
mod delivery;
mod details;
mod faults;
mod health;
mod next_links;
mod origin;
mod parsing_props;
mod passes;
mod query_api;
mod redaction;
mod relay;
mod second_look;
mod soak;
mod soak_passes;
mod state;
mod tenants;
mod tick;
