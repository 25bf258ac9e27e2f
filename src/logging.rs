//! JSON log lines through `tracing`, one event per line, level from `LOG_LEVEL`.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The product's filter: its own events at `level` (default `info`), other crates' warnings.
pub fn filter(level: Option<&str>) -> EnvFilter {
    let level = level.unwrap_or("info");
    EnvFilter::try_new(format!("warn,m365_trace_to_devo={level}"))
        .unwrap_or_else(|_| EnvFilter::new("warn,m365_trace_to_devo=info"))
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
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        // The invocation span carries the request id: `"span":{"request_id":…}` on every line.
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .without_time()
        .with_writer(writer)
        .with_env_filter(filter(Some(&level)))
        .try_init();
}
