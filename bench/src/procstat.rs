//! Process accounting from `/proc`: CPU time, resident memory, load average, and the
//! open-file limit.
//!
//! CPU time is `utime + stime` of `/proc/<pid>/stat`, summed over all threads of the process
//! (including threads that already exited), in clock ticks (`sysconf(_SC_CLK_TCK)`, 100 Hz on
//! Linux): a 10 ms resolution, small against the multi-second runs it is used for.

use std::{fs, io, time::Duration};

/// CPU time (user + system) used so far by process `pid`, all threads included.
///
/// # Errors
/// The process does not exist or `/proc/<pid>/stat` does not parse.
pub fn cpu_time(pid: u32) -> io::Result<Duration> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_cpu_ticks(&stat)
        .map(ticks_to_duration)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unparsable /proc stat"))
}

/// Resident set size (`VmRSS`) of process `pid`, in bytes.
///
/// # Errors
/// The process does not exist or has no `VmRSS` line.
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vmrss_kib(&status)
        .map(|kib| kib * 1024)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS line"))
}

/// The 1-, 5- and 15-minute load averages, as `/proc/loadavg` prints them.
pub fn loadavg() -> Option<[f64; 3]> {
    let text = fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// Raises the soft open-file limit to the hard limit and returns `(soft, hard)` afterwards.
///
/// # Errors
/// The limit could not be read or raised.
pub fn raise_nofile_limit() -> io::Result<(u64, u64)> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let cur = getrlimit(Resource::Nofile);
    if let Some(hard) = cur.maximum
        && cur.current != Some(hard)
    {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(hard),
                maximum: Some(hard),
            },
        )?;
    }
    let now = getrlimit(Resource::Nofile);
    Ok((
        now.current.unwrap_or(u64::MAX),
        now.maximum.unwrap_or(u64::MAX),
    ))
}

fn ticks_to_duration(ticks: u64) -> Duration {
    let hz = rustix::param::clock_ticks_per_second().max(1);
    Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / hz)
}

/// `utime + stime` in ticks. The command name (field 2) is in parentheses and may contain
/// spaces, so fields are counted from the last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn parse_vmrss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let stat = "42 (a b) c) S 1 2 3 4 5 6 7 8 9 10 111 222 0 0 20 0 1 0";
        assert_eq!(parse_cpu_ticks(stat), Some(333));
    }

    #[test]
    fn parses_vmrss() {
        let status = "Name:\tx\nVmPeak:\t 10 kB\nVmRSS:\t  1234 kB\n";
        assert_eq!(parse_vmrss_kib(status), Some(1234));
    }

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        assert!(rss_bytes(pid).unwrap() > 0);
        cpu_time(pid).unwrap();
    }
}
