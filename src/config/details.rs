//! Delivery details (`DETAIL_STATUSES`, `DETAIL_PENDING_AFTER_SECONDS`, `DETAIL_TAG`,
//! `DETAIL_QUEUE_MAX`): which deliveries get their `getDetailsByRecipient` events, where they
//! go in Devo, and how many may wait for them.

use crate::config::env::{Env, invalid};
use crate::config::{ConfigError, defaults, is_tag};

/// The statuses `DETAIL_STATUSES` accepts (Graph's `exchangeMessageTraceStatus`, `pending`
/// aside: it has its own variable).
const ACCEPTED: [&str; 7] = [
    "failed",
    "quarantined",
    "filteredAsSpam",
    "delivered",
    "expanded",
    "recalled",
    "gettingStatus",
];

/// Which deliveries get their details, and where the detail lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetailSettings {
    /// `DETAIL_STATUSES`, in Graph's spelling; empty turns details off.
    pub statuses: Vec<&'static str>,
    /// `DETAIL_PENDING_AFTER_SECONDS`: pending deliveries get their details once they are this
    /// old; `None` (unset) leaves them out.
    pub pending_after: Option<chrono::Duration>,
    /// `DETAIL_TAG`: the Devo tag of detail lines.
    pub tag: String,
    /// `DETAIL_QUEUE_MAX`: deliveries waiting for details at most, per tenant.
    pub queue_max: usize,
}

impl DetailSettings {
    /// Whether details are fetched at all (`DETAIL_STATUSES` is not empty).
    pub fn on(&self) -> bool {
        !self.statuses.is_empty()
    }

    /// Whether a delivery with `status` gets its details (compared case-insensitively:
    /// Graph v1.0 writes `failed`, beta `Failed`). A pending one waits for `pending_after`.
    pub fn wants(&self, status: &str) -> bool {
        let status = status.trim();
        self.on()
            && (self.statuses.iter().any(|s| s.eq_ignore_ascii_case(status))
                || (self.pending_after.is_some() && status.eq_ignore_ascii_case("pending")))
    }

    /// Reads and checks the four variables; `DEVO_TAG` is the trace table and `STATUS_TAG` the
    /// status lines' (when on), which detail lines must not go into.
    pub(crate) fn read(
        env: &Env<'_>,
        devo_tag: &str,
        status_tag: Option<&str>,
    ) -> Result<DetailSettings, ConfigError> {
        let statuses = statuses(env)?;
        let pending_after = pending_after(env)?;
        let tag = env
            .get("DETAIL_TAG")
            .unwrap_or_else(|| defaults::DETAIL_TAG.to_owned());
        let problem = if tag == devo_tag {
            Some("it is DEVO_TAG, the table of the trace lines")
        } else if Some(tag.as_str()) == status_tag {
            Some("it is STATUS_TAG, the table of the status lines")
        } else if !is_tag(&tag) {
            Some("a Devo tag is dot-separated words of letters, digits, '_' or '-'")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(invalid(
                "DETAIL_TAG",
                &tag,
                problem,
                "a tag other than DEVO_TAG and STATUS_TAG, such as my.app.office365.messagetracedetail",
            ));
        }
        let max = i64::try_from(defaults::DETAIL_QUEUE_MAX).unwrap_or(1000);
        let queue_max = env.int("DETAIL_QUEUE_MAX", max, 1, 10_000)?;
        Ok(DetailSettings {
            statuses,
            pending_after,
            tag,
            queue_max: usize::try_from(queue_max).unwrap_or(defaults::DETAIL_QUEUE_MAX),
        })
    }
}

/// `DETAIL_PENDING_AFTER_SECONDS`: 0 to 10 days, or unset (pending deliveries get none).
fn pending_after(env: &Env<'_>) -> Result<Option<chrono::Duration>, ConfigError> {
    let Some(raw) = env.get("DETAIL_PENDING_AFTER_SECONDS") else {
        return Ok(None);
    };
    let accepted = "a whole number of seconds from 0 to 864000, or unset to fetch no details of pending deliveries";
    match raw.parse::<i64>() {
        Ok(s) if (0..=864_000).contains(&s) => Ok(Some(chrono::Duration::seconds(s))),
        Ok(_) => Err(invalid(
            "DETAIL_PENDING_AFTER_SECONDS",
            &raw,
            "out of range",
            accepted,
        )),
        Err(_) => Err(invalid(
            "DETAIL_PENDING_AFTER_SECONDS",
            &raw,
            "not a whole number",
            accepted,
        )),
    }
}

