//! Deliveries waiting for their details, and the details already fetched, as the checkpoint
//! keeps them: committed with the window that found each delivery, drained oldest first over
//! later ticks, bounded, and never fetched twice for the same status. Pure: values in, values
//! out.

use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, DurationRound, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ledger::Fingerprint;

/// A delivery whose details are to be fetched: what the detail call needs (its trace id and
/// recipient), what the detail lines repeat from the trace line (sender, Message-ID), and the
/// status and time that decide when and whether (a pending one waits, and it is fetched once
/// per status).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetailCandidate {
    /// The message trace id (`id`; the trace line's `MessageTraceId`).
    pub id: String,
    /// The recipient (`recipientAddress`).
    pub recipient: String,
    /// The sender (`senderAddress`), for the detail lines' `SenderAddress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// The Message-ID header, when the detail rows do not carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The status it was seen with, as Graph spelt it.
    pub status: String,
    /// When Exchange Online received the message.
    pub received: DateTime<Utc>,
}

impl DetailCandidate {
    /// Whether the delivery was pending when seen.
    pub fn pending(&self) -> bool {
        self.status.trim().eq_ignore_ascii_case("pending")
    }

    /// The record's key (`id|recipient`, as `crate::trace::record::record_key` writes it), as
    /// the ledger fingerprints it.
    pub fn key(&self) -> String {
        format!("{}|{}", self.id, self.recipient)
    }
}

/// Deliveries remembered as fetched at most (8 bytes each, ~11 in the checkpoint's base64:
/// ~220 KB). About a day of detail calls at Graph's quota; past it the oldest are forgotten,
/// which can only cost a second fetch of a delivery sent again.
pub const MAX_FETCHED: usize = 20_000;

/// Failed attempts (Microsoft answering 5xx, malformed or nothing, after the request's own
/// retries) before a delivery is given up, so that one bad delivery never stalls the queue.
pub const MAX_ATTEMPTS: u32 = 3;

/// The tenant's deliveries waiting for details, and what was fetched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetailQueue {
    /// Waiting, oldest received first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<Waiting>,
    /// The deliveries (key and status) whose details were sent, by the hour they were received
    /// in: forgotten once both passes are past that hour.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fetched: Vec<FetchedHour>,
}

/// A delivery waiting for its details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    #[serde(flatten)]
    pub delivery: DetailCandidate,
    /// Ticks whose fetch of it failed (see [`MAX_ATTEMPTS`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The fetched deliveries received in the hour before `before`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchedHour {
    /// The end of the hour.
    pub before: DateTime<Utc>,
    /// Their marks ([`mark`]), sorted; little-endian bytes in base64.
    #[serde(serialize_with = "to_base64", deserialize_with = "from_base64")]
    pub marks: Vec<u64>,
}

/// What an enqueue did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enqueued {
    /// Deliveries added.
    pub added: usize,
    /// Deliveries that did not fit (the newest), never to be fetched.
    pub dropped: Vec<DetailCandidate>,
}

/// Why a waiting delivery leaves the queue without its details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The queue was full.
    QueueFull,
    /// Microsoft no longer has the delivery (404).
    Gone,
    /// Microsoft refused the query (400).
    Refused,
    /// Its fetch failed [`MAX_ATTEMPTS`] ticks.
    Failing,
    /// Received before the API's lookback: it can no longer be asked about.
    Lookback,
    /// Its status is no longer in `DETAIL_STATUSES`.
    Unwanted,
}

impl DropReason {
    /// Its name in log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::Gone => "gone",
            DropReason::Refused => "refused",
            DropReason::Failing => "failing",
            DropReason::Lookback => "lookback",
            DropReason::Unwanted => "unwanted",
        }
    }
}

