//! The Microsoft side: which API (`TRACE_API`), which cloud (`CLOUD`) and its endpoints.

use crate::config::cloud::{Cloud, Endpoints};
use crate::config::env::{Env, invalid};
use crate::config::{ConfigError, TraceApi};

/// The API, the cloud and the base URLs, checked against each other.
pub(crate) struct ApiSettings {
    /// `TRACE_API`.
    pub(crate) trace_api: TraceApi,
    /// `CLOUD`.
    pub(crate) cloud: Cloud,
    /// The cloud's endpoints, with `LOGIN_URL`, `GRAPH_URL` and `REPORTING_URL` applied.
    pub(crate) endpoints: Endpoints,
}

impl ApiSettings {
    /// Reads `TRACE_API`, `CLOUD` and the URL overrides.
    pub(crate) fn read(env: &Env<'_>) -> Result<ApiSettings, ConfigError> {
        let trace_api = match env.get("TRACE_API").as_deref() {
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
        let cloud = match env.get("CLOUD") {
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
            if let Some(url) = env.get(var) {
                *slot = parse_base_url(var, &url)?;
            }
        }
        Ok(ApiSettings {
            trace_api,
            cloud,
            endpoints,
        })
    }
}

/// An http(s) base URL, without its trailing slash.
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
