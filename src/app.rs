//! What a cold start builds once and every invocation reuses: configuration, clients, limits.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::{Config, ConfigError, TraceApi};
pub use crate::now::TimeSource;
use crate::secret::{SecretSource, SecretsManager};
use crate::trace::graph::GraphClient;
use crate::trace::reporting::ReportingClient;
use crate::trace::source::TraceSource;

/// The AWS and HTTP clients, built once per cold start.
#[derive(Clone, Debug)]
pub struct Clients {
    /// S3, for the checkpoint.
    pub s3: aws_sdk_s3::Client,
    /// Secrets Manager, for the secret.
    pub secrets: aws_sdk_secretsmanager::Client,
    /// HTTP client for Microsoft (rustls, HTTP/2).
    pub http: reqwest::Client,
    /// Lambda, for the dispatcher's invocations of its own function (`AWS_ENDPOINT_URL_LAMBDA`
    /// points it at a local stand-in).
    pub lambda: aws_sdk_lambda::Client,
}

impl Clients {
    /// Builds the clients from the AWS SDK's environment (`AWS_ENDPOINT_URL` included: a local
    /// S3 such as moto needs path-style addressing, which is then switched on).
    pub async fn from_env() -> Result<Clients, reqwest::Error> {
        let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Clients::from_sdk_config(&shared)
    }

    /// Builds the clients from an SDK configuration.
    pub fn from_sdk_config(shared: &aws_config::SdkConfig) -> Result<Clients, reqwest::Error> {
        let path_style = shared.endpoint_url().is_some();
        let s3 = aws_sdk_s3::config::Builder::from(shared)
            .force_path_style(path_style)
            .build();
        Ok(Clients {
            s3: aws_sdk_s3::Client::from_conf(s3),
            secrets: aws_sdk_secretsmanager::Client::new(shared),
            http: http_client()?,
            lambda: aws_sdk_lambda::Client::new(shared),
        })
    }
}

/// The HTTP client for the token endpoint and the APIs. It follows redirects only within the
/// origin a request was sent to, so a credential never travels to another host.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(crate::trace::origin::redirect_policy())
        .user_agent(concat!("m365-trace-to-devo/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(50))
        .build()
}

/// Time limits of a tick that are not configuration.
#[derive(Debug, Clone, Copy)]
pub struct TickOptions {
    /// Kept free before the Lambda deadline to close the Devo stream and commit.
    pub commit_reserve: Duration,
    /// How long the relay may take to end the stream after ours.
    pub devo_close_timeout: Duration,
    /// Added to the deadline to make the lease's expiry.
    pub lease_slack: Duration,
    /// First delay between retries of a failed request (then doubling, with jitter).
    pub retry_min_delay: Duration,
    /// Attempts at delivering one window to Devo when the relay fails transiently.
    pub devo_attempts: u32,
}

impl Default for TickOptions {
    fn default() -> TickOptions {
        TickOptions {
            commit_reserve: Duration::from_secs(20),
            devo_close_timeout: Duration::from_secs(10),
            lease_slack: Duration::from_secs(60),
            retry_min_delay: Duration::from_millis(500),
            devo_attempts: 3,
        }
    }
}

/// The handler's state.
#[derive(Debug)]
pub struct App {
    config: Result<Config, ConfigError>,
    clients: Clients,
    source: Result<TraceSource, ConfigError>,
    options: TickOptions,
    time: TimeSource,
}

impl App {
    /// Keeps an invalid configuration too: each invocation then fails with its message, before
    /// any call.
    pub fn new(config: Result<Config, ConfigError>, clients: Clients, options: TickOptions) -> App {
        let source = config
            .as_ref()
            .map(|c| match c.trace_api {
                TraceApi::Graph => TraceSource::Graph(GraphClient::new(
                    clients.http.clone(),
                    &c.endpoints.graph,
                    c.page_size,
                    c.requests_per_second,
                )),
                TraceApi::Reporting => TraceSource::Reporting(ReportingClient::new(
                    clients.http.clone(),
                    &c.endpoints.reporting,
                    &c.endpoints.reporting_scope,
                    c.requests_per_second,
                )),
            })
            .map_err(Clone::clone);
        App {
            config,
            clients,
            source,
            options,
            time: TimeSource::System,
        }
    }

    /// The same state, reading "now" from `time` (a stepped clock in tests).
    pub fn with_time(self, time: TimeSource) -> App {
        App { time, ..self }
    }

    /// Where every read of "now" comes from.
    pub fn time(&self) -> &TimeSource {
        &self.time
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        self.time.now()
    }

    /// The validated configuration.
    pub fn config(&self) -> Result<&Config, ConfigError> {
        self.config.as_ref().map_err(Clone::clone)
    }

    /// Secrets Manager.
    pub fn secrets(&self) -> SecretSource<SecretsManager> {
        SecretSource::new(SecretsManager::new(self.clients.secrets.clone()))
    }

    /// S3.
    pub fn s3(&self) -> &aws_sdk_s3::Client {
        &self.clients.s3
    }

    pub fn lambda(&self) -> &aws_sdk_lambda::Client {
        &self.clients.lambda
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.clients.http
    }

    /// The API client of `TRACE_API` (its rate limiter lives as long as the execution environment).
    pub fn source(&self) -> Result<&TraceSource, ConfigError> {
        self.source.as_ref().map_err(Clone::clone)
    }

    pub fn options(&self) -> &TickOptions {
        &self.options
    }
}
