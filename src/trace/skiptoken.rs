//! Graph's double-encoded skip tokens, repaired before they are followed.
//!
//! Graph sometimes returns an `@odata.nextLink` whose `$skiptoken` is base64 of a JSON object
//! whose string values carry an extra pair of literal quotes
//! (`{"StartDate":"\"2026-03-26T15:43:20.2718704Z\"",…}`); following it answers 400 "Cannot
//! process argument transformation on parameter 'StartDate'" on every try
//! (elastic/integrations#18134). [`repair`] strips that extra level and re-encodes the token
//! the way it came; anything it cannot read is left alone.

use base64::Engine;
use base64::alphabet::{Alphabet, STANDARD, URL_SAFE};
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, Serializer};
use serde_json::Value;

/// The link with its `$skiptoken` repaired, or `None` when the token is healthy, absent or
/// unreadable (then the link is followed as it is). The rest of the link stays byte-identical.
pub fn repair(link: &str) -> Option<String> {
    let query_start = link.find('?')? + 1;
    let query_end = link[query_start..]
        .find('#')
        .map_or(link.len(), |i| query_start + i);
    let mut offset = query_start;
    for param in link[query_start..query_end].split('&') {
        if let Some((name, value)) = param.split_once('=')
            && is_skiptoken(name)
            && let Some(fixed) = repair_value(value)
        {
            let value_start = offset + name.len() + 1;
            let value_end = value_start + value.len();
            return Some(format!(
                "{}{fixed}{}",
                &link[..value_start],
                &link[value_end..]
            ));
        }
        offset += param.len() + 1;
    }
    None
}

fn is_skiptoken(name: &str) -> bool {
    name.eq_ignore_ascii_case("$skiptoken") || name.eq_ignore_ascii_case("%24skiptoken")
}

/// How a token was written, so that a repaired one is written the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Form {
    url_safe: bool,
    padded: bool,
    percent_encoded: bool,
}

impl Form {
    /// Reads the form from the raw query value and its percent-decoded text. What the token
    /// does not show is taken as the safe default: padded, and `+ / =` escaped.
    fn detect(raw: &str, text: &str) -> Form {
        Form {
            url_safe: text.contains(['-', '_']),
            padded: text.ends_with('=') || text.len().is_multiple_of(4),
            percent_encoded: !raw.contains(['+', '/', '=']),
        }
    }

    fn engine(&self) -> GeneralPurpose {
        let alphabet: &Alphabet = if self.url_safe { &URL_SAFE } else { &STANDARD };
        let config = GeneralPurposeConfig::new()
            .with_encode_padding(self.padded)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent);
        GeneralPurpose::new(alphabet, config)
    }
}

/// The repaired query value, or `None` when there is nothing to repair.
fn repair_value(raw: &str) -> Option<String> {
    let text = percent_decode(raw)?;
    let form = Form::detect(raw, &text);
    let engine = form.engine();
    let json = engine.decode(text.as_bytes()).ok()?;
    let Ordered(mut fields) = serde_json::from_slice(&json).ok()?;
    let mut changed = false;
    for (_, value) in &mut fields {
        if let Value::String(s) = value
            && s.len() >= 2
            && s.starts_with('"')
            && s.ends_with('"')
        {
            *s = s[1..s.len() - 1].to_owned();
            changed = true;
        }
    }
    if !changed {
        return None;
    }
    let json = serde_json::to_vec(&Ordered(fields)).ok()?;
    let token = engine.encode(json);
    Some(if form.percent_encoded {
        percent_encode(&token)
    } else {
        token
    })
}

/// Decodes `%XX` escapes; `None` when one is broken or the result is not UTF-8.
fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Escapes the base64 characters that are not plain in a query value.
fn percent_encode(token: &str) -> String {
    token
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

/// A JSON object whose members keep their order.
struct Ordered(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ordered, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Ordered(members))
            }
        }
        d.deserialize_map(Members)
    }
}

impl Serialize for Ordered {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const BASE: &str = "https://graph.microsoft.com/v1.0/admin/exchange/tracing/messageTraces";

    fn fields(quoted: bool) -> Vec<(String, Value)> {
        let q = |s: &str| {
            Value::String(if quoted {
                format!("\"{s}\"")
            } else {
                s.to_owned()
            })
        };
        vec![
            ("StartDate".into(), q("2026-03-26T15:43:20.2718704Z")),
            ("EndDate".into(), q("2026-03-28T13:04:13.0580000Z")),
            ("StartingRecipientAddress".into(), q("user@example.com")),
            ("ResultSize".into(), Value::String("1000".into())),
        ]
    }

