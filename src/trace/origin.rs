//! Where a credential may go: a token (or a client assertion) is sent only to the origin it
//! was issued for — the configured login, Graph or reporting scheme, host and port. A nextLink
//! or a redirect that leaves that origin is refused before anything is sent to it.

use reqwest::Url;
use reqwest::redirect::{Action, Attempt, Policy};

/// Redirects followed within one origin before the 3xx is handed back as an error.
const MAX_REDIRECTS: usize = 10;

/// The scheme, host and port a credential may be sent to, and the setting that configures it.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The configured base URL; `None` when it cannot be parsed (then nothing is admitted).
    base: Option<Url>,
    /// The variable an operator changes to move it, e.g. `GRAPH_URL`.
    var: &'static str,
}

impl Origin {
    /// The origin of the configured base URL `base`, set by `var` (or by `CLOUD`).
    pub fn of(base: &str, var: &'static str) -> Origin {
        Origin {
            base: Url::parse(base).ok(),
            var,
        }
    }

    /// The variable that configures this origin.
    pub fn var(&self) -> &'static str {
        self.var
    }

    /// Whether `url` has this origin's scheme, host and port.
    pub fn admits(&self, url: &Url) -> bool {
        // An opaque origin (a scheme without hosts) never equals another one.
        self.base
            .as_ref()
            .is_some_and(|base| base.origin() == url.origin())
    }

    /// Parses `url` and returns it when it is on this origin; otherwise where it points
    /// (`scheme://host:port`, never the path, query or user info).
    pub fn admit(&self, url: &str) -> Result<Url, String> {
        match Url::parse(url) {
            Ok(parsed) if self.admits(&parsed) => Ok(parsed),
            Ok(parsed) => Err(target(&parsed)),
            Err(e) => Err(format!("an address that is not a URL ({e})")),
        }
    }

    /// `scheme://host:port` of the configured base.
    pub fn describe(&self) -> String {
        self.base
            .as_ref()
            .map_or_else(|| "an unreadable base URL".to_owned(), target)
    }
}

/// Where `url` points: `scheme://host:port`.
pub fn target(url: &Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or("?"),
        url.port_or_known_default().unwrap_or(0)
    )
}

/// Resolves `link` (absolute, or relative to the page `page_url` it came from) to an absolute
/// URL. A link that cannot be resolved is returned as it is, so that following it fails with
/// an error naming it rather than ending the window early.
pub fn resolve(page_url: &str, link: &str) -> String {
    Url::parse(page_url)
        .and_then(|page| page.join(link))
        .map_or_else(|_| link.to_owned(), String::from)
}

/// The HTTP client's redirect rule: follow a redirect only within the origin the request was
/// sent to (at most ten in a row); any other 3xx is handed back to the caller, which refuses
/// it with an error naming the host. So neither the bearer token nor a token request's client
/// secret or assertion is ever sent to another origin.
pub fn redirect_policy() -> Policy {
    Policy::custom(same_origin_only)
}

fn same_origin_only(attempt: Attempt<'_>) -> Action {
    // The first of `previous` is the request as sent, which the caller checked.
    let stays = attempt
        .previous()
        .first()
        .is_some_and(|first| first.origin() == attempt.url().origin());
    if stays && attempt.previous().len() <= MAX_REDIRECTS {
        attempt.follow()
    } else {
        attempt.stop()
    }
}