/// The mark of a delivery in a status: its record key and status as the ledger fingerprints
/// them (the status case-insensitively), folded into 8 bytes.
pub fn mark(delivery: &DetailCandidate) -> u64 {
    let f = Fingerprint::of(&delivery.key(), Some(&delivery.status));
    f.key ^ u64::from(f.status).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl DetailQueue {
    /// Whether nothing waits and nothing is remembered (the checkpoint leaves it out).
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.fetched.is_empty()
    }

    /// Deliveries waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Adds the deliveries a committed window found, unless their details were fetched for
    /// that status already or they wait already. A delivery in another status replaces its
    /// pending one still waiting (the pending details would describe a delivery that moved
    /// on). Keeps at most `max`, oldest received first: the newest beyond it are dropped.
    pub fn enqueue(&mut self, found: Vec<DetailCandidate>, max: usize) -> Enqueued {
        let mut marks: HashSet<u64> = self.waiting.iter().map(|w| mark(&w.delivery)).collect();
        let (mut added, mut settled) = (HashSet::new(), HashSet::new());
        for delivery in found {
            let m = mark(&delivery);
            if self.was_fetched(&delivery) || !marks.insert(m) {
                continue;
            }
            if !delivery.pending() {
                settled.insert(delivery.key());
            }
            added.insert(m);
            self.waiting.push(Waiting {
                delivery,
                attempts: 0,
            });
        }
        if !settled.is_empty() {
            self.waiting
                .retain(|w| !(w.delivery.pending() && settled.contains(&w.delivery.key())));
        }
        self.waiting.sort_by(|a, b| order(&a.delivery, &b.delivery));
        let dropped: Vec<DetailCandidate> = self
            .waiting
            .split_off(self.waiting.len().min(max))
            .into_iter()
            .map(|w| w.delivery)
            .collect();
        let added = self
            .waiting
            .iter()
            .filter(|w| added.contains(&mark(&w.delivery)))
            .count();
        Enqueued { added, dropped }
    }

    /// The waiting deliveries due at `now`, oldest first: all but the pending ones younger
    /// than `pending_after`.
    pub fn due(
        &self,
        now: DateTime<Utc>,
        pending_after: Option<chrono::Duration>,
    ) -> Vec<DetailCandidate> {
        self.waiting
            .iter()
            .map(|w| &w.delivery)
            .filter(|d| {
                !d.pending() || pending_after.is_some_and(|after| d.received + after <= now)
            })
            .cloned()
            .collect()
    }

    /// Their details were sent and are committed with this queue: they leave the queue and are
    /// remembered for their status.
    pub fn done(&mut self, delivered: &[DetailCandidate]) {
        let marks: HashSet<u64> = delivered.iter().map(mark).collect();
        self.waiting.retain(|w| !marks.contains(&mark(&w.delivery)));
        for delivery in delivered {
            self.remember(delivery);
        }
    }

    /// It leaves the queue without details (see [`DropReason`]).
    pub fn remove(&mut self, delivery: &DetailCandidate) {
        let m = mark(delivery);
        self.waiting.retain(|w| mark(&w.delivery) != m);
    }

    /// Its fetch failed this tick: whether it has now failed [`MAX_ATTEMPTS`] times and was
    /// dropped.
    pub fn failed(&mut self, delivery: &DetailCandidate) -> bool {
        let m = mark(delivery);
        let Some(w) = self.waiting.iter_mut().find(|w| mark(&w.delivery) == m) else {
            return false;
        };
        w.attempts += 1;
        if w.attempts < MAX_ATTEMPTS {
            return false;
        }
        self.remove(delivery);
        true
    }

    /// Drops what can no longer matter: the waiting deliveries received before `earliest`
    /// (the API's lookback; returned, to be counted) or whose status `wanted` no longer
    /// accepts, and the memory of the hours before `settled` (both passes are past them, so
    /// their deliveries are never found again).
    pub fn expire(
        &mut self,
        earliest: DateTime<Utc>,
        settled: Option<DateTime<Utc>>,
        wanted: impl Fn(&str) -> bool,
    ) -> Vec<(DetailCandidate, DropReason)> {
        let mut gone = Vec::new();
        self.waiting.retain(|w| {
            let reason = if w.delivery.received < earliest {
                DropReason::Lookback
            } else if !wanted(&w.delivery.status) {
                DropReason::Unwanted
            } else {
                return true;
            };
            gone.push((w.delivery.clone(), reason));
            false
        });
        if let Some(settled) = settled {
            self.fetched.retain(|h| h.before > settled);
        }
        gone
    }

    fn was_fetched(&self, delivery: &DetailCandidate) -> bool {
        let (m, before) = (mark(delivery), hour_end(delivery.received));
        self.fetched
            .iter()
            .filter(|h| h.before == before)
            .any(|h| h.marks.binary_search(&m).is_ok())
    }

    fn remember(&mut self, delivery: &DetailCandidate) {
        let (m, before) = (mark(delivery), hour_end(delivery.received));
        let at = self.fetched.partition_point(|h| h.before < before);
        match self.fetched.get_mut(at) {
            Some(h) if h.before == before => {
                if let Err(i) = h.marks.binary_search(&m) {
                    h.marks.insert(i, m);
                }
            }
            _ => self.fetched.insert(
                at,
                FetchedHour {
                    before,
                    marks: vec![m],
                },
            ),
        }
        let mut total: usize = self.fetched.iter().map(|h| h.marks.len()).sum();
        while total > MAX_FETCHED && self.fetched.len() > 1 {
            total -= self.fetched.remove(0).marks.len();
        }
    }
}

