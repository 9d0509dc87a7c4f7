//! The sidecar's single writer: one thread owns the [`Database`] and commits what the rest of
//! the process sends it, several items per durable commit when they queue up.
//!
//! Two kinds of item: an audit record to append ([`Writer::append`] never waits;
//! [`Writer::append_durably`] waits for the commit) and work on the database with the records
//! it appends ([`Writer::transact`], the outbox's state changes). A failing piece of work is
//! rolled back alone (a savepoint); a failing commit fails every item in it.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use foretell_core::audit::{Entry, MAC_BYTES};
use rusqlite::Transaction;
use tokio::sync::oneshot;

use super::{Database, DbError};
use crate::audit::ledger::Appender;
use crate::exporter::telemetry::Telemetry;

/// Items waiting for the writer; beyond this the process is producing decisions faster than
/// the disk commits them.
const QUEUE_CAPACITY: usize = 4096;
/// Items committed together at most.
const MAX_BATCH: usize = 512;

/// Work on the database that commits with the records it appends ([`Writer::transact`]):
/// run on the writer thread inside a savepoint, then told how the commit went.
trait Job: Send {
    fn run(&mut self, transaction: &Transaction, appender: &mut Appender);
    /// Hands the caller its value, or why there is none (`commit`: the commit's outcome).
    fn settle(self: Box<Self>, commit: Result<(), &DbError>);
}

/// A [`Job`] whose caller waits for a `T`.
struct TypedJob<T, W> {
    work: Option<W>,
    outcome: Option<Result<T, DbError>>,
    reply: oneshot::Sender<Result<T, DbError>>,
    path: PathBuf,
}

impl<T, W> Job for TypedJob<T, W>
where
    T: Send,
    W: FnOnce(&Transaction, &mut Appender) -> Result<T, rusqlite::Error> + Send,
{
    fn run(&mut self, transaction: &Transaction, appender: &mut Appender) {
        if let Some(work) = self.work.take() {
            self.outcome = Some(
                appender
                    .savepoint(transaction, work)
                    .map_err(|source| DbError::sqlite(&self.path, source)),
            );
        }
    }

    fn settle(self: Box<Self>, commit: Result<(), &DbError>) {
        let outcome = match (commit, self.outcome) {
            (Err(error), _) => Err(error.clone()),
            (Ok(()), Some(outcome)) => outcome,
            // A commit never succeeds with work it did not run; say so rather than hang.
            (Ok(()), None) => Err(DbError::corrupt(&self.path, "the work was not run".into())),
        };
        let _ = self.reply.send(outcome);
    }
}

enum Request {
    Append(Entry, Option<oneshot::Sender<Result<u64, DbError>>>),
    Transact(Box<dyn Job>),
    Stop,
}

/// The newest committed record: what self-verification pins the log to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub mac: [u8; MAC_BYTES],
}

pub struct Writer {
    path: PathBuf,
    sender: SyncSender<Request>,
    thread: Mutex<Option<JoinHandle<()>>>,
    telemetry: Arc<Telemetry>,
    /// Sequence number and MAC of the newest committed record.
    head: Arc<Mutex<Head>>,
}

