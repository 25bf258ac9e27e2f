//! Step 1 of a tick: the environment, validated into a [`Config`] before anything is touched.

use std::time::Duration;

use thiserror::Error;

use crate::cloud::{Cloud, Endpoints};

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

/// The delay / historic / margin / maximum-window rules of docs/design.md.
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
    /// Which API to pull from.
    pub trace_api: TraceApi,
    /// National cloud.
    pub cloud: Cloud,
    /// Login, Graph and reporting base URLs (cloud defaults or overrides).
    pub endpoints: Endpoints,
    /// Window rules.
    pub rules: WindowRules,
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
    /// `RESET_BEFORE`: a new value restarts the scheduled checkpoint from `HISTORIC_DAYS` back.
    pub reset_before: Option<chrono::DateTime<chrono::Utc>>,
}

/// Defaults of docs/configuration.md, in one place for the code and the tests.
pub mod defaults {
    /// `STATE_KEY`.
    pub const STATE_KEY: &str = "m365-message-trace/checkpoint.json";
    /// `DEVO_ADDRESS`.
    pub const DEVO_ADDRESS: &str = "collector-us.devo.io:443";
    /// `DEVO_TAG`.
    pub const DEVO_TAG: &str = "cloud.office365.messagetracing";
    /// `DEVO_HOSTNAME` when no function name is known either.
    pub const DEVO_HOSTNAME: &str = "m365-trace-to-devo";
    /// `DELAY_SECONDS`: 25 h.
    pub const DELAY_SECONDS: i64 = 90_000;
    /// `HISTORIC_DAYS`.
    pub const HISTORIC_DAYS: i64 = 10;
    /// `MARGIN_SECONDS`.
    pub const MARGIN_SECONDS: i64 = 60;
    /// `MAX_WINDOW_SECONDS`: 6 h.
    pub const MAX_WINDOW_SECONDS: i64 = 21_600;
    /// `PAGE_SIZE`.
    pub const PAGE_SIZE: u32 = 5000;
    /// `REQUESTS_PER_SECOND`.
    pub const REQUESTS_PER_SECOND: u32 = 1;
    /// `REQUEST_BUDGET_PER_5_MINUTES`: Graph allows 100; a tenth stays free for other tools.
    pub const REQUEST_BUDGET_PER_5_MINUTES: usize = crate::trace::request_budget::GRAPH_LIMIT;
    /// `REQUEST_TIMEOUT_SECONDS`.
    pub const REQUEST_TIMEOUT_SECONDS: u64 = 60;
    /// `DEVO_IDLE_SECONDS`: devo-sdk reconnects after 30 s idle.
    pub const DEVO_IDLE_SECONDS: u64 = 30;
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let secret_id = get("SECRET_ID").ok_or(ConfigError::Missing {
            var: "SECRET_ID",
            hint: "the name or ARN of the Secrets Manager secret holding the Microsoft and Devo credentials",
        })?;
        let state_bucket = get("STATE_BUCKET").ok_or(ConfigError::Missing {
            var: "STATE_BUCKET",
            hint: "the S3 bucket that keeps the checkpoint",
        })?;
        let state_key = get("STATE_KEY").unwrap_or_else(|| defaults::STATE_KEY.to_owned());
        if state_key.starts_with('/') || state_key.len() > 900 {
            return Err(invalid(
                "STATE_KEY",
                &state_key,
                "an S3 key must not start with '/' and must be short",
                "a relative key such as m365-message-trace/checkpoint.json",
            ));
        }

