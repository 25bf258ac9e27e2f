//! Deterministic, realistic Graph message trace records.
//!
//! Exists so the Graph stand-in, the product's tests, the demo and the benchmark all work on the
//! same kind of data that Microsoft returns, including the awkward parts (multi-recipient
//! messages sharing one id, Unicode and control characters in subjects, null fields).

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One Graph exchangeMessageTrace record as the API returns it (camelCase JSON).
///
/// `receivedDateTime` is serialized like Graph does, with 7 fractional digits
/// (`2026-11-24T10:15:30.1234567Z`); any RFC 3339 value is accepted when deserializing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphRecord {
    /// Message trace id (GUID); shared by every recipient of one message.
    pub id: String,
    /// Internet message id, e.g. `<...@....prod.outlook.com>`.
    pub message_id: String,
    /// When Exchange received the message.
    #[serde(serialize_with = "ser_graph_time", deserialize_with = "de_graph_time")]
    pub received_date_time: DateTime<Utc>,
    /// Envelope sender.
    pub sender_address: String,
    /// One recipient (a message with n recipients is n records).
    pub recipient_address: String,
    /// Subject, when known.
    pub subject: Option<String>,
    /// exchangeMessageTraceStatus: delivered, failed, pending, expanded, quarantined,
    /// filteredAsSpam, gettingStatus.
    pub status: String,
    /// Size in bytes.
    pub size: i64,
    /// Sending server's IP.
    #[serde(rename = "fromIP")]
    pub from_ip: Option<String>,
    /// Receiving server's IP.
    #[serde(rename = "toIP")]
    pub to_ip: Option<String>,
}

/// Formats a time the way Graph writes `receivedDateTime` (7 fractional digits, `Z`).
///
/// chrono's strftime has no `%.7f` (only 3, 6 and 9 digits), hence the manual fraction.
pub fn graph_time(t: &DateTime<Utc>) -> String {
    use chrono::Timelike;
    let ticks = (t.nanosecond() % 1_000_000_000) / 100;
    format!("{}.{ticks:07}Z", t.format("%Y-%m-%dT%H:%M:%S"))
}

fn ser_graph_time<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&graph_time(t))
}

fn de_graph_time<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let s = String::deserialize(d)?;
    DateTime::parse_from_rfc3339(&s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(serde::de::Error::custom)
}

/// SplitMix64: small, fast and deterministic across platforms and versions.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
    /// True with probability percent/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const SENDER_DOMAINS: &[&str] = &[
    "contoso.com",
    "fabrikam.com",
    "northwindtraders.com",
    "adatum.com",
    "tailspintoys.com",
    "wingtiptoys.com",
    "example.org",
    "mail.example.net",
    "newsletter.example.com",
    "münchen-beispiel.de",
];
const LOCAL_PARTS: &[&str] = &[
    "alex.wilber",
    "megan.bowen",
    "lee.gu",
    "nestor.wilke",
    "patti.fernandez",
    "diego.siciliani",
    "isaiah.langer",
    "johanna.lorenz",
    "lidia.holloway",
    "lynne.robbins",
    "noreply",
    "billing",
    "support",
    "hr-team",
    "o'brien",
    "j.smith+invoices",
];
const RECIPIENT_DOMAINS: &[&str] = &[
    "contoso.com",
    "contoso.onmicrosoft.com",
    "sales.contoso.com",
];
const SUBJECTS: &[&str] = &[
    "Quarterly results",
    "RE: Project Falcon status",
    "FW: Invoice #48213 overdue",
    "Meeting notes 2026-11-24",
    "Your order has shipped",
    "Réunion de l'équipe – ordre du jour",
    "Überprüfung der Verträge für München",
    "会议纪要：第四季度计划",
    "見積書の送付について",
    "회의 일정 변경 안내",
    "🎉 Team offsite confirmed! 🚀",
    "Café ☕ on Friday?",
    "He said \"ship it\" — really?",
    "Path C:\\Users\\shared\\report.xlsx",
    "Tab\tseparated\tsubject",
    "Line one\r\nLine two",
    "Weekly digest\r\n\tfolded header",
    "Ελληνικά: Προσφορά",
    "Привет из Москвы",
    "مرحبا بالعالم",
    "Null byte? no: \u{7f} DEL and \u{1b}[0m escape",
    "Password reset request",
    "[EXTERNAL] Action required: verify your account",
    "",
    "A very long subject line that goes on and on to see how the pipeline copes with subjects that are much longer than usual, well past one hundred and twenty characters in total",
];
const STATUSES: &[(&str, u64)] = &[
    ("delivered", 78),
    ("failed", 5),
    ("pending", 3),
    ("expanded", 4),
    ("quarantined", 3),
    ("filteredAsSpam", 5),
    ("gettingStatus", 2),
];

