//! Step 1 of a tick: the environment, validated into a [`Config`] before anything is touched.
//!
//! One file a concern: [`defaults`], reading variables (`env`), the Devo settings (`devo`), the
//! API and cloud (`api`), the window rules (`rules`), the request limits (`limits`), the
//! delivery details (`details`) and Devo's Query API (`query`).

mod api;
pub(crate) mod cloud;
pub mod defaults;
mod details;
mod devo;
mod env;
mod limits;
pub mod query;
mod rules;

use std::time::Duration;

use thiserror::Error;

use crate::config::cloud::{Cloud, Endpoints};
pub use details::DetailSettings;
pub(crate) use devo::is_tag;
use env::{Env, invalid};

/// A configuration problem, naming the variable, what is wrong with its value and what is accepted.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("{var} is required but not set: {hint}")]
    Missing {
        /// The environment variable.
        var: &'static str,
        /// What to put there.
        hint: &'static str,
    },
    /// A variable is set to a value that cannot be used.
    #[error("{var}={value:?} is invalid: {problem}; accepted: {accepted}")]
    Invalid {
        /// The environment variable.
        var: &'static str,
        /// The value as found (configuration values are never secrets).
        value: String,
        /// What is wrong with it.
        problem: String,
        /// What would be accepted.
        accepted: String,
    },
    /// Two settings that are each valid but together can never pull a record.
    #[error(
        "{var}={value:?} cannot be used with {other}={other_value}: {problem}; accepted: {accepted}"
    )]
    NeverPulls {
        /// The variable to change.
        var: &'static str,
        value: String,
        /// The variable it conflicts with.
        other: &'static str,
        /// That variable's value.
        other_value: &'static str,
        /// Why nothing could ever be pulled.
        problem: String,
        /// What would be accepted, given the other variable.
        accepted: String,
    },
}

/// Which Microsoft API the records are pulled from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceApi {
    /// Microsoft Graph `admin/exchange/tracing/messageTraces` (default).
    Graph,
    /// The legacy Reporting Web Service `MessageTrace` report.
    Reporting,
}

impl TraceApi {
    /// How far back the API serves records.
    pub fn lookback(self) -> chrono::Duration {
        match self {
            TraceApi::Graph => chrono::Duration::days(90),
            TraceApi::Reporting => chrono::Duration::days(10),
        }
    }

    /// The longest span one query may cover.
    pub fn max_query_span(self) -> chrono::Duration {
        chrono::Duration::days(10)
    }

    /// The name used in logs, metrics and summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            TraceApi::Graph => "graph",
            TraceApi::Reporting => "reporting",
        }
    }
}

/// The delay / historic / margin / maximum-window rules (docs/design.md, "Windows").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowRules {
    /// A window never ends later than now − delay.
    pub delay: chrono::Duration,
    /// With no checkpoint, start this far back.
    pub historic: chrono::Duration,
    /// A start outside the API's lookback moves to the limit plus this margin.
    pub margin: chrono::Duration,
    /// The longest window (already capped to the API's query limit).
    pub max_window: chrono::Duration,
    /// How far back the API serves records.
    pub lookback: chrono::Duration,
}

impl WindowRules {
    /// The oldest instant a pull may start at `now`: the API's lookback less `MARGIN_SECONDS`,
    /// so that a request is not refused for a start that slid out while it was sent.
    pub fn earliest(&self, now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        now - self.lookback + self.margin
    }
}

