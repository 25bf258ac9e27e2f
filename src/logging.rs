//! JSON log lines through `tracing`, one event per line, level from `LOG_LEVEL`.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

/// The product's filter: its own events at `level` (default `info`), other crates' warnings.
/// A plain per-target filter rather than `EnvFilter`: no regex engine linked into the binary
/// (smaller binary, faster cold start).
pub fn filter(level: Option<&str>) -> Targets {
    let level = level
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    Targets::new()
        .with_default(LevelFilter::WARN)
        .with_target("m365_trace_to_devo", level)
}

/// Installs the JSON subscriber once on stdout (the Lambda's log stream); `LOG_LEVEL`
/// (default `info`) sets the verbosity.
pub fn init() {
    install(std::io::stdout, "info");
}

/// Installs the JSON subscriber on stderr, so that a command's own output keeps stdout;
/// `default_level` applies when `LOG_LEVEL` is unset.
pub fn init_stderr(default_level: &str) {
    install(std::io::stderr, default_level);
}

fn install<W>(writer: W, default_level: &str)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let level = std::env::var("LOG_LEVEL").unwrap_or_else(|_| default_level.to_owned());
    let json = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        // The invocation span carries the request id: `"span":{"request_id":…}` on every line.
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .without_time()
        .with_writer(writer);
    let _ = tracing_subscriber::registry()
        .with(json.with_filter(filter(Some(&level))))
        .try_init();
}
