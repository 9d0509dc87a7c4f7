//! `foretell audit bench`: signed records per second on this machine's disk, with one durable
//! commit each and through the sidecar's batching writer, and records verified per second.

use std::path::Path;

use foretell_core::audit::{DeliveryAttempt, Event, KeyRing};

use crate::audit::commands::{verify_file, AuditCommandError};
use crate::db::Database;

/// Throughput of the log on this machine's disk (`foretell audit bench`).
#[derive(Clone, Copy, Debug)]
pub struct BenchReport {
    pub records: usize,
    /// One record per durable commit (a decision that waits for its own commit).
    pub single_per_second: f64,
    /// Records queued to the sidecar's writer thread, batched into commits.
    pub batched_per_second: f64,
    /// Reading and verifying the log.
    pub verify_per_second: f64,
}

/// Writes `records` records twice into logs under `dir` (one commit each, then through the
/// batching writer) and verifies the second log. The logs start fresh unless `append`: then the
/// records continue the chains already there (the crash test kills this mid-write, round after
/// round).
pub fn bench(dir: &Path, records: usize, append: bool) -> Result<BenchReport, AuditCommandError> {
    use crate::clock::Stopwatch;
    let keys = KeyRing::parse(&format!("bench:{}", "42".repeat(32))).map_err(|source| {
        AuditCommandError::Keys {
            origin: "bench".into(),
            source,
        }
    })?;
    // Records as the forwarder writes them, so the bench measures real record sizes.
    let entry = |i: usize| {
        Event::AlertForwarded {
            delivery: DeliveryAttempt {
                group_key: format!("{{}}:{{alertname=\"Bench\", instance=\"{i:016x}\"}}"),
                delivery: i as i64,
                notification: i as i64,
                receiver: "pager".into(),
                attempts: (i % 3) as u32 + 1,
                status: Some(200),
            },
        }
        .entry(i as i64)
    };
    let single_db = dir.join("bench-single.db");
    let batched_db = dir.join("bench-batched.db");
    for path in [&single_db, &batched_db].into_iter().filter(|_| !append) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
    // Single commits: a tenth of the records is plenty to see the fsync cost.
    let single = (records / 10).max(1);
    let mut writer = Database::open(&single_db, keys.clone())?;
    let started = Stopwatch::start();
    for i in 0..single {
        writer.transaction(|tx, appender| appender.append(tx, entry(i)))?;
    }
    let single_per_second = single as f64 / started.elapsed().as_secs_f64();
    drop(writer);

    let telemetry = std::sync::Arc::new(crate::exporter::telemetry::Telemetry::new("bench"));
    let writer = crate::audit::log::start_writer(&batched_db, keys.clone(), telemetry, 0)?;
    let started = Stopwatch::start();
    for i in 0..records {
        writer.append_blocking(entry(i));
    }
    writer.close();
    let batched_per_second = records as f64 / started.elapsed().as_secs_f64();

    let started = Stopwatch::start();
    let (_, outcome) = verify_file(
        &batched_db,
        &keys,
        (!append).then_some((records as u64).into()),
    )?;
    let verify_per_second = outcome.checked as f64 / started.elapsed().as_secs_f64();
    if let Some(problem) = outcome.problem {
        return Err(AuditCommandError::DoesNotVerify {
            db: batched_db.display().to_string(),
            problem: problem.to_string(),
        });
    }
    Ok(BenchReport {
        records,
        single_per_second,
        batched_per_second,
        verify_per_second,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bench_writes_verifiable_logs_and_reports_rates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let report = bench(dir.path(), 200, false).expect("bench");
        let again = bench(dir.path(), 100, true).expect("appended");
        assert_eq!(again.records, 100);
        assert_eq!(report.records, 200);
        assert!(report.single_per_second > 0.0 && report.batched_per_second > 0.0);
        assert!(report.verify_per_second > 0.0);
    }
}
