//! foretell's one SQLite file: the audit log's records and the alert outbox, in WAL mode with
//! `synchronous=FULL`.
//!
//! This module owns the file: its schema ([`migrations`]), how it is opened, and its single
//! writer ([`Database`], run on its own thread by [`writer::Writer`]). Every transaction
//! carries the audit [`Ledger`]: the rows a transaction changes and the signed records that
//! describe them commit together or not at all. The audit log and the outbox are clients:
//! they write through the writer and read with connections of their own (WAL lets readers run
//! beside the writer).

pub mod migrations;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use foretell_core::audit::{Entry, KeyRing, Record, MAC_BYTES};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::audit::ledger::{Appender, Ledger, WentBackwards};

pub use writer::Writer;

#[derive(Clone, Debug, thiserror::Error)]
pub enum DbError {
    #[error("audit database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        /// Shared: a failed commit fails every caller whose work was in it.
        #[source]
        source: Arc<rusqlite::Error>,
    },
    #[error("audit database {path} has schema version {found}, newer than this foretell knows ({known}); use a newer foretell")]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: usize,
    },
    #[error("audit database {path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("audit database {path}: the writer has stopped")]
    WriterStopped { path: PathBuf },
    #[error("audit database {path}: the {what} did not finish (it panicked)")]
    Panicked { path: PathBuf, what: &'static str },
}

impl DbError {
    pub fn sqlite(path: &Path, source: rusqlite::Error) -> DbError {
        DbError::Sqlite {
            path: path.to_owned(),
            source: Arc::new(source),
        }
    }

    /// What cannot even be read as the data it should be (a MAC of the wrong length, ...).
    pub fn corrupt(path: &Path, message: String) -> DbError {
        DbError::Corrupt {
            path: path.to_owned(),
            message,
        }
    }
}

/// Opens (creating when absent) the database at `path`, sets WAL and full sync, and applies
/// the migrations it lacks. A new database is created readable by its owner only (0600): it
/// holds notification bodies. SQLite gives its `-wal` and `-shm` files the same mode.
pub fn open(path: &Path) -> Result<Connection, DbError> {
    let sqlite = |source| DbError::sqlite(path, source);
    create_private(path)
        .map_err(|e| DbError::corrupt(path, format!("cannot create the file: {e}")))?;
    let mut connection = Connection::open(path).map_err(sqlite)?;
    connection
        .pragma_update(None, "journal_mode", "WAL")
        .map_err(sqlite)?;
    connection
        .pragma_update(None, "synchronous", "FULL")
        .map_err(sqlite)?;
    connection
        .busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sqlite)?;
    migrations::migrate(&mut connection, path)?;
    Ok(connection)
}

/// Creates `path` empty with mode 0600 when it does not exist (SQLite takes an empty file for
/// a new database); an existing file keeps its mode.
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}

/// Opens an existing database for reading only (verify, show, export, report): nothing is
/// written, so a copy on read-only storage can be checked too.
///
/// A log whose writer was killed at the wrong moment leaves a write-ahead log that SQLite must
/// recover before anyone reads it, and a read-only connection may not ("attempt to write a
/// readonly database"). Then the file is opened for writing with `query_only` on: SQLite
/// recovers its index, and no statement can change a record.
pub fn open_read_only(path: &Path) -> Result<Connection, DbError> {
    use rusqlite::OpenFlags;
    let open = |flags: OpenFlags| -> Result<Connection, rusqlite::Error> {
        let connection =
            Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        // The first read is where a pending recovery shows.
        connection.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
        Ok(connection)
    };
    let connection = match open(OpenFlags::SQLITE_OPEN_READ_ONLY) {
        Err(rusqlite::Error::SqliteFailure(failure, _))
            if failure.code == rusqlite::ErrorCode::ReadOnly =>
        {
            let connection = open(OpenFlags::SQLITE_OPEN_READ_WRITE)
                .map_err(|source| DbError::sqlite(path, source))?;
            connection
                .execute_batch("PRAGMA query_only = ON")
                .map_err(|source| DbError::sqlite(path, source))?;
            connection
        }
        other => other.map_err(|source| DbError::sqlite(path, source))?,
    };
    migrations::applied(&connection, path)?;
    Ok(connection)
}

