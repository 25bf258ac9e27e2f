//! Steps 3 and 7 of a tick: the checkpoint, its ETag and the lease travel together. Claiming
//! writes the lease with a conditional PUT; every later write (a window committed, the release)
//! replaces exactly the version this tick wrote, so a failed precondition means another
//! invocation owns the state and this one stops.

mod ledger;

use chrono::{DateTime, Utc};

use crate::checkpoint::lease::{self as lease_rules, Lease, LeaseDecision};
use crate::checkpoint::{self, Checkpoint, Stored};
use crate::events::{Event, lease};
use crate::now::TimeSource;
use crate::state::{StateError, StateStore};
use crate::summary::LeaseReport;

/// The result of trying to claim the state.
#[derive(Debug)]
pub enum Claim<'s, S: StateStore> {
    /// The lease is ours.
    Claimed(Claimed<'s, S>),
    /// Another invocation holds or just took the state: deliver nothing.
    Refused {
        /// The checkpoint as found.
        checkpoint: Checkpoint,
        report: LeaseReport,
    },
}

/// Whether a write kept the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    /// Written; the lease is still ours.
    Kept,
    /// Another invocation wrote the checkpoint: stop, deliver nothing more.
    Lost,
}

/// The claimed checkpoint of one job: read, leased, written back as windows are delivered.
#[derive(Debug)]
pub struct Claimed<'s, S: StateStore> {
    store: &'s S,
    key: String,
    checkpoint: Checkpoint,
    etag: String,
    report: LeaseReport,
    /// Ledger parts taken out of the checkpoint, deleted once a write commits that.
    covered: Vec<crate::ledger::LedgerPart>,
    /// Stamps each write's `updated_at`.
    time: TimeSource,
}

