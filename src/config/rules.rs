//! The window rules (`DELAY_SECONDS`, `HISTORIC_DAYS`, `MARGIN_SECONDS`,
//! `MAX_WINDOW_SECONDS`), refused when together with the API they could never pull a record.

use crate::config::env::Env;
use crate::config::{ConfigError, TraceApi, WindowRules, defaults};

/// Reads the window rules for `api` and checks that they leave something to pull.
pub(crate) fn read(env: &Env<'_>, api: TraceApi) -> Result<WindowRules, ConfigError> {
    let delay = env.int("DELAY_SECONDS", defaults::DELAY_SECONDS, 0, 30 * 86_400)?;
    let historic_days = env.int(
        "HISTORIC_DAYS",
        defaults::HISTORIC_DAYS,
        0,
        api.lookback().num_days(),
    )?;
    let margin = env.int("MARGIN_SECONDS", defaults::MARGIN_SECONDS, 0, 3_600)?;
    let max_window = env.int(
        "MAX_WINDOW_SECONDS",
        defaults::MAX_WINDOW_SECONDS,
        60,
        api.max_query_span().num_seconds(),
    )?;
    let rules = WindowRules {
        delay: chrono::Duration::seconds(delay),
        historic: chrono::Duration::days(historic_days),
        margin: chrono::Duration::seconds(margin),
        max_window: chrono::Duration::seconds(max_window),
        lookback: api.lookback(),
    };
    can_ever_pull(&rules, api)?;
    Ok(rules)
}

/// `FRESH_DELAY_SECONDS`: from 0 (no fresh pass) to `DELAY_SECONDS`.
pub(crate) fn fresh_delay(
    env: &Env<'_>,
    rules: &WindowRules,
) -> Result<chrono::Duration, ConfigError> {
    let delay = rules.delay.num_seconds();
    let fresh = env.int(
        "FRESH_DELAY_SECONDS",
        defaults::FRESH_DELAY_SECONDS.min(delay),
        0,
        delay,
    )?;
    Ok(chrono::Duration::seconds(fresh))
}

/// Refuses rules under which no window can ever exist. Windows end at now − delay and start no
/// earlier than now − lookback + margin, at every tick: when the delay reaches the lookback less
/// the margin, that span is empty forever. (A `HISTORIC_DAYS` shorter than the delay is not such
/// a case: the first tick records its start, and pulling begins once now − delay passes it.)
pub(crate) fn can_ever_pull(rules: &WindowRules, api: TraceApi) -> Result<(), ConfigError> {
    let reach = rules.lookback - rules.margin;
    if rules.delay < reach {
        return Ok(());
    }
    Err(ConfigError::NeverPulls {
        var: "DELAY_SECONDS",
        value: rules.delay.num_seconds().to_string(),
        other: "TRACE_API",
        other_value: api.as_str(),
        problem: format!(
            "windows end at now − DELAY_SECONDS, and the {} API serves only the last {} days ({} s) less MARGIN_SECONDS ({} s), so no window could ever be pulled",
            api.as_str(),
            rules.lookback.num_days(),
            rules.lookback.num_seconds(),
            rules.margin.num_seconds()
        ),
        accepted: format!(
            "with TRACE_API={} and MARGIN_SECONDS={}, DELAY_SECONDS from 0 to {}",
            api.as_str(),
            rules.margin.num_seconds(),
            reach.num_seconds() - 1
        ),
    })
}