/// The names of the database's tables, sorted (at most 20: enough to say what a file is).
pub fn table_names(connection: &Connection, path: &Path) -> Result<Vec<String>, DbError> {
    let sqlite = |source| DbError::sqlite(path, source);
    let mut statement = connection
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name LIMIT 20")
        .map_err(sqlite)?;
    let names = statement
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(sqlite)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sqlite)?;
    Ok(names)
}

/// One value of the `meta` table (the log's id, its newest head, its prune point).
pub fn meta_value(connection: &Connection, name: &str) -> Result<Option<String>, rusqlite::Error> {
    connection
        .query_row("SELECT value FROM meta WHERE name = ?1", [name], |row| {
            row.get(0)
        })
        .optional()
}

/// Sets `meta` values, in `transaction`.
pub fn set_meta(
    transaction: &Transaction,
    values: &[(&str, String)],
) -> Result<(), rusqlite::Error> {
    for (name, value) in values {
        transaction.execute(
            "INSERT INTO meta (name, value) VALUES (?1, ?2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            params![name, value],
        )?;
    }
    Ok(())
}

/// The one writer of a database: its connection and the audit ledger every transaction
/// appends to. The sidecar runs it on [`writer::Writer`]'s thread; offline commands (`audit
/// prune`, `audit bench`) and tests use it directly.
pub struct Database {
    connection: Connection,
    path: PathBuf,
    ledger: Ledger,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.path)
            .field("ledger", &self.ledger)
            .finish()
    }
}

impl Database {
    /// Opens the database at `path` for writing, records signed with `keys` (the newest key
    /// signs).
    pub fn open(path: &Path, keys: KeyRing) -> Result<Database, DbError> {
        let connection = open(path)?;
        let ledger = Ledger::open(&connection, path, keys)?;
        Ok(Database {
            connection,
            path: path.to_owned(),
            ledger,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` in one transaction: the state changes it makes through the transaction and
    /// the records it appends commit together or not at all. The ledger's head moves only
    /// when the commit succeeds.
    pub fn transaction<T>(
        &mut self,
        work: impl FnOnce(&Transaction, &mut Appender) -> Result<T, rusqlite::Error>,
    ) -> Result<(T, Vec<Record>), DbError> {
        let path = &self.path;
        let sqlite = |source| DbError::sqlite(path, source);
        let transaction = self.connection.transaction().map_err(sqlite)?;
        let mut appender = self.ledger.begin();
        let value = work(&transaction, &mut appender).map_err(sqlite)?;
        let batch = appender.finish(&transaction).map_err(sqlite)?;
        transaction.commit().map_err(sqlite)?;
        let written = self.ledger.committed(batch);
        Ok((value, written))
    }

    /// When the newest record was signed with another key than the one that signs now, records
    /// the rotation as the first record under the new key, so the log itself says when keys
    /// changed. Returns the rotation record, if one was written.
    pub fn record_key_rotation(&mut self, timestamp_ms: i64) -> Result<Option<Record>, DbError> {
        let Some(entry) = self.ledger.key_rotation(timestamp_ms) else {
            return Ok(None);
        };
        let (record, _) =
            self.transaction(|transaction, appender| appender.append(transaction, entry))?;
        Ok(Some(record))
    }

    /// Appends one record in its own transaction.
    pub fn append(&mut self, entry: Entry) -> Result<Record, DbError> {
        let (record, _) =
            self.transaction(|transaction, appender| appender.append(transaction, entry))?;
        Ok(record)
    }

    pub fn head_seq(&self) -> u64 {
        self.ledger.head_seq()
    }

    pub fn head_mac(&self) -> &[u8; MAC_BYTES] {
        self.ledger.head_mac()
    }

    /// Whether the log's head was behind the newest head written when it was opened.
    pub fn went_backwards(&self) -> Option<&WentBackwards> {
        self.ledger.went_backwards()
    }

    #[cfg(test)]
    pub fn log_id(&self) -> &str {
        self.ledger.log_id()
    }
}

#[cfg(test)]
mod tests;
