//! One Devo event line per record, as Devo's own senders write them. Pure.

use std::io::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Syslog priority Devo's senders use: facility user (1), severity informational (6).
pub const PRIORITY: &str = "<14>";

/// Appends `<14>{timestamp} {hostname} {tag}: {json}\n` to `out`.
///
/// The timestamp is the record's received time in UTC with milliseconds, as Devo's collector SDK
/// writes it. serde_json escapes every control character, so the JSON never holds a raw newline.
pub fn frame_line<T: Serialize>(
    out: &mut Vec<u8>,
    received: DateTime<Utc>,
    hostname: &str,
    tag: &str,
    record: &T,
) -> Result<(), serde_json::Error> {
    let start = out.len();
    let header = write!(
        out,
        "{PRIORITY}{} {hostname} {tag}: ",
        received.format("%Y-%m-%d %H:%M:%S%.3f")
    );
    if header.is_err() {
        out.truncate(start);
    }
    if let Err(e) = serde_json::to_writer(&mut *out, record) {
        out.truncate(start);
        return Err(e);
    }
    out.push(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn line_format_matches_devo_senders() {
        let t = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
            + chrono::Duration::microseconds(123_456);
        let mut out = Vec::new();
        frame_line(
            &mut out,
            t,
            "fn-name",
            "cloud.office365.messagetracing",
            &serde_json::json!({"Subject": "a\r\nb"}),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<14>2026-11-25 12:00:00.123 fn-name cloud.office365.messagetracing: {\"Subject\":\"a\\r\\nb\"}\n"
        );
    }

    proptest! {
        #[test]
        fn any_subject_gives_exactly_one_line_that_round_trips(subject in any::<String>(), sender in any::<Option<String>>()) {
            let t = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
            let record = serde_json::json!({"Subject": subject, "SenderAddress": sender});
            let mut out = Vec::new();
            frame_line(&mut out, t, "h", "a.b", &record).unwrap();
            let text = String::from_utf8(out).unwrap();
            prop_assert_eq!(text.matches('\n').count(), 1);
            prop_assert!(text.ends_with('\n'));
            prop_assert!(!text.contains('\r'));
            let json = text.trim_end_matches('\n').split_once(": ").unwrap().1;
            let back: serde_json::Value = serde_json::from_str(json).unwrap();
            prop_assert_eq!(back, record);
        }
    }
}