/// Oldest received first; ties in a fixed order.
fn order(a: &DetailCandidate, b: &DetailCandidate) -> std::cmp::Ordering {
    (a.received, &a.id, &a.recipient, &a.status).cmp(&(b.received, &b.id, &b.recipient, &b.status))
}

/// The end of the hour `t` is in.
fn hour_end(t: DateTime<Utc>) -> DateTime<Utc> {
    let hour = chrono::Duration::hours(1);
    t.duration_trunc(hour).unwrap_or(t) + hour
}

fn to_base64<S: Serializer>(marks: &[u64], s: S) -> Result<S::Ok, S::Error> {
    let bytes: Vec<u8> = marks.iter().flat_map(|m| m.to_le_bytes()).collect();
    s.serialize_str(&STANDARD.encode(bytes))
}

/// Unreadable marks read as none: they only spare second fetches, never decide a loss.
fn from_base64<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    let text = String::deserialize(d)?;
    let bytes = STANDARD.decode(text).unwrap_or_default();
    let mut marks: Vec<u64> = bytes
        .chunks_exact(8)
        .filter_map(|c| c.try_into().ok().map(u64::from_le_bytes))
        .collect();
    marks.sort_unstable();
    marks.dedup();
    Ok(marks)
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap()
    }

    fn d(id: &str, status: &str, minute: i64) -> DetailCandidate {
        DetailCandidate {
            id: id.into(),
            recipient: "r@contoso.com".into(),
            sender: Some("s@fabrikam.com".into()),
            message_id: None,
            status: status.into(),
            received: t0() + Duration::minutes(minute),
        }
    }

    #[test]
    fn a_delivery_is_queued_once_drained_oldest_first_and_never_fetched_twice_per_status() {
        let mut q = DetailQueue::default();
        let e = q.enqueue(vec![d("b", "failed", 5), d("a", "quarantined", 1)], 10);
        assert_eq!((e.added, e.dropped.len()), (2, 0));
        assert_eq!(q.enqueue(vec![d("a", "Quarantined", 1)], 10).added, 0);
        let due = q.due(t0(), None);
        assert_eq!(
            due.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        q.done(&due[..1]);
        assert_eq!(q.len(), 1);
        assert_eq!(
            q.enqueue(vec![d("a", "quarantined", 1)], 10).added,
            0,
            "fetched"
        );
        assert_eq!(
            q.enqueue(vec![d("a", "failed", 1)], 10).added,
            1,
            "a new status"
        );
        let json = serde_json::to_string(&q).unwrap();
        assert_eq!(serde_json::from_str::<DetailQueue>(&json).unwrap(), q);
    }

    #[test]
    fn a_pending_delivery_waits_its_age_and_gives_way_to_its_final_status() {
        let mut q = DetailQueue::default();
        q.enqueue(vec![d("p", "pending", 0), d("f", "failed", 1)], 10);
        assert_eq!(
            q.due(t0() + Duration::minutes(30), None).len(),
            1,
            "pending off"
        );
        let after = Some(Duration::hours(1));
        assert_eq!(q.due(t0() + Duration::minutes(30), after).len(), 1);
        assert_eq!(q.due(t0() + Duration::hours(1), after).len(), 2);
        q.enqueue(vec![d("p", "failed", 0)], 10);
        let statuses: Vec<&str> = q
            .waiting
            .iter()
            .map(|w| w.delivery.status.as_str())
            .collect();
        assert_eq!(
            statuses,
            ["failed", "failed"],
            "the pending one is replaced"
        );
    }

    #[test]
    fn overflow_drops_the_newest_and_failures_give_up_after_three_ticks() {
        let mut q = DetailQueue::default();
        let e = q.enqueue(
            (0..5)
                .map(|i| d(&format!("m{i}"), "failed", 10 - i))
                .collect(),
            3,
        );
        assert_eq!(e.added, 3);
        let dropped: Vec<&str> = e.dropped.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(dropped, ["m1", "m0"], "the newest received");
        let first = q.due(t0(), None)[0].clone();
        assert!(!q.failed(&first) && !q.failed(&first));
        assert!(q.failed(&first));
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn what_can_no_longer_matter_expires() {
        let mut q = DetailQueue::default();
        q.enqueue(
            vec![
                d("old", "failed", 0),
                d("spam", "filteredAsSpam", 90),
                d("new", "failed", 120),
            ],
            10,
        );
        let fetched = d("done", "failed", 130);
        q.enqueue(vec![fetched.clone()], 10);
        q.done(std::slice::from_ref(&fetched));
        let gone = q.expire(t0() + Duration::minutes(1), None, |s| s != "filteredAsSpam");
        let reasons: Vec<(&str, DropReason)> =
            gone.iter().map(|(c, r)| (c.id.as_str(), *r)).collect();
        assert_eq!(
            reasons,
            [
                ("old", DropReason::Lookback),
                ("spam", DropReason::Unwanted)
            ]
        );
        assert_eq!(q.fetched.len(), 1);
        q.expire(t0(), Some(t0() + Duration::hours(3)), |_| true);
        assert!(q.fetched.is_empty(), "both passes are past its hour");
        assert_eq!(q.enqueue(vec![fetched], 10).added, 1, "forgotten");
    }

    #[test]
    fn unreadable_marks_read_as_none() {
        let json = r#"{"fetched":[{"before":"2026-11-24T11:00:00Z","marks":"not base64!"}]}"#;
        let q: DetailQueue = serde_json::from_str(json).unwrap();
        assert!(q.fetched[0].marks.is_empty());
    }

    proptest! {
        #[test]
        fn the_queue_stays_bounded_holds_each_delivery_once_and_accounts_for_every_offer(
            batches in prop::collection::vec(
                prop::collection::vec((0u8..30, 0u8..4, 0i64..600), 0..40), 1..12),
            max in 1usize..25,
            finish in prop::collection::vec(any::<bool>(), 12),
        ) {
            let statuses = ["failed", "pending", "quarantined", "Failed"];
            let mut q = DetailQueue::default();
            for (n, batch) in batches.into_iter().enumerate() {
                let offered: Vec<DetailCandidate> = batch
                    .iter()
                    .map(|(id, s, m)| d(&format!("m{id}"), statuses[usize::from(*s)], *m))
                    .collect();
                let before = q.clone();
                let e = q.enqueue(offered.clone(), max);
                prop_assert!(q.len() <= max);
                let mut marks: Vec<u64> = q.waiting.iter().map(|w| mark(&w.delivery)).collect();
                marks.sort_unstable();
                let n_marks = marks.len();
                marks.dedup();
                prop_assert_eq!(marks.len(), n_marks, "a delivery in a status waits once");
                prop_assert!(q.waiting.windows(2).all(|w| order(&w[0].delivery, &w[1].delivery).is_le()));
                // Every offer is waiting, was waiting or fetched, was replaced, or was counted
                // as dropped.
                for c in &offered {
                    let m = mark(c);
                    let kept = q.waiting.iter().any(|w| mark(&w.delivery) == m);
                    let known = before.was_fetched(c);
                    let dropped = e.dropped.iter().any(|x| mark(x) == m);
                    let replaced = c.pending() && offered.iter().any(|o| !o.pending() && o.key() == c.key());
                    prop_assert!(kept || known || dropped || replaced, "{c:?} vanished");
                }
                // Drain some, as a tick would.
                if finish[n % finish.len()] {
                    for c in q.due(t0() + Duration::days(1), Some(Duration::zero())).into_iter().take(3) {
                        q.done(std::slice::from_ref(&c));
                        prop_assert!(q.was_fetched(&c));
                        prop_assert_eq!(q.enqueue(vec![c.clone()], max).added, 0, "never fetched twice");
                    }
                }
            }
            let json = serde_json::to_string(&q).unwrap();
            prop_assert_eq!(serde_json::from_str::<DetailQueue>(&json).unwrap(), q);
        }
    }
}