/// Everything a tick needs to know, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Secrets Manager secret name or ARN.
    pub secret_id: String,
    /// S3 bucket of the checkpoint.
    pub state_bucket: String,
    /// Key of the scheduled checkpoint object.
    pub state_key: String,
    /// Devo relay `host:port`.
    pub devo_address: String,
    /// Devo tag (the table).
    pub devo_tag: String,
    /// Host field of each event line.
    pub devo_hostname: String,
    /// Name the relay's certificate is verified against.
    pub devo_server_name: String,
    /// `STATUS_TAG`: the tag of the status line each tenant's tick sends; `None`: none sent.
    pub status_tag: Option<String>,
    /// Which API to pull from.
    pub trace_api: TraceApi,
    /// National cloud.
    pub cloud: Cloud,
    /// Login, Graph and reporting base URLs (cloud defaults or overrides).
    pub endpoints: Endpoints,
    /// Window rules.
    pub rules: WindowRules,
    /// `FRESH_DELAY_SECONDS`: the fresh pass's delay; zero turns the fresh pass off (one pass
    /// at `DELAY_SECONDS`).
    pub fresh_delay: chrono::Duration,
    /// Graph `$top`.
    pub page_size: u32,
    /// Client-side request rate.
    pub requests_per_second: u32,
    /// API requests allowed in any 5 minutes, across ticks (Graph's limit is 100 per tenant).
    pub request_budget: usize,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// A relay stream idle this long is closed (confirming what it carried) and replaced
    /// before the next write, as devo-sdk does: relays end idle streams on their own.
    pub devo_idle: Duration,
    /// A relay stream that carried this many bytes is closed and confirmed, and the next page
    /// goes on a new one: what may arrive twice after a cut is bounded.
    pub devo_confirm_bytes: u64,
    /// A relay stream first written this long ago is closed and confirmed likewise.
    pub devo_confirm_after: Duration,
    /// `RESET_BEFORE`: a new value restarts the scheduled checkpoint from `HISTORIC_DAYS` back.
    pub reset_before: Option<chrono::DateTime<chrono::Utc>>,
    /// `TENANTS_KEY`: the tenant registry's key in `STATE_BUCKET`; unset = one tenant.
    pub tenants_key: Option<String>,
    /// `TENANT_METRICS`: whether lag and failures are also published per tenant (each is a
    /// custom metric per tenant, billed monthly).
    pub tenant_metrics: bool,
    /// `DETAIL_*`: which deliveries get their delivery details, and where those go.
    pub details: DetailSettings,
    /// `DEVO_QUERY_URL`: the base URL of Devo's Query API (a region's, or an override), where
    /// `audit` reads back what arrived; `None` when unset (nothing reads from Devo).
    pub devo_query_url: Option<String>,
    /// `AUDIT_HOURS`: complete hours a scheduled tick compares with Devo at most; 0 = off.
    pub audit_hours: u32,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let env = Env::new(&lookup);
        let secret_id = env.required(
            "SECRET_ID",
            "the name or ARN of the Secrets Manager secret holding the Microsoft and Devo credentials",
        )?;
        let state_bucket =
            env.required("STATE_BUCKET", "the S3 bucket that keeps the checkpoint")?;
        let state_key = state_key(&env)?;
        let devo = devo::DevoSettings::read(&env)?;
        let api = api::ApiSettings::read(&env)?;
        let rules = rules::read(&env, api.trace_api)?;
        let fresh_delay = rules::fresh_delay(&env, &rules)?;
        let limits = limits::Limits::read(&env)?;
        let reset_before = reset_before(&env)?;
        let tenants_key = tenants_key(&env, &state_key)?;
        let tenant_metrics = tenant_metrics(&env)?;
        let details = DetailSettings::read(&env, &devo.tag, devo.status_tag.as_deref())?;
        let devo_query_url = query::read(&env)?;
        let audit_hours = query::audit_hours(&env, devo_query_url.as_deref())?;
        Ok(Config {
            secret_id,
            state_bucket,
            state_key,
            devo_address: devo.address,
            devo_tag: devo.tag,
            devo_hostname: devo.hostname,
            devo_server_name: devo.server_name,
            status_tag: devo.status_tag,
            trace_api: api.trace_api,
            cloud: api.cloud,
            endpoints: api.endpoints,
            rules,
            fresh_delay,
            page_size: limits.page_size,
            requests_per_second: limits.requests_per_second,
            request_budget: limits.request_budget,
            request_timeout: limits.request_timeout,
            devo_idle: limits.devo_idle,
            devo_confirm_bytes: limits.devo_confirm_bytes,
            devo_confirm_after: limits.devo_confirm_after,
            reset_before,
            tenants_key,
            tenant_metrics,
            details,
            devo_query_url,
            audit_hours,
        })
    }
}

