//! Integration-test harness: moto (S3 + Secrets Manager, started by scripts/test), the local
//! Graph-like server and the local Devo relay, wired into a real `App`.

pub mod s3_faults;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, Utc};
use lambda_runtime::{Context, LambdaEvent};
use m365_trace_devtools::devo::DevoListener;
use m365_trace_devtools::graph::{GraphServer, GraphServerConfig};
use m365_trace_devtools::pki::{AppCredential, TestPki};
use m365_trace_devtools::records::GraphRecord;
use m365_trace_to_devo::app::{App, Clients, TickOptions};
use m365_trace_to_devo::config::Config;
use s3_faults::{FaultInterceptor, S3Fault, S3Faults};
use serde_json::Value;
use std::sync::Arc;

pub const TENANT: &str = "11111111-2222-3333-4444-555555555555";
pub const CLIENT_ID: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
pub const CLIENT_SECRET: &str = "test-client-secret-value-Zx9~";

/// `FRESH_DELAY_SECONDS` as a user gets it: the harness runs the default two passes, and a
/// fresh start pulls up to now − this many seconds.
pub const FRESH_DELAY_SECONDS: i64 = 600;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The moto endpoint started by scripts/test.
pub fn moto_url() -> String {
    std::env::var("MOTO_URL").unwrap_or_else(|_| {
        panic!("MOTO_URL is not set: run scripts/test, or start `.venv/bin/moto_server -H 127.0.0.1 -p 5055` and export MOTO_URL=http://127.0.0.1:5055")
    })
}

/// Clients that talk to moto.
pub async fn moto_clients() -> Clients {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(moto_url())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await;
    Clients::from_sdk_config(&shared).expect("http client")
}

fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = Utc::now().timestamp_subsec_nanos();
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

/// How the app authenticates to the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// `client_secret` in the secret.
    Secret,
    /// A certificate registered on the app, and its key, in the secret.
    Certificate,
    /// A registered certificate, but the key of another one in the secret.
    CertificateWithWrongKey,
}

/// One isolated environment: its own bucket, secret, Graph server and relay.
pub struct Harness {
    pub graph: GraphServer,
    pub devo: DevoListener,
    pub pki: TestPki,
    pub clients: Clients,
    pub bucket: String,
    pub secret_id: String,
    pub env: HashMap<String, String>,
    /// S3's failures, on every S3 request of this harness (its own included).
    pub s3_faults: Arc<S3Faults>,
}

impl Harness {
    /// Starts everything with `records` on the Graph side and the default test settings
    /// (HISTORIC_DAYS=2, PAGE_SIZE=50, 100 requests/s; the user's default two passes, so a
    /// test about the single pass sets `FRESH_DELAY_SECONDS=0` itself), overridden by `env`.
    pub async fn start(records: Vec<GraphRecord>, env: &[(&str, &str)]) -> Harness {
        Harness::start_with(records, env, Auth::Secret).await
    }

