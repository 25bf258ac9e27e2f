//! The ledger under the claimed lease: the fresh pass writes a part before it commits a window;
//! the reconciliation pass reads the parts of its window, and drops the parts it covered in the
//! same write that commits it.

use chrono::{DateTime, Utc};

use crate::checkpoint::Track;
use crate::checkpoint::second_look::{self, MAX_PART_RECORDS};
use crate::events::Event;
use crate::events::ledger::LedgerMissing;
use crate::ledger::{self, LedgerIndex, LedgerPart};
use crate::state::{StateError, StateStore};
use crate::tick::claim::Claimed;
use crate::transfer::Fingerprinted;
use crate::window::Window;

impl<S: StateStore> Claimed<'_, S> {
    /// Records what the fresh pass delivered of `window` for the second look: the part of the
    /// window younger than `young_from` when it was pulled becomes due (found empty or not;
    /// older spans need no second look), and its confirmed fingerprints are written as ledger
    /// parts of at most `MAX_PART_RECORDS` (500,000) each.
    pub async fn remember(
        &mut self,
        window: &Window,
        young_from: DateTime<Utc>,
        delivered: Vec<Fingerprinted>,
    ) -> Result<(), StateError> {
        let young = (window.start.max(young_from), window.end);
        if young.0 >= young.1 {
            return Ok(());
        }
        for (span, fingerprints) in second_look::cut(delivered, young, MAX_PART_RECORDS) {
            let n = self
                .checkpoint
                .ledger
                .iter()
                .filter(|p| p.start == span.0 && p.end == span.1)
                .count();
            let part = LedgerPart {
                start: span.0,
                end: span.1,
                n: u32::try_from(n).unwrap_or(u32::MAX),
                records: fingerprints.len() as u64,
            };
            ledger::store::write(self.store, &self.key, &part, fingerprints).await?;
            self.checkpoint.ledger.push(part);
        }
        self.checkpoint.position_mut(Track::Reconcile).owe(young);
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

    /// Takes the parts the reconciliation pass stands past (delivered, or dropped as a gap)
    /// out of the checkpoint; the next write commits that, and their objects are deleted after
    /// it. Whether any was taken.
    pub fn take_covered(&mut self) -> bool {
        let Some(end) = self.checkpoint.reconcile.as_ref().and_then(|r| r.end) else {
            return false;
        };
        let (covered, kept): (Vec<LedgerPart>, Vec<LedgerPart>) =
            std::mem::take(&mut self.checkpoint.ledger)
                .into_iter()
                .partition(|p| p.end <= end);
        self.checkpoint.ledger = kept;
        let taken = !covered.is_empty();
        self.covered.extend(covered);
        taken
    }

    /// Deletes the objects of the parts taken out of the checkpoint by a write that succeeded.
    pub(super) async fn forget_covered(&mut self) {
        let parts = std::mem::take(&mut self.covered);
        ledger::store::delete(self.store, &self.key, &parts).await;
    }
}
