//! JSON log lines through `tracing`, one event per line, level from `LOG_LEVEL`.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

/// Installs the JSON subscriber once; `LOG_LEVEL` (default `info`) sets the verbosity.
pub fn init() {
    // A plain per-target filter rather than `EnvFilter`: the same `warn` + `LOG_LEVEL` for this
    // crate, without linking a regex engine into the binary (smaller binary, faster cold start).
    let level = std::env::var("LOG_LEVEL")
        .ok()
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let filter = Targets::new()
        .with_default(LevelFilter::WARN)
        .with_target("m365_trace_to_devo", level);
    let json = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .without_time();
    let _ = tracing_subscriber::registry()
        .with(json.with_filter(filter))
        .try_init();
}
