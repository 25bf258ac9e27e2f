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

    /// The cloud's endpoints (Microsoft Graph "National cloud deployments" and Exchange
    /// Online endpoint lists).
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
                "https://reports.office365.us",
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
                "https://reports.partner.outlook.cn",
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
