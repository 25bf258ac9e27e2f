//! m365-trace-to-devo: Microsoft 365 message trace records to Devo, one scheduled tick at a time.
//!
//! The tick ([`tick::run`]) reads top to bottom as the seven steps of docs/design.md; pure logic
//! (window planning, record mapping, line framing, lease decisions) sits in its own modules.

pub mod app;
pub mod checkpoint;
pub(crate) mod clock;
pub mod config;
pub(crate) mod details;
pub mod devo;
pub mod error;
pub(crate) mod events;
pub mod health;
pub mod lambda;
pub mod ledger;
pub mod logging;
pub(crate) mod now;
pub mod ops;
pub mod secret;
pub mod state;
pub mod summary;
pub mod tenants;
pub mod tick;
pub mod trace;
pub mod transfer;
pub mod verify;
pub mod window;

/// An error and its sources on one line, for messages.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}
