//! The status line: what one tenant's tick did, as one JSON object under `STATUS_TAG`, framed
//! like the trace lines. Pure.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::checkpoint::Checkpoint;
use crate::summary::{Counts, LeaseReport, Summary};

/// The longest error message a status line carries (the whole one is in the function's log).
pub const MAX_ERROR_CHARS: usize = 1000;

/// Where a tick left its tenant, whether it finished or failed: what the status line reports
/// besides the outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Standing {
    /// The passes the tick ran, in order.
    pub passes: Vec<&'static str>,
    /// The fresh pass's position (`None` without a fresh pass, or before its first window).
    pub fresh_until: Option<DateTime<Utc>>,
    /// Every record received before this instant is in Devo in its complete form.
    pub complete_until: Option<DateTime<Utc>>,
    /// What the tick counted (what was delivered before a failure included).
    pub counts: Counts,
    /// The effective request budget (Graph), lowered while another application spends the
    /// tenant's quota.
    pub request_budget: Option<usize>,
    /// Whether every pass reached its horizon.
    pub caught_up: bool,
}

impl Standing {
    /// Where a tick left its tenant, as its `checkpoint` says (its detail queue included),
    /// after running `passes` that counted `counts`; `fresh`: the tick runs a fresh pass.
    pub fn of_checkpoint(
        checkpoint: &Checkpoint,
        passes: Vec<&'static str>,
        counts: Counts,
        fresh: bool,
    ) -> Standing {
        Standing {
            passes,
            fresh_until: checkpoint.primary.end.filter(|_| fresh),
            complete_until: checkpoint.complete_until(),
            counts: Counts {
                details_queued: checkpoint.details.len() as u64,
                ..counts
            },
            request_budget: None,
            caught_up: false,
        }
    }

    /// The same, with the effective request budget after the tick.
    pub fn with_budget(self, request_budget: Option<usize>) -> Standing {
        Standing {
            request_budget,
            ..self
        }
    }

    /// Where a finished tick left its tenant; `fresh`: the tick runs a fresh pass.
    pub fn of_summary(summary: &Summary, fresh: bool) -> Standing {
        Standing {
            passes: summary.passes.iter().map(|p| p.pass).collect(),
            fresh_until: summary.checkpoint.filter(|_| fresh),
            complete_until: summary.complete_until.or(summary.checkpoint),
            counts: summary.counts,
            request_budget: summary.request_budget,
            caught_up: summary.caught_up,
        }
    }
}

/// How a tick ended, as its status line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// It returned a summary.
    Succeeded,
    /// Another invocation wrote the checkpoint while it ran: it stopped.
    LeaseLost,
    /// It failed with this stable `errorType` and message.
    Failed {
        /// The `errorType`.
        error_type: &'a str,
        /// The message (never a secret).
        error: &'a str,
    },
}

impl Outcome<'_> {
    /// The outcome of a tick that returned `summary`.
    pub fn of(summary: &Summary) -> Outcome<'static> {
        match summary.lease {
            LeaseReport::Lost { .. } => Outcome::LeaseLost,
            _ => Outcome::Succeeded,
        }
    }
}

/// One status line's JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusLine<'a> {
    /// The registry's name of the tenant, `default` without a registry.
    pub tenant: &'a str,
    /// `graph` or `reporting`.
    pub api: &'a str,
    /// `succeeded`, `failed` or `lease_lost`.
    pub outcome: &'static str,
    /// Whether every pass reached its horizon.
    pub caught_up: bool,
    /// The passes the tick ran.
    pub passes: &'a [&'static str],
    /// Now − the fresh pass's position (`null` without a fresh pass).
    pub fresh_lag_seconds: Option<i64>,
    /// Now − the instant before which the record is complete.
    pub complete_lag_seconds: Option<i64>,
    /// Lines delivered to Devo.
    pub events_sent: u64,
    /// Records Microsoft exposed late, sent by the reconciliation pass.
    pub late_records: u64,
    /// Records sent again because their status changed.
    pub status_changes: u64,
    /// Delivery detail rows sent.
    pub details_sent: u64,
    /// Deliveries waiting for their details.
    pub details_queued: u64,
    /// Requests to Microsoft's API.
    pub requests: u64,
    /// Of those, the ones answered 429.
    pub throttled_requests: u64,
    /// 429s while this function was under its own budget: another application spends the
    /// tenant's quota.
    pub quota_contention: u64,
    /// The effective request budget per 5 minutes (Graph).
    pub request_budget: Option<usize>,
    /// The failure's `errorType`, `null` when the tick did not fail.
    pub error_type: Option<&'a str>,
    /// The failure's message (at most [`MAX_ERROR_CHARS`]), `null` when the tick did not fail.
    pub error: Option<&'a str>,
    /// The collector's version.
    pub version: &'static str,
}

