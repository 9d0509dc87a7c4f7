//! `foretell bench`: load generators with documented inputs (figures in
//! `docs/benchmarks.md`), each driving the real code path it measures.

pub mod alerts;
pub mod audit;
pub mod history;
pub mod metrics;
pub mod peers;
pub mod peers_nab;
pub mod scale;

/// CPU time of the whole process (user + system), from `/proc/self/stat`, whose tick is
/// Linux' fixed USER_HZ of 100.
pub(crate) fn process_cpu() -> std::time::Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return std::time::Duration::ZERO;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    std::time::Duration::from_millis((ticks(11) + ticks(12)) * 10)
}
