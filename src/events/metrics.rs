//! CloudWatch Embedded Metric Format: one JSON document per tick in the function's log, turned
//! into metrics by CloudWatch Logs (no API call, no IAM permission). Pure.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::summary::Summary;

/// Namespace of every metric.
pub const NAMESPACE: &str = "M365TraceToDevo";

/// The metrics that also carry the `Tenant` dimension: what tells one tenant's health from
/// another's (each costs one custom metric per tenant; the rest are per function only).
pub const PER_TENANT: [&str; 3] = ["TickFailed", "LagSeconds", "FreshLagSeconds"];

/// Whose tick the document measures.
#[derive(Debug, Clone, Copy)]
pub struct Dimensions<'a> {
    /// The Lambda function.
    pub function_name: &'a str,
    /// `TRACE_API`.
    pub api: &'a str,
    /// The tenant's registry name, `default` for a deployment without a registry.
    pub tenant: &'a str,
    /// Whether the [`PER_TENANT`] metrics are also published per tenant (`TENANT_METRICS`).
    pub per_tenant: bool,
}

/// What a tick measured, success or failure.
#[derive(Debug, Clone, Copy)]
pub enum TickMetrics<'a> {
    /// A tick that returned a summary.
    Finished(&'a Summary),
    /// A tick that failed (its counters are not known, but these are).
    Failed(FailedTick<'a>),
}

/// What a failed tick still reports.
#[derive(Debug, Clone, Copy, Default)]
pub struct FailedTick<'a> {
    /// What became of its status line (`sent`, `not_sent`, `off`), when one was due.
    pub status_line: Option<&'a str>,
    /// 429s it heard while under the tenant's own budget.
    pub quota_contention: u64,
}

/// `StatusLineFailed`: 1 when a due status line could not be sent, 0 when it was; none when no
/// line was due or `STATUS_TAG` is empty.
fn status_line_failed(status_line: Option<&str>) -> Option<(&'static str, &'static str, Value)> {
    match status_line {
        Some("sent") => Some(("StatusLineFailed", "Count", json!(0))),
        Some("not_sent") => Some(("StatusLineFailed", "Count", json!(1))),
        _ => None,
    }
}

/// The EMF document of one tick, with the function name and the API as dimensions, and the
/// [`PER_TENANT`] metrics also per tenant (so the lag alarm on FunctionName + Api sees the
/// worst tenant, and the dashboard each one). `LagSeconds` (now − the checkpoint's end) is
/// included for a scheduled tick with a checkpoint.
pub fn emf(
    tick: TickMetrics<'_>,
    dimensions: &Dimensions<'_>,
    duration_ms: u64,
    now: DateTime<Utc>,
) -> Value {
    let mut values: Vec<(&str, &str, Value)> = vec![("TickFailed", "Count", json!(0))];
    match tick {
        TickMetrics::Finished(summary) => {
            let c = &summary.counts;
            values.extend([
                ("RecordsPulled", "Count", json!(c.records_pulled)),
                ("EventsSent", "Count", json!(c.events_sent)),
                ("BytesSent", "Bytes", json!(c.bytes_sent)),
                ("PossibleDuplicates", "Count", json!(c.unconfirmed_lines)),
                ("Pages", "Count", json!(c.pages)),
                ("ApiRequests", "Count", json!(c.requests)),
                ("Retries", "Count", json!(c.retries)),
                ("ThrottledRequests", "Count", json!(c.throttled_requests)),
                ("QuotaContention", "Count", json!(c.quota_contention)),
                ("Windows", "Count", json!(c.windows)),
                ("DetailsSent", "Count", json!(c.details_sent)),
                ("DetailsQueued", "Count", json!(c.details_queued)),
                ("DetailsDropped", "Count", json!(c.details_dropped)),
            ]);
            values.extend(status_line_failed(summary.status_line));
            if summary.passes.iter().any(|p| p.pass == "reconcile") {
                let gap = crate::checkpoint::second_look::seconds(&summary.reconcile_gaps);
                values.extend([
                    ("LateRecords", "Count", json!(c.late_records)),
                    ("StatusChanges", "Count", json!(c.status_changes)),
                    ("ReconcileGapSeconds", "Seconds", json!(gap)),
                ]);
            }
            if let Some(audit) = &summary.audit {
                values.extend([
                    ("AuditMissing", "Count", json!(audit.missing)),
                    ("AuditExtra", "Count", json!(audit.extra)),
                ]);
            }
            // Lag is the schedule's: a backfill's checkpoint is meant to be far behind. With
            // two passes, LagSeconds is the complete record's and FreshLagSeconds the fresh
            // pass's.
            if summary.backfill.is_none() {
                let complete = summary.complete_until.or(summary.checkpoint);
                if let Some(end) = complete {
                    let lag = (now - end).num_seconds().max(0);
                    values.push(("LagSeconds", "Seconds", json!(lag)));
                }
                let fresh = summary.passes.iter().any(|p| p.pass == "fresh");
                if let Some(end) = summary.checkpoint.filter(|_| fresh) {
                    let lag = (now - end).num_seconds().max(0);
                    values.push(("FreshLagSeconds", "Seconds", json!(lag)));
                }
            }
        }
        TickMetrics::Failed(failed) => {
            values[0].2 = json!(1);
            values.push(("QuotaContention", "Count", json!(failed.quota_contention)));
            values.extend(status_line_failed(failed.status_line));
        }
    }
    values.push(("TickDuration", "Milliseconds", json!(duration_ms)));
    document(values, dimensions, now)
}