impl Origin {
    /// Where a 3xx answer to `request` points, when that is outside this origin (a redirect
    /// within it was followed, or handed back after too many, and is not named here).
    pub fn redirect_target(
        &self,
        request: &Url,
        headers: &reqwest::header::HeaderMap,
    ) -> Option<String> {
        let location = headers.get(reqwest::header::LOCATION)?;
        let Some(next) = location.to_str().ok().and_then(|l| request.join(l).ok()) else {
            return Some("an unreadable Location".to_owned());
        };
        (!self.admits(&next)).then(|| target(&next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph() -> Origin {
        Origin::of("https://graph.microsoft.com", "GRAPH_URL")
    }

    #[test]
    fn the_configured_origin_is_admitted_with_any_path_and_query() {
        let url = graph()
            .admit("https://graph.microsoft.com/v1.0/admin/exchange/tracing/messageTraces?$skiptoken=a")
            .unwrap();
        assert_eq!(url.host_str(), Some("graph.microsoft.com"));
        assert!(
            graph().admit("https://GRAPH.microsoft.com:443/x").is_ok(),
            "case and default port"
        );
        let local = Origin::of("http://127.0.0.1:9000", "GRAPH_URL");
        assert!(local.admit("http://127.0.0.1:9000/v1.0/x").is_ok());
    }

    #[test]
    fn another_scheme_port_or_host_is_refused_and_named() {
        assert_eq!(
            graph().admit("http://graph.microsoft.com/v1.0/x?$skiptoken=a"),
            Err("http://graph.microsoft.com:80".to_owned()),
            "plain http"
        );
        assert_eq!(
            graph().admit("https://graph.microsoft.com:8443/v1.0/x"),
            Err("https://graph.microsoft.com:8443".to_owned())
        );
        assert_eq!(
            graph().admit("https://evil.example/v1.0/x"),
            Err("https://evil.example:443".to_owned())
        );
        assert_eq!(
            graph().admit("https://graph.microsoft.com.evil.example/"),
            Err("https://graph.microsoft.com.evil.example:443".to_owned())
        );
        let local = Origin::of("http://127.0.0.1:9000", "GRAPH_URL");
        assert_eq!(
            local.admit("http://127.0.0.1:9001/x"),
            Err("http://127.0.0.1:9001".to_owned())
        );
    }

    #[test]
    fn user_info_cannot_disguise_the_host() {
        let refused = graph().admit("https://graph.microsoft.com@evil.example/v1.0/x");
        assert_eq!(refused, Err("https://evil.example:443".to_owned()));
        let refused = graph().admit("https://graph.microsoft.com:443@evil.example/");
        assert_eq!(refused, Err("https://evil.example:443".to_owned()));
        // Named without the user info that came with it.
        let refused = graph()
            .admit("https://user:pa55@evil.example/")
            .unwrap_err();
        assert!(!refused.contains("pa55"), "{refused}");
    }

    #[test]
    fn relative_links_stay_on_the_page_origin_and_scheme_relative_ones_do_not() {
        let page = "https://graph.microsoft.com/v1.0/admin/exchange/tracing/messageTraces?$top=5";
        let next = resolve(page, "messageTraces?$skiptoken=abc");
        assert_eq!(
            next,
            "https://graph.microsoft.com/v1.0/admin/exchange/tracing/messageTraces?$skiptoken=abc"
        );
        assert!(graph().admit(&next).is_ok());
        let next = resolve(page, "/v1.0/x?$skiptoken=abc");
        assert!(graph().admit(&next).is_ok());
        let next = resolve(page, "//evil.example/steal");
        assert_eq!(
            graph().admit(&next),
            Err("https://evil.example:443".to_owned())
        );
        assert_eq!(resolve("not a url", "also not"), "also not");
        assert!(graph().admit("also not").unwrap_err().contains("not a URL"));
    }

    #[test]
    fn an_unreadable_or_hostless_base_admits_nothing() {
        let broken = Origin::of("not a url", "GRAPH_URL");
        assert!(broken.admit("https://graph.microsoft.com/").is_err());
        let opaque = Origin::of("data:text/plain,x", "GRAPH_URL");
        assert!(opaque.admit("data:text/plain,x").is_err());
    }

    #[test]
    fn a_redirect_target_is_named_from_its_location() {
        let request = Url::parse("https://graph.microsoft.com/v1.0/x").unwrap();
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(graph().redirect_target(&request, &headers), None);
        headers.insert(
            reqwest::header::LOCATION,
            "http://evil.example:8080/steal?x=1".parse().unwrap(),
        );
        assert_eq!(
            graph().redirect_target(&request, &headers).as_deref(),
            Some("http://evil.example:8080")
        );
        headers.insert(reqwest::header::LOCATION, "/v1.0/y".parse().unwrap());
        assert_eq!(
            graph().redirect_target(&request, &headers),
            None,
            "a redirect within the origin is not an off-origin one"
        );
    }
}
