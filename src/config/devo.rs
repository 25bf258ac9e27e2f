//! The Devo settings: the relay's address, the tag, the host field, the certificate name and
//! the tag of the status line.

use crate::config::ConfigError;
use crate::config::defaults;
use crate::config::env::{Env, invalid};

/// Where and how lines are sent to Devo.
pub(crate) struct DevoSettings {
    /// `DEVO_ADDRESS`.
    pub(crate) address: String,
    /// `DEVO_TAG`.
    pub(crate) tag: String,
    /// `DEVO_HOSTNAME` (or the function's name).
    pub(crate) hostname: String,
    /// `DEVO_SERVER_NAME` (or the address's host).
    pub(crate) server_name: String,
    /// `STATUS_TAG`; `None` when set empty (no status line).
    pub(crate) status_tag: Option<String>,
}

impl DevoSettings {
    /// Reads and checks the five variables.
    pub(crate) fn read(env: &Env<'_>) -> Result<DevoSettings, ConfigError> {
        let address = env
            .get("DEVO_ADDRESS")
            .unwrap_or_else(|| defaults::DEVO_ADDRESS.to_owned());
        let host = parse_host_port(&address)?;
        let tag = env
            .get("DEVO_TAG")
            .unwrap_or_else(|| defaults::DEVO_TAG.to_owned());
        if !is_tag(&tag) {
            return Err(invalid(
                "DEVO_TAG",
                &tag,
                "a Devo tag is dot-separated words of letters, digits, '_' or '-'",
                "a tag such as cloud.office365.messagetracing",
            ));
        }
        let hostname = env
            .get("DEVO_HOSTNAME")
            .or_else(|| env.get("AWS_LAMBDA_FUNCTION_NAME"))
            .unwrap_or_else(|| defaults::DEVO_HOSTNAME.to_owned());
        if hostname
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid(
                "DEVO_HOSTNAME",
                &hostname,
                "the host field of a Devo line cannot contain spaces or control characters",
                "a single word such as m365-trace-to-devo",
            ));
        }
        let server_name = env.get("DEVO_SERVER_NAME").unwrap_or(host);
        if rustls_pki_types::ServerName::try_from(server_name.clone()).is_err() {
            return Err(invalid(
                "DEVO_SERVER_NAME",
                &server_name,
                "not a DNS name or IP address",
                "the name in the relay's certificate, e.g. collector-us.devo.io",
            ));
        }
        Ok(DevoSettings {
            address,
            tag,
            hostname,
            server_name,
            status_tag: status_tag(env)?,
        })
    }
}

/// `STATUS_TAG`: a Devo tag (default [`defaults::STATUS_TAG`]), or set empty for none.
fn status_tag(env: &Env<'_>) -> Result<Option<String>, ConfigError> {
    match env.get("STATUS_TAG") {
        None if env.is_set("STATUS_TAG") => Ok(None),
        None => Ok(Some(defaults::STATUS_TAG.to_owned())),
        Some(tag) if is_tag(&tag) => Ok(Some(tag)),
        Some(tag) => Err(invalid(
            "STATUS_TAG",
            &tag,
            "a Devo tag is dot-separated words of letters, digits, '_' or '-'",
            "a tag such as my.app.m365trace.status, or empty for no status line",
        )),
    }
}

/// Whether `tag` is at least two dot-separated words of letters, digits, `_` or `-`.
pub(crate) fn is_tag(tag: &str) -> bool {
    tag.split('.').count() >= 2
        && tag.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

/// The host of a `host:port` relay address.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn read(value: Option<&str>) -> Result<Option<String>, ConfigError> {
        let lookup = |name: &str| {
            (name == "STATUS_TAG")
                .then(|| value.map(str::to_owned))
                .flatten()
        };
        status_tag(&Env::new(&lookup))
    }

    #[test]
    fn the_status_tag_defaults_turns_off_when_empty_and_must_be_a_tag() {
        assert_eq!(read(None), Ok(Some("my.app.m365trace.status".into())));
        assert_eq!(read(Some("")), Ok(None));
        assert_eq!(read(Some("  ")), Ok(None));
        assert_eq!(
            read(Some("my.app.soc.health")),
            Ok(Some("my.app.soc.health".into()))
        );
        let e = read(Some("not a tag")).unwrap_err().to_string();
        assert!(
            e.contains("STATUS_TAG") && e.contains("empty for no status line"),
            "{e}"
        );
    }
}
