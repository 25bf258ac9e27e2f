//! What the fresh pass delivered, remembered for the reconciliation pass: per window part, the
//! sorted fingerprints (record key + status) of the lines the relay confirmed, in one S3 object
//! next to the checkpoint. See docs/design.md ("Passes").

pub mod fingerprint;
pub mod index;
pub mod part;
pub mod store;

pub use fingerprint::Fingerprint;
pub use index::{LedgerIndex, Verdict};
pub use part::LedgerPart;
