//! Request and stream limits: page size, request rate and budget, timeouts, Devo idle time and
//! confirmation steps.

use std::time::Duration;

use crate::config::env::Env;
use crate::config::{ConfigError, defaults};

/// The limits of requests to Microsoft and of the Devo stream.
pub(crate) struct Limits {
    /// `PAGE_SIZE`.
    pub(crate) page_size: u32,
    /// `REQUESTS_PER_SECOND`.
    pub(crate) requests_per_second: u32,
    /// `REQUEST_BUDGET_PER_5_MINUTES`.
    pub(crate) request_budget: usize,
    /// `REQUEST_TIMEOUT_SECONDS`.
    pub(crate) request_timeout: Duration,
    /// `DEVO_IDLE_SECONDS`.
    pub(crate) devo_idle: Duration,
    /// `DEVO_CONFIRM_BYTES`.
    pub(crate) devo_confirm_bytes: u64,
    /// `DEVO_CONFIRM_SECONDS`.
    pub(crate) devo_confirm_after: Duration,
}

impl Limits {
    /// Reads the seven variables, each within its range.
    pub(crate) fn read(env: &Env<'_>) -> Result<Limits, ConfigError> {
        let page_size = env.int("PAGE_SIZE", i64::from(defaults::PAGE_SIZE), 1, 5000)?;
        let rps = env.int(
            "REQUESTS_PER_SECOND",
            i64::from(defaults::REQUESTS_PER_SECOND),
            1,
            100,
        )?;
        let request_budget = env.int(
            "REQUEST_BUDGET_PER_5_MINUTES",
            i64::try_from(defaults::REQUEST_BUDGET_PER_5_MINUTES).unwrap_or(90),
            1,
            1_000_000,
        )?;
        let timeout = env.int(
            "REQUEST_TIMEOUT_SECONDS",
            i64::try_from(defaults::REQUEST_TIMEOUT_SECONDS).unwrap_or(60),
            1,
            900,
        )?;
        let devo_idle = env.int(
            "DEVO_IDLE_SECONDS",
            i64::try_from(defaults::DEVO_IDLE_SECONDS).unwrap_or(30),
            1,
            3_600,
        )?;
        let confirm_bytes = env.int(
            "DEVO_CONFIRM_BYTES",
            i64::try_from(defaults::DEVO_CONFIRM_BYTES).unwrap_or(4_194_304),
            65_536,
            268_435_456,
        )?;
        let confirm_seconds = env.int(
            "DEVO_CONFIRM_SECONDS",
            i64::try_from(defaults::DEVO_CONFIRM_SECONDS).unwrap_or(20),
            1,
            900,
        )?;
        // The casts are within the ranges checked above.
        Ok(Limits {
            page_size: u32::try_from(page_size).unwrap_or(defaults::PAGE_SIZE),
            requests_per_second: u32::try_from(rps).unwrap_or(1),
            request_budget: usize::try_from(request_budget)
                .unwrap_or(defaults::REQUEST_BUDGET_PER_5_MINUTES),
            request_timeout: Duration::from_secs(u64::try_from(timeout).unwrap_or(60)),
            devo_idle: Duration::from_secs(u64::try_from(devo_idle).unwrap_or(30)),
            devo_confirm_bytes: u64::try_from(confirm_bytes)
                .unwrap_or(defaults::DEVO_CONFIRM_BYTES),
            devo_confirm_after: Duration::from_secs(
                u64::try_from(confirm_seconds).unwrap_or(defaults::DEVO_CONFIRM_SECONDS),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(pairs: &[(&str, &str)]) -> Result<Limits, ConfigError> {
        let lookup = |k: &str| {
            pairs
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        };
        Limits::read(&Env::new(&lookup))
    }

    #[test]
    fn confirmation_steps_default_to_4_mib_and_20_s() {
        let l = limits(&[]).unwrap();
        assert_eq!(l.devo_confirm_bytes, 4 * 1024 * 1024);
        assert_eq!(l.devo_confirm_after, Duration::from_secs(20));
        let l = limits(&[
            ("DEVO_CONFIRM_BYTES", "65536"),
            ("DEVO_CONFIRM_SECONDS", "900"),
        ])
        .unwrap();
        assert_eq!(l.devo_confirm_bytes, 65_536);
        assert_eq!(l.devo_confirm_after, Duration::from_secs(900));
    }

    #[test]
    fn confirmation_steps_out_of_range_name_the_variable_and_the_range() {
        let Err(e) = limits(&[("DEVO_CONFIRM_BYTES", "1000")]) else {
            panic!("1000 bytes accepted");
        };
        let text = e.to_string();
        assert!(text.contains("DEVO_CONFIRM_BYTES"), "{text}");
        assert!(text.contains("65536 to 268435456"), "{text}");
        let Err(e) = limits(&[("DEVO_CONFIRM_SECONDS", "0")]) else {
            panic!("0 s accepted");
        };
        let text = e.to_string();
        assert!(text.contains("DEVO_CONFIRM_SECONDS"), "{text}");
        assert!(text.contains("1 to 900"), "{text}");
    }
}