impl Writer {
    /// Starts the writer thread on `database`.
    pub fn start(database: Database, telemetry: Arc<Telemetry>) -> Result<Writer, DbError> {
        let path = database.path().to_owned();
        telemetry.audit_head(database.head_seq(), database.head_mac());
        let head = Arc::new(Mutex::new(Head {
            seq: database.head_seq(),
            mac: *database.head_mac(),
        }));
        let (sender, requests) = mpsc::sync_channel(QUEUE_CAPACITY);
        let thread_telemetry = Arc::clone(&telemetry);
        let thread_head = Arc::clone(&head);
        let thread = std::thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || write_loop(database, requests, &thread_telemetry, &thread_head))
            .map_err(|e| DbError::corrupt(&path, format!("cannot start the writer thread: {e}")))?;
        Ok(Writer {
            path,
            sender,
            thread: Mutex::new(Some(thread)),
            telemetry,
            head,
        })
    }

    /// The newest committed record's sequence number and MAC.
    pub fn head(&self) -> Head {
        *self.head.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    fn stopped(&self) -> DbError {
        DbError::WriterStopped {
            path: self.path.clone(),
        }
    }

    /// Queues `entry`; never waits. A full queue or a stopped writer counts a write error and
    /// logs the entry instead.
    pub fn append(&self, entry: Entry) {
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
    pub fn append_blocking(&self, entry: Entry) {
        if self.sender.send(Request::Append(entry, None)).is_err() {
            self.telemetry.audit_write_failed(1);
        }
    }

    /// Appends `entry` and waits for its commit; returns its sequence number.
    pub async fn append_durably(&self, entry: Entry) -> Result<u64, DbError> {
        let (reply, committed) = oneshot::channel();
        if !self.send(Request::Append(entry, Some(reply))).await {
            self.telemetry.audit_write_failed(1);
            return Err(self.stopped());
        }
        committed.await.unwrap_or_else(|_| Err(self.stopped()))
    }

    /// Runs `work` inside a transaction and returns its value once it has committed: the rows
    /// it writes and the records it appends are on disk together or not at all.
    pub async fn transact<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Transaction, &mut Appender) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, DbError> {
        let (reply, committed) = oneshot::channel();
        let job = Box::new(TypedJob {
            work: Some(work),
            outcome: None,
            reply,
            path: self.path.clone(),
        });
        if !self.send(Request::Transact(job)).await {
            return Err(self.stopped());
        }
        committed.await.unwrap_or_else(|_| Err(self.stopped()))
    }

    /// Hands `request` to the writer; a full queue blocks this task only, on the blocking
    /// pool. False when the writer has stopped.
    async fn send(&self, request: Request) -> bool {
        let sender = self.sender.clone();
        tokio::task::spawn_blocking(move || sender.send(request).is_ok())
            .await
            .unwrap_or(false)
    }

    /// Commits what is queued and stops the writer.
    /// Later appends and transactions fail; a second close does nothing.
    pub fn close(&self) {
        let _ = self.sender.send(Request::Stop);
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

fn write_loop(
    mut database: Database,
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
        commit_batch(&mut database, batch, telemetry, head);
    }
}

/// One queued item and, once it ran, what it got.
enum Item {
    Append {
        entry: Option<Entry>,
        seq: u64,
        reply: Option<oneshot::Sender<Result<u64, DbError>>>,
    },
    Transact(Box<dyn Job>),
}

fn commit_batch(
    database: &mut Database,
    batch: Vec<Request>,
    telemetry: &Telemetry,
    head: &Mutex<Head>,
) {
    let mut items: Vec<Item> = batch
        .into_iter()
        .filter_map(|request| match request {
            Request::Append(entry, reply) => Some(Item::Append {
                entry: Some(entry),
                seq: 0,
                reply,
            }),
            Request::Transact(job) => Some(Item::Transact(job)),
            Request::Stop => None,
        })
        .collect();
    let count = items.len();
    let result = database.transaction(|transaction, appender| {
        for item in &mut items {
            match item {
                Item::Append { entry, seq, .. } => {
                    if let Some(entry) = entry.take() {
                        *seq = appender.append(transaction, entry)?.seq;
                    }
                }
                Item::Transact(job) => job.run(transaction, appender),
            }
        }
        Ok(())
    });
    let commit = match &result {
        Ok((_, written)) => {
            *head.lock().unwrap_or_else(|e| e.into_inner()) = Head {
                seq: database.head_seq(),
                mac: *database.head_mac(),
            };
            telemetry.audit_written(
                written.len() as u64,
                database.head_seq(),
                database.head_mac(),
            );
            Ok(())
        }
        Err(error) => {
            // Nothing of the batch is on disk; every waiting caller hears why.
            telemetry.audit_write_failed(count as u64);
            tracing::error!(%error, items = count, "database transaction could not be committed");
            Err(error)
        }
    };
    for item in items {
        match item {
            Item::Append {
                seq,
                reply: Some(reply),
                ..
            } => {
                let _ = reply.send(commit.map(|()| seq).map_err(DbError::clone));
            }
            Item::Append { reply: None, .. } => {}
            Item::Transact(job) => job.settle(commit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foretell_core::audit::KeyRing;

    fn writer(dir: &tempfile::TempDir) -> Writer {
        let keys = KeyRing::parse(&format!("k1:{}", "05".repeat(32))).expect("keys");
        let database = Database::open(&dir.path().join("audit.db"), keys).expect("open");
        Writer::start(database, Arc::new(Telemetry::new("test"))).expect("start")
    }

    fn entry(subject: &str) -> Entry {
        Entry {
            timestamp_ms: 0,
            kind: foretell_core::audit::EventKind::AlertReceived.to_string(),
            actor: "foretell".into(),
            subject: subject.into(),
            outcome: "ok".into(),
            details: "{}".into(),
        }
    }

    #[tokio::test]
    async fn work_gets_its_own_value_and_a_failing_piece_is_undone_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let writer = Arc::new(writer(&dir));
        writer
            .transact(|transaction, _| transaction.execute_batch("CREATE TABLE t (x INTEGER)"))
            .await
            .expect("table");
        // Queued together so that they share a commit: the failing one takes only its own row
        // and record with it.
        let good = {
            let writer = Arc::clone(&writer);
            tokio::spawn(async move {
                writer
                    .transact(|transaction, appender| {
                        transaction.execute("INSERT INTO t VALUES (1)", [])?;
                        appender.append(transaction, entry("good"))?;
                        transaction
                            .query_row("SELECT count(*) FROM t", [], |row| row.get::<_, i64>(0))
                    })
                    .await
            })
        };
        let bad = writer.transact(|transaction, appender| {
            transaction.execute("INSERT INTO t VALUES (2)", [])?;
            appender.append(transaction, entry("bad"))?;
            transaction.execute("INSERT INTO no_such_table VALUES (1)", [])
        });
        let (good, bad) = (good.await.expect("joined"), bad.await);
        assert_eq!(good.expect("committed"), 1);
        let error = bad.expect_err("the bad work fails");
        assert!(error.to_string().contains("no_such_table"), "{error}");
        let rows: Vec<i64> = writer
            .transact(|transaction, _| {
                let mut statement = transaction.prepare("SELECT x FROM t ORDER BY x")?;
                let rows = statement.query_map([], |row| row.get(0))?;
                rows.collect()
            })
            .await
            .expect("read");
        assert_eq!(rows, vec![1]);
        assert_eq!(writer.head().seq, 1, "only the good record is in the chain");
        writer.close();
        let error = writer
            .append_durably(entry("late"))
            .await
            .expect_err("closed");
        assert!(matches!(error, DbError::WriterStopped { .. }), "{error}");
    }
}
