//! `DEVO_QUERY_URL`: where Devo's Query API is, for reading back what arrived (`audit`).
//!
//! A named region (`us`, `eu`, …, Devo's own list of Query API endpoints) or an http(s) base
//! URL (a private deployment, or a local stand-in in tests). The Query API token is sent only
//! to this origin.

use crate::config::ConfigError;
use crate::config::env::{Env, invalid};

/// The Query API's regions and their base URLs (the request goes to `{base}/query`), as Devo
/// lists them: "Query API" endpoints, one per region of a Devo domain.
pub const QUERY_REGIONS: [(&str, &str); 5] = [
    ("us", "https://apiv2-us.devo.com/search"),
    ("eu", "https://apiv2-eu.devo.com/search"),
    ("ca", "https://apiv2-ca.devo.com/search"),
    ("es", "https://apiv2-es.devo.com/search"),
    ("apac", "https://api-apac.devo.com/search"),
];

const ACCEPTED: &str = "a region (us, eu, ca, es or apac) or the Query API's base URL, e.g. \
https://apiv2-eu.devo.com/search, or unset when nothing reads back from Devo";

/// `DEVO_QUERY_URL`: the base URL without a trailing slash, `None` when unset.
pub(crate) fn read(env: &Env<'_>) -> Result<Option<String>, ConfigError> {
    let Some(raw) = env.get("DEVO_QUERY_URL") else {
        return Ok(None);
    };
    if let Some((_, url)) = QUERY_REGIONS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(&raw))
    {
        return Ok(Some((*url).to_owned()));
    }
    match reqwest::Url::parse(&raw) {
        Ok(url)
            if matches!(url.scheme(), "http" | "https")
                && url.host().is_some()
                && url.username().is_empty()
                && url.password().is_none()
                && url.query().is_none()
                && url.fragment().is_none() =>
        {
            let base = raw.trim_end_matches('/');
            // The endpoint itself pasted from Devo's docs: its base is one segment up.
            Ok(Some(base.strip_suffix("/query").unwrap_or(base).to_owned()))
        }
        Ok(mut url) => {
            // A password in the value is not repeated in the message.
            let _ = url.set_password(None);
            let _ = url.set_username("");
            Err(invalid(
                "DEVO_QUERY_URL",
                url.as_str(),
                "not an http(s) base URL without user info, query or fragment",
                ACCEPTED,
            ))
        }
        Err(_) => Err(invalid(
            "DEVO_QUERY_URL",
            &raw,
            "neither a known region nor a URL",
            ACCEPTED,
        )),
    }
}

/// `AUDIT_HOURS`: how many complete hours a tick audits at most (0, the default, turns the
/// scheduled audit off). It reads back from Devo, so it needs `DEVO_QUERY_URL`.
pub(crate) fn audit_hours(env: &Env<'_>, query_url: Option<&str>) -> Result<u32, ConfigError> {
    let hours = env.int("AUDIT_HOURS", 0, 0, 168)?;
    if hours > 0 && query_url.is_none() {
        return Err(invalid(
            "AUDIT_HOURS",
            &hours.to_string(),
            "the scheduled audit reads back from Devo's Query API, and DEVO_QUERY_URL is not set",
            "0 (off), or 1 to 168 with DEVO_QUERY_URL set and devo_query_token in the secret",
        ));
    }
    Ok(u32::try_from(hours).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn query_url(value: Option<&str>) -> Result<Option<String>, ConfigError> {
        let map: HashMap<&str, &str> = value.map(|v| ("DEVO_QUERY_URL", v)).into_iter().collect();
        let lookup = |k: &str| map.get(k).map(|v| (*v).to_owned());
        read(&Env::new(&lookup))
    }

    #[test]
    fn the_scheduled_audit_is_off_by_default_and_needs_the_query_api() {
        let lookup = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let none = lookup(&[]);
        assert_eq!(audit_hours(&Env::new(&none), None).unwrap(), 0);
        let six = lookup(&[("AUDIT_HOURS", "6")]);
        assert_eq!(audit_hours(&Env::new(&six), Some("https://x")).unwrap(), 6);
        let err = audit_hours(&Env::new(&six), None).unwrap_err().to_string();
        assert!(
            err.starts_with("AUDIT_HOURS=\"6\" is invalid") && err.contains("DEVO_QUERY_URL"),
            "{err}"
        );
        let big = lookup(&[("AUDIT_HOURS", "169")]);
        let err = audit_hours(&Env::new(&big), Some("https://x"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("from 0 to 168"), "{err}");
    }

    #[test]
    fn regions_are_devo_query_api_hosts() {
        assert_eq!(query_url(None).unwrap(), None);
        assert_eq!(
            query_url(Some("us")).unwrap().as_deref(),
            Some("https://apiv2-us.devo.com/search")
        );
        assert_eq!(
            query_url(Some("EU")).unwrap().as_deref(),
            Some("https://apiv2-eu.devo.com/search")
        );
        assert_eq!(
            query_url(Some("apac")).unwrap().as_deref(),
            Some("https://api-apac.devo.com/search")
        );
    }

    #[test]
    fn a_url_is_kept_without_its_trailing_slash_or_query_endpoint() {
        assert_eq!(
            query_url(Some("https://apiv2-ca.devo.com/search/"))
                .unwrap()
                .as_deref(),
            Some("https://apiv2-ca.devo.com/search")
        );
        assert_eq!(
            query_url(Some("https://apiv2-ca.devo.com/search/query"))
                .unwrap()
                .as_deref(),
            Some("https://apiv2-ca.devo.com/search")
        );
        assert_eq!(
            query_url(Some("http://127.0.0.1:9000")).unwrap().as_deref(),
            Some("http://127.0.0.1:9000")
        );
    }

    #[test]
    fn other_values_name_the_variable_and_the_regions() {
        for bad in [
            "mars",
            "ftp://apiv2-us.devo.com/search",
            "https://user:pw@apiv2-us.devo.com/search",
            "https://apiv2-us.devo.com/search?x=1",
        ] {
            let err = query_url(Some(bad)).unwrap_err().to_string();
            assert!(err.starts_with("DEVO_QUERY_URL="), "{err}");
            assert!(err.contains("us, eu, ca, es or apac"), "{err}");
            assert!(!err.contains("pw@"), "{err}");
        }
    }
}
