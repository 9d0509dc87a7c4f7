//! The `process_*` self-metrics every Prometheus exporter has (CPU time, memory, file
//! descriptors, start time), read from Linux's `/proc`, named and typed as the official client
//! libraries export them. The parsing is pure and tested on sample text; [`read`] does the
//! reading and gives `None` where `/proc` is missing (a metric that cannot be read is left
//! out, not reported as 0).

use foretell_core::exposition::{MetricType, TextWriter};

/// `/proc` counts CPU time and start times in clock ticks of `USER_HZ`, which Linux fixes at
/// 100 in its ABI whatever the kernel's own tick rate (Prometheus' procfs reader assumes the
/// same).
const USER_HZ: f64 = 100.0;

/// What is known about this process; each part is `None` when it could not be read.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub start_time_seconds: Option<f64>,
}

/// Reads this process' figures from `/proc`.
pub fn read() -> ProcessStats {
    let text = |path: &str| std::fs::read_to_string(path).ok();
    let stat = text("/proc/self/stat");
    let status = text("/proc/self/status");
    let boot_time = text("/proc/stat").and_then(|t| boot_time_seconds(&t));
    let times = stat.as_deref().and_then(stat_times);
    ProcessStats {
        cpu_seconds: times.map(|t| t.cpu_seconds),
        resident_bytes: status.as_deref().and_then(|s| status_bytes(s, "VmRSS:")),
        virtual_bytes: status.as_deref().and_then(|s| status_bytes(s, "VmSize:")),
        open_fds: std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|entries| entries.count() as u64),
        max_fds: text("/proc/self/limits").and_then(|t| max_open_files(&t)),
        start_time_seconds: times
            .zip(boot_time)
            .map(|(t, boot)| boot as f64 + t.start_ticks as f64 / USER_HZ),
    }
}

/// Resident memory of this process, for benchmarks.
#[cfg(feature = "tools")]
pub fn resident_bytes() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| status_bytes(&s, "VmRSS:"))
}

/// CPU time and start time from `/proc/self/stat`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct StatTimes {
    cpu_seconds: f64,
    /// Clock ticks after boot.
    start_ticks: u64,
}

/// `pid (comm) state ...`: the command may hold spaces and parentheses, so the fields are
/// counted after the last `)`. utime and stime are fields 14 and 15, starttime field 22.
fn stat_times(stat: &str) -> Option<StatTimes> {
    let after_command = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_command.split_whitespace().collect();
    // fields[0] is field 3 (state).
    let field = |number: usize| fields.get(number - 3)?.parse::<u64>().ok();
    Some(StatTimes {
        cpu_seconds: (field(14)? + field(15)?) as f64 / USER_HZ,
        start_ticks: field(22)?,
    })
}

/// A `kB` line of `/proc/self/status` in bytes.
fn status_bytes(status: &str, key: &str) -> Option<u64> {
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix(key))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The soft limit of `Max open files` in `/proc/self/limits` (`None` when unlimited).
fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `btime` of `/proc/stat`: when the machine booted, in Unix seconds.
fn boot_time_seconds(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// Writes the families that could be read.
pub fn render(stats: &ProcessStats, w: &mut TextWriter) {
    let mut family = |name: &str, help: &str, kind: MetricType, value: Option<f64>| {
        if let Some(value) = value {
            w.family(name, help, kind);
            w.value(&[], value);
        }
    };
    family(
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.",
        MetricType::Counter,
        stats.cpu_seconds,
    );
    family(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        MetricType::Gauge,
        stats.resident_bytes.map(|b| b as f64),
    );
    family(
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes.",
        MetricType::Gauge,
        stats.virtual_bytes.map(|b| b as f64),
    );
    family(
        "process_open_fds",
        "Number of open file descriptors.",
        MetricType::Gauge,
        stats.open_fds.map(|n| n as f64),
    );
    family(
        "process_max_fds",
        "Maximum number of open file descriptors.",
        MetricType::Gauge,
        stats.max_fds.map(|n| n as f64),
    );
    family(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        MetricType::Gauge,
        stats.start_time_seconds,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_whatever_it_holds() {
        let stat = "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 9 0 123456 987654321 5000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            stat_times(stat),
            Some(StatTimes {
                cpu_seconds: 3.25,
                start_ticks: 123_456
            })
        );
        assert_eq!(stat_times("garbage"), None);
    }

    #[test]
    fn status_limits_and_boot_time_are_read_from_their_lines() {
        let status = "Name:\tforetell\nVmSize:\t  123456 kB\nVmRSS:\t   2048 kB\n";
        assert_eq!(status_bytes(status, "VmRSS:"), Some(2048 * 1024));
        assert_eq!(status_bytes(status, "VmSize:"), Some(123_456 * 1024));
        assert_eq!(status_bytes(status, "VmSwap:"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \nMax cpu time              unlimited            unlimited            seconds   \nMax open files            1024                 524288               files     \n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(
            max_open_files(
                "Max open files            unlimited            unlimited            files"
            ),
            None
        );
        assert_eq!(
            boot_time_seconds("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n"),
            Some(1_700_000_000)
        );
    }

    #[test]
    fn this_process_reads_itself_and_only_readable_families_are_written() {
        let stats = read();
        assert!(stats.resident_bytes.is_some_and(|b| b > 0), "{stats:?}");
        assert!(stats.open_fds.is_some_and(|n| n >= 3), "{stats:?}");
        assert!(
            stats.start_time_seconds.is_some_and(|t| t > 1.5e9),
            "{stats:?}"
        );
        let mut out = String::new();
        render(
            &ProcessStats {
                open_fds: Some(7),
                ..ProcessStats::default()
            },
            &mut TextWriter::new(&mut out),
        );
        assert_eq!(
            out,
            "# HELP process_open_fds Number of open file descriptors.\n# TYPE process_open_fds gauge\nprocess_open_fds 7\n"
        );
    }
}
