//! The benchmark helpers' command lines: `--name value` pairs.

use std::collections::HashMap;

/// A helper's failure, printed by `main`.
pub type Failure = Box<dyn std::error::Error>;

/// `--name value` pairs of `args`; anything else is refused.
pub fn options(args: &[String]) -> Result<HashMap<String, String>, Failure> {
    let mut map = HashMap::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let name = flag
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {flag}"))?;
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        map.insert(name.to_owned(), value.clone());
    }
    Ok(map)
}

/// The value of `--name`, which must be given.
#[allow(dead_code)] // bench_pages has defaults for all its options
pub fn required<'a>(opts: &'a HashMap<String, String>, name: &str) -> Result<&'a str, Failure> {
    opts.get(name)
        .map(String::as_str)
        .ok_or_else(|| format!("--{name} is required").into())
}
