//! `m365-trace-devtools`: the local stand-ins as a command-line tool, for the demo, the
//! benchmark and manual runs (certs, a Graph-like server, a Devo-like listener, one Lambda
//! invocation).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use m365_trace_devtools::devo::DevoListener;
use m365_trace_devtools::devo::query::DevoQueryApi;
use m365_trace_devtools::pki::{AppCredential, TestPki};
use m365_trace_devtools::runtime_api::{Invocation, invoke_once_forwarding};
use serde_json::json;

#[path = "cli/graph.rs"]
mod graph_cmd;

use graph_cmd::{GraphArgs, graph};

#[derive(Parser)]
#[command(
    name = "m365-trace-devtools",
    version,
    about = "Local stand-ins for m365-trace-to-devo: test certificates, a Graph-like message trace server, a Devo-like mutual-TLS listener and a one-shot Lambda Runtime API. Servers bind 127.0.0.1 and stop by themselves."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write a test PKI (ca.pem, server.pem, server.key, client.pem, client.key) into a directory.
    Certs(CertsArgs),
    /// Serve a Graph-like token endpoint and message trace API with generated records.
    /// Prints {"url":…,"records":N} on stdout once listening, then logs requests to stderr.
    Graph(GraphArgs),
    /// Serve a Devo-relay-like TLS listener that requires a client certificate from the PKI.
    /// Prints {"address":…} on stdout once listening.
    Listener(ListenerArgs),
    /// Run a Lambda bootstrap binary once against a local Runtime API; prints the function's
    /// response on stdout (exit 0) or its error (exit 1).
    Invoke(InvokeArgs),
    /// Serve a Lambda `Invoke` stand-in (asynchronous invocations answered 202) for the
    /// dispatcher: prints {"url":…} once listening (AWS_ENDPOINT_URL_LAMBDA), then on exit one
    /// JSON line per accepted invocation when --payloads is given, and the count on stderr.
    Lambda(LambdaArgs),
}

/// Arguments of `lambda`.
#[derive(Args)]
struct LambdaArgs {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Print every accepted payload (one JSON line each) on stdout when stopping.
    #[arg(long)]
    payloads: bool,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 900)]
    max_seconds: u64,
}

/// Arguments of `certs`.
#[derive(Args)]
struct CertsArgs {
    /// Output directory (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Server certificate names (DNS names or IP addresses); repeatable.
    #[arg(long = "name", default_values = ["localhost", "127.0.0.1"])]
    names: Vec<String>,
    /// Make the client certificate already expired (for failure demos).
    #[arg(long)]
    expired_client: bool,
    /// Also write app.pem/app.key: an RSA certificate credential for the Graph app
    /// registration (`graph --client-certificate DIR/app.pem`).
    #[arg(long)]
    app_credential: bool,
}

/// Arguments of `listener`.
#[derive(Args)]
struct ListenerArgs {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Directory written by `certs`.
    #[arg(long)]
    certs: PathBuf,
    /// Append every received line to this file.
    #[arg(long, conflicts_with = "count_only")]
    out: Option<PathBuf>,
    /// Count lines and bytes without keeping them (for benchmarks); prints one JSON line
    /// per finished session on stdout: {"session":i,"lines":…,"bytes":…,"seconds":…}.
    #[arg(long)]
    count_only: bool,
    /// End a session that received nothing for this many seconds (close_notify + FIN), as
    /// real relays do.
    #[arg(long)]
    close_idle_after: Option<f64>,
    /// Read at most this many bytes per second from each session, like a congested relay.
    #[arg(long)]
    read_bytes_per_second: Option<u64>,
    /// Cut the next session (TCP reset, no close_notify) after it received this many lines.
    #[arg(long)]
    cut_after_lines: Option<usize>,
    /// Accept and lose the lines of this many records in a thousand (by their key): they
    /// arrive but the Query API stand-in does not hold them, as a relay that drops.
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=1000))]
    lose_per_mille: Option<u32>,
    /// Also serve a Devo Query API stand-in on this address (loopback only), answering from
    /// what this listener holds; prints {"address":…,"query_url":…} (DEVO_QUERY_URL).
    #[arg(long, requires = "query_token")]
    query_listen: Option<SocketAddr>,
    /// The token the Query API stand-in accepts (the secret's devo_query_token).
    #[arg(long)]
    query_token: Option<String>,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 900)]
    max_seconds: u64,
}

/// Arguments of `invoke`.
#[derive(Args)]
struct InvokeArgs {
    /// JSON file with the invocation event.
    #[arg(long)]
    event: PathBuf,
    /// Function timeout in seconds (the deadline the function sees).
    #[arg(long, default_value_t = 120)]
    timeout_seconds: u64,
    /// Function name (AWS_LAMBDA_FUNCTION_NAME).
    #[arg(long, default_value = "m365-trace-to-devo")]
    function_name: String,
    /// Write {"init_ms","handler_ms","peak_rss_kib","user_seconds","system_seconds"} of
    /// the invocation to this file (peak memory and CPU time of the function's process).
    #[arg(long)]
    stats: Option<PathBuf>,
    /// The bootstrap binary.
    #[arg(last = true, required = true)]
    binary: PathBuf,
}

fn check_loopback(addr: &SocketAddr) -> std::io::Result<()> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("--listen {addr}: only loopback addresses are allowed"),
        ))
    }
}

async fn run_until(max_seconds: u64) {
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(max_seconds)) => {
            eprintln!("stopping after --max-seconds {max_seconds}");
        }
        _ = tokio::signal::ctrl_c() => eprintln!("interrupted"),
    }
}

