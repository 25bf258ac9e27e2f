//! One ledger object: the fingerprints the fresh pass delivered in one part of one window, its
//! place in the checkpoint, its key and its bytes. Pure.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::ledger::Fingerprint;

/// The first bytes of a ledger object of the current format: 12 bytes a record (an 8-byte key
/// and a 4-byte status code).
const MAGIC: &[u8; 8] = b"M365LDG2";
/// The first format (release before the 32-bit status codes): 9 bytes a record (a 1-byte
/// status code). Parts live at most 3 days, but one written by the previous release must load.
const MAGIC_V1: &[u8; 8] = b"M365LDG1";
/// Bytes of the header: the magic and the record count.
const HEADER: usize = 16;

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
    let mut out = Vec::with_capacity(HEADER + fingerprints.len() * Fingerprint::BYTES);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(fingerprints.len() as u64).to_le_bytes());
    for f in &fingerprints {
        out.extend_from_slice(&f.key.to_le_bytes());
        out.extend_from_slice(&f.status.to_le_bytes());
    }
    out
}

/// Why an object's bytes are not the part the checkpoint lists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corrupt {
    /// Not a ledger object of a known format.
    #[error("not a ledger object (unknown header)")]
    Header,
    /// The object's count disagrees with the checkpoint's.
    #[error("the object holds {found} records, the checkpoint lists {listed}")]
    Count {
        /// The count in the object's header.
        found: u64,
        /// The count in the checkpoint.
        listed: u64,
    },
    /// The object's length disagrees with its count.
    #[error("{bytes} bytes of records for a count of {count}")]
    Length {
        /// The bytes after the header.
        bytes: usize,
        /// The count in the header.
        count: u64,
    },
    /// The records could not be given memory.
    #[error("{count} records do not fit in memory")]
    TooLarge { count: u64 },
}

/// Reads an object written by [`encode`] (or by the first format); `None` when it is not one.
pub fn decode(bytes: &[u8]) -> Option<Vec<Fingerprint>> {
    let count = bytes.get(8..HEADER)?;
    let listed = u64::from_le_bytes(count.try_into().ok()?);
    let mut out = Vec::new();
    decode_into(bytes, listed, &mut out).ok()?;
    Some(out)
}

/// Appends the fingerprints of an object of `listed` records (the checkpoint's count) to `out`
/// (no intermediate vector: the reconciliation pass loads a window's parts into one). Memory
/// is reserved only once the object's header, count and length agree, and fallibly; on an
/// error `out` is unchanged.
pub fn decode_into(bytes: &[u8], listed: u64, out: &mut Vec<Fingerprint>) -> Result<(), Corrupt> {
    let (magic, rest) = bytes.split_first_chunk::<8>().ok_or(Corrupt::Header)?;
    let width = match magic {
        m if m == MAGIC => Fingerprint::BYTES,
        m if m == MAGIC_V1 => 9,
        _ => return Err(Corrupt::Header),
    };
    let (count, body) = rest.split_first_chunk::<8>().ok_or(Corrupt::Header)?;
    let found = u64::from_le_bytes(*count);
    if found != listed {
        return Err(Corrupt::Count { found, listed });
    }
    let length = Corrupt::Length {
        bytes: body.len(),
        count: found,
    };
    let records = usize::try_from(found).map_err(|_| length.clone())?;
    if records.checked_mul(width) != Some(body.len()) {
        return Err(length);
    }
    out.try_reserve_exact(records)
        .map_err(|_| Corrupt::TooLarge { count: found })?;
    out.extend(body.chunks_exact(width).map(|c| {
        let mut key = [0u8; 8];
        key.copy_from_slice(&c[..8]);
        let status = match c[8..] {
            [one] => u32::from(one),
            [a, b, c, d] => u32::from_le_bytes([a, b, c, d]),
            _ => 0,
        };
        Fingerprint {
            key: u64::from_le_bytes(key),
            status,
        }
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_part_of_the_first_format_still_loads() {
        // Written by the previous release: 1-byte status codes, 9 bytes a record.
        let mut bytes = MAGIC_V1.to_vec();
        bytes.extend_from_slice(&2u64.to_le_bytes());
        for (key, status) in [(1u64, 5u8), (2, 0x93)] {
            bytes.extend_from_slice(&key.to_le_bytes());
            bytes.push(status);
        }
        let mut out = Vec::new();
        decode_into(&bytes, 2, &mut out).unwrap();
        assert_eq!(
            out,
            [
                Fingerprint { key: 1, status: 5 },
                Fingerprint {
                    key: 2,
                    status: 0x93
                }
            ]
        );
    }

    #[test]
    fn a_checkpoint_claiming_a_trillion_records_takes_no_memory() {
        let bytes = encode(vec![Fingerprint { key: 7, status: 1 }]);
        let mut out = Vec::new();
        assert_eq!(
            decode_into(&bytes, 1_000_000_000_000, &mut out),
            Err(Corrupt::Count {
                found: 1,
                listed: 1_000_000_000_000
            })
        );
        // The object itself claiming it, with the checkpoint agreeing: its length disagrees.
        let mut lying = bytes.clone();
        lying[8..16].copy_from_slice(&1_000_000_000_000u64.to_le_bytes());
        assert!(matches!(
            decode_into(&lying, 1_000_000_000_000, &mut out),
            Err(Corrupt::Length { .. })
        ));
        assert_eq!(out.capacity(), 0);
        assert_eq!(decode_into(b"M365LDG9", 0, &mut out), Err(Corrupt::Header));
    }

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
            raw in prop::collection::vec((any::<u64>(), any::<u32>()), 0..200),
        ) {
            let fps: Vec<Fingerprint> = raw.iter().map(|(key, status)| Fingerprint { key: *key, status: *status }).collect();
            let bytes = encode(fps.clone());
            let back = decode(&bytes).unwrap();
            let mut want = fps;
            want.sort_unstable();
            want.dedup();
            prop_assert_eq!(bytes.len(), 16 + want.len() * 12);
            prop_assert_eq!(back, want);
        }

        #[test]
        fn a_count_that_disagrees_is_refused_before_any_memory_is_taken(
            raw in prop::collection::vec((any::<u64>(), any::<u32>()), 0..50),
            listed in any::<u64>(),
        ) {
            let fps: Vec<Fingerprint> = raw.iter().map(|(key, status)| Fingerprint { key: *key, status: *status }).collect();
            let bytes = encode(fps);
            let found = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
            let mut out = Vec::new();
            let result = decode_into(&bytes, listed, &mut out);
            prop_assert_eq!(result.is_ok(), listed == found);
            if listed != found {
                prop_assert_eq!(out.capacity(), 0);
            }
        }

        #[test]
        fn anything_else_is_not_a_ledger(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }
    }
}