fn status(rng: &mut Rng) -> &'static str {
    let mut roll = rng.below(100);
    for (name, weight) in STATUSES {
        if roll < *weight {
            return name;
        }
        roll -= weight;
    }
    "delivered"
}

fn guid(rng: &mut Rng) -> String {
    let a = rng.next_u64();
    let b = rng.next_u64();
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        (a & 0x0fff) | 0x4000,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

fn ip(rng: &mut Rng) -> String {
    match rng.below(10) {
        0..=3 => format!("203.0.113.{}", rng.below(254) + 1),
        4..=6 => format!("198.51.100.{}", rng.below(254) + 1),
        7 | 8 => format!("192.0.2.{}", rng.below(254) + 1),
        _ => format!(
            "2001:db8:{:x}::{:x}",
            rng.below(0xffff),
            rng.below(0xffff) + 1
        ),
    }
}

fn size(rng: &mut Rng) -> i64 {
    // Mostly small messages, a long tail of attachments.
    match rng.below(100) {
        0..=59 => 2_000 + rng.below(40_000) as i64,
        60..=89 => 40_000 + rng.below(400_000) as i64,
        90..=98 => 400_000 + rng.below(5_000_000) as i64,
        _ => 5_000_000 + rng.below(30_000_000) as i64,
    }
}

/// `n` records of `records`, evenly spread, with the status each changes to (`(id, recipient,
/// new status)`): Pending and Failed become Delivered, any other status Failed.
pub fn status_changes(records: &[GraphRecord], n: usize) -> Vec<(String, String, String)> {
    let step = (records.len() / n.max(1)).max(1);
    records
        .iter()
        .step_by(step)
        .take(n)
        .map(|r| {
            let done = ["pending", "failed"]
                .iter()
                .any(|s| r.status.eq_ignore_ascii_case(s));
            let to = if done { "Delivered" } else { "Failed" };
            (r.id.clone(), r.recipient_address.clone(), to.to_owned())
        })
        .collect()
}

/// Deterministic, realistic records spread over [start, end): exactly `count` records.
///
/// About 20% of messages have 2-3 recipients that share the same `id` and `receivedDateTime`;
/// subjects vary and include non-ASCII text, quotes, backslashes, tabs and "\r\n"; some
/// `fromIP`/`toIP`/`subject` are null. Times have 100 ns resolution (7 fractional digits).
/// Records come back in ascending time order. An empty or inverted range puts every record at
/// `start`.
pub fn generate(
    seed: u64,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    count: usize,
) -> Vec<GraphRecord> {
    let mut rng = Rng::new(seed);
    // Graph's timestamps have 100 ns resolution: align the start up to a tick.
    let rem = i64::from(start.timestamp_subsec_nanos() % 100);
    let start = start + TimeDelta::nanoseconds((100 - rem) % 100);
    let span_ticks = (end - start)
        .num_microseconds()
        .map(|us| us.saturating_mul(10))
        .unwrap_or(i64::MAX)
        .max(0) as u64;
    let mut out = Vec::with_capacity(count);
    let mut serial: u64 = 0;
    while out.len() < count {
        let ticks = rng.below(span_ticks);
        let received = start + TimeDelta::nanoseconds((ticks as i64).saturating_mul(100));
        let message = Message::random(&mut rng, received, serial);
        serial += 1;
        let recipients = if rng.chance(20) {
            2 + rng.below(2) as usize
        } else {
            1
        };
        message.push_records(&mut rng, recipients.min(count - out.len()), &mut out);
    }
    out.sort_by(|a, b| {
        a.received_date_time
            .cmp(&b.received_date_time)
            .then_with(|| a.id.cmp(&b.id))
            .then_with(|| a.recipient_address.cmp(&b.recipient_address))
    });
    out
}

/// What every recipient's record of one message shares.
struct Message {
    id: String,
    message_id: String,
    received: DateTime<Utc>,
    sender: String,
    subject: Option<String>,
    status: &'static str,
    size: i64,
    from_ip: Option<String>,
}

impl Message {
    /// A random message received at `received`; `serial` makes its message id unique.
    fn random(rng: &mut Rng, received: DateTime<Utc>, serial: u64) -> Message {
        let id = guid(rng);
        let sender_domain = *rng.pick(SENDER_DOMAINS);
        let sender = format!("{}@{}", rng.pick(LOCAL_PARTS), sender_domain);
        let message_id = format!(
            "<{:016X}{:04X}@{}.prod.outlook.com>",
            rng.next_u64(),
            serial & 0xffff,
            [
                "SA1PR12MB6727",
                "DM6PR04MB4123",
                "AM0PR07MB5489",
                "BY5PR11MB3975"
            ][rng.below(4) as usize]
        );
        let subject = if rng.chance(4) {
            None
        } else {
            Some(rng.pick(SUBJECTS).to_string())
        };
        let status = status(rng);
        let size = size(rng);
        let from_ip = if rng.chance(8) { None } else { Some(ip(rng)) };
        Message {
            id,
            message_id,
            received,
            sender,
            subject,
            status,
            size,
            from_ip,
        }
    }

    /// Appends one record per recipient (distinct recipients) to `out`.
    fn push_records(&self, rng: &mut Rng, recipients: usize, out: &mut Vec<GraphRecord>) {
        let mut used = Vec::new();
        for n in 0..recipients {
            let mut recipient =
                format!("{}@{}", rng.pick(LOCAL_PARTS), rng.pick(RECIPIENT_DOMAINS));
            if used.contains(&recipient) {
                recipient = format!("user{n}.{recipient}");
            }
            used.push(recipient.clone());
            let to_ip = if rng.chance(25) { None } else { Some(ip(rng)) };
            out.push(GraphRecord {
                id: self.id.clone(),
                message_id: self.message_id.clone(),
                received_date_time: self.received,
                sender_address: self.sender.clone(),
                recipient_address: recipient,
                subject: self.subject.clone(),
                status: self.status.to_string(),
                size: self.size,
                from_ip: self.from_ip.clone(),
                to_ip,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_in_range() {
        let start = Utc::now() - TimeDelta::days(3);
        let end = start + TimeDelta::days(1);
        let a = generate(7, start, end, 500);
        let b = generate(7, start, end, 500);
        assert_eq!(a, b);
        assert_eq!(a.len(), 500);
        assert!(
            a.iter()
                .all(|r| r.received_date_time >= start && r.received_date_time < end)
        );
        let shared = a.windows(2).filter(|w| w[0].id == w[1].id).count();
        assert!(shared > 20, "multi-recipient messages: {shared}");
        assert!(a.iter().any(|r| r.subject.is_none()));
        assert!(a.iter().any(|r| r.to_ip.is_none()));
        assert!(
            a.iter()
                .any(|r| r.subject.as_deref().is_some_and(|s| s.contains("\r\n")))
        );
        assert!(
            a.iter()
                .any(|r| r.subject.as_deref().is_some_and(|s| !s.is_ascii()))
        );
        assert_ne!(generate(8, start, end, 500), a);
    }

    #[test]
    fn serializes_like_graph() {
        let start = DateTime::parse_from_rfc3339("2026-11-24T10:15:30Z")
            .unwrap()
            .with_timezone(&Utc);
        let r = &generate(1, start, start + TimeDelta::hours(1), 1)[0];
        let v = serde_json::to_value(r).unwrap();
        let t = v["receivedDateTime"].as_str().unwrap();
        assert_eq!(t.len(), "2026-11-24T10:15:30.1234567Z".len(), "{t}");
        for key in [
            "id",
            "messageId",
            "senderAddress",
            "recipientAddress",
            "subject",
            "status",
            "size",
            "fromIP",
            "toIP",
        ] {
            assert!(v.get(key).is_some(), "{key} missing in {v}");
        }
        let back: GraphRecord = serde_json::from_value(v).unwrap();
        assert_eq!(&back, r);
    }
}