    /// Same as [`Harness::start`], authenticating with `auth`.
    pub async fn start_with(
        records: Vec<GraphRecord>,
        env: &[(&str, &str)],
        auth: Auth,
    ) -> Harness {
        let pki = TestPki::generate(&["localhost", "127.0.0.1"]).expect("pki");
        let graph = GraphServer::start(GraphServerConfig {
            tenant_id: TENANT.into(),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            records,
        })
        .await
        .expect("graph server");
        let devo = DevoListener::start(&pki).await.expect("devo listener");
        let mut clients = moto_clients().await;
        let s3_faults = Arc::new(S3Faults::default());
        clients.s3 = aws_sdk_s3::Client::from_conf(
            clients
                .s3
                .config()
                .to_builder()
                .interceptor(FaultInterceptor(s3_faults.clone()))
                .build(),
        );
        let bucket = unique("state");
        clients
            .s3
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("create bucket");
        let secret_id = unique("m365-trace");
        let mut secret = serde_json::json!({
            "tenant_id": TENANT, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "devo_cert_pem": pki.client_cert_pem, "devo_key_pem": pki.client_key_pem, "devo_chain_pem": pki.ca_pem,
        });
        if auth != Auth::Secret {
            let app =
                AppCredential::generate("m365-trace-to-devo test app").expect("app credential");
            graph
                .add_client_certificate(&app.cert_pem)
                .expect("register certificate");
            let key = if auth == Auth::Certificate {
                app.key_pem.clone()
            } else {
                AppCredential::generate("another key")
                    .expect("app credential")
                    .key_pem
            };
            secret["client_secret"] = Value::Null;
            secret["client_certificate_pem"] = Value::String(app.cert_pem);
            secret["client_private_key_pem"] = Value::String(key);
        }
        clients
            .secrets
            .create_secret()
            .name(&secret_id)
            .secret_string(secret.to_string())
            .send()
            .await
            .expect("create secret");
        let mut map: HashMap<String, String> = [
            ("SECRET_ID", secret_id.as_str()),
            ("STATE_BUCKET", bucket.as_str()),
            ("LOGIN_URL", graph.url().as_str()),
            ("GRAPH_URL", graph.url().as_str()),
            ("REPORTING_URL", graph.url().as_str()),
            ("DEVO_ADDRESS", devo.address().as_str()),
            ("DEVO_SERVER_NAME", "localhost"),
            ("DEVO_HOSTNAME", "test-collector"),
            ("HISTORIC_DAYS", "2"),
            ("PAGE_SIZE", "50"),
            ("REQUESTS_PER_SECOND", "100"),
            ("REQUEST_TIMEOUT_SECONDS", "10"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in env {
            map.insert(k.to_string(), v.to_string());
        }
        Harness {
            graph,
            devo,
            pki,
            clients,
            bucket,
            secret_id,
            env: map,
            s3_faults,
        }
    }

    /// Makes S3 answer requests as `fault` says.
    pub fn s3_fault(&self, fault: S3Fault) {
        self.s3_faults.add(fault);
    }

    /// Starts the Devo Query API stand-in over this relay's table, accepting `token` only, and
    /// points `DEVO_QUERY_URL` at it and the secret's `devo_query_token` to `token`.
    pub async fn with_query_api(
        &mut self,
        token: &str,
    ) -> m365_trace_devtools::devo::query::DevoQueryApi {
        let api = m365_trace_devtools::devo::query::DevoQueryApi::start(&self.devo, token)
            .await
            .expect("query api");
        self.env.insert("DEVO_QUERY_URL".into(), api.url());
        let mut secret = self.secret_document();
        secret["devo_query_token"] = token.into();
        self.set_secret(&secret).await;
        api
    }

    /// Replaces the secret's JSON document.
    pub async fn set_secret(&self, value: &Value) {
        self.clients
            .secrets
            .put_secret_value()
            .secret_id(&self.secret_id)
            .secret_string(value.to_string())
            .send()
            .await
            .expect("put secret");
    }

    /// The secret document the harness stored.
    pub fn secret_document(&self) -> Value {
        serde_json::json!({
            "tenant_id": TENANT, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "devo_cert_pem": self.pki.client_cert_pem, "devo_key_pem": self.pki.client_key_pem,
            "devo_chain_pem": self.pki.ca_pem,
        })
    }

    /// Requests to the message trace API, in order.
    pub fn trace_requests(&self) -> Vec<m365_trace_devtools::graph::RecordedRequest> {
        self.graph
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/messageTraces"))
            .collect()
    }

    /// The state key in use.
    pub fn key(&self) -> String {
        self.env
            .get("STATE_KEY")
            .cloned()
            .unwrap_or_else(|| "m365-message-trace/checkpoint.json".into())
    }

    /// An App as main.rs builds it, from this environment with `name` set to `value`.
    pub fn app_with(&self, name: &str, value: &str, options: TickOptions) -> App {
        let mut env = self.env.clone();
        env.insert(name.to_owned(), value.to_owned());
        App::new(
            Config::from_lookup(|k| env.get(k).cloned()),
            self.clients.clone(),
            options,
        )
    }

    /// An App as main.rs builds it, from this environment.
    pub fn app(&self, options: TickOptions) -> App {
        let env = self.env.clone();
        App::new(
            Config::from_lookup(|k| env.get(k).cloned()),
            self.clients.clone(),
            options,
        )
    }

    /// Runs the real handler with `event`, as request `request_id`, with `deadline_in` to go.
    pub async fn invoke(
        &self,
        app: &App,
        event: Value,
        request_id: &str,
        deadline_in: Duration,
    ) -> Result<Value, String> {
        self.invoke_typed(app, event, request_id, deadline_in)
            .await
            .map_err(|(_, message)| message)
    }

    /// Runs the real handler like [`Harness::invoke`]; a failure comes back as the `errorType`
    /// and message Lambda would report.
    pub async fn invoke_typed(
        &self,
        app: &App,
        event: Value,
        request_id: &str,
        deadline_in: Duration,
    ) -> Result<Value, (String, String)> {
        let deadline = Utc::now() + chrono::Duration::from_std(deadline_in).unwrap();
        self.invoke_until(app, event, request_id, deadline).await
    }

    /// One scheduled tick on the app's own clock (a stepped one, for spans of days): its
    /// deadline 120 s after the app's now.
    pub async fn tick_on_clock(&self, app: &App, request_id: &str) -> Result<Value, String> {
        self.tick_on_clock_typed(app, request_id)
            .await
            .map_err(|(_, message)| message)
    }

    /// [`Harness::tick_on_clock`], a failure as the `errorType` and message Lambda would
    /// report.
    pub async fn tick_on_clock_typed(
        &self,
        app: &App,
        request_id: &str,
    ) -> Result<Value, (String, String)> {
        let deadline = app.now() + chrono::Duration::seconds(120);
        self.invoke_until(app, scheduled_event(), request_id, deadline)
            .await
    }

    /// Runs the real handler with `event` due at `deadline`.
    async fn invoke_until(
        &self,
        app: &App,
        event: Value,
        request_id: &str,
        deadline: DateTime<Utc>,
    ) -> Result<Value, (String, String)> {
        let mut context = Context::default();
        context.request_id = request_id.to_owned();
        context.deadline = u64::try_from(deadline.timestamp_millis()).unwrap();
        m365_trace_to_devo::lambda::handler::handle(app, LambdaEvent::new(event, context))
            .await
            .map_err(|e| {
                let d = lambda_runtime::Diagnostic::from(e);
                (d.error_type, d.error_message)
            })
    }

    /// A scheduled tick that runs out of time inside its first window: the first four pages
    /// take 1 s each and the deadline is 4 s away.
    pub async fn short_tick(&self, app: &App, request_id: &str) -> Result<Value, String> {
        for _ in 0..4 {
            self.graph.inject(m365_trace_devtools::graph::Fault::Delay(
                Duration::from_millis(1000),
            ));
        }
        self.invoke(
            app,
            scheduled_event(),
            request_id,
            Duration::from_millis(4000),
        )
        .await
    }

    /// One scheduled tick with a generous deadline.
    pub async fn tick(&self, app: &App, request_id: &str) -> Result<Value, String> {
        self.invoke(app, scheduled_event(), request_id, Duration::from_secs(120))
            .await
    }

    /// The checkpoint object and its ETag.
    pub async fn checkpoint(&self) -> Option<(Value, String)> {
        let out = self
            .clients
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(self.key())
            .send()
            .await
            .ok()?;
        let etag = out.e_tag().unwrap_or_default().to_owned();
        let body = out.body.collect().await.ok()?.into_bytes();
        Some((
            serde_json::from_slice(&body).expect("checkpoint JSON"),
            etag,
        ))
    }

    /// Writes the checkpoint object unconditionally (as another invocation or an operator would).
    pub async fn put_checkpoint(&self, value: &Value) {
        self.clients
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(self.key())
            .body(ByteStream::from(serde_json::to_vec(value).unwrap()))
            .send()
            .await
            .expect("put checkpoint");
    }

    /// Keys (`MessageTraceId|RecipientAddress`) of every trace line the relay received, in
    /// order (the status lines and the delivery detail lines left out).
    pub fn received_keys(&self) -> Vec<String> {
        self.trace_lines().iter().map(|l| line_key(l)).collect()
    }

    /// The trace lines the relay received, in order: without the status lines and the
    /// delivery details that follow the passes.
    pub fn trace_lines(&self) -> Vec<String> {
        trace_lines(&self.devo)
    }

    /// The delivery detail lines the relay received (`DETAIL_TAG`), in order.
    pub fn detail_lines(&self) -> Vec<String> {
        tagged(&self.devo.lines(), DETAIL_TAG)
    }

    /// The JSON of the status lines the relay received, in order.
    pub fn status_lines(&self) -> Vec<Value> {
        status_lines(&self.devo)
    }
}

/// `DEVO_TAG` as a user gets it.
pub const TRACE_TAG: &str = "cloud.office365.messagetracing";
/// `DETAIL_TAG` as a user gets it.
pub const DETAIL_TAG: &str = "my.app.office365.messagetracedetail";
/// `STATUS_TAG`'s default: the tag of the status line each tick sends.
pub const STATUS_TAG: &str = "my.app.m365trace.status";

/// The lines of `lines` written under `tag`.
pub fn tagged(lines: &[String], tag: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|l| is_tagged(l, tag))
        .cloned()
        .collect()
}

/// Whether `line` was written under `tag` (the fourth field of its header).
pub fn is_tagged(line: &str, tag: &str) -> bool {
    line.split_once(": ")
        .is_some_and(|(header, _)| header.split(' ').nth(3) == Some(tag))
}

/// Whether `line` is a status line (tag [`STATUS_TAG`]).
pub fn is_status_line(line: &str) -> bool {
    is_tagged(line, STATUS_TAG)
}

/// Whether `line` is a trace line: neither a status line nor a delivery detail line (a
/// registry's tenant may have a `DEVO_TAG` of its own).
pub fn is_trace_line(line: &str) -> bool {
    !is_status_line(line) && !is_tagged(line, DETAIL_TAG)
}

/// The trace lines `devo` received, in order.
pub fn trace_lines(devo: &DevoListener) -> Vec<String> {
    devo.lines()
        .into_iter()
        .filter(|l| is_trace_line(l))
        .collect()
}

/// The JSON of the status lines `devo` received, in order.
pub fn status_lines(devo: &DevoListener) -> Vec<Value> {
    devo.lines()
        .into_iter()
        .filter(|l| is_status_line(l))
        .map(|l| serde_json::from_str(l.split_once(": ").expect("header: json").1).expect("JSON"))
        .collect()
}

/// The indices of the sessions of `devo` that carried no trace line, only status or detail
/// lines (each tick's status line, and its delivery details, go on streams of their own).
pub fn other_sessions(devo: &DevoListener) -> std::collections::HashSet<usize> {
    let mut no_trace: HashMap<usize, bool> = HashMap::new();
    for (session, line) in devo.lines_by_session() {
        *no_trace.entry(session).or_insert(true) &= !is_trace_line(&line);
    }
    no_trace
        .into_iter()
        .filter_map(|(session, none)| none.then_some(session))
        .collect()
}

/// The sessions of `devo` that carried trace lines (or none), in order: every session but those
/// of the status lines and the delivery details.
pub fn trace_sessions(devo: &DevoListener) -> Vec<m365_trace_devtools::devo::SessionInfo> {
    let other = other_sessions(devo);
    devo.sessions()
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !other.contains(i))
        .map(|(_, s)| s)
        .collect()
}

