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
    /// The status's code: 0 for none, 1..=9 for the documented statuses, a 32-bit hash at or
    /// above [`HASHED_FROM`] for any other; 0x80..=0xFF only in parts of the first format (a
    /// 7-bit hash), see [`legacy_code`].
    pub status: u32,
}

/// The lowest code of a hashed status: codes below it are the documented statuses and the
/// first format's 7-bit hashes, which a 32-bit hash never takes.
pub const HASHED_FROM: u32 = 0x100;

impl Fingerprint {
    /// Size of one fingerprint in a ledger object (8-byte key, 4-byte status).
    pub const BYTES: usize = 12;

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

/// The code of a status: its place among the documented statuses (case-insensitive), or the
/// first 4 bytes of the SHA-256 of its lower case, moved out of the range below
/// [`HASHED_FROM`]: two distinct statuses share a code once in about 2^32.
pub fn status_code(status: Option<&str>) -> u32 {
    let Some(lower) = normalized(status) else {
        return 0;
    };
    match documented(&lower) {
        Some(code) => code,
        None => {
            let digest = sha256(&lower);
            let code = u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]);
            if code < HASHED_FROM {
                code | HASHED_FROM
            } else {
                code
            }
        }
    }
}

/// The code the first ledger format (one byte) gave `status`: the same for the documented
/// statuses, a 7-bit hash with the high bit set for any other. A part written by the previous
/// release is compared with it.
pub fn legacy_code(status: Option<&str>) -> u32 {
    let Some(lower) = normalized(status) else {
        return 0;
    };
    documented(&lower).unwrap_or_else(|| 0x80 | u32::from(sha256(&lower)[0]))
}

fn normalized(status: Option<&str>) -> Option<String> {
    status
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_ascii_lowercase)
}

fn documented(lower: &str) -> Option<u32> {
    STATUSES
        .iter()
        .position(|s| *s == lower)
        .and_then(|i| u32::try_from(i + 1).ok())
}

fn sha256(lower: &str) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, lower.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
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
        assert!(status_code(Some("Something new")) >= HASHED_FROM);
        assert_eq!(status_code(Some("Delivered")), 5);
        assert_eq!(legacy_code(Some(" delivered ")), 5);
        assert!((0x80..=0xFF).contains(&legacy_code(Some("Something new"))));
    }

    #[test]
    fn undocumented_statuses_that_shared_a_byte_get_distinct_codes() {
        // The first format kept 7 bits: among 200 statuses, many pairs shared a code.
        let names: Vec<String> = (0..200).map(|i| format!("CustomStatus{i}")).collect();
        let legacy: std::collections::HashSet<u32> =
            names.iter().map(|n| legacy_code(Some(n))).collect();
        assert!(legacy.len() < names.len(), "7 bits collide");
        let codes: std::collections::HashSet<u32> =
            names.iter().map(|n| status_code(Some(n))).collect();
        assert_eq!(codes.len(), names.len(), "32 bits do not");
        assert!(codes.iter().all(|c| *c >= HASHED_FROM));
    }
}
