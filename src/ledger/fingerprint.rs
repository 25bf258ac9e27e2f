//! A record as the ledger remembers it: 8 bytes of its key and 1 byte of its status. Pure.

/// The documented statuses (Graph's `exchangeMessageTraceStatus`, the Reporting Web Service's
/// `Status`), compared case-insensitively; each has a fixed code.
const STATUSES: [&str; 9] = [
    "none",
    "gettingstatus",
    "failed",
    "pending",
    "delivered",
    "expanded",
    "quarantined",
    "filteredasspam",
    "resolved",
];

/// The ledger's view of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint {
    /// The first 8 bytes of SHA-256 of the record key (`id|recipient`): stable across versions
    /// and machines, so a ledger written by one release is read by the next.
    pub key: u64,
    /// The status's code: 1..=9 for the documented statuses, 0 for none, 128..=255 for others.
    pub status: u8,
}

impl Fingerprint {
    /// Size of one fingerprint in a ledger object.
    pub const BYTES: usize = 9;

    /// The fingerprint of the record `key` with `status`.
    pub fn of(key: &str, status: Option<&str>) -> Fingerprint {
        Fingerprint {
            key: key_hash(key),
            status: status_code(status),
        }
    }

    /// The fingerprint of a key alone, for lookups by key.
    pub fn key_of(key: &str) -> u64 {
        key_hash(key)
    }
}

fn key_hash(key: &str) -> u64 {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_le_bytes(first)
}

/// The code of a status: its place among the documented statuses (case-insensitive), or a
/// hash byte with the high bit set for another value.
pub fn status_code(status: Option<&str>) -> u8 {
    let Some(status) = status.map(str::trim).filter(|s| !s.is_empty()) else {
        return 0;
    };
    let lower = status.to_ascii_lowercase();
    match STATUSES.iter().position(|s| *s == lower) {
        Some(i) => u8::try_from(i + 1).unwrap_or(0),
        None => {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, lower.as_bytes());
            0x80 | digest.as_ref()[0]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_compare_case_insensitively_and_keys_are_stable() {
        assert_eq!(
            Fingerprint::of("a|b", Some("delivered")),
            Fingerprint::of("a|b", Some("Delivered"))
        );
        assert_ne!(
            Fingerprint::of("a|b", Some("Pending")),
            Fingerprint::of("a|b", Some("Delivered"))
        );
        assert_ne!(
            Fingerprint::of("a|b", None).key,
            Fingerprint::of("a|c", None).key
        );
        // Fixed by SHA-256: a ledger written by one release is read by the next.
        assert_eq!(Fingerprint::key_of("a|b"), 0xf4ab_8033_0a8a_ab0e);
        assert!(status_code(Some("Something new")) >= 0x80);
    }
}