/// Parses a Devo line and returns its record key; panics when the line is not well-formed.
pub fn line_key(line: &str) -> String {
    let json = line_json(line);
    format!(
        "{}|{}",
        json["MessageTraceId"].as_str().expect("MessageTraceId"),
        json["RecipientAddress"].as_str().unwrap_or("")
    )
}

/// The JSON part of a Devo line, after checking the header.
pub fn line_json(line: &str) -> Value {
    assert!(line.starts_with("<14>"), "{line}");
    let (header, json) = line.split_once(": ").expect("header: json");
    let parts: Vec<&str> = header.split(' ').collect();
    assert_eq!(parts.len(), 4, "<14>date time host tag: {line}");
    assert_eq!(parts[2], "test-collector");
    assert_eq!(parts[3], TRACE_TAG);
    serde_json::from_str(json).expect("one JSON object per line")
}

/// The report of the pass `name` in a tick's summary; panics when the tick did not run it.
pub fn pass<'a>(summary: &'a Value, name: &str) -> &'a Value {
    summary["passes"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["pass"] == serde_json::json!(name)))
        .unwrap_or_else(|| panic!("no {name} pass in {summary}"))
}

/// The key of a generated record.
pub fn record_key(r: &GraphRecord) -> String {
    format!("{}|{}", r.id, r.recipient_address)
}

