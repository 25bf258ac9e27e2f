//! Property tests: any page the API could send either parses or is refused with an error, and
//! every record parsed becomes exactly one Devo line whose JSON round-trips.

use chrono::{TimeZone, Utc};
use m365_trace_to_devo::devo::frame_line;
use m365_trace_to_devo::trace::graph::parse_page;
use m365_trace_to_devo::trace::record::{MappingContext, to_message_trace};
use proptest::prelude::*;
use serde_json::{Value, json};

fn any_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        "[ -~\u{80}-\u{10FFFF}\r\n\t\u{0}\u{2028}]{0,40}".prop_map(Value::from),
    ]
}

fn received() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0i64..4_000_000_000, 0u32..10_000_000).prop_map(|(s, ticks)| {
            let t = Utc.timestamp_opt(s, ticks * 100).unwrap();
            json!(format!("{}.{:07}Z", t.format("%Y-%m-%dT%H:%M:%S"), ticks))
        }),
        (0i64..4_000_000_000).prop_map(|s| json!(Utc.timestamp_opt(s, 0).unwrap().to_rfc3339())),
        any_scalar(),
    ]
}

fn record() -> impl Strategy<Value = Value> {
    (
        prop_oneof![any::<String>().prop_map(Value::from), any_scalar()],
        received(),
        prop::collection::vec(any_scalar(), 8),
        prop::collection::vec(any::<bool>(), 8),
    )
        .prop_map(|(id, received, values, present)| {
            let mut record = serde_json::Map::new();
            record.insert("id".into(), id);
            record.insert("receivedDateTime".into(), received);
            let names = [
                "messageId",
                "senderAddress",
                "recipientAddress",
                "subject",
                "status",
                "size",
                "fromIP",
                "toIP",
            ];
            for ((name, value), keep) in names.iter().zip(values).zip(present) {
                if keep {
                    record.insert((*name).into(), value);
                }
            }
            Value::Object(record)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_records_never_panic_and_give_one_line_each(records in prop::collection::vec(record(), 0..20), link in any::<Option<String>>()) {
        let body = json!({"value": records, "@odata.nextLink": link}).to_string();
        // Lenient per field: a page of objects always parses, whatever the fields hold.
        let parsed = parse_page(body.as_bytes());
        prop_assert!(parsed.is_ok(), "{:?}", parsed.err());
        if let Ok((parsed, next)) = parsed {
            prop_assert_eq!(parsed.len(), records.len());
            prop_assert_eq!(next, link);
            let start = Utc.with_ymd_and_hms(2026, 11, 24, 0, 0, 0).unwrap();
            let context = MappingContext { organization: "tenant", start, end: start + chrono::Duration::hours(6) };
            for (index, record) in parsed.iter().enumerate() {
                let mut out = Vec::new();
                let trace = to_message_trace(record, &context, index as u64);
                frame_line(&mut out, record.received_date_time.unwrap_or(start), "host", "cloud.office365.messagetracing", &trace).unwrap();
                let line = String::from_utf8(out).unwrap();
                prop_assert_eq!(line.matches('\n').count(), 1, "exactly one line");
                prop_assert!(line.ends_with('\n') && !line.contains('\r'));
                let json: Value = serde_json::from_str(line.trim_end().split_once(": ").unwrap().1).unwrap();
                prop_assert_eq!(json["Subject"].as_str(), record.subject.as_deref());
                prop_assert_eq!(json["MessageTraceId"].as_str(), Some(record.id.as_str()));
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_page(&bytes);
    }
}
