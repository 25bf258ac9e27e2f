//! The ledger under the claimed lease: the fresh pass writes a part before it commits a window;
//! the reconciliation pass reads the parts of its window, and drops the parts it covered in the
//! same write that commits it.

use chrono::{DateTime, Utc};

use crate::claim::Claimed;
use crate::events::Event;
use crate::events::ledger::LedgerMissing;
use crate::ledger::{self, Fingerprint, LedgerIndex, LedgerPart};
use crate::state::{StateError, StateStore};
use crate::transfer::collect::Delivered;
use crate::window::Window;

impl<S: StateStore> Claimed<'_, S> {
    /// Writes what the fresh pass delivered of `window` as a ledger part, for the part of the
    /// window younger than `young_from` when it was pulled (older spans need no second look).
    pub async fn remember(
        &mut self,
        window: &Window,
        young_from: DateTime<Utc>,
        delivered: Vec<Delivered>,
    ) -> Result<(), StateError> {
        let start = window.start.max(young_from);
        let fingerprints: Vec<Fingerprint> = delivered
            .into_iter()
            .filter(|(_, received)| *received >= start)
            .map(|(f, _)| f)
            .collect();
        if fingerprints.is_empty() || start >= window.end {
            return Ok(());
        }
        let n = self
            .checkpoint
            .ledger
            .iter()
            .filter(|p| p.start == start && p.end == window.end)
            .count();
        let part = LedgerPart {
            start,
            end: window.end,
            n: u32::try_from(n).unwrap_or(u32::MAX),
            records: fingerprints.len() as u64,
        };
        ledger::store::write(self.store, &self.key, &part, fingerprints).await?;
        self.checkpoint.ledger.push(part);
        Ok(())
    }

    /// The ledger of `window`, for the reconciliation pass.
    /// A part that cannot be used is logged (`ledger_missing`) and its span sent again.
    pub async fn ledger_for(&self, window: &Window) -> LedgerIndex {
        let parts = &self.checkpoint.ledger;
        let (index, unusable) =
            ledger::store::load(self.store, &self.key, parts, window.start, window.end).await;
        for u in &unusable {
            LedgerMissing {
                key: &u.key,
                start: u.start,
                end: u.end,
                reason: u.reason,
                detail: &u.detail,
            }
            .emit();
        }
        index
    }

    /// Takes the parts the reconciliation pass covered up to `end` out of the checkpoint (the
    /// next write commits that); their objects are deleted after it with [`Claimed::forget`].
    pub fn take_covered(&mut self, end: DateTime<Utc>) -> Vec<LedgerPart> {
        let covered = ledger::plan::covered(&self.checkpoint.ledger, end);
        self.checkpoint.ledger.retain(|p| p.end > end);
        covered
    }

    /// Deletes the objects of parts already taken out of the checkpoint.
    pub async fn forget(&self, parts: &[LedgerPart]) {
        ledger::store::delete(self.store, &self.key, parts).await;
    }
}
