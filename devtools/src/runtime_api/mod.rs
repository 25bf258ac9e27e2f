//! A one-shot local Lambda Runtime API.
//!
//! Exists so the product's real Lambda binary can be run end to end on a developer machine, in
//! CI and in the benchmark exactly as Lambda runs it: the process is started with the Lambda
//! environment, pulls one event from `GET /2018-06-01/runtime/invocation/next` and answers on
//! `…/invocation/{id}/response` or `…/{id}/error` (protocol:
//! docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::util::{RespBody, full, random_hex, serve_http, uuid};

mod usage;

pub use usage::ProcessUsage;

/// API version prefix of every Runtime API path.
const PREFIX: &str = "/2018-06-01/runtime";
/// Grace period after the function timeout before the invocation is given up.
const GRACE: Duration = Duration::from_secs(10);

/// One invocation of a Lambda binary through a local Lambda Runtime API.
#[derive(Clone, Debug)]
pub struct Invocation {
    /// The bootstrap executable (e.g. target/debug/m365-trace-to-devo).
    pub binary: PathBuf,
    /// Extra environment for the child, on top of the caller's environment and the Lambda
    /// variables (it may override the latter, except AWS_LAMBDA_RUNTIME_API).
    pub env: Vec<(String, String)>,
    /// The event payload served by `invocation/next`.
    pub event: Value,
    /// The function timeout; sets Lambda-Runtime-Deadline-Ms.
    pub timeout: Duration,
    /// AWS_LAMBDA_FUNCTION_NAME and the last part of the function ARN.
    pub function_name: String,
}

/// What one invocation produced.
#[derive(Clone, Debug)]
pub struct InvocationOutcome {
    /// Lambda-Runtime-Aws-Request-Id served with the event.
    pub request_id: String,
    /// Ok(response body) or Err(error body). An init error, an early exit or a timeout is an
    /// Err with `errorType` set to `Runtime.InitError` (the body the child posted),
    /// `Runtime.ExitError` or `Sandbox.Timedout`.
    pub result: Result<Value, Value>,
    /// Everything the child wrote to stdout.
    pub stdout: String,
    /// Everything the child wrote to stderr.
    pub stderr: String,
    /// Process spawn → first GET invocation/next (the cold-start cost).
    pub init_to_first_next: Duration,
    /// First GET invocation/next → response or error (the handler's duration).
    pub handler_duration: Option<Duration>,
    /// The child's peak memory and CPU time, read from /proc just before it is stopped (Linux;
    /// `None` elsewhere or when the process had already exited).
    pub usage: Option<ProcessUsage>,
}

struct Rt {
    event: Value,
    request_id: String,
    function_arn: String,
    timeout: Duration,
    served: Mutex<Option<Instant>>,
    tx: mpsc::UnboundedSender<(Result<Value, Value>, Instant)>,
}

struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn text_response(status: StatusCode, body: &Value) -> Response<RespBody> {
    let mut resp = Response::new(full(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn body_value(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

async fn handle(req: Request<Incoming>, rt: Arc<Rt>) -> Result<Response<RespBody>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let error_type = req
        .headers()
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Ok(text_response(
            StatusCode::NOT_FOUND,
            &json!({"errorType": "NotFound", "errorMessage": path}),
        ));
    };
    if method == Method::GET && rest == "/invocation/next" {
        return Ok(next_invocation(&rt).await);
    }
    if method == Method::POST && rest == "/init/error" {
        let mut v = body_value(&body);
        if let (Value::Object(map), Some(t)) = (&mut v, &error_type) {
            map.entry("errorType")
                .or_insert_with(|| Value::String(t.clone()));
        }
        let _ = rt.tx.send((Err(v), Instant::now()));
        return Ok(accepted());
    }
    if method == Method::POST
        && let Some(tail) = rest.strip_prefix("/invocation/")
        && let Some((id, kind)) = tail.split_once('/')
        && (kind == "response" || kind == "error")
    {
        return Ok(invocation_result(&rt, id, kind == "response", &body));
    }
    Ok(text_response(
        StatusCode::NOT_FOUND,
        &json!({"errorType": "NotFound", "errorMessage": format!("{method} {path}")}),
    ))
}

fn accepted() -> Response<RespBody> {
    text_response(StatusCode::ACCEPTED, &json!({"status": "OK"}))
}

/// `GET …/invocation/next`: the event with the Lambda headers, once; later polls block, as a
/// frozen sandbox would.
async fn next_invocation(rt: &Rt) -> Response<RespBody> {
    let first = {
        let mut served = rt.served.lock().unwrap_or_else(|e| e.into_inner());
        let first = served.is_none();
        if first {
            *served = Some(Instant::now());
        }
        first
    };
    if !first {
        std::future::pending::<()>().await;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let deadline = (now + rt.timeout).as_millis();
    let mut resp = Response::new(full(rt.event.to_string()));
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let trace_id = format!(
        "Root=1-{:08x}-{};Parent={};Sampled=0",
        now.as_secs(),
        random_hex(12),
        random_hex(8)
    );
    for (name, value) in [
        ("lambda-runtime-aws-request-id", rt.request_id.clone()),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            rt.function_arn.clone(),
        ),
        ("lambda-runtime-trace-id", trace_id),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    resp
}

/// `POST …/invocation/{id}/response` or `…/error`.
fn invocation_result(rt: &Rt, id: &str, success: bool, body: &[u8]) -> Response<RespBody> {
    if id != rt.request_id {
        return text_response(
            StatusCode::BAD_REQUEST,
            &json!({"errorType": "InvalidRequestID", "errorMessage": "Invalid request ID"}),
        );
    }
    let value = body_value(body);
    let result = if success { Ok(value) } else { Err(value) };
    let _ = rt.tx.send((result, Instant::now()));
    accepted()
}

/// Runs `inv.binary` once against a local Runtime API and returns what it answered.
///
/// The child gets the caller's environment plus the Lambda variables that `lambda_runtime`
/// reads (AWS_LAMBDA_RUNTIME_API, AWS_LAMBDA_FUNCTION_NAME, AWS_LAMBDA_FUNCTION_VERSION,
/// AWS_LAMBDA_FUNCTION_MEMORY_SIZE, AWS_LAMBDA_LOG_GROUP_NAME, AWS_LAMBDA_LOG_STREAM_NAME),
/// AWS_REGION/AWS_DEFAULT_REGION us-east-1 when neither the caller nor `inv.env` sets them,
/// then `inv.env`. The child is killed once it has answered, exited, or run past
/// timeout + 10 s.
pub async fn invoke_once(inv: Invocation) -> std::io::Result<InvocationOutcome> {
    invoke_once_forwarding(inv, false).await
}

/// Same as [`invoke_once`]; when `forward_output` is true the child's stdout and stderr are
/// also copied to this process's stderr as they arrive (the CLI's `invoke`, for live logs).
pub async fn invoke_once_forwarding(
    inv: Invocation,
    forward_output: bool,
) -> std::io::Result<InvocationOutcome> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let request_id = uuid();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let rt = Arc::new(Rt {
        event: inv.event.clone(),
        request_id: request_id.clone(),
        function_arn: format!(
            "arn:aws:lambda:us-east-1:123456789012:function:{}",
            inv.function_name
        ),
        timeout: inv.timeout,
        served: Mutex::new(None),
        tx,
    });
    let server_rt = rt.clone();
    let server = tokio::spawn(serve_http(listener, move |req| {
        handle(req, server_rt.clone())
    }));
    let _server = AbortOnDrop(server.abort_handle());

    let spawned = Instant::now();
    let mut child = command(&inv, addr).spawn()?;
    let stdout_task = tokio::spawn(collect(child.stdout.take(), forward_output));
    let stderr_task = tokio::spawn(collect(child.stderr.take(), forward_output));
    let (result, answered_at) = wait_answer(&mut child, &mut rx, inv.timeout + GRACE).await;
    let usage = child.id().and_then(ProcessUsage::of);
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    let output = |task: tokio::task::JoinHandle<String>| async {
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
    };
    let stdout = output(stdout_task).await;
    let stderr = output(stderr_task).await;
    let first_next = *rt.served.lock().unwrap_or_else(|e| e.into_inner());
    Ok(InvocationOutcome {
        request_id,
        result,
        stdout,
        stderr,
        init_to_first_next: first_next
            .map(|t| t.duration_since(spawned))
            .unwrap_or_default(),
        handler_duration: match (first_next, answered_at) {
            (Some(a), Some(b)) => Some(b.saturating_duration_since(a)),
            _ => None,
        },
        usage,
    })
}

/// The child process with the Lambda environment (see [`invoke_once`]).
fn command(inv: &Invocation, addr: SocketAddr) -> Command {
    let mut cmd = Command::new(&inv.binary);
    let has =
        |name: &str| std::env::var_os(name).is_some() || inv.env.iter().any(|(k, _)| k == name);
    if !has("AWS_REGION") && !has("AWS_DEFAULT_REGION") {
        cmd.env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1");
    }
    let today = chrono::Utc::now().format("%Y/%m/%d");
    cmd.env("AWS_LAMBDA_FUNCTION_NAME", &inv.function_name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", inv.function_name),
        )
        .env(
            "AWS_LAMBDA_LOG_STREAM_NAME",
            format!("{today}/[$LATEST]{}", random_hex(16)),
        )
        .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
        .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
        .envs(inv.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Waits for the child's answer, its exit, or `limit`; returns the result and when it was
/// answered.
async fn wait_answer(
    child: &mut tokio::process::Child,
    rx: &mut mpsc::UnboundedReceiver<(Result<Value, Value>, Instant)>,
    limit: Duration,
) -> (Result<Value, Value>, Option<Instant>) {
    tokio::select! {
        got = rx.recv() => match got {
            Some(r) => (r.0, Some(r.1)),
            None => (Err(json!({"errorType": "Runtime.Unknown", "errorMessage": "runtime API stopped"})), None),
        },
        status = child.wait() => {
            // The answer may have raced the exit.
            tokio::time::sleep(Duration::from_millis(50)).await;
            match rx.try_recv() {
                Ok(r) => (r.0, Some(r.1)),
                Err(_) => {
                    let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                    (Err(json!({
                        "errorType": "Runtime.ExitError",
                        "errorMessage": format!("the process exited before answering the invocation ({status})"),
                    })), None)
                }
            }
        }
        _ = tokio::time::sleep(limit) => (Err(json!({
            "errorType": "Sandbox.Timedout",
            "errorMessage": format!("no answer within the function timeout plus {} s ({} s in all)", GRACE.as_secs(), limit.as_secs()),
        })), None),
    }
}

/// Reads a child pipe to its end, optionally echoing it to stderr.
async fn collect(pipe: Option<impl AsyncRead + Unpin>, forward: bool) -> String {
    let mut buf = Vec::new();
    if let Some(mut pipe) = pipe {
        let mut chunk = vec![0u8; 8192];
        loop {
            match pipe.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if forward {
                        use std::io::Write;
                        let _ = std::io::stderr().write_all(&chunk[..n]);
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}