/// An EventBridge "Scheduled Event".
pub fn scheduled_event() -> Value {
    serde_json::from_str(include_str!("../../../events/scheduled.json"))
        .expect("events/scheduled.json")
}

/// Records of `records` received in `[start, end)`.
pub fn expected_keys(
    records: &[GraphRecord],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<String> {
    let mut keys: Vec<String> = records
        .iter()
        .filter(|r| r.received_date_time >= start && r.received_date_time < end)
        .map(record_key)
        .collect();
    keys.sort();
    keys
}

/// `count` records in the first 5 hours of the first window of a fresh start (HISTORIC_DAYS=2).
pub fn first_window_records(seed: u64, count: usize) -> Vec<GraphRecord> {
    let start = Utc::now() - chrono::TimeDelta::days(2) + chrono::TimeDelta::minutes(1);
    m365_trace_devtools::records::generate(seed, start, start + chrono::TimeDelta::hours(5), count)
}

/// Sorted copy.
pub fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Fast test options: a small commit reserve so that short deadlines still pull.
pub fn fast_options() -> TickOptions {
    TickOptions {
        commit_reserve: Duration::from_millis(1500),
        devo_close_timeout: Duration::from_secs(5),
        lease_slack: Duration::from_secs(60),
        retry_min_delay: Duration::from_millis(20),
        devo_attempts: 3,
    }
}

/// The longest a tick given `deadline` may take in these tests: the deadline and a quarter of
/// it. The tick aims to return before its deadline (it keeps back up to an eighth of it), but
/// on a machine shared with builds its last S3 write can take longer than that; a tick that did
/// not watch its deadline runs several times longer (each test's faults make sure of it).
pub fn deadline_bound(deadline: Duration) -> Duration {
    deadline + deadline / 4
}

/// Sleeps until `t` (the tests of the two passes wait for a span to age past a delay).
pub async fn until(t: DateTime<Utc>) {
    if let Ok(d) = (t - Utc::now()).to_std() {
        tokio::time::sleep(d).await;
    }
}

/// Parses an RFC 3339 time from the summary or checkpoint.
pub fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().expect("time string"))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