/// Prints one JSON line per finished session, as sessions finish (count-only mode).
async fn report_sessions(listener: &DevoListener) {
    let mut reported = 0;
    loop {
        let sessions = listener.sessions();
        while let Some(s) = sessions.get(reported).filter(|s| s.finished) {
            println!(
                "{}",
                json!({
                    "session": reported,
                    "lines": s.lines,
                    "bytes": s.bytes,
                    "seconds": s.elapsed.as_secs_f64(),
                    "clean_close": s.clean_close,
                    "protocol": s.protocol,
                })
            );
            reported += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn run(cli: Cli) -> std::io::Result<ExitCode> {
    match cli.command {
        Cmd::Certs(args) => certs(args),
        Cmd::Graph(args) => graph(args).await,
        Cmd::Listener(args) => listener(args).await,
        Cmd::Invoke(args) => invoke(args).await,
        Cmd::Lambda(args) => lambda(args).await,
    }
}

/// `lambda`: the Invoke stand-in until `--max-seconds` or Ctrl-C.
async fn lambda(args: LambdaArgs) -> std::io::Result<ExitCode> {
    check_loopback(&args.listen)?;
    let server = m365_trace_devtools::lambda::InvokeServer::start_on(args.listen).await?;
    println!("{}", json!({"url": server.url()}));
    run_until(args.max_seconds).await;
    if args.payloads {
        for payload in server.payloads() {
            println!("{payload}");
        }
    }
    eprintln!("{} invocations accepted", server.count());
    Ok(ExitCode::SUCCESS)
}

/// `certs`: writes the test PKI (and optionally the app credential).
fn certs(args: CertsArgs) -> std::io::Result<ExitCode> {
    let names: Vec<&str> = args.names.iter().map(String::as_str).collect();
    let pki = if args.expired_client {
        TestPki::generate_with_expired_client(&names)
    } else {
        TestPki::generate(&names)
    }?;
    pki.write_to(&args.out)?;
    if args.app_credential {
        let cred = AppCredential::generate("m365-trace-to-devo test app")?;
        std::fs::write(args.out.join("app.pem"), &cred.cert_pem)?;
        std::fs::write(args.out.join("app.key"), &cred.key_pem)?;
        eprintln!("wrote app.pem app.key (x5t#S256 {})", cred.x5t_s256()?);
    }
    eprintln!(
        "wrote ca.pem server.pem server.key client.pem client.key to {}",
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `listener`: a Devo-like relay until `--max-seconds` or Ctrl-C.
async fn listener(args: ListenerArgs) -> std::io::Result<ExitCode> {
    check_loopback(&args.listen)?;
    let pki = TestPki::read_from(&args.certs)?;
    let listener = DevoListener::start_on(&pki, args.listen, args.out).await?;
    listener.set_count_only(args.count_only);
    let idle = args
        .close_idle_after
        .map(Duration::try_from_secs_f64)
        .transpose();
    listener.close_idle_after(idle.map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("--close-idle-after: {e}"),
        )
    })?);
    listener.read_slowly(args.read_bytes_per_second);
    if let Some(n) = args.cut_after_lines {
        listener.cut_next_connection_after(n);
    }
    listener.lose_fraction(args.lose_per_mille);
    let query = match (args.query_listen, &args.query_token) {
        (Some(addr), Some(token)) => {
            check_loopback(&addr)?;
            Some(DevoQueryApi::start_on(&listener, addr, token).await?)
        }
        _ => None,
    };
    match &query {
        Some(q) => println!(
            "{}",
            json!({"address": listener.address(), "query_url": q.url()})
        ),
        None => println!("{}", json!({"address": listener.address()})),
    }
    if args.count_only {
        tokio::select! {
            _ = run_until(args.max_seconds) => {}
            _ = report_sessions(&listener) => {}
        }
    } else {
        run_until(args.max_seconds).await;
    }
    eprintln!(
        "{} lines over {} connections, {} failed handshakes, {} lost on purpose",
        listener.line_count(),
        listener.connections(),
        listener.handshake_failures(),
        listener.lost_lines().len()
    );
    drop(query);
    Ok(ExitCode::SUCCESS)
}

fn with_path(path: &std::path::Path) -> impl Fn(std::io::Error) -> std::io::Error + '_ {
    move |e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// `invoke`: one Lambda invocation; prints the response (exit 0) or the error (exit 1).
async fn invoke(args: InvokeArgs) -> std::io::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.event).map_err(with_path(&args.event))?;
    let event: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {e}", args.event.display()),
        )
    })?;
    let outcome = invoke_once_forwarding(
        Invocation {
            binary: args.binary,
            env: Vec::new(),
            event,
            timeout: Duration::from_secs(args.timeout_seconds),
            function_name: args.function_name,
        },
        true,
    )
    .await?;
    eprintln!(
        "request {}: init {} ms, handler {} ms",
        outcome.request_id,
        outcome.init_to_first_next.as_millis(),
        outcome
            .handler_duration
            .map(|d| d.as_millis().to_string())
            .unwrap_or_else(|| "-".into())
    );
    if let Some(path) = args.stats {
        let usage = outcome.usage;
        let stats = json!({
            "init_ms": outcome.init_to_first_next.as_secs_f64() * 1000.0,
            "handler_ms": outcome.handler_duration.map(|d| d.as_secs_f64() * 1000.0),
            "peak_rss_kib": usage.map(|u| u.peak_rss_kib),
            "user_seconds": usage.map(|u| u.user_seconds),
            "system_seconds": usage.map(|u| u.system_seconds),
        });
        std::fs::write(&path, format!("{stats}\n")).map_err(with_path(&path))?;
    }
    let (value, code) = match outcome.result {
        Ok(v) => (v, ExitCode::SUCCESS),
        Err(v) => (v, ExitCode::FAILURE),
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string())
    );
    Ok(code)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
