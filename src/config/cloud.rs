//! National clouds: which login, Graph and Reporting Web Service hosts a tenant uses.

/// The Microsoft cloud a tenant lives in (`CLOUD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cloud {
    /// Worldwide commercial service.
    Global,
    /// US Government Community Cloud (moderate): commercial endpoints.
    Gcc,
    /// US Government GCC High.
    GccHigh,
    /// US Government DoD.
    Dod,
    /// Microsoft 365 operated by 21Vianet.
    China,
}

/// Base URLs of the three services, without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Microsoft identity platform (token endpoint host).
    pub login: String,
    /// Microsoft Graph.
    pub graph: String,
    /// Reporting Web Service host.
    pub reporting: String,
    /// Token scope for the Reporting Web Service (Exchange Online resource).
    pub reporting_scope: String,
}

impl Cloud {
    /// Parses a `CLOUD` value.
    pub fn parse(name: &str) -> Option<Cloud> {
        match name.to_ascii_lowercase().as_str() {
            "global" => Some(Cloud::Global),
            "gcc" => Some(Cloud::Gcc),
            "gcc-high" | "gcchigh" => Some(Cloud::GccHigh),
            "dod" => Some(Cloud::Dod),
            "china" => Some(Cloud::China),
            _ => None,
        }
    }

    /// The `CLOUD` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Global => "global",
            Cloud::Gcc => "gcc",
            Cloud::GccHigh => "gcc-high",
            Cloud::Dod => "dod",
            Cloud::China => "china",
        }
    }

    /// Graph message trace is listed for the global service only (Microsoft Graph
    /// "List messageTraces", national cloud availability table); GCC moderate uses it.
    pub fn offers_graph_message_trace(self) -> bool {
        matches!(self, Cloud::Global | Cloud::Gcc)
    }

    /// The cloud's endpoints. Sources (docs/deploy.md, "National clouds"): Microsoft Graph "National
    /// cloud deployments" (login and Graph hosts); the Reporting Web Service "MessageTrace
    /// report" (global `reports.office365.com`, token resource `outlook.office365.com`); in the
    /// national clouds the service is the Exchange Online host's `/ecp` (Exchange Online
    /// PowerShell `-ExchangeEnvironmentName` hosts), and its token resource is that host.
    pub fn endpoints(self) -> Endpoints {
        let (login, graph, reporting, scope) = match self {
            Cloud::Global | Cloud::Gcc => (
                "https://login.microsoftonline.com",
                "https://graph.microsoft.com",
                "https://reports.office365.com",
                "https://outlook.office365.com/.default",
            ),
            Cloud::GccHigh => (
                "https://login.microsoftonline.us",
                "https://graph.microsoft.us",
                "https://outlook.office365.us",
                "https://outlook.office365.us/.default",
            ),
            Cloud::Dod => (
                "https://login.microsoftonline.us",
                "https://dod-graph.microsoft.us",
                "https://webmail.apps.mil",
                "https://webmail.apps.mil/.default",
            ),
            Cloud::China => (
                "https://login.chinacloudapi.cn",
                "https://microsoftgraph.chinacloudapi.cn",
                "https://partner.outlook.cn",
                "https://partner.outlook.cn/.default",
            ),
        };
        Endpoints {
            login: login.to_owned(),
            graph: graph.to_owned(),
            reporting: reporting.to_owned(),
            reporting_scope: scope.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cloud: &str) -> (String, String, String, String) {
        let e = Cloud::parse(cloud).map(Cloud::endpoints).unwrap();
        (e.login, e.graph, e.reporting, e.reporting_scope)
    }

    #[test]
    fn the_cloud_table_matches_the_documented_hosts() {
        let global = (
            "https://login.microsoftonline.com".to_owned(),
            "https://graph.microsoft.com".to_owned(),
            "https://reports.office365.com".to_owned(),
            "https://outlook.office365.com/.default".to_owned(),
        );
        assert_eq!(row("global"), global);
        assert_eq!(
            row("gcc"),
            global,
            "GCC (moderate) uses the worldwide endpoints"
        );
        assert_eq!(
            row("gcc-high"),
            (
                "https://login.microsoftonline.us".to_owned(),
                "https://graph.microsoft.us".to_owned(),
                "https://outlook.office365.us".to_owned(),
                "https://outlook.office365.us/.default".to_owned(),
            )
        );
        assert_eq!(
            row("dod"),
            (
                "https://login.microsoftonline.us".to_owned(),
                "https://dod-graph.microsoft.us".to_owned(),
                "https://webmail.apps.mil".to_owned(),
                "https://webmail.apps.mil/.default".to_owned(),
            )
        );
        assert_eq!(
            row("china"),
            (
                "https://login.chinacloudapi.cn".to_owned(),
                "https://microsoftgraph.chinacloudapi.cn".to_owned(),
                "https://partner.outlook.cn".to_owned(),
                "https://partner.outlook.cn/.default".to_owned(),
            )
        );
    }

    #[test]
    fn graph_message_trace_only_where_microsoft_offers_it() {
        let offered: Vec<&str> = ["global", "gcc", "gcc-high", "dod", "china"]
            .into_iter()
            .filter(|c| Cloud::parse(c).is_some_and(Cloud::offers_graph_message_trace))
            .collect();
        assert_eq!(offered, ["global", "gcc"]);
        assert_eq!(Cloud::parse("GCCHigh"), Some(Cloud::GccHigh));
        assert_eq!(Cloud::parse("germany"), None);
    }
}