        let devo_address = get("DEVO_ADDRESS").unwrap_or_else(|| defaults::DEVO_ADDRESS.to_owned());
        let devo_host = parse_host_port(&devo_address)?;
        let devo_tag = get("DEVO_TAG").unwrap_or_else(|| defaults::DEVO_TAG.to_owned());
        if !devo_tag.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        }) || devo_tag.split('.').count() < 2
        {
            return Err(invalid(
                "DEVO_TAG",
                &devo_tag,
                "a Devo tag is dot-separated words of letters, digits, '_' or '-'",
                "a tag such as cloud.office365.messagetracing",
            ));
        }
        let devo_hostname = get("DEVO_HOSTNAME")
            .or_else(|| get("AWS_LAMBDA_FUNCTION_NAME"))
            .unwrap_or_else(|| defaults::DEVO_HOSTNAME.to_owned());
        if devo_hostname
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid(
                "DEVO_HOSTNAME",
                &devo_hostname,
                "the host field of a Devo line cannot contain spaces or control characters",
                "a single word such as m365-trace-to-devo",
            ));
        }
        let devo_server_name = get("DEVO_SERVER_NAME").unwrap_or(devo_host);
        if rustls_pki_types::ServerName::try_from(devo_server_name.clone()).is_err() {
            return Err(invalid(
                "DEVO_SERVER_NAME",
                &devo_server_name,
                "not a DNS name or IP address",
                "the name in the relay's certificate, e.g. collector-us.devo.io",
            ));
        }

        let trace_api = match get("TRACE_API").as_deref() {
            None | Some("graph") => TraceApi::Graph,
            Some("reporting") => TraceApi::Reporting,
            Some(other) => {
                return Err(invalid(
                    "TRACE_API",
                    other,
                    "unknown API",
                    "graph or reporting",
                ));
            }
        };
        let cloud = match get("CLOUD") {
            None => Cloud::Global,
            Some(name) => Cloud::parse(&name).ok_or_else(|| {
                invalid(
                    "CLOUD",
                    &name,
                    "unknown cloud",
                    "global, gcc, gcc-high, dod or china",
                )
            })?,
        };
        if trace_api == TraceApi::Graph && !cloud.offers_graph_message_trace() {
            return Err(invalid(
                "TRACE_API",
                "graph",
                &format!(
                    "Microsoft does not offer Graph message trace in the {} cloud",
                    cloud.as_str()
                ),
                "TRACE_API=reporting for this cloud",
            ));
        }
        let mut endpoints = cloud.endpoints();
        for (var, slot) in [
            ("LOGIN_URL", &mut endpoints.login),
            ("GRAPH_URL", &mut endpoints.graph),
            ("REPORTING_URL", &mut endpoints.reporting),
        ] {
            if let Some(url) = get(var) {
                *slot = parse_base_url(var, &url)?;
            }
        }

        let delay = int_var(
            &get,
            "DELAY_SECONDS",
            defaults::DELAY_SECONDS,
            0,
            30 * 86_400,
        )?;
        let lookback_days = trace_api.lookback().num_days();
        let historic_days = int_var(
            &get,
            "HISTORIC_DAYS",
            defaults::HISTORIC_DAYS,
            0,
            lookback_days,
        )?;
        let margin = int_var(&get, "MARGIN_SECONDS", defaults::MARGIN_SECONDS, 0, 3_600)?;
        let max_query = trace_api.max_query_span().num_seconds();
        let max_window = int_var(
            &get,
            "MAX_WINDOW_SECONDS",
            defaults::MAX_WINDOW_SECONDS,
            60,
            max_query,
        )?;
        let page_size = int_var(&get, "PAGE_SIZE", i64::from(defaults::PAGE_SIZE), 1, 5000)?;
        let rps = int_var(
            &get,
            "REQUESTS_PER_SECOND",
            i64::from(defaults::REQUESTS_PER_SECOND),
            1,
            100,
        )?;
        let request_budget = int_var(
            &get,
            "REQUEST_BUDGET_PER_5_MINUTES",
            i64::try_from(defaults::REQUEST_BUDGET_PER_5_MINUTES).unwrap_or(90),
            1,
            1_000_000,
        )?;
        let timeout = int_var(
            &get,
            "REQUEST_TIMEOUT_SECONDS",
            i64::try_from(defaults::REQUEST_TIMEOUT_SECONDS).unwrap_or(60),
            1,
            900,
        )?;
        let devo_idle = int_var(
            &get,
            "DEVO_IDLE_SECONDS",
            i64::try_from(defaults::DEVO_IDLE_SECONDS).unwrap_or(30),
            1,
            3_600,
        )?;

        let reset_before = get("RESET_BEFORE")
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
            .transpose()?;

        Ok(Config {
            secret_id,
            state_bucket,
            state_key,
            devo_address,
            devo_tag,
            devo_hostname,
            devo_server_name,
            trace_api,
            cloud,
            endpoints,
            rules: WindowRules {
                delay: chrono::Duration::seconds(delay),
                historic: chrono::Duration::days(historic_days),
                margin: chrono::Duration::seconds(margin),
                max_window: chrono::Duration::seconds(max_window),
                lookback: trace_api.lookback(),
            },
            // Both casts are within the ranges checked above.
            page_size: u32::try_from(page_size).unwrap_or(defaults::PAGE_SIZE),
            requests_per_second: u32::try_from(rps).unwrap_or(1),
            request_budget: usize::try_from(request_budget)
                .unwrap_or(defaults::REQUEST_BUDGET_PER_5_MINUTES),
            request_timeout: Duration::from_secs(u64::try_from(timeout).unwrap_or(60)),
            devo_idle: Duration::from_secs(u64::try_from(devo_idle).unwrap_or(30)),
            reset_before,
        })
    }
}

fn invalid(var: &'static str, value: &str, problem: &str, accepted: &str) -> ConfigError {
    ConfigError::Invalid {
        var,
        value: value.to_owned(),
        problem: problem.to_owned(),
        accepted: accepted.to_owned(),
    }
}

fn int_var(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, ConfigError> {
    let Some(raw) = get(var) else {
        return Ok(default);
    };
    let accepted = format!("a whole number from {min} to {max} (default {default})");
    let value: i64 = raw
        .parse()
        .map_err(|_| invalid(var, &raw, "not a whole number", &accepted))?;
    if value < min || value > max {
        return Err(invalid(var, &raw, "out of range", &accepted));
    }
    Ok(value)
}

fn parse_host_port(address: &str) -> Result<String, ConfigError> {
    let accepted = "host:port, e.g. collector-us.devo.io:443 (or collector-eu / -ca / -ap)";
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(invalid("DEVO_ADDRESS", address, "no port", accepted));
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains('/') {
        return Err(invalid("DEVO_ADDRESS", address, "no host", accepted));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(host.to_owned()),
        _ => Err(invalid(
            "DEVO_ADDRESS",
            address,
            "the port is not a number from 1 to 65535",
            accepted,
        )),
    }
}

fn parse_base_url(var: &'static str, raw: &str) -> Result<String, ConfigError> {
    match reqwest::Url::parse(raw) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Ok(raw.trim_end_matches('/').to_owned())
        }
        _ => Err(invalid(
            var,
            raw,
            "not an http(s) URL",
            "a base URL such as https://graph.microsoft.com",
        )),
    }
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
}
