//! [`Outbox`]: the stages' handle on the outbox, running each write on the database writer
//! with its audit records, and each read on a connection of its own.

use std::path::PathBuf;
use std::sync::Arc;

use foretell_core::audit::{Arrived, Entry};
use rusqlite::Connection;

use super::{
    accept, dead_letters, open_reader, purge_settled, recent_alerts, requeue_dead_letters, route,
    settle, Accepted, DeadLetter, NewDelivery, RecentAlert,
};
use crate::db::{DbError, Writer};

/// The alert path's handle on the outbox: the writes it makes, each committed with its audit
/// records, and the reads of the status page and the dead-letter API.
#[derive(Clone)]
pub struct Outbox {
    database: Arc<Writer>,
    path: PathBuf,
}

/// A notification as the webhook hands it in.
pub struct Arrival {
    pub body: Vec<u8>,
    pub dedupe_key: String,
    pub received_ms: i64,
    /// What its audit record says of it (its group key among them).
    pub arrived: Arrived,
}

/// What [`Outbox::accept`] lets in.
#[derive(Clone, Copy, Debug)]
pub struct Admission {
    pub dedupe_window_ms: i64,
    pub max_queued: u64,
}

impl Outbox {
    /// The outbox in the database at `path`, written through `database`.
    pub fn new(database: Arc<Writer>, path: PathBuf) -> Outbox {
        Outbox { database, path }
    }

    /// A reading connection (blocking: call it off the async threads).
    pub fn open_reader(&self) -> Result<Connection, DbError> {
        open_reader(&self.path)
    }

    /// Stores a notification (or notes it as a duplicate, or refuses it when full) with its
    /// audit record.
    pub async fn accept(
        &self,
        arrival: Arrival,
        admission: Admission,
    ) -> Result<Accepted, DbError> {
        self.database
            .transact(move |transaction, appender| {
                accept(
                    transaction,
                    appender,
                    &arrival.body,
                    arrival.arrived,
                    &arrival.dedupe_key,
                    admission.dedupe_window_ms,
                    admission.max_queued,
                    arrival.received_ms,
                )
            })
            .await
    }

    /// Marks a notification routed and queues its deliveries, with the records of what was
    /// decided for each of its alerts.
    pub async fn route(
        &self,
        notification_id: i64,
        group_key: String,
        deliveries: Vec<NewDelivery>,
        records: Vec<Entry>,
        now_ms: i64,
    ) -> Result<(), DbError> {
        self.database
            .transact(move |transaction, appender| {
                route(
                    transaction,
                    notification_id,
                    &group_key,
                    &deliveries,
                    now_ms,
                )?;
                for record in records {
                    appender.append(transaction, record)?;
                }
                Ok(())
            })
            .await
    }

    /// Records the end of a delivery attempt with its record.
    pub async fn settle(&self, settled: Settled, record: Entry) -> Result<(), DbError> {
        self.database
            .transact(move |transaction, appender| {
                settle(
                    transaction,
                    settled.delivery_id,
                    settled.state,
                    settled.next_attempt_ms,
                    settled.now_ms,
                    settled.error.as_deref(),
                )?;
                appender.append(transaction, record)?;
                Ok(())
            })
            .await
    }

    /// Deletes what is settled and received before `before_ms`; see [`purge_settled`].
    pub async fn purge_settled(&self, before_ms: i64) -> Result<usize, DbError> {
        self.database
            .transact(move |transaction, _| purge_settled(transaction, before_ms))
            .await
    }

    /// Puts dead letters back in the queue (`None`: all of them); returns the ids requeued.
    pub async fn requeue_dead_letters(
        &self,
        ids: Option<Vec<i64>>,
        actor: String,
        now_ms: i64,
    ) -> Result<Vec<i64>, DbError> {
        self.database
            .transact(move |transaction, appender| {
                requeue_dead_letters(transaction, appender, ids.as_deref(), &actor, now_ms)
            })
            .await
    }

    /// The newest `limit` alerts with their confidence and outcome, for the status page.
    pub async fn recent_alerts(&self, limit: usize) -> Result<Vec<RecentAlert>, DbError> {
        self.read(move |connection| recent_alerts(connection, limit))
            .await
    }

    /// Dead letters, oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, DbError> {
        self.read(dead_letters).await
    }

    /// Runs `query` on a connection of its own, off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, DbError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let connection = open_reader(&path)?;
            query(&connection).map_err(|source| DbError::sqlite(&path, source))
        })
        .await
        .unwrap_or_else(|_| {
            Err(DbError::Panicked {
                path: self.path.clone(),
                what: "read of the outbox",
            })
        })
    }
}

/// The end of one delivery attempt, as [`settle`] stores it.
pub struct Settled {
    pub delivery_id: i64,
    pub state: &'static str,
    pub next_attempt_ms: i64,
    pub now_ms: i64,
    pub error: Option<String>,
}