/// Asserts `got` holds exactly the `expected` keys, once each; on failure lists only the
/// differences.
pub fn assert_same_keys(got: Vec<String>, expected: Vec<String>, context: &str) {
    let mut counts: HashMap<String, i64> = HashMap::new();
    for k in &got {
        *counts.entry(k.clone()).or_default() += 1;
    }
    for k in &expected {
        *counts.entry(k.clone()).or_default() -= 1;
    }
    let mut wrong: Vec<(String, i64)> = counts.into_iter().filter(|(_, n)| *n != 0).collect();
    wrong.sort();
    assert!(
        wrong.is_empty(),
        "{} keys differ (n > 0: sent n times too many, n < 0: missing), got {} expected {}: {:?}\n{context}",
        wrong.len(),
        got.len(),
        expected.len(),
        &wrong[..wrong.len().min(20)]
    );
}

/// Options for soaks: hundreds of ticks a minute, so short reserves, slack and retries.
pub fn soak_options() -> TickOptions {
    TickOptions {
        commit_reserve: Duration::from_millis(300),
        devo_close_timeout: Duration::from_secs(2),
        lease_slack: Duration::from_millis(500),
        retry_min_delay: Duration::from_millis(5),
        devo_attempts: 3,
    }
}

/// The checkpoint's end, if there is a checkpoint with one.
pub fn end_of(checkpoint: &Option<(Value, String)>) -> Option<DateTime<Utc>> {
    checkpoint
        .as_ref()
        .and_then(|(cp, _)| cp["end"].as_str().map(|_| time(&cp["end"])))
}

/// Asserts that a command line run with the wrong Query API token `wrong` failed naming the
/// secret field `devo_query_token` and Devo's 401, and printed neither `wrong` nor `right`.
pub fn assert_wrong_token_named(
    (code, stdout, stderr): (i32, String, String),
    wrong: &str,
    right: &str,
) {
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("\"devo_query_token\" in secret"),
        "{stderr}"
    );
    assert!(stderr.contains("HTTP 401"), "{stderr}");
    for text in [&stdout, &stderr] {
        assert!(!text.contains(wrong) && !text.contains(right), "{text}");
    }
}

/// Runs the operator's command line with `args` in `env` plus the variables that point it at
/// moto, off the runtime's threads so that the stand-ins keep serving; returns its exit status,
/// stdout and stderr.
pub async fn run_cli(
    args: &[&str],
    env: impl IntoIterator<Item = (String, String)>,
) -> (i32, String, String) {
    let mut env: Vec<(String, String)> = env.into_iter().collect();
    for (k, v) in [
        ("AWS_ENDPOINT_URL", moto_url().as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ] {
        env.push((k.to_owned(), v.to_owned()));
    }
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_m365-trace-to-devo-cli"))
            .args(&args)
            .env_clear()
            .envs(env)
            .output()
            .expect("run the CLI")
    })
    .await
    .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}
