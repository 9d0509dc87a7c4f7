//! The running sidecar's audit log: one thread owns the SQLite connection and appends what the
//! rest of the process sends it, several records per durable commit when they queue up.
//!
//! [`AuditLog::record`] never blocks the caller: a full queue counts a write error and the
//! entry is logged instead. [`AuditLog::record_durably`] waits until the record is committed,
//! for decisions that must not be reported before they are on disk (process stop).

use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use std::any::Any;

use foretell_core::audit::{Entry, ExpectedHead, KeyRing, MAC_BYTES};
use rusqlite::Transaction;

use super::store::{Appender, AuditWriter, StoreError};
use crate::telemetry::Telemetry;

/// Entries waiting for the writer; beyond this the process is producing decisions faster than
/// the disk commits them.
const QUEUE_CAPACITY: usize = 4096;
/// Records committed together at most.
const MAX_BATCH: usize = 512;

type Reply = tokio::sync::oneshot::Sender<Result<u64, String>>;

/// Work on the database that commits with the records it appends (see [`AuditLog::transact`]).
type Work = Box<
    dyn FnOnce(&Transaction, &mut Appender) -> Result<Box<dyn Any + Send>, rusqlite::Error> + Send,
>;
type WorkReply = tokio::sync::oneshot::Sender<Result<Box<dyn Any + Send>, String>>;

enum Request {
    Append(Entry, Option<Reply>),
    Transact(Work, WorkReply),
    Stop,
}

/// The newest committed record: what self-verification pins the log to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub mac: [u8; MAC_BYTES],
}

pub struct AuditLog {
    sender: SyncSender<Request>,
    writer: std::sync::Mutex<Option<JoinHandle<()>>>,
    telemetry: Arc<Telemetry>,
    /// Sequence number and MAC of the newest committed record.
    head: Arc<Mutex<Head>>,
}

impl AuditLog {
    /// Opens the log at `path` and starts its writer thread; a change of signing key since the
    /// last record is recorded first (`now_ms` stamps that record).
    pub fn start(
        path: &Path,
        keys: KeyRing,
        telemetry: Arc<Telemetry>,
        now_ms: i64,
    ) -> Result<AuditLog, StoreError> {
        let mut writer = AuditWriter::open(path, keys)?;
        if let Some(back) = writer.went_backwards().cloned() {
            // Never silently: the gap is recorded, signed, and shown until the next start.
            let (record, _) = writer.transaction(|transaction, appender| {
                appender.append(transaction, back.entry(now_ms))
            })?;
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
        if let Some(rotation) = writer.record_key_rotation(now_ms)? {
            tracing::info!(seq = rotation.seq, key = %rotation.key_id, "audit key rotated");
        }
        telemetry.audit_head(writer.head_seq(), writer.head_mac());
        let head = Arc::new(Mutex::new(Head {
            seq: writer.head_seq(),
            mac: *writer.head_mac(),
        }));
        let (sender, requests) = mpsc::sync_channel(QUEUE_CAPACITY);
        let thread_telemetry = Arc::clone(&telemetry);
        let thread_head = Arc::clone(&head);
        let handle = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || write_loop(writer, requests, &thread_telemetry, &thread_head))
            .map_err(|e| StoreError::Corrupt {
                path: path.to_owned(),
                message: format!("cannot start the writer thread: {e}"),
            })?;
        Ok(AuditLog {
            sender,
            writer: std::sync::Mutex::new(Some(handle)),
            telemetry,
            head,
        })
    }

    /// Sequence number of the newest committed record.
    pub fn head_seq(&self) -> u64 {
        self.head().seq
    }

    /// The newest committed record's sequence number and MAC.
    pub fn head(&self) -> Head {
        *self.head.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `entry`; never waits.
    pub fn record(&self, entry: Entry) {
        match self.sender.try_send(Request::Append(entry, None)) {
            Ok(()) => {}
            Err(TrySendError::Full(Request::Append(entry, _)))
            | Err(TrySendError::Disconnected(Request::Append(entry, _))) => {
                self.telemetry.audit_write_failed(1);
                tracing::error!(kind = %entry.kind, subject = %entry.subject, outcome = %entry.outcome, details = %entry.details, "audit record dropped: the writer is not keeping up or has stopped");
            }
            Err(_) => {}
        }
    }

    /// Queues `entry`, waiting for room when the queue is full (for bulk writers outside the
    /// sidecar's hot paths, such as the benchmark).
    pub fn record_blocking(&self, entry: Entry) {
        if self.sender.send(Request::Append(entry, None)).is_err() {
            self.telemetry.audit_write_failed(1);
        }
    }

    /// Appends `entry` and waits for its commit; returns its sequence number.
    pub async fn record_durably(&self, entry: Entry) -> Result<u64, String> {
        let (reply, committed) = tokio::sync::oneshot::channel();
        let sender = self.sender.clone();
        // A full queue blocks this task only, on the blocking pool.
        let sent = tokio::task::spawn_blocking(move || {
            sender.send(Request::Append(entry, Some(reply))).is_ok()
        })
        .await
        .unwrap_or(false);
        if !sent {
            self.telemetry.audit_write_failed(1);
            return Err("the audit writer has stopped".into());
        }
        committed
            .await
            .unwrap_or_else(|_| Err("the audit writer stopped before committing".into()))
    }

    /// Runs `work` on the writer's connection inside a transaction and returns its value once
    /// it has committed: the rows it writes and the records it appends are on disk together
    /// or not at all. Other queued work may share the commit; a failing `work` is rolled back
    /// alone (a savepoint), a failing commit fails every item in it.
    pub async fn transact<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Transaction, &mut Appender) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, String> {
        let (reply, committed) = tokio::sync::oneshot::channel();
        let work: Work = Box::new(move |transaction, appender| {
            work(transaction, appender).map(|value| Box::new(value) as Box<dyn Any + Send>)
        });
        let sender = self.sender.clone();
        let sent = tokio::task::spawn_blocking(move || {
            sender.send(Request::Transact(work, reply)).is_ok()
        })
        .await
        .unwrap_or(false);
        if !sent {
            return Err("the audit writer has stopped".into());
        }
        let value = committed
            .await
            .unwrap_or_else(|_| Err("the audit writer stopped before committing".into()))?;
        value
            .downcast::<T>()
            .map(|value| *value)
            .map_err(|_| "the audit writer returned a value of another type".into())
    }

