//! Step 3 of a tick: who may run. Pure decisions over the lease recorded in the checkpoint.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A claim on the state: only its owner pulls and commits until it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The invocation's request id. A second delivery of the same event keeps the id; while
    /// this lease is live, it is refused as a duplicate (see [`decide`]).
    pub owner: String,
    /// The owner's deadline plus a slack; after it, another invocation may take over.
    pub expires_at: DateTime<Utc>,
}

impl Lease {
    /// Whether the owner may still be running at `now` (nothing else may write the state).
    pub fn live_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at > now
    }
}

/// What a tick may do with the lease it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseDecision {
    /// No lease, or our own that expired: claim it.
    Claim,
    /// Another owner's lease has expired: claim it, and say so.
    TakeOver {
        /// The previous owner.
        previous_owner: String,
        /// When its lease expired.
        expired_at: DateTime<Utc>,
    },
    /// A live lease carries our own request id: this is a second delivery of the same event
    /// (Lambda's asynchronous invocation is at-least-once) while the first still runs, or
    /// before its lease expired: do nothing.
    Duplicate {
        /// Until when the first delivery holds it.
        until: DateTime<Utc>,
    },
    /// Another invocation holds a live lease: do nothing.
    HeldByOther {
        owner: String,
        /// Until when.
        until: DateTime<Utc>,
    },
}

/// Decides whether `me` may claim the state at `now`. A lease is live until it expires; every
/// tick that ends, failed or not, gives its lease back, so a live lease with our own request
/// id is another delivery of this very event still running (or one that crashed, until its
/// lease expires): it is never shared. A retry after a failure finds the lease given back (or
/// expired) and claims it.
pub fn decide(found: Option<&Lease>, me: &str, now: DateTime<Utc>) -> LeaseDecision {
    match found {
        None => LeaseDecision::Claim,
        Some(lease) if !lease.live_at(now) && lease.owner == me => LeaseDecision::Claim,
        Some(lease) if lease.owner == me => LeaseDecision::Duplicate {
            until: lease.expires_at,
        },
        Some(lease) if !lease.live_at(now) => LeaseDecision::TakeOver {
            previous_owner: lease.owner.clone(),
            expired_at: lease.expires_at,
        },
        Some(lease) => LeaseDecision::HeldByOther {
            owner: lease.owner.clone(),
            until: lease.expires_at,
        },
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    #[test]
    fn decisions() {
        let now = Utc::now();
        let live = Lease {
            owner: "a".into(),
            expires_at: now + Duration::seconds(1),
        };
        let dead = Lease {
            owner: "a".into(),
            expires_at: now,
        };
        assert_eq!(decide(None, "b", now), LeaseDecision::Claim);
        assert_eq!(
            decide(Some(&live), "a", now),
            LeaseDecision::Duplicate {
                until: live.expires_at
            },
            "a second delivery of the same event while the first runs"
        );
        assert_eq!(
            decide(Some(&dead), "a", now),
            LeaseDecision::Claim,
            "a retry once the first delivery's lease expired"
        );
        assert_eq!(
            decide(Some(&live), "b", now),
            LeaseDecision::HeldByOther {
                owner: "a".into(),
                until: live.expires_at
            }
        );
        assert_eq!(
            decide(Some(&dead), "b", now),
            LeaseDecision::TakeOver {
                previous_owner: "a".into(),
                expired_at: now
            }
        );
    }
}