/// `STATE_KEY`: a relative S3 key.
fn state_key(env: &Env<'_>) -> Result<String, ConfigError> {
    let state_key = env
        .get("STATE_KEY")
        .unwrap_or_else(|| defaults::STATE_KEY.to_owned());
    if state_key.starts_with('/') || state_key.len() > 900 {
        return Err(invalid(
            "STATE_KEY",
            &state_key,
            "an S3 key must not start with '/' and must be short",
            "a relative key such as m365-message-trace/checkpoint.json",
        ));
    }
    Ok(state_key)
}

/// `TENANTS_KEY`: a relative S3 key of a JSON object, or unset (one tenant); never an object
/// the state writes (`STATE_KEY`, or a key under a state prefix beside it: the checkpoints
/// would overwrite the registry, or the registry a checkpoint).
fn tenants_key(env: &Env<'_>, state_key: &str) -> Result<Option<String>, ConfigError> {
    let Some(key) = env.get("TENANTS_KEY") else {
        return Ok(None);
    };
    let accepted =
        "a relative key such as m365-message-trace/tenants.json, or unset for one tenant";
    if key.starts_with('/') || key.ends_with('/') || key.len() > 900 {
        return Err(invalid(
            "TENANTS_KEY",
            &key,
            "an S3 key of an object must not start or end with '/' and must be short",
            accepted,
        ));
    }
    let dir = state_key.rsplit_once('/').map_or("", |(dir, _)| dir);
    let prefix = |p: &str| {
        if dir.is_empty() {
            format!("{p}/")
        } else {
            format!("{dir}/{p}/")
        }
    };
    let problem = if key == state_key {
        Some(format!(
            "it is STATE_KEY={state_key:?}, the checkpoint's object"
        ))
    } else {
        STATE_PREFIXES.iter().map(|p| prefix(p)).find(|p| key.starts_with(p.as_str())).map(|p| {
            format!("it lies under {p}, where the state of STATE_KEY={state_key:?} is kept (the tenants' checkpoints, backfills and ledgers)")
        })
    };
    match problem {
        Some(problem) => {
            let beside = format!(
                "a key outside STATE_KEY and its state prefixes, such as {dir}{}tenants.json",
                if dir.is_empty() { "" } else { "/" }
            );
            Err(invalid("TENANTS_KEY", &key, &problem, &beside))
        }
        None => Ok(Some(key)),
    }
}

/// The prefixes beside `STATE_KEY` that the state writes under.
const STATE_PREFIXES: [&str; 4] = ["tenants", "tenants-removed", "backfill", "ledger"];

/// `TENANT_METRICS`: `on` (default) or `off`.
fn tenant_metrics(env: &Env<'_>) -> Result<bool, ConfigError> {
    match env.get("TENANT_METRICS").as_deref() {
        None | Some("on") => Ok(true),
        Some("off") => Ok(false),
        Some(other) => Err(invalid(
            "TENANT_METRICS",
            other,
            "not on or off",
            "on (lag and failed ticks also per tenant) or off (per function only)",
        )),
    }
}

