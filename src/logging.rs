//! JSON log lines through `tracing`, one event per line, level from `LOG_LEVEL`.

use tracing_subscriber::EnvFilter;

/// The product's filter: its own events at `level` (default `info`), other crates' warnings.
pub fn filter(level: Option<&str>) -> EnvFilter {
    let level = level.unwrap_or("info");
    EnvFilter::try_new(format!("warn,m365_trace_to_devo={level}"))
        .unwrap_or_else(|_| EnvFilter::new("warn,m365_trace_to_devo=info"))
}

/// Installs the JSON subscriber once; `LOG_LEVEL` sets the verbosity.
pub fn init() {
    let level = std::env::var("LOG_LEVEL").ok();
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        // The invocation span carries the request id: `"span":{"request_id":…}` on every line.
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .without_time()
        .with_env_filter(filter(level.as_deref()))
        .try_init();
}