impl<'a> StatusLine<'a> {
    /// The line of `tenant`'s tick against `api`, which ended with `outcome` leaving `standing`,
    /// with its lags as of `now`.
    pub fn new(
        tenant: &'a str,
        api: &'a str,
        standing: &'a Standing,
        outcome: Outcome<'a>,
        now: DateTime<Utc>,
    ) -> StatusLine<'a> {
        let lag = |t: Option<DateTime<Utc>>| t.map(|t| (now - t).num_seconds().max(0));
        let c = &standing.counts;
        let (outcome, error_type, error) = match outcome {
            Outcome::Succeeded => ("succeeded", None, None),
            Outcome::LeaseLost => ("lease_lost", None, None),
            Outcome::Failed { error_type, error } => (
                "failed",
                Some(error_type),
                Some(cut(error, MAX_ERROR_CHARS)),
            ),
        };
        StatusLine {
            tenant,
            api,
            outcome,
            caught_up: standing.caught_up,
            passes: &standing.passes,
            fresh_lag_seconds: lag(standing.fresh_until),
            complete_lag_seconds: lag(standing.complete_until),
            events_sent: c.events_sent,
            late_records: c.late_records,
            status_changes: c.status_changes,
            details_sent: c.details_sent,
            details_queued: c.details_queued,
            requests: c.requests,
            throttled_requests: c.throttled_requests,
            quota_contention: c.quota_contention,
            request_budget: standing.request_budget,
            error_type,
            error,
            version: env!("CARGO_PKG_VERSION"),
        }
    }

    /// The line as the relay receives it: `<14>{now} {hostname} {tag}: {json}\n`.
    pub fn frame(
        &self,
        now: DateTime<Utc>,
        hostname: &str,
        tag: &str,
    ) -> Result<Vec<u8>, serde_json::Error> {
        let mut out = Vec::with_capacity(512);
        crate::devo::frame_line(&mut out, now, hostname, tag, self)?;
        Ok(out)
    }
}

/// `text` cut to at most `max` characters.
fn cut(text: &str, max: usize) -> &str {
    text.char_indices()
        .nth(max)
        .map_or(text, |(i, _)| &text[..i])
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::{Value, json};

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
    }

    fn standing() -> Standing {
        Standing {
            passes: vec!["fresh", "reconcile"],
            fresh_until: Some(now() - chrono::Duration::minutes(12)),
            complete_until: Some(now() - chrono::Duration::hours(26)),
            counts: Counts {
                events_sent: 118,
                late_records: 3,
                status_changes: 5,
                requests: 7,
                throttled_requests: 1,
                quota_contention: 1,
                ..Counts::default()
            },
            request_budget: Some(45),
            caught_up: true,
        }
    }

    fn json_of(frame: &[u8]) -> Value {
        let text = std::str::from_utf8(frame).unwrap();
        assert!(
            text.ends_with('\n') && text.matches('\n').count() == 1,
            "{text}"
        );
        serde_json::from_str(text.trim_end().split_once(": ").unwrap().1).unwrap()
    }

    #[test]
    fn a_finished_tick_reports_its_lags_counts_budget_and_version_framed_like_a_trace_line() {
        let s = standing();
        let line = StatusLine::new("contoso", "graph", &s, Outcome::Succeeded, now());
        let frame = line
            .frame(now(), "contoso", "my.app.m365trace.status")
            .unwrap();
        let text = String::from_utf8(frame.clone()).unwrap();
        assert!(
            text.starts_with("<14>2026-11-25 12:00:00.000 contoso my.app.m365trace.status: {"),
            "{text}"
        );
        let v = json_of(&frame);
        assert_eq!(v["tenant"], json!("contoso"));
        assert_eq!(v["outcome"], json!("succeeded"));
        assert_eq!(v["passes"], json!(["fresh", "reconcile"]));
        assert_eq!(v["fresh_lag_seconds"], json!(720));
        assert_eq!(v["complete_lag_seconds"], json!(26 * 3600));
        assert_eq!(
            (&v["events_sent"], &v["late_records"], &v["status_changes"]),
            (&json!(118), &json!(3), &json!(5))
        );
        assert_eq!(
            (
                &v["requests"],
                &v["throttled_requests"],
                &v["quota_contention"]
            ),
            (&json!(7), &json!(1), &json!(1))
        );
        assert_eq!(
            (&v["details_sent"], &v["details_queued"]),
            (&json!(0), &json!(0))
        );
        assert_eq!(v["request_budget"], json!(45));
        assert_eq!(
            (&v["error_type"], &v["error"]),
            (&Value::Null, &Value::Null)
        );
        assert_eq!(v["version"], json!(env!("CARGO_PKG_VERSION")));
    }

    #[test]
    fn a_failed_tick_carries_its_error_type_and_a_bounded_message() {
        let s = Standing::default();
        let long = format!(
            "microsoft: token request failed: AADSTS7000215 {}",
            "é".repeat(3000)
        );
        let failed = Outcome::Failed {
            error_type: "Microsoft",
            error: &long,
        };
        let v = json_of(
            &StatusLine::new("default", "graph", &s, failed, now())
                .frame(now(), "h", "a.b")
                .unwrap(),
        );
        assert_eq!(v["outcome"], json!("failed"));
        assert_eq!(v["error_type"], json!("Microsoft"));
        let error = v["error"].as_str().unwrap();
        assert!(error.starts_with("microsoft: token request failed: AADSTS7000215"));
        assert_eq!(error.chars().count(), MAX_ERROR_CHARS);
        // Nothing known: no lag rather than a made-up one.
        assert_eq!(v["fresh_lag_seconds"], Value::Null);
        assert_eq!(v["complete_lag_seconds"], Value::Null);
    }

    #[test]
    fn without_a_fresh_pass_there_is_no_fresh_lag_and_a_lost_lease_says_so() {
        let s = Standing {
            fresh_until: None,
            complete_until: Some(now() - chrono::Duration::hours(25)),
            ..standing()
        };
        let line = StatusLine::new("t", "reporting", &s, Outcome::LeaseLost, now());
        assert_eq!(line.fresh_lag_seconds, None);
        assert_eq!(line.complete_lag_seconds, Some(25 * 3600));
        assert_eq!(line.outcome, "lease_lost");
    }
}