/// `RESET_BEFORE`: an RFC 3339 instant, or unset.
fn reset_before(env: &Env<'_>) -> Result<Option<chrono::DateTime<chrono::Utc>>, ConfigError> {
    env.get("RESET_BEFORE")
        .map(|raw| {
            chrono::DateTime::parse_from_rfc3339(&raw)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|e| {
                    invalid(
                        "RESET_BEFORE",
                        &raw,
                        &format!("not an RFC 3339 instant ({e})"),
                        "an instant such as 2026-11-01T00:00:00Z, or unset",
                    )
                })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut env: HashMap<String, String> = [("SECRET_ID", "s"), ("STATE_BUCKET", "b")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (k, v) in pairs {
            env.insert(k.to_string(), v.to_string());
        }
        Config::from_lookup(|k| env.get(k).cloned())
    }

    #[test]
    fn defaults_follow_the_design() {
        let c = config(&[]).unwrap();
        assert_eq!(c.state_key, "m365-message-trace/checkpoint.json");
        assert_eq!(c.devo_address, "collector-us.devo.io:443");
        assert_eq!(c.devo_server_name, "collector-us.devo.io");
        assert_eq!(c.devo_tag, "cloud.office365.messagetracing");
        assert_eq!(c.devo_hostname, "m365-trace-to-devo");
        assert_eq!(c.trace_api, TraceApi::Graph);
        assert_eq!(c.rules.delay, chrono::Duration::hours(25));
        assert_eq!(c.rules.historic, chrono::Duration::days(10));
        assert_eq!(c.rules.margin, chrono::Duration::seconds(60));
        assert_eq!(c.rules.max_window, chrono::Duration::hours(6));
        assert_eq!(c.page_size, 5000);
        assert_eq!(c.requests_per_second, 1);
        assert_eq!(c.request_budget, 90);
        assert_eq!(c.request_timeout, Duration::from_secs(60));
        assert_eq!(c.endpoints.graph, "https://graph.microsoft.com");
        assert_eq!(c.endpoints.login, "https://login.microsoftonline.com");
    }

    #[test]
    fn missing_required_variable_is_named() {
        let err = Config::from_lookup(|_| None).unwrap_err();
        assert!(
            err.to_string().starts_with("SECRET_ID is required"),
            "{err}"
        );
        let err = Config::from_lookup(|k| (k == "SECRET_ID").then(|| "x".into())).unwrap_err();
        assert!(
            err.to_string().starts_with("STATE_BUCKET is required"),
            "{err}"
        );
    }

    #[test]
    fn invalid_values_name_variable_problem_and_range() {
        let err = config(&[("PAGE_SIZE", "6000")]).unwrap_err().to_string();
        assert_eq!(
            err,
            "PAGE_SIZE=\"6000\" is invalid: out of range; accepted: a whole number from 1 to 5000 (default 5000)"
        );
        let err = config(&[("MAX_WINDOW_SECONDS", "abc")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("MAX_WINDOW_SECONDS") && err.contains("not a whole number"),
            "{err}"
        );
        let err = config(&[("MAX_WINDOW_SECONDS", "900000")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("from 60 to 864000"), "{err}");
        let err = config(&[("TRACE_API", "ews")]).unwrap_err().to_string();
        assert!(err.contains("graph or reporting"), "{err}");
        let err = config(&[("DEVO_ADDRESS", "collector-eu.devo.io")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("DEVO_ADDRESS") && err.contains("no port"),
            "{err}"
        );
        let err = config(&[("HISTORIC_DAYS", "91")]).unwrap_err().to_string();
        assert!(err.contains("from 0 to 90"), "{err}");
        let err = config(&[("GRAPH_URL", "ftp://x")]).unwrap_err().to_string();
        assert!(err.contains("GRAPH_URL"), "{err}");
        let err = config(&[("RESET_BEFORE", "last tuesday")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("RESET_BEFORE=\"last tuesday\" is invalid: not an RFC 3339 instant"),
            "{err}"
        );
        let err = config(&[("TENANTS_KEY", "/tenants.json")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("TENANTS_KEY=\"/tenants.json\" is invalid"),
            "{err}"
        );
        assert_eq!(config(&[]).unwrap().tenants_key, None);
        for (tenants, state) in [
            (
                "m365-message-trace/checkpoint.json",
                "m365-message-trace/checkpoint.json",
            ),
            (
                "m365-message-trace/tenants/a/checkpoint.json",
                "m365-message-trace/checkpoint.json",
            ),
            (
                "m365-message-trace/tenants/tenants.json",
                "m365-message-trace/checkpoint.json",
            ),
            (
                "m365-message-trace/backfill/x.json",
                "m365-message-trace/checkpoint.json",
            ),
            ("tenants-removed/r.json", "checkpoint.json"),
        ] {
            let err = config(&[("TENANTS_KEY", tenants), ("STATE_KEY", state)])
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("TENANTS_KEY={tenants:?} is invalid"))
                    && err.contains("STATE_KEY"),
                "{err}"
            );
        }
        assert!(
            config(&[("TENANTS_KEY", "m365-message-trace/tenants.json")]).is_ok(),
            "beside the checkpoint"
        );
        assert!(config(&[]).unwrap().tenant_metrics);
        assert!(!config(&[("TENANT_METRICS", "off")]).unwrap().tenant_metrics);
        let err = config(&[("TENANT_METRICS", "no")]).unwrap_err().to_string();
        assert!(
            err.contains("TENANT_METRICS") && err.contains("on or off"),
            "{err}"
        );
        let err = config(&[("DEVO_HOSTNAME", "my host")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("DEVO_HOSTNAME"), "{err}");
    }

    #[test]
    fn overrides_and_derived_values() {
        let c = config(&[
            ("DEVO_ADDRESS", "127.0.0.1:6514"),
            ("GRAPH_URL", "http://127.0.0.1:9000/"),
            ("AWS_LAMBDA_FUNCTION_NAME", "collector-prod"),
        ])
        .unwrap();
        assert_eq!(c.devo_server_name, "127.0.0.1");
        assert_eq!(c.endpoints.graph, "http://127.0.0.1:9000");
        assert_eq!(c.devo_hostname, "collector-prod");
    }

    #[test]
    fn graph_in_a_cloud_without_graph_message_trace_says_use_reporting() {
        let err = config(&[("CLOUD", "china")]).unwrap_err().to_string();
        assert!(err.contains("TRACE_API=reporting"), "{err}");
        assert!(config(&[("CLOUD", "china"), ("TRACE_API", "reporting")]).is_ok());
    }

    #[test]
    fn a_delay_beyond_the_lookback_is_refused_naming_both_variables_and_the_range() {
        let err = config(&[("TRACE_API", "reporting"), ("DELAY_SECONDS", "864000")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("DELAY_SECONDS=\"864000\" cannot be used with TRACE_API=reporting"),
            "{err}"
        );
        assert!(err.contains("DELAY_SECONDS from 0 to 863939"), "{err}");
        // The margin counts: the last second before lookback − margin still pulls.
        assert!(config(&[("TRACE_API", "reporting"), ("DELAY_SECONDS", "863939")]).is_ok());
        let err = config(&[
            ("TRACE_API", "reporting"),
            ("DELAY_SECONDS", "863000"),
            ("MARGIN_SECONDS", "3600"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("MARGIN_SECONDS=3600, DELAY_SECONDS from 0 to 860399"),
            "{err}"
        );
        // Graph's 90 days are beyond the longest delay.
        assert!(config(&[("DELAY_SECONDS", "2592000"), ("MARGIN_SECONDS", "3600")]).is_ok());
    }

    #[test]
    fn a_history_shorter_than_the_delay_is_accepted() {
        // The first tick records now − HISTORIC_DAYS; pulling starts once now − delay passes it.
        let c = config(&[("HISTORIC_DAYS", "0"), ("DELAY_SECONDS", "90000")]).unwrap();
        assert_eq!(c.rules.historic, chrono::Duration::zero());
        assert!(config(&[("HISTORIC_DAYS", "0"), ("DELAY_SECONDS", "0")]).is_ok());
    }
}
