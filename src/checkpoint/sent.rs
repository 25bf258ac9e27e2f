//! What the relay confirmed of a window of an unordered source (the Reporting Web Service) cut
//! by the deadline: that window is pulled again in pieces, and its pieces skip these lines
//! instead of sending them twice. Devo bills by volume. Pure: values in, values out.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ledger::{Fingerprint, part};
use crate::window::Window;

/// The most fingerprints kept (12 bytes each, ~16 in the checkpoint's base64: ~320 KB). Past
/// it, the rest of the cut window's lines are sent again when its pieces are pulled.
pub const MAX_SENT: usize = 20_000;

/// The lines confirmed in `[start, end)` by ticks that were cut there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// Start of the cut window.
    pub start: DateTime<Utc>,
    /// End of the cut window.
    pub end: DateTime<Utc>,
    /// Their fingerprints (record key and status), sorted; a ledger part's bytes in base64.
    #[serde(serialize_with = "to_base64", deserialize_with = "from_base64")]
    pub fingerprints: Vec<Fingerprint>,
}

impl Sent {
    /// What the relay confirmed of `window`, merged with what `before` holds when it overlaps;
    /// `None` when nothing is known as sent.
    pub fn after_cut(
        before: Option<Sent>,
        window: &Window,
        confirmed: Vec<Fingerprint>,
    ) -> Option<Sent> {
        let (start, end) = (window.start, window.query_end().max(window.end));
        let (start, end, mut fingerprints) = match before {
            Some(b) if b.start < end && start < b.end => {
                (b.start.min(start), b.end.max(end), b.fingerprints)
            }
            _ => (start, end, Vec::new()),
        };
        fingerprints.extend(confirmed);
        fingerprints.sort_unstable();
        fingerprints.dedup();
        // Any subset is safe to skip: each one was confirmed.
        fingerprints.truncate(MAX_SENT);
        (!fingerprints.is_empty()).then_some(Sent {
            start,
            end,
            fingerprints,
        })
    }

    /// The fingerprints to skip in `window`, when it overlaps the cut window.
    pub fn within(&self, window: &Window) -> Option<&[Fingerprint]> {
        (window.start < self.end && self.start < window.end).then_some(&self.fingerprints)
    }
}

/// Whether the sorted `sent` holds `fingerprint`.
pub fn holds(sent: &[Fingerprint], fingerprint: &Fingerprint) -> bool {
    sent.binary_search(fingerprint).is_ok()
}

fn to_base64<S: Serializer>(fingerprints: &[Fingerprint], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&STANDARD.encode(part::encode(fingerprints.to_vec())))
}

/// Unreadable fingerprints read as none: they only spare re-sends, never decide a loss.
fn from_base64<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Fingerprint>, D::Error> {
    let text = String::deserialize(d)?;
    let mut out = STANDARD
        .decode(text)
        .ok()
        .and_then(|bytes| part::decode(&bytes))
        .unwrap_or_default();
    out.sort_unstable();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn t(m: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap() + Duration::minutes(m)
    }

    fn window(s: i64, e: i64) -> Window {
        Window {
            start: t(s),
            end: t(e),
            resume: None,
        }
    }

    fn fp(key: &str) -> Fingerprint {
        Fingerprint::of(key, Some("Delivered"))
    }

    #[test]
    fn a_cut_keeps_what_was_confirmed_for_the_pieces_and_survives_the_checkpoint() {
        let sent = Sent::after_cut(None, &window(0, 60), vec![fp("b"), fp("a")]).unwrap();
        assert!(holds(sent.within(&window(20, 40)).unwrap(), &fp("a")));
        assert!(!holds(&sent.fingerprints, &fp("c")));
        assert!(
            !holds(&sent.fingerprints, &Fingerprint::of("a", Some("Failed"))),
            "another status is another line"
        );
        assert_eq!(sent.within(&window(60, 90)), None, "past the cut window");
        let json = serde_json::to_string(&sent).unwrap();
        assert_eq!(serde_json::from_str::<Sent>(&json).unwrap(), sent);
        // A piece cut again adds what it confirmed; the span stays the window's.
        let again = Sent::after_cut(Some(sent), &window(20, 40), vec![fp("c")]).unwrap();
        assert_eq!(
            (again.start, again.end, again.fingerprints.len()),
            (t(0), t(60), 3)
        );
        assert_eq!(Sent::after_cut(None, &window(0, 60), vec![]), None);
    }

    #[test]
    fn unreadable_fingerprints_read_as_none() {
        let json = r#"{"start":"2026-11-20T00:00:00Z","end":"2026-11-20T01:00:00Z","fingerprints":"not base64!"}"#;
        let sent: Sent = serde_json::from_str(json).unwrap();
        assert!(sent.fingerprints.is_empty());
    }
}