    /// Commits what is queued and stops the writer.
    /// Later appends and transactions fail; a second close does nothing.
    pub fn close(&self) {
        let _ = self.sender.send(Request::Stop);
        let handle = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
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
                log.telemetry
                    .audit_verified(ok, outcome.checked, now_seconds);
            }
            Ok(Err(error)) => {
                tracing::error!(%error, "audit log self-verification could not read the log");
                log.telemetry.audit_verified(false, 0, now_seconds);
            }
            Err(error) => {
                tracing::error!(%error, "audit log self-verification panicked");
                log.telemetry.audit_verified(false, 0, now_seconds);
            }
        }
    }
}

fn write_loop(
    mut writer: AuditWriter,
    requests: Receiver<Request>,
    telemetry: &Telemetry,
    head: &Mutex<Head>,
) {
    let mut stopping = false;
    while !stopping {
        let Ok(first) = requests.recv() else {
            return;
        };
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(request) = next.take() {
            match request {
                Request::Stop => stopping = true,
                item => batch.push(item),
            }
            if batch.len() < MAX_BATCH && !stopping {
                next = requests.try_recv().ok();
            }
        }
        if batch.is_empty() {
            continue;
        }
        commit_batch(&mut writer, batch, telemetry, head);
    }
}

/// What one queued item got from the transaction, handed over after the commit.
enum Done {
    Appended(u64),
    Transacted(Result<Box<dyn Any + Send>, String>),
}

enum Pending {
    Append(Option<Reply>),
    Transact(WorkReply),
}

enum Item {
    Append(Entry),
    Transact(Work),
}

fn commit_batch(
    writer: &mut AuditWriter,
    batch: Vec<Request>,
    telemetry: &Telemetry,
    head: &Mutex<Head>,
) {
    let mut items = Vec::with_capacity(batch.len());
    let mut pending = Vec::with_capacity(batch.len());
    for request in batch {
        match request {
            Request::Append(entry, reply) => {
                items.push(Item::Append(entry));
                pending.push(Pending::Append(reply));
            }
            Request::Transact(work, reply) => {
                items.push(Item::Transact(work));
                pending.push(Pending::Transact(reply));
            }
            Request::Stop => {}
        }
    }
    let count = items.len();
    let result = writer.transaction(|transaction, appender| {
        items
            .into_iter()
            .map(|item| match item {
                Item::Append(entry) => appender
                    .append(transaction, entry)
                    .map(|record| Done::Appended(record.seq)),
                Item::Transact(work) => Ok(Done::Transacted(
                    appender
                        .savepoint(transaction, work)
                        .map_err(|error| error.to_string()),
                )),
            })
            .collect::<Result<Vec<Done>, _>>()
    });
    match result {
        Ok((done, written)) => {
            *head.lock().unwrap_or_else(|e| e.into_inner()) = Head {
                seq: writer.head_seq(),
                mac: *writer.head_mac(),
            };
            telemetry.audit_written(written.len() as u64, writer.head_seq(), writer.head_mac());
            for (reply, done) in pending.into_iter().zip(done) {
                match (reply, done) {
                    (Pending::Append(Some(reply)), Done::Appended(seq)) => {
                        let _ = reply.send(Ok(seq));
                    }
                    (Pending::Transact(reply), Done::Transacted(outcome)) => {
                        let _ = reply.send(outcome);
                    }
                    _ => {}
                }
            }
        }
        Err(error) => {
            // Nothing of the batch is on disk; every waiting caller hears why.
            telemetry.audit_write_failed(count as u64);
            tracing::error!(%error, items = count, "audit transaction could not be committed");
            let message = error.to_string();
            for reply in pending {
                match reply {
                    Pending::Append(Some(reply)) => {
                        let _ = reply.send(Err(message.clone()));
                    }
                    Pending::Transact(reply) => {
                        let _ = reply.send(Err(message.clone()));
                    }
                    Pending::Append(None) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::store;
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
        let connection = store::open(&path).expect("open");
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
        telemetry.render(&mut metrics);
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
        assert!(error.contains("records"), "{error}");
        log.close();
        let mut metrics = String::new();
        telemetry.render(&mut metrics);
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
            telemetry.render(&mut text);
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
        first.render(&mut metrics);
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
        second.render(&mut metrics);
        assert!(
            metrics.contains("\nforetell_audit_head_went_backwards 1\n"),
            "{metrics}"
        );
        let connection = store::open(&path).expect("open");
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
            let connection = store::open(&rewound).expect("open");
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