/// `DETAIL_STATUSES`: comma-separated statuses (any case); set empty, none (off); unset, the
/// default.
fn statuses(env: &Env<'_>) -> Result<Vec<&'static str>, ConfigError> {
    let raw = env
        .as_set("DETAIL_STATUSES")
        .unwrap_or_else(|| defaults::DETAIL_STATUSES.to_owned());
    let accepted = format!(
        "a comma-separated list of {} (any case), or empty to fetch no details; pending deliveries are asked for with DETAIL_PENDING_AFTER_SECONDS",
        ACCEPTED.join(", ")
    );
    let mut out: Vec<&'static str> = Vec::new();
    for word in raw.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let Some(status) = ACCEPTED.iter().find(|a| a.eq_ignore_ascii_case(word)) else {
            let problem = if word.eq_ignore_ascii_case("pending") {
                "pending is not a final status: set DETAIL_PENDING_AFTER_SECONDS to fetch the details of deliveries still pending after that long".to_owned()
            } else {
                format!("{word:?} is not a message trace status")
            };
            return Err(invalid("DETAIL_STATUSES", &raw, &problem, &accepted));
        };
        if !out.contains(status) {
            out.push(status);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<DetailSettings, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = |k: &str| env.get(k).cloned();
        DetailSettings::read(
            &Env::new(&lookup),
            defaults::DEVO_TAG,
            Some(defaults::STATUS_TAG),
        )
    }

    #[test]
    fn the_default_fetches_failed_quarantined_and_spam_deliveries_and_empty_turns_it_off() {
        let d = read(&[]).unwrap();
        assert_eq!(d.statuses, ["failed", "quarantined", "filteredAsSpam"]);
        assert!(d.wants("Failed") && d.wants("filteredasspam") && d.wants("quarantined"));
        assert!(!d.wants("delivered") && !d.wants("pending"));
        assert_eq!(
            (d.tag.as_str(), d.queue_max, d.pending_after),
            ("my.app.office365.messagetracedetail", 1000, None)
        );
        let off = read(&[
            ("DETAIL_STATUSES", ""),
            ("DETAIL_PENDING_AFTER_SECONDS", "0"),
        ])
        .unwrap();
        assert!(!off.on() && !off.wants("failed") && !off.wants("pending"));
        let own = read(&[
            ("DETAIL_STATUSES", " Failed , RECALLED,failed"),
            ("DETAIL_PENDING_AFTER_SECONDS", "3600"),
        ])
        .unwrap();
        assert_eq!(own.statuses, ["failed", "recalled"]);
        assert!(own.wants("pending") && own.wants("Recalled") && !own.wants("quarantined"));
        assert_eq!(own.pending_after, Some(chrono::Duration::hours(1)));
    }

    #[test]
    fn a_bad_value_names_the_variable_and_what_is_accepted() {
        let err = read(&[("DETAIL_STATUSES", "failed,bounced")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("DETAIL_STATUSES=\"failed,bounced\" is invalid: \"bounced\" is not a message trace status; accepted: a comma-separated list of failed, quarantined, filteredAsSpam"),
            "{err}"
        );
        let err = read(&[("DETAIL_STATUSES", "pending")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("set DETAIL_PENDING_AFTER_SECONDS"), "{err}");
        let err = read(&[("DETAIL_TAG", "cloud.office365.messagetracing")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("DETAIL_TAG=") && err.contains("it is DEVO_TAG"),
            "{err}"
        );
        let err = read(&[("DETAIL_TAG", "my.app.m365trace.status")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("it is STATUS_TAG"), "{err}");
        let err = read(&[("DETAIL_QUEUE_MAX", "0")]).unwrap_err().to_string();
        assert!(err.contains("from 1 to 10000"), "{err}");
        let err = read(&[("DETAIL_PENDING_AFTER_SECONDS", "-1")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("DETAIL_PENDING_AFTER_SECONDS") && err.contains("from 0 to 864000"),
            "{err}"
        );
    }
}