/// What a dispatch measured.
#[derive(Debug, Clone, Copy)]
pub struct DispatchCounts {
    /// Tenant ticks started.
    pub dispatched: usize,
    /// Tenant ticks that could not be started after retries (`DispatchFailed`).
    pub failed: usize,
    /// Registry entries that cannot run (`RegistryErrors`).
    pub registry_errors: usize,
    /// Wall time of the fan-out.
    pub duration_ms: u64,
}

/// The EMF document of one dispatch, per function and API: what the `DispatchFailed` and
/// `RegistryErrors` alarms watch.
pub fn dispatch_emf(
    dimensions: &Dimensions<'_>,
    counts: DispatchCounts,
    now: DateTime<Utc>,
) -> Value {
    let values = vec![
        ("TenantsDispatched", "Count", json!(counts.dispatched)),
        ("DispatchFailed", "Count", json!(counts.failed)),
        ("RegistryErrors", "Count", json!(counts.registry_errors)),
        (
            "DispatchDuration",
            "Milliseconds",
            json!(counts.duration_ms),
        ),
    ];
    document(
        values,
        &Dimensions {
            per_tenant: false,
            ..*dimensions
        },
        now,
    )
}

/// The EMF document of `values`: the directives (per function, and per tenant for
/// [`PER_TENANT`] when asked), the dimensions' values and the metrics' values.
fn document(
    values: Vec<(&str, &str, Value)>,
    dimensions: &Dimensions<'_>,
    now: DateTime<Utc>,
) -> Value {
    let definitions: Vec<Value> = values
        .iter()
        .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
        .collect();
    let per_tenant: Vec<Value> = definitions
        .iter()
        .filter(|d| PER_TENANT.iter().any(|name| d["Name"] == *name))
        .cloned()
        .collect();
    let mut directives = vec![json!({
        "Namespace": NAMESPACE,
        "Dimensions": [["FunctionName", "Api"]],
        "Metrics": definitions,
    })];
    if dimensions.per_tenant {
        directives.push(json!({
            "Namespace": NAMESPACE,
            "Dimensions": [["FunctionName", "Api", "Tenant"]],
            "Metrics": per_tenant,
        }));
    }
    let mut document = Map::new();
    document.insert(
        "_aws".into(),
        json!({
            "Timestamp": now.timestamp_millis(),
            "CloudWatchMetrics": directives,
        }),
    );
    document.insert("FunctionName".into(), json!(dimensions.function_name));
    document.insert("Api".into(), json!(dimensions.api));
    document.insert("Tenant".into(), json!(dimensions.tenant));
    for (name, _, value) in values {
        document.insert(name.into(), value);
    }
    Value::Object(document)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::summary::{Counts, LeaseReport};

    const DIMS: Dimensions<'static> = Dimensions {
        function_name: "collector",
        api: "graph",
        tenant: "default",
        per_tenant: true,
    };

    fn summary() -> Summary {
        Summary {
            api: "graph",
            lease: LeaseReport::Acquired {
                owner: "r".into(),
                expires_at: Utc::now(),
            },
            counts: Counts {
                windows: 2,
                pages: 3,
                requests: 5,
                retries: 2,
                throttled_requests: 1,
                records_pulled: 120,
                events_sent: 118,
                bytes_sent: 70_000,
                unconfirmed_lines: 7,
                duplicates_skipped: 2,
                outside_window: 0,
                missing_key: 0,
                late_records: 0,
                status_changes: 0,
                ledger_missing: 0,
                details_sent: 9,
                details_queued: 4,
                details_dropped: 1,
                quota_contention: 1,
                cutover_suppressed: 3,
            },
            checkpoint: Some(Utc.with_ymd_and_hms(2026, 11, 24, 11, 0, 0).unwrap()),
            partial: None,
            caught_up: true,
            complete_until: None,
            passes: Vec::new(),
            skipped: None,
            reconcile_gaps: Vec::new(),
            split: None,
            duration_ms: 900,
            backfill: None,
            reset: None,
            audit: None,
            request_budget: Some(45),
            status_line: Some("sent"),
        }
    }

    #[test]
    fn a_scheduled_audit_reports_missing_and_extra_records() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        let mut s = summary();
        let doc = emf(TickMetrics::Finished(&s), &DIMS, 900, now);
        assert!(doc.get("AuditMissing").is_none(), "no audit, no metric");
        s.audit = Some(crate::summary::AuditSummary {
            hours: 3,
            missing: 5,
            extra: 2,
            ..Default::default()
        });
        let doc = emf(TickMetrics::Finished(&s), &DIMS, 900, now);
        assert_eq!(
            (doc["AuditMissing"].clone(), doc["AuditExtra"].clone()),
            (json!(5), json!(2))
        );
    }

    #[test]
    fn two_passes_report_late_records_status_changes_and_both_lags() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        let mut s = summary();
        s.checkpoint = Some(now - chrono::Duration::minutes(15));
        s.complete_until = Some(now - chrono::Duration::hours(26));
        s.counts.late_records = 4;
        s.counts.status_changes = 7;
        s.passes = vec![
            crate::summary::PassReport::new("fresh", &s.counts, true),
            crate::summary::PassReport::new("reconcile", &s.counts, true),
        ];
        let doc = emf(TickMetrics::Finished(&s), &DIMS, 900, now);
        assert_eq!(doc["LateRecords"], json!(4));
        assert_eq!(doc["StatusChanges"], json!(7));
        assert_eq!(doc["FreshLagSeconds"], json!(15 * 60));
        assert_eq!(doc["LagSeconds"], json!(26 * 3600));
    }

    #[test]
    fn a_finished_tick_is_one_emf_document_with_every_metric() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        let s = summary();
        let doc = emf(TickMetrics::Finished(&s), &DIMS, 900, now);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(doc["_aws"]["Timestamp"], json!(now.timestamp_millis()));
        assert_eq!(directive["Namespace"], json!("M365TraceToDevo"));
        assert_eq!(directive["Dimensions"], json!([["FunctionName", "Api"]]));
        assert_eq!(doc["FunctionName"], json!("collector"));
        assert_eq!(doc["Api"], json!("graph"));
        let expected = [
            ("TickFailed", 0),
            ("RecordsPulled", 120),
            ("EventsSent", 118),
            ("BytesSent", 70_000),
            ("PossibleDuplicates", 7),
            ("Pages", 3),
            ("ApiRequests", 5),
            ("Retries", 2),
            ("ThrottledRequests", 1),
            ("QuotaContention", 1),
            ("Windows", 2),
            ("DetailsSent", 9),
            ("DetailsQueued", 4),
            ("DetailsDropped", 1),
            ("StatusLineFailed", 0),
            ("LagSeconds", 25 * 3600),
            ("TickDuration", 900),
        ];
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, expected.iter().map(|(n, _)| *n).collect::<Vec<_>>());
        for (name, value) in expected {
            assert_eq!(doc[name], json!(value), "{name}");
        }
        // Every metric named in the directive has a value at the top level (EMF's rule).
        for m in directive["Metrics"].as_array().unwrap() {
            assert!(doc[m["Name"].as_str().unwrap()].is_number());
            assert!(m["Unit"].is_string());
        }
    }

    #[test]
    fn a_backfill_reports_no_lag() {
        let mut s = summary();
        s.backfill = Some(crate::checkpoint::backfill::Report {
            name: "n".into(),
            key: "k".into(),
            start: Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
            end: Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap(),
            done_until: Utc.with_ymd_and_hms(2026, 11, 1, 6, 0, 0).unwrap(),
            remaining_seconds: 64_800,
            complete: false,
        });
        let doc = emf(TickMetrics::Finished(&s), &DIMS, 900, Utc::now());
        assert!(doc.get("LagSeconds").is_none());
        assert_eq!(doc["EventsSent"], json!(118));
    }

    #[test]
    fn a_failed_tick_reports_tick_failed_and_its_duration_only() {
        let now = Utc::now();
        let doc = emf(TickMetrics::Failed(FailedTick::default()), &DIMS, 1200, now);
        let names: Vec<&str> = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["TickFailed", "QuotaContention", "TickDuration"]);
        assert_eq!(doc["TickFailed"], json!(1));
        assert_eq!(doc["TickDuration"], json!(1200));
    }

    #[test]
    fn a_status_line_that_could_not_be_sent_is_counted_whatever_the_tick_did() {
        let failed = FailedTick {
            status_line: Some("not_sent"),
            quota_contention: 2,
        };
        let doc = emf(TickMetrics::Failed(failed), &DIMS, 10, Utc::now());
        assert_eq!(
            (&doc["StatusLineFailed"], &doc["QuotaContention"]),
            (&json!(1), &json!(2))
        );
        let mut s = summary();
        s.status_line = Some("not_sent");
        let doc = emf(TickMetrics::Finished(&s), &DIMS, 10, Utc::now());
        assert_eq!(doc["StatusLineFailed"], json!(1));
        // STATUS_TAG empty, or no line due: no data rather than a reassuring 0.
        s.status_line = Some("off");
        let doc = emf(TickMetrics::Finished(&s), &DIMS, 10, Utc::now());
        assert!(doc.get("StatusLineFailed").is_none());
        s.status_line = None;
        let doc = emf(TickMetrics::Finished(&s), &DIMS, 10, Utc::now());
        assert!(doc.get("StatusLineFailed").is_none());
    }

    #[test]
    fn lag_and_failures_are_also_per_tenant() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        let s = summary();
        let dims = Dimensions {
            tenant: "contoso",
            ..DIMS
        };
        let doc = emf(TickMetrics::Finished(&s), &dims, 900, now);
        assert_eq!(doc["Tenant"], json!("contoso"));
        let per_tenant = &doc["_aws"]["CloudWatchMetrics"][1];
        assert_eq!(
            per_tenant["Dimensions"],
            json!([["FunctionName", "Api", "Tenant"]])
        );
        let names: Vec<&str> = per_tenant["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["TickFailed", "LagSeconds"]);
        let failed = emf(TickMetrics::Failed(FailedTick::default()), &dims, 10, now);
        assert_eq!(
            failed["_aws"]["CloudWatchMetrics"][1]["Metrics"],
            json!([{"Name": "TickFailed", "Unit": "Count"}])
        );
        // TENANT_METRICS=off: per function only; the Tenant field stays for Logs Insights.
        let off = Dimensions {
            per_tenant: false,
            ..dims
        };
        let doc = emf(TickMetrics::Finished(&s), &off, 900, now);
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"].as_array().unwrap().len(),
            1
        );
        assert_eq!(doc["Tenant"], json!("contoso"));
    }

    #[test]
    fn a_dispatch_counts_what_it_could_not_start_and_the_entries_it_could_not_read() {
        let counts = DispatchCounts {
            dispatched: 48,
            failed: 1,
            registry_errors: 2,
            duration_ms: 900,
        };
        let doc = dispatch_emf(&DIMS, counts, Utc::now());
        assert_eq!(
            (
                &doc["TenantsDispatched"],
                &doc["DispatchFailed"],
                &doc["RegistryErrors"]
            ),
            (&json!(48), &json!(1), &json!(2))
        );
        let directives = doc["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 1, "per function only");
        assert_eq!(
            directives[0]["Dimensions"],
            json!([["FunctionName", "Api"]])
        );
    }
}
