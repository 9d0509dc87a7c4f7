//! The running sidecar's audit log: a narrow handle on the database writer that can only
//! append records, and the periodic self-verification.
//!
//! [`AuditLog::record`] never blocks the caller: a full queue counts a write error and the
//! entry is logged instead. [`AuditLog::record_durably`] waits until the record is committed,
//! for decisions that must not be reported before they are on disk (process stop).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use foretell_core::audit::{Entry, ExpectedHead, KeyRing};

use crate::db::writer::{Head, Writer};
use crate::db::{Database, DbError};
use crate::exporter::telemetry::Telemetry;

/// Opens the database at `path` for the sidecar and starts its writer. What the log says
/// about itself comes first: a head that went backwards since the last run, then a change of
/// signing key (`now_ms` stamps those records).
pub fn start_writer(
    path: &Path,
    keys: KeyRing,
    telemetry: Arc<Telemetry>,
    now_ms: i64,
) -> Result<Writer, DbError> {
    let mut database = Database::open(path, keys)?;
    if let Some(back) = database.went_backwards().cloned() {
        // Never silently: the gap is recorded, signed, and shown until the next start.
        let record = database.append(back.entry(now_ms))?;
        telemetry.audit_head_went_backwards();
        tracing::error!(
            written_seq = back.written_seq,
            found_seq = back.found_seq,
            recorded_at_seq = record.seq,
            "the audit log's head went backwards: records after seq {} were removed or an older copy restored; foretell goes on from seq {} and `audit verify` reports the gap",
            back.found_seq,
            record.seq
        );
    }
    if let Some(rotation) = database.record_key_rotation(now_ms)? {
        tracing::info!(seq = rotation.seq, key = %rotation.key_id, "audit key rotated");
    }
    Writer::start(database, telemetry)
}

/// Appends audit records through the database writer, and nothing else.
#[derive(Clone)]
pub struct AuditLog {
    writer: Arc<Writer>,
}

impl AuditLog {
    pub fn new(writer: Arc<Writer>) -> AuditLog {
        AuditLog { writer }
    }

    /// Sequence number of the newest committed record.
    pub fn head_seq(&self) -> u64 {
        self.head().seq
    }

    /// The newest committed record's sequence number and MAC.
    pub fn head(&self) -> Head {
        self.writer.head()
    }

    /// Queues `entry`; never waits.
    pub fn record(&self, entry: Entry) {
        self.writer.append(entry)
    }

    /// Queues `entry`, waiting for room when the queue is full (for bulk writers outside the
    /// sidecar's hot paths, such as the benchmark).
    pub fn record_blocking(&self, entry: Entry) {
        self.writer.append_blocking(entry)
    }

    /// Appends `entry` and waits for its commit; returns its sequence number.
    pub async fn record_durably(&self, entry: Entry) -> Result<u64, DbError> {
        self.writer.append_durably(entry).await
    }

    fn telemetry(&self) -> &Telemetry {
        self.writer.telemetry()
    }
}

#[cfg(test)]
impl AuditLog {
    /// A log on a writer of its own, for tests.
    pub fn start(
        path: &Path,
        keys: KeyRing,
        telemetry: Arc<Telemetry>,
        now_ms: i64,
    ) -> Result<AuditLog, DbError> {
        Ok(AuditLog::new(Arc::new(start_writer(
            path, keys, telemetry, now_ms,
        )?)))
    }

    pub fn writer(&self) -> &Arc<Writer> {
        &self.writer
    }

    pub fn close(&self) {
        self.writer.close()
    }
}

