//! Reading variables: trimmed, empty as unset, and whole numbers within their range.

use crate::config::ConfigError;

/// The variables, read through a lookup (the process environment, or a map in tests).
pub(crate) struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Env<'a> {
    /// Reads through `lookup`.
    pub(crate) fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Env<'a> {
        Env { lookup }
    }

    /// The trimmed value of `name`; unset and empty are the same.
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The trimmed value of `name` as set, empty included: for a variable whose empty value
    /// means "off" rather than "the default" (`DETAIL_STATUSES=`). `None` when unset.
    pub(crate) fn as_set(&self, name: &str) -> Option<String> {
        (self.lookup)(name).map(|v| v.trim().to_owned())
    }

    /// Whether `name` is set at all, even to an empty value (which turns some features off).
    pub(crate) fn is_set(&self, name: &str) -> bool {
        (self.lookup)(name).is_some()
    }

    /// The value of a variable that has no default.
    pub(crate) fn required(
        &self,
        var: &'static str,
        hint: &'static str,
    ) -> Result<String, ConfigError> {
        self.get(var).ok_or(ConfigError::Missing { var, hint })
    }

    /// A whole number from `min` to `max`, `default` when unset.
    pub(crate) fn int(
        &self,
        var: &'static str,
        default: i64,
        min: i64,
        max: i64,
    ) -> Result<i64, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(default);
        };
        let accepted = format!("a whole number from {min} to {max} (default {default})");
        let value: i64 = raw
            .parse()
            .map_err(|_| invalid(var, &raw, "not a whole number", &accepted))?;
        if value < min || value > max {
            return Err(invalid(var, &raw, "out of range", &accepted));
        }
        Ok(value)
    }
}

/// The error for a value of `var` that cannot be used.
pub(crate) fn invalid(
    var: &'static str,
    value: &str,
    problem: &str,
    accepted: &str,
) -> ConfigError {
    ConfigError::Invalid {
        var,
        value: value.to_owned(),
        problem: problem.to_owned(),
        accepted: accepted.to_owned(),
    }
}