impl<'s, S: StateStore> Claimed<'s, S> {
    /// Claims the checkpoint `found` at `key` for `owner` until `expires_at`, deciding on the
    /// lease as of `now`: creates it with `If-None-Match: *`, or replaces it with `If-Match` on
    /// the ETag that was read. Every write is stamped from `time`.
    pub async fn claim(
        store: &'s S,
        key: &str,
        found: Option<Stored>,
        owner: &str,
        (now, time): (DateTime<Utc>, &TimeSource),
        expires_at: DateTime<Utc>,
    ) -> Result<Claim<'s, S>, StateError> {
        let (mut checkpoint, found_etag) = match found {
            Some(stored) => (stored.checkpoint, Some(stored.etag)),
            None => (Checkpoint::empty(now), None),
        };
        let report = match lease_rules::decide(checkpoint.lease.as_ref(), owner, now) {
            LeaseDecision::HeldByOther { owner, until } => {
                lease::Held {
                    holder: &owner,
                    until,
                }
                .emit();
                let report = LeaseReport::HeldByOther { owner, until };
                return Ok(Claim::Refused { checkpoint, report });
            }
            LeaseDecision::Duplicate { until } => {
                lease::Duplicate { owner, until }.emit();
                let owner = owner.to_owned();
                let report = LeaseReport::Duplicate { owner, until };
                return Ok(Claim::Refused { checkpoint, report });
            }
            LeaseDecision::Claim => LeaseReport::Acquired {
                owner: owner.to_owned(),
                expires_at,
            },
            LeaseDecision::TakeOver {
                previous_owner,
                expired_at,
            } => {
                lease::TakenOver {
                    previous_owner: &previous_owner,
                    expired_at,
                }
                .emit();
                LeaseReport::TakenOver {
                    owner: owner.to_owned(),
                    expires_at,
                    previous_owner,
                }
            }
        };
        let mut claimed = checkpoint.clone();
        claimed.lease = Some(Lease {
            owner: owner.to_owned(),
            expires_at,
        });
        // The write's own instant, to the nanosecond: what tells a retried claim S3 had applied
        // from a concurrent delivery's claim with the same request id.
        claimed.updated_at = time.now();
        match checkpoint::write_leased(store, key, &claimed, found_etag.as_deref()).await {
            Ok(etag) => Ok(Claim::Claimed(Claimed {
                store,
                key: key.to_owned(),
                checkpoint: claimed,
                etag,
                report,
                covered: Vec::new(),
                time: time.clone(),
            })),
            Err(e) if e.is_conflict() => {
                lease::Lost { at: "claim" }.emit();
                checkpoint.lease = None;
                let report = LeaseReport::Lost { at: "claim" };
                Ok(Claim::Refused { checkpoint, report })
            }
            Err(e) => Err(e),
        }
    }

    /// The checkpoint as this tick holds it.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The checkpoint, to record what this tick changes before the next write.
    pub fn checkpoint_mut(&mut self) -> &mut Checkpoint {
        &mut self.checkpoint
    }

    /// The current wall time, from the tick's time source.
    pub fn now(&self) -> DateTime<Utc> {
        self.time.now()
    }

    /// How the lease was claimed (or lost).
    pub fn report(&self) -> &LeaseReport {
        &self.report
    }

    /// Writes the checkpoint over the version this tick wrote last. `at` names the step, for
    /// the log and the summary when the lease turns out lost.
    pub async fn save(&mut self, at: &'static str) -> Result<Saved, StateError> {
        self.checkpoint.updated_at = self.time.now();
        let etag = Some(self.etag.as_str());
        match checkpoint::write_leased(self.store, &self.key, &self.checkpoint, etag).await {
            Ok(etag) => {
                self.etag = etag;
                self.forget_covered().await;
                Ok(Saved::Kept)
            }
            Err(e) if e.is_conflict() => {
                lease::Lost { at }.emit();
                self.report = LeaseReport::Lost { at };
                Ok(Saved::Lost)
            }
            Err(e) => Err(e),
        }
    }

    /// Gives the lease back with the final checkpoint.
    pub async fn release(mut self) -> Result<LeaseReport, StateError> {
        if matches!(self.report, LeaseReport::Lost { .. }) {
            return Ok(self.report);
        }
        self.checkpoint.lease = None;
        self.save("release").await?;
        Ok(self.report)
    }

    /// Best effort after a failure: give the lease back so that the next tick need not wait
    /// for its expiry. The checkpoint keeps what was delivered.
    pub async fn abandon(mut self) {
        if matches!(self.report, LeaseReport::Lost { .. }) {
            return;
        }
        self.checkpoint.lease = None;
        if let Err(e) = self.save("release").await {
            lease::ReleaseFailed { error: &e }.emit();
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::checkpoint::Track;
    use crate::state::MemoryStore;
    use crate::transfer::Progress;
    use crate::window::Window;

    const KEY: &str = "dir/checkpoint.json";

    async fn claimed<'s>(store: &'s MemoryStore, owner: &str) -> Claim<'s, MemoryStore> {
        let found = checkpoint::load(store, KEY).await.unwrap();
        let now = Utc::now();
        Claimed::claim(
            store,
            KEY,
            found,
            owner,
            (now, &TimeSource::System),
            now + Duration::minutes(5),
        )
        .await
        .unwrap()
    }

    fn window(hours_ago: i64) -> Window {
        let start = Utc::now() - Duration::hours(hours_ago);
        Window {
            start,
            end: start + Duration::hours(1),
            resume: None,
        }
    }

    #[tokio::test]
    async fn a_claim_creates_the_checkpoint_with_the_lease_and_release_clears_it() {
        let store = MemoryStore::new();
        let Claim::Claimed(mut c) = claimed(&store, "a").await else {
            panic!("claimed")
        };
        let stored = checkpoint::load(&store, KEY).await.unwrap().unwrap();
        assert_eq!(stored.checkpoint.lease.unwrap().owner, "a");
        let w = window(30);
        assert_eq!(
            {
                c.checkpoint_mut()
                    .position_mut(Track::Primary)
                    .advance(&w, &Progress::Complete);
                c.save("commit").await.unwrap()
            },
            Saved::Kept
        );
        let report = c.release().await.unwrap();
        assert!(matches!(report, LeaseReport::Acquired { .. }));
        let stored = checkpoint::load(&store, KEY).await.unwrap().unwrap();
        assert_eq!(
            (stored.checkpoint.primary.end, stored.checkpoint.lease),
            (Some(w.end), None)
        );
    }

    #[tokio::test]
    async fn a_live_lease_of_another_refuses_without_writing() {
        let store = MemoryStore::new();
        let Claim::Claimed(_held) = claimed(&store, "a").await else {
            panic!("claimed")
        };
        let before = store.get(KEY).await.unwrap().unwrap().etag;
        let refused = claimed(&store, "b").await;
        assert!(matches!(
            refused,
            Claim::Refused {
                report: LeaseReport::HeldByOther { .. },
                ..
            }
        ));
        assert_eq!(
            store.get(KEY).await.unwrap().unwrap().etag,
            before,
            "untouched"
        );
    }

    #[tokio::test]
    async fn a_write_by_another_invocation_loses_the_lease_at_the_next_commit() {
        let store = MemoryStore::new();
        let Claim::Claimed(mut c) = claimed(&store, "a").await else {
            panic!("claimed")
        };
        let theirs =
            br#"{"version":1,"end":"2026-11-01T00:00:00Z","updated_at":"2026-11-01T00:00:00Z"}"#;
        store.overwrite(KEY, theirs.to_vec());
        assert_eq!(
            {
                c.checkpoint_mut()
                    .position_mut(Track::Primary)
                    .advance(&window(30), &Progress::Complete);
                c.save("commit").await.unwrap()
            },
            Saved::Lost
        );
        assert_eq!(c.report(), &LeaseReport::Lost { at: "commit" });
        assert_eq!(
            store.get(KEY).await.unwrap().unwrap().body,
            theirs.to_vec(),
            "not overwritten"
        );
    }

    #[tokio::test]
    async fn a_claim_racing_a_creation_is_refused() {
        let store = MemoryStore::new();
        let now = Utc::now();
        store.overwrite(KEY, b"{}".to_vec());
        let outcome = Claimed::claim(&store, KEY, None, "a", (now, &TimeSource::System), now)
            .await
            .unwrap();
        assert!(matches!(
            outcome,
            Claim::Refused {
                report: LeaseReport::Lost { at: "claim" },
                ..
            }
        ));
    }

    #[tokio::test]
    async fn a_lease_left_behind_is_taken_over_once_the_stepped_clock_passes_its_expiry() {
        let store = MemoryStore::new();
        let start = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let time = TimeSource::stepped(start);
        let claim = async |owner: &str| {
            let found = checkpoint::load(&store, KEY).await.unwrap();
            let now = time.now();
            let at = (now, &time);
            Claimed::claim(&store, KEY, found, owner, at, now + Duration::minutes(5))
                .await
                .unwrap()
        };
        let Claim::Claimed(_crashed) = claim("a").await else {
            panic!("claimed")
        };
        time.advance(Duration::minutes(4));
        assert!(
            matches!(claim("b").await, Claim::Refused { .. }),
            "still live"
        );
        time.advance(Duration::minutes(2));
        let Claim::Claimed(taken) = claim("b").await else {
            panic!("taken over")
        };
        assert!(matches!(taken.report(), LeaseReport::TakenOver { .. }));
        let stored = checkpoint::load(&store, KEY).await.unwrap().unwrap();
        assert_eq!(stored.checkpoint.updated_at, start + Duration::minutes(6));
        let lease = stored.checkpoint.lease.unwrap();
        assert_eq!(
            (lease.owner.as_str(), lease.expires_at),
            ("b", start + Duration::minutes(11))
        );
    }
}