/// Verifies the log every `interval` until cancelled, against the head the writer had reached
/// when each check began, and reports the outcome in self-metrics and, on a problem, the log.
pub async fn self_verify(
    log: Arc<AuditLog>,
    path: std::path::PathBuf,
    keys: KeyRing,
    interval: Duration,
    clock: Arc<dyn crate::clock::Clock>,
    cancel: tokio_util::sync::CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let head = log.head();
        if head.seq == 0 {
            // Nothing written yet: nothing to verify (an empty log is reported as such).
            continue;
        }
        let (path, keys) = (path.clone(), keys.clone());
        let checked = tokio::task::spawn_blocking(move || {
            super::commands::verify_file(
                &path,
                &keys,
                Some(ExpectedHead {
                    seq: head.seq,
                    mac_prefix: Some(head.mac.to_vec()),
                }),
            )
        })
        .await;
        let now_seconds = clock.now_ms() as f64 / 1000.0;
        match checked {
            Ok(Ok((_, outcome))) => {
                let ok = outcome.problem.is_none();
                if let Some(problem) = &outcome.problem {
                    tracing::error!(%problem, checked = outcome.checked, "audit log self-verification found a problem");
                }
                log.telemetry()
                    .audit_verified(ok, outcome.checked, now_seconds);
            }
            Ok(Err(error)) => {
                tracing::error!(%error, "audit log self-verification could not read the log");
                log.telemetry().audit_verified(false, 0, now_seconds);
            }
            Err(error) => {
                tracing::error!(%error, "audit log self-verification panicked");
                log.telemetry().audit_verified(false, 0, now_seconds);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::store;
    use crate::db;
    use foretell_core::audit::verify;

    fn keys() -> KeyRing {
        KeyRing::parse(&format!("k1:{}", "07".repeat(32))).expect("keys")
    }

    fn entry(i: usize) -> Entry {
        Entry {
            timestamp_ms: i as i64,
            kind: foretell_core::audit::EventKind::ModelRefit.to_string(),
            actor: "foretell".into(),
            subject: "load".into(),
            outcome: "ok".into(),
            details: format!(r#"{{"fits":{i}}}"#),
        }
    }

    #[tokio::test]
    async fn queued_and_durable_records_all_land_in_one_verifiable_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.db");
        let telemetry = Arc::new(Telemetry::new("test"));
        let log = AuditLog::start(&path, keys(), Arc::clone(&telemetry), 0).expect("start");
        for i in 0..300 {
            log.record(entry(i));
        }
        let seq = log.record_durably(entry(300)).await.expect("durable");
        assert_eq!(
            seq, 301,
            "queued records commit in order before the durable one"
        );
        log.close();
        let connection = db::open(&path).expect("open");
        let stored = store::read_log(&connection, &path).expect("read");
        let outcome = verify(
            &stored.log_id,
            &stored.records,
            &keys(),
            stored.start,
            Some(301.into()),
        );
        assert_eq!((outcome.checked, outcome.problem), (301, None));
        let mut metrics = String::new();
        telemetry.render(&mut metrics, foretell_core::exposition::Format::Text);
        assert!(
            metrics.contains("\nforetell_audit_records_total 301\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("\nforetell_audit_head_seq 301\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("\nforetell_audit_write_errors_total 0\n"),
            "{metrics}"
        );
    }

    #[tokio::test]
    async fn a_failing_disk_is_counted_and_reported_to_the_waiting_caller() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.db");
        let telemetry = Arc::new(Telemetry::new("test"));
        let log = AuditLog::start(&path, keys(), Arc::clone(&telemetry), 0).expect("start");
        log.record_durably(entry(0)).await.expect("first");
        // Another connection drops the table under the writer: its next commit fails.
        let raw = rusqlite::Connection::open(&path).expect("raw");
        raw.execute_batch("DROP TABLE records").expect("drop");
        let error = log.record_durably(entry(1)).await.expect_err("must fail");
        assert!(error.to_string().contains("records"), "{error}");
        log.close();
        let mut metrics = String::new();
        telemetry.render(&mut metrics, foretell_core::exposition::Format::Text);
        assert!(
            metrics.contains("\nforetell_audit_write_errors_total 1\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("\nforetell_audit_head_seq 1\n"),
            "{metrics}"
        );
    }

    #[tokio::test]
    async fn the_periodic_self_verification_reports_a_tampered_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.db");
        let telemetry = Arc::new(Telemetry::new("test"));
        let log =
            Arc::new(AuditLog::start(&path, keys(), Arc::clone(&telemetry), 0).expect("start"));
        for i in 0..5 {
            log.record_durably(entry(i)).await.expect("durable");
        }
        let cancel = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(self_verify(
            Arc::clone(&log),
            path.clone(),
            keys(),
            Duration::from_millis(20),
            crate::clock::system(),
            cancel.clone(),
        ));
        let metric = |name: &str| {
            let mut text = String::new();
            telemetry.render(&mut text, foretell_core::exposition::Format::Text);
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")).map(str::to_owned))
        };
        let wait_for = |value: &'static str| {
            let metric = &metric;
            async move {
                for _ in 0..250 {
                    if metric("foretell_audit_last_verify_successful").as_deref() == Some(value) {
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                false
            }
        };
        assert!(wait_for("1").await, "no successful self-verification");
        assert_eq!(
            metric("foretell_audit_last_verify_records").as_deref(),
            Some("5")
        );
        let raw = rusqlite::Connection::open(&path).expect("raw");
        raw.execute_batch("UPDATE records SET outcome = 'failed' WHERE seq = 3")
            .expect("tamper");
        assert!(wait_for("0").await, "the tampered record was not noticed");
        cancel.cancel();
        task.await.expect("stops");
        log.close();
    }

    /// Issue 16, item 5: delete seq 17-19 of 19 and restart: foretell went on at 17 and
    /// `audit verify --expect-head 19` printed OK. Now the restart sees its head went
    /// backwards, records so as seq 20 (17-19 are never reused), says so in self-metrics, and
    /// every later verification reports the rollback.
    #[tokio::test]
    async fn a_log_rolled_back_under_a_stopped_sidecar_is_recorded_and_never_verifies_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.db");
        let first = Arc::new(Telemetry::new("test"));
        let log = AuditLog::start(&path, keys(), Arc::clone(&first), 0).expect("start");
        for i in 0..19 {
            log.record_durably(entry(i)).await.expect("durable");
        }
        let pinned = log.head();
        assert_eq!(pinned.seq, 19);
        log.close();
        let mut metrics = String::new();
        first.render(&mut metrics, foretell_core::exposition::Format::Text);
        let exported = format!(
            "\nforetell_audit_head_mac_prefix {}\n",
            foretell_core::audit::mac_prefix_value(&pinned.mac)
        );
        assert!(metrics.contains(&exported), "{metrics}");
        assert!(metrics.contains("\nforetell_audit_head_went_backwards 0\n"));
        let pin = ExpectedHead::parse(&format!(
            "19:{}",
            foretell_core::audit::mac_prefix_value(&pinned.mac)
        ))
        .expect("pin");
        let (_, clean) =
            super::super::commands::verify_file(&path, &keys(), Some(pin.clone())).expect("verify");
        assert_eq!(clean.problem, None);

        rusqlite::Connection::open(&path)
            .and_then(|c| c.execute_batch("DELETE FROM records WHERE seq >= 17"))
            .expect("roll back");
        let second = Arc::new(Telemetry::new("test"));
        let log = AuditLog::start(&path, keys(), Arc::clone(&second), 5).expect("restart");
        assert_eq!(log.head_seq(), 20, "17-19 are not reused");
        log.record_durably(entry(99)).await.expect("goes on");
        log.close();
        let mut metrics = String::new();
        second.render(&mut metrics, foretell_core::exposition::Format::Text);
        assert!(
            metrics.contains("\nforetell_audit_head_went_backwards 1\n"),
            "{metrics}"
        );
        let connection = db::open(&path).expect("open");
        let stored = store::read_log(&connection, &path).expect("read");
        let noted = stored.records.iter().find(|r| r.seq == 20).expect("seq 20");
        assert_eq!(
            noted.entry.kind,
            foretell_core::audit::HEAD_WENT_BACKWARDS_KIND
        );
        assert!(noted.entry.details.contains(r#""written_seq":19"#));
        assert!(noted.entry.details.contains(r#""found_seq":16"#));
        for expect in [None, Some(19.into()), Some(pin.clone())] {
            let (_, outcome) =
                super::super::commands::verify_file(&path, &keys(), expect).expect("verify");
            let problem = outcome.problem.expect("a problem");
            assert_eq!(
                problem.class,
                foretell_core::audit::ProblemClass::RolledBack
            );
        }

        // Someone who also rewinds the head foretell keeps in the database gets past the
        // restart, but not past the head pinned by its MAC in Prometheus.
        let rewound = dir.path().join("rewound.db");
        {
            let log =
                AuditLog::start(&rewound, keys(), Arc::new(Telemetry::new("t")), 0).expect("start");
            for i in 0..19 {
                log.record_durably(entry(i)).await.expect("durable");
            }
            log.close();
        }
        let head = {
            let connection = db::open(&rewound).expect("open");
            store::read_log(&connection, &rewound)
                .expect("read")
                .records[18]
                .mac
        };
        rusqlite::Connection::open(&rewound)
            .and_then(|c| {
                c.execute_batch(
                    "DELETE FROM records WHERE seq >= 17; DELETE FROM meta WHERE name LIKE 'head_%'",
                )
            })
            .expect("roll back quietly");
        let log =
            AuditLog::start(&rewound, keys(), Arc::new(Telemetry::new("t")), 0).expect("restart");
        for i in 0..3 {
            log.record_durably(entry(200 + i)).await.expect("durable");
        }
        log.close();
        let pin = ExpectedHead {
            seq: 19,
            mac_prefix: Some(head[..6].to_vec()),
        };
        let (_, outcome) =
            super::super::commands::verify_file(&rewound, &keys(), Some(pin)).expect("verify");
        assert_eq!(
            outcome.problem.expect("a problem").class,
            foretell_core::audit::ProblemClass::RolledBack
        );
    }
}
