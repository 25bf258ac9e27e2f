//! JSON log lines through `tracing`, one event per line, level from `LOG_LEVEL`.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber once; `LOG_LEVEL` (default `info`) sets the verbosity.
pub fn init() {
    let level = std::env::var("LOG_LEVEL").unwrap_or_else(|_| "info".to_owned());
    let filter = EnvFilter::try_new(format!("warn,m365_trace_to_devo={level}"))
        .unwrap_or_else(|_| EnvFilter::new("warn,m365_trace_to_devo=info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .without_time()
        .with_env_filter(filter)
        .try_init();
}
