//! Peak memory and CPU time of a process, read from Linux `/proc`.
//!
//! Exists so the benchmark and `invoke --stats` can report what the function's process used,
//! the figures Lambda bills and limits.

/// What a process used so far, from `/proc/<pid>/status` and `/proc/<pid>/stat`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProcessUsage {
    /// Peak resident set size (`VmHWM`), in KiB.
    pub peak_rss_kib: u64,
    /// User CPU time of all its threads, in seconds.
    pub user_seconds: f64,
    /// System CPU time of all its threads, in seconds.
    pub system_seconds: f64,
}

impl ProcessUsage {
    /// Reads the usage of process `pid` (Linux `/proc`); `None` when it cannot be read.
    pub fn of(pid: u32) -> Option<ProcessUsage> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let peak_rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the parenthesised command name (which may hold spaces): utime and stime
        // are fields 14 and 15 of the line, i.e. indices 11 and 12 after ")".
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // USER_HZ, the unit of utime/stime, is 100 on every Linux architecture Lambda runs.
        let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok().map(|t| t as f64 / 100.0);
        Some(ProcessUsage {
            peak_rss_kib,
            user_seconds: ticks(11)?,
            system_seconds: ticks(12)?,
        })
    }
}