    fn token(members: Vec<(String, Value)>, form: &Form) -> String {
        let json = serde_json::to_vec(&Ordered(members)).unwrap();
        let token = form.engine().encode(json);
        if form.percent_encoded {
            percent_encode(&token)
        } else {
            token
        }
    }

    fn link(token: &str) -> String {
        format!("{BASE}?$filter=receivedDateTime%20ge%202026-03-26&$top=1000&$skiptoken={token}")
    }

    const PLAIN: Form = Form {
        url_safe: false,
        padded: true,
        percent_encoded: true,
    };

    #[test]
    fn the_reported_double_encoded_token_comes_back_healthy() {
        let broken = link(&token(fields(true), &PLAIN));
        let healthy = link(&token(fields(false), &PLAIN));
        assert_eq!(repair(&broken).as_deref(), Some(healthy.as_str()));
        assert_eq!(repair(&healthy), None, "a healthy token is left alone");
    }

    #[test]
    fn what_does_not_decode_is_left_alone() {
        for link in [
            format!("{BASE}?$top=10"),
            format!("{BASE}?$skiptoken=not-base64!"),
            format!("{BASE}?$skiptoken=%ZZ"),
            format!("{BASE}?$skiptoken=MTIz"), // "123": not an object
            format!("{BASE}?$skiptoken="),
            BASE.to_owned(),
        ] {
            assert_eq!(repair(&link), None, "{link}");
        }
    }

    #[test]
    fn only_one_level_of_quotes_goes_and_other_values_stay() {
        let members = vec![
            ("A".into(), Value::String("\"\"x\"\"".into())),
            ("B".into(), Value::String("\"".into())),
            ("C".into(), serde_json::json!(5)),
        ];
        let repaired = repair(&link(&token(members, &PLAIN))).unwrap();
        let expected = vec![
            ("A".into(), Value::String("\"x\"".into())),
            ("B".into(), Value::String("\"".into())),
            ("C".into(), serde_json::json!(5)),
        ];
        assert_eq!(repaired, link(&token(expected, &PLAIN)));
    }

    fn text() -> impl Strategy<Value = String> {
        "[ -~]{0,24}".prop_filter("not already quoted", |s| {
            !(s.len() >= 2 && s.starts_with('"') && s.ends_with('"'))
        })
    }

    proptest! {
        #[test]
        fn a_double_encoded_token_comes_back_exactly_as_the_healthy_one(
            values in proptest::collection::vec((("[A-Za-z]{1,12}"), text()), 1..6),
            url_safe: bool, padded: bool, percent_encoded: bool, fragment: bool,
        ) {
            let form = Form { url_safe, padded, percent_encoded };
            let mut seen = std::collections::HashSet::new();
            let healthy: Vec<(String, Value)> = values
                .into_iter()
                .filter(|(k, _)| seen.insert(k.clone()))
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            let quoted: Vec<(String, Value)> = healthy
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(format!("\"{}\"", v.as_str().unwrap_or_default()))))
                .collect();
            let tail = if fragment { "&x=1#frag" } else { "" };
            let healthy_token = token(healthy.clone(), &form);
            let broken_token = token(quoted, &form);
            let healthy_link = format!("{}{tail}", link(&healthy_token));
            let broken_link = format!("{}{tail}", link(&broken_token));
            prop_assert_eq!(repair(&healthy_link), None);
            let repaired = repair(&broken_link);
            prop_assert!(repaired.is_some());
            let repaired = repaired.unwrap_or_default();
            // Byte-identical around the token, and the token holds the healthy values.
            let (head, rest) = repaired.split_once("$skiptoken=").unwrap_or_default();
            prop_assert_eq!(head, healthy_link.split_once("$skiptoken=").unwrap_or_default().0);
            prop_assert!(rest.ends_with(tail));
            let fixed = &rest[..rest.len() - tail.len()];
            let text = percent_decode(fixed).unwrap_or_default();
            let decoded = Form::detect(fixed, &text).engine().decode(text.as_bytes()).unwrap_or_default();
            let Ordered(members) = serde_json::from_slice(&decoded).unwrap_or(Ordered(Vec::new()));
            prop_assert_eq!(members, healthy);
            // Written the same way whenever the broken token shows how it was written.
            let raw_text = percent_decode(&broken_token).unwrap_or_default();
            if Form::detect(&broken_token, &raw_text) == form {
                prop_assert_eq!(repaired, healthy_link);
            }
        }

        #[test]
        fn any_link_is_either_left_alone_or_keeps_everything_but_the_token(link in "[ -~]{0,80}") {
            if let Some(repaired) = repair(&link) {
                let cut = |l: &str| l.split("skiptoken=").next().unwrap_or_default().to_owned();
                prop_assert_eq!(cut(&repaired), cut(&link));
            }
        }
    }
}
