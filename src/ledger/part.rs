//! One ledger object: the fingerprints the fresh pass delivered in one part of one window, its
//! place in the checkpoint, its key and its bytes. Pure.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::ledger::Fingerprint;

/// The first bytes of every ledger object: the format and its version.
const MAGIC: &[u8; 8] = b"M365LDG1";

/// A ledger object listed in the checkpoint: the young span of a fresh window it covers (which
/// the reconciliation pass pulls again) and its number among the parts of that span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerPart {
    /// Start of the span (inclusive).
    pub start: DateTime<Utc>,
    /// End of the span (exclusive).
    pub end: DateTime<Utc>,
    /// Parts of the same span are numbered from 0 (a window committed part-way, then whole).
    pub n: u32,
    /// Fingerprints in the object.
    pub records: u64,
}

impl LedgerPart {
    /// The object's key: `{dir}/ledger/{start}_{end}_{n}.bin`, where `dir` is the directory of
    /// the job's checkpoint.
    pub fn key(&self, checkpoint_key: &str) -> String {
        let name = format!(
            "{}_{}_{}.bin",
            compact(self.start),
            compact(self.end),
            self.n
        );
        match checkpoint_key.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/ledger/{name}"),
            None => format!("ledger/{name}"),
        }
    }
}

fn compact(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
        .replace(['-', ':'], "")
}

/// The object's bytes: the magic, the count, then the fingerprints sorted (key, then status).
pub fn encode(mut fingerprints: Vec<Fingerprint>) -> Vec<u8> {
    fingerprints.sort_unstable();
    fingerprints.dedup();
    let mut out = Vec::with_capacity(16 + fingerprints.len() * Fingerprint::BYTES);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(fingerprints.len() as u64).to_le_bytes());
    for f in &fingerprints {
        out.extend_from_slice(&f.key.to_le_bytes());
        out.push(f.status);
    }
    out
}

/// Reads an object written by [`encode`]; `None` when it is not one.
pub fn decode(bytes: &[u8]) -> Option<Vec<Fingerprint>> {
    let mut out = Vec::new();
    decode_into(bytes, &mut out).then_some(out)
}

/// Appends the fingerprints of an object written by [`encode`] to `out` (no intermediate
/// vector: the reconciliation pass loads a window's parts into one, reserved once); `false`,
/// and `out` unchanged, when it is not one.
pub fn decode_into(bytes: &[u8], out: &mut Vec<Fingerprint>) -> bool {
    let Some(body) = body_of(bytes) else {
        return false;
    };
    out.extend(body.chunks_exact(Fingerprint::BYTES).map(|c| {
        let mut key = [0u8; 8];
        key.copy_from_slice(&c[..8]);
        Fingerprint {
            key: u64::from_le_bytes(key),
            status: c[8],
        }
    }));
    true
}

/// The fingerprints' bytes of a well-formed object.
fn body_of(bytes: &[u8]) -> Option<&[u8]> {
    let rest = bytes.strip_prefix(MAGIC.as_slice())?;
    let (count, body) = rest.split_first_chunk::<8>()?;
    let count = usize::try_from(u64::from_le_bytes(*count)).ok()?;
    (body.len() == count.checked_mul(Fingerprint::BYTES)?).then_some(body)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_key_sits_next_to_the_checkpoint() {
        let part = LedgerPart {
            start: Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap(),
            end: Utc.with_ymd_and_hms(2026, 11, 24, 10, 5, 0).unwrap(),
            n: 1,
            records: 3,
        };
        assert_eq!(
            part.key("m365-message-trace/tenants/contoso/checkpoint.json"),
            "m365-message-trace/tenants/contoso/ledger/20261124T100000Z_20261124T100500Z_1.bin"
        );
    }

    proptest! {
        #[test]
        fn encoded_fingerprints_decode_sorted_and_nine_bytes_each(
            raw in prop::collection::vec((any::<u64>(), any::<u8>()), 0..200),
        ) {
            let fps: Vec<Fingerprint> = raw.iter().map(|(key, status)| Fingerprint { key: *key, status: *status }).collect();
            let bytes = encode(fps.clone());
            let back = decode(&bytes).unwrap();
            let mut want = fps;
            want.sort_unstable();
            want.dedup();
            prop_assert_eq!(bytes.len(), 16 + want.len() * 9);
            prop_assert_eq!(back, want);
        }

        #[test]
        fn anything_else_is_not_a_ledger(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }
    }
}
