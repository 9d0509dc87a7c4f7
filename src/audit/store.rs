//! The audit log on disk: SQLite in WAL mode with `synchronous=FULL`, one writer owning the
//! connection.
//!
//! Records are appended inside a transaction that the caller may also use for the state the
//! record describes (an outbox row, say), so that neither is committed without the other. The
//! in-memory head of the chain moves only after the transaction commits.

use std::path::{Path, PathBuf};

use foretell_core::audit::{
    Anchor, Chain, ChainStart, Entry, ExpectedHead, KeyRing, Record, Verification, Verifier,
    GENESIS_MAC, MAC_BYTES,
};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

/// Schema changes, applied in order; `PRAGMA user_version` counts those applied. Append only:
/// a released migration is never edited.
pub const MIGRATIONS: &[&str] = &[
    // 1: the log's identity and the records.
    "CREATE TABLE meta (
         name  TEXT PRIMARY KEY,
         value TEXT NOT NULL
     );
     CREATE TABLE records (
         id       INTEGER PRIMARY KEY,
         seq      INTEGER NOT NULL UNIQUE,
         log_id   TEXT NOT NULL,
         ts_ms    INTEGER NOT NULL,
         kind     TEXT NOT NULL,
         actor    TEXT NOT NULL,
         subject  TEXT NOT NULL,
         outcome  TEXT NOT NULL,
         details  TEXT NOT NULL,
         key_id   TEXT NOT NULL,
         prev_mac BLOB NOT NULL,
         mac      BLOB NOT NULL
     );
     CREATE INDEX records_ts ON records (ts_ms);",
    // 2: the alert outbox, beside the records so that a decision and its record commit
    // together.
    "CREATE TABLE notifications (
         id          INTEGER PRIMARY KEY,
         received_ms INTEGER NOT NULL,
         group_key   TEXT NOT NULL,
         dedupe_key  TEXT NOT NULL,
         body        BLOB NOT NULL,
         state       TEXT NOT NULL
     );
     CREATE INDEX notifications_dedupe ON notifications (dedupe_key, received_ms);
     CREATE INDEX notifications_state ON notifications (state, id);
     CREATE TABLE deliveries (
         id              INTEGER PRIMARY KEY,
         notification_id INTEGER NOT NULL REFERENCES notifications (id),
         receiver        TEXT NOT NULL,
         group_key       TEXT NOT NULL,
         body            BLOB NOT NULL,
         state           TEXT NOT NULL,
         attempts        INTEGER NOT NULL DEFAULT 0,
         created_ms      INTEGER NOT NULL,
         next_attempt_ms INTEGER NOT NULL,
         updated_ms      INTEGER NOT NULL,
         last_error      TEXT
     );
     CREATE INDEX deliveries_due ON deliveries (receiver, state, group_key, id);
     CREATE INDEX deliveries_notification ON deliveries (notification_id);",
    // 3: the status page's lookups: the newest enriched alerts and an alert's suppressions,
    // which scanned every record (1.3 s a page at 100,000 records). Partial indexes: the
    // other records (most of a log) add nothing to them.
    "CREATE INDEX records_enriched ON records (seq) WHERE kind = 'alert.enriched';
     CREATE INDEX records_suppressed ON records (subject, seq) WHERE kind = 'alert.suppressed';",
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("audit database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("audit database {path} has schema version {found}, newer than this foretell knows ({known}); use a newer foretell")]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: usize,
    },
    #[error("audit database {path}: {message}")]
    Corrupt { path: PathBuf, message: String },
}

/// A row that cannot even be read as a record (a MAC of the wrong length, ...).
fn corrupt(path: &Path, message: String) -> StoreError {
    StoreError::Corrupt {
        path: path.to_owned(),
        message,
    }
}

/// Opens (creating when absent) the database at `path`, sets WAL and full sync, and applies
/// the migrations it lacks. A new database is created readable by its owner only (0600): it
/// holds notification bodies. SQLite gives its `-wal` and `-shm` files the same mode.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    let sqlite = |source| StoreError::Sqlite {
        path: path.to_owned(),
        source,
    };
    create_private(path).map_err(|e| corrupt(path, format!("cannot create the file: {e}")))?;
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
    migrate(&mut connection, path)?;
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

/// Opens an existing log for reading only (verify, show, export, report): nothing is written,
/// so a copy on read-only storage can be checked too.
pub fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    let sqlite = |source| StoreError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let connection = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite)?;
    applied_migrations(&connection, path)?;
    Ok(connection)
}

/// Migrations the database has had; a database from a newer foretell is refused, not read
/// with assumptions that may no longer hold.
fn applied_migrations(connection: &Connection, path: &Path) -> Result<usize, StoreError> {
    let applied: i64 = connection
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|source| StoreError::Sqlite {
            path: path.to_owned(),
            source,
        })?;
    if applied < 0 || applied as usize > MIGRATIONS.len() {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found: applied,
            known: MIGRATIONS.len(),
        });
    }
    Ok(applied as usize)
}

fn migrate(connection: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let sqlite = |source| StoreError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let applied = applied_migrations(connection, path)?;
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
        let transaction = connection.transaction().map_err(sqlite)?;
        transaction.execute_batch(migration).map_err(sqlite)?;
        transaction
            .pragma_update(None, "user_version", index as i64 + 1)
            .map_err(sqlite)?;
        transaction.commit().map_err(sqlite)?;
    }
    Ok(())
}

/// The log's id as stored; a log that never had one is not an audit log.
fn stored_log_id(connection: &Connection, path: &Path) -> Result<String, StoreError> {
    connection
        .query_row("SELECT value FROM meta WHERE name = 'log_id'", [], |row| {
            row.get(0)
        })
        .optional()
        .map_err(|source| StoreError::Sqlite {
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| corrupt(path, "the log has no id (meta.log_id is missing)".into()))
}

/// The log's random id, created with the database.
fn log_id(connection: &Connection, path: &Path) -> Result<String, StoreError> {
    let sqlite = |source| StoreError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let existing: Option<String> = connection
        .query_row("SELECT value FROM meta WHERE name = 'log_id'", [], |row| {
            row.get(0)
        })
        .optional()
        .map_err(sqlite)?;
    if let Some(id) = existing {
        return Ok(id);
    }
    let id = random_log_id();
    connection
        .execute(
            "INSERT INTO meta (name, value) VALUES ('log_id', ?1)",
            params![id],
        )
        .map_err(sqlite)?;
    Ok(id)
}

/// 128 random bits as hex, from the operating system where it offers them.
fn random_log_id() -> String {
    use std::io::Read as _;
    let mut bytes = [0u8; 16];
    let from_os = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if from_os.is_err() {
        bytes.iter_mut().for_each(|b| *b = fastrand::u8(..));
    }
    foretell_core::audit::keys::encode_hex(&bytes)
}

fn mac_from(blob: Vec<u8>, path: &Path, id: i64) -> Result<[u8; MAC_BYTES], StoreError> {
    blob.try_into()
        .map_err(|b: Vec<u8>| corrupt(path, format!("row id {id}: a MAC of {} bytes", b.len())))
}

/// The names of the database's tables, sorted (at most 20: enough to say what a file is).
pub fn table_names(connection: &Connection, path: &Path) -> Result<Vec<String>, StoreError> {
    let sqlite = |source| StoreError::Sqlite {
        path: path.to_owned(),
        source,
    };
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

/// Every record in storage order, the log's id and where its chain starts.
pub struct StoredLog {
    pub log_id: String,
    pub start: ChainStart,
    pub records: Vec<Record>,
}

/// Reads the whole log (for `show`, `export`, `prune`).
pub fn read_log(connection: &Connection, path: &Path) -> Result<StoredLog, StoreError> {
    let mut records = Vec::new();
    let (log_id, start) = scan_log(connection, path, |record| records.push(record))?;
    Ok(StoredLog {
        log_id,
        start,
        records,
    })
}

/// Verifies the log in one pass over its rows, holding one record at a time: memory does not
/// grow with the log (240,000 records took 140 MB when read whole first).
pub fn verify_log(
    connection: &Connection,
    path: &Path,
    keys: &KeyRing,
    expect_head: Option<ExpectedHead>,
) -> Result<(String, Verification), StoreError> {
    let (log_id, start) = log_identity(connection, path)?.unwrap_or_default();
    let mut verifier = Verifier::new(&log_id, keys, start, expect_head);
    scan_log(connection, path, |record| verifier.push(&record))?;
    Ok((log_id, verifier.finish()))
}

/// The log's id (empty for a log whose creation was cut short) and where its chain starts;
/// `None` when there is no `records` table at all.
fn log_identity(
    connection: &Connection,
    path: &Path,
) -> Result<Option<(String, ChainStart)>, StoreError> {
    let sqlite = |source| StoreError::Sqlite {
        path: path.to_owned(),
        source,
    };
    // A crash while the log was being created leaves no schema or no id yet, and no record.
    let has_records_table: bool = connection
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'records'",
            [],
            |row| row.get(0),
        )
        .map_err(sqlite)?;
    if !has_records_table {
        return Ok(None);
    }
    let log_id = match stored_log_id(connection, path) {
        Ok(id) => id,
        Err(missing) => {
            let records: i64 = connection
                .query_row("SELECT count(*) FROM records", [], |row| row.get(0))
                .map_err(sqlite)?;
            if records > 0 {
                return Err(missing);
            }
            String::new()
        }
    };
    Ok(Some((log_id, chain_start(connection, path)?)))
}

/// Hands every record to `each` in storage order, one at a time; returns the log's identity.
fn scan_log(
    connection: &Connection,
    path: &Path,
    mut each: impl FnMut(Record),
) -> Result<(String, ChainStart), StoreError> {
    let sqlite = |source| StoreError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let Some(identity) = log_identity(connection, path)? else {
        return Ok(Default::default());
    };
    let mut statement = connection
        .prepare(
            "SELECT id, seq, log_id, ts_ms, kind, actor, subject, outcome, details, key_id, \
             prev_mac, mac FROM records ORDER BY id",
        )
        .map_err(sqlite)?;
    let mut rows = statement.query([]).map_err(sqlite)?;
    while let Some(row) = rows.next().map_err(sqlite)? {
        let read = |row: &rusqlite::Row| -> Result<_, rusqlite::Error> {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
                Entry {
                    timestamp_ms: row.get(3)?,
                    kind: row.get(4)?,
                    actor: row.get(5)?,
                    subject: row.get(6)?,
                    outcome: row.get(7)?,
                    details: row.get(8)?,
                },
                row.get::<_, String>(9)?,
                row.get::<_, Vec<u8>>(10)?,
                row.get::<_, Vec<u8>>(11)?,
            ))
        };
        let (id, seq, row_log_id, entry, key_id, prev_mac, mac) = read(row).map_err(sqlite)?;
        each(Record {
            log_id: row_log_id,
            seq: u64::try_from(seq)
                .map_err(|_| corrupt(path, format!("row id {id}: negative seq {seq}")))?,
            entry,
            key_id,
            prev_mac: mac_from(prev_mac, path, id)?,
            mac: mac_from(mac, path, id)?,
        });
    }
    Ok(identity)
}

/// Where the stored chain begins: after the newest prune, or at the genesis.
fn chain_start(connection: &Connection, path: &Path) -> Result<ChainStart, StoreError> {
    let sqlite = |source| StoreError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let value = |name: &str| -> Result<Option<String>, StoreError> {
        connection
            .query_row("SELECT value FROM meta WHERE name = ?1", [name], |row| {
                row.get(0)
            })
            .optional()
            .map_err(sqlite)
    };
    match (value("pruned_through_seq")?, value("pruned_through_mac")?) {
        (Some(seq), Some(mac)) => {
            let after_seq = seq.parse().map_err(|_| {
                corrupt(path, format!("pruned_through_seq `{seq}` is not a number"))
            })?;
            let prev_mac = foretell_core::audit::keys::decode_hex(&mac)
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| corrupt(path, "pruned_through_mac is not a MAC".into()))?;
            Ok(ChainStart {
                after_seq,
                prev_mac,
            })
        }
        _ => Ok(ChainStart::GENESIS),
    }
}

/// What a prune did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pruned {
    pub removed: u64,
    pub through_seq: u64,
    pub anchor_seq: u64,
}

/// Deletes the records older than `before_ms` (up to the last such record in order) and
/// appends the signed anchor that carries the chain over the gap, in one transaction. `None`
/// when no record is old enough. The caller verifies the log first: pruning a damaged log
/// would destroy the evidence.
pub fn prune(
    writer: &mut AuditWriter,
    records: &[Record],
    before_ms: i64,
    now_ms: i64,
    actor: &str,
) -> Result<Option<Pruned>, StoreError> {
    let Some(last_old) = records
        .iter()
        .take_while(|r| r.entry.timestamp_ms < before_ms)
        .last()
    else {
        return Ok(None);
    };
    let removed = records.iter().filter(|r| r.seq <= last_old.seq).count() as u64;
    let anchor = Anchor {
        through_seq: last_old.seq,
        through_mac: last_old.mac,
        removed,
    };
    let (anchor_seq, _) = writer.transaction(|transaction, appender| {
        let record = appender.append(transaction, anchor.entry(now_ms, actor))?;
        transaction.execute(
            "DELETE FROM records WHERE seq <= ?1",
            params![anchor.through_seq as i64],
        )?;
        transaction.execute(
            "INSERT INTO meta (name, value) VALUES ('pruned_through_seq', ?1), ('pruned_through_mac', ?2)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            params![
                anchor.through_seq.to_string(),
                foretell_core::audit::keys::encode_hex(&anchor.through_mac)
            ],
        )?;
        Ok(record.seq)
    })?;
    Ok(Some(Pruned {
        removed,
        through_seq: anchor.through_seq,
        anchor_seq,
    }))
}

/// The one writer of a log.
pub struct AuditWriter {
    connection: Connection,
    path: PathBuf,
    keys: KeyRing,
    chain: Chain,
    /// The key id of the newest record when the log was opened.
    head_key_id: Option<String>,
    /// Set when the log's head was behind the head this writer's log had reached.
    went_backwards: Option<WentBackwards>,
}

/// A log opened with its head behind the newest head written to it (kept in `meta` with every
/// commit): records were deleted or an older copy restored. The writer goes on after the
/// newest head it had written, never reusing those sequence numbers, so the gap stays visible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WentBackwards {
    /// The newest head written before: sequence number and MAC.
    pub written_seq: u64,
    pub written_mac: [u8; MAC_BYTES],
    /// The head found in the records.
    pub found_seq: u64,
    pub found_mac: [u8; MAC_BYTES],
}

impl WentBackwards {
    /// The signed record that says so, the first one after the gap.
    pub fn entry(&self, timestamp_ms: i64) -> Entry {
        use foretell_core::audit::keys::encode_hex;
        Entry {
            timestamp_ms,
            kind: foretell_core::audit::HEAD_WENT_BACKWARDS_KIND.into(),
            actor: "foretell".into(),
            subject: "audit log".into(),
            outcome: "failed".into(),
            details: serde_json::json!({
                "written_seq": self.written_seq,
                "written_mac": encode_hex(&self.written_mac),
                "found_seq": self.found_seq,
                "found_mac": encode_hex(&self.found_mac),
            })
            .to_string(),
        }
    }
}

impl std::fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditWriter")
            .field("path", &self.path)
            .field("keys", &self.keys)
            .field("head_seq", &self.chain.head_seq())
            .finish()
    }
}

/// Appends records inside one transaction; see [`AuditWriter::transaction`].
pub struct Appender<'w> {
    keys: &'w KeyRing,
    chain: Chain,
    written: Vec<Record>,
}

impl Appender<'_> {
    /// Runs `work` inside a savepoint: when it fails, its rows and its records are undone and
    /// the rest of the transaction goes on, so one bad item does not sink a batch.
    pub fn savepoint<T>(
        &mut self,
        transaction: &Transaction,
        work: impl FnOnce(&Transaction, &mut Appender) -> Result<T, rusqlite::Error>,
    ) -> Result<T, rusqlite::Error> {
        transaction.execute_batch("SAVEPOINT item")?;
        let (chain, written) = (self.chain.clone(), self.written.len());
        match work(transaction, self) {
            Ok(value) => {
                transaction.execute_batch("RELEASE item")?;
                Ok(value)
            }
            Err(error) => {
                self.chain = chain;
                self.written.truncate(written);
                transaction.execute_batch("ROLLBACK TO item; RELEASE item")?;
                Err(error)
            }
        }
    }

    /// Signs `entry` as the next record and inserts it in `transaction`.
    pub fn append(
        &mut self,
        transaction: &Transaction,
        entry: Entry,
    ) -> Result<Record, rusqlite::Error> {
        let record = self.chain.next(self.keys, entry);
        insert(transaction, &record)?;
        self.chain.commit(&record);
        self.written.push(record.clone());
        Ok(record)
    }
}

fn insert(transaction: &Transaction, record: &Record) -> Result<(), rusqlite::Error> {
    transaction.execute(
        "INSERT INTO records (seq, log_id, ts_ms, kind, actor, subject, outcome, details, key_id, \
         prev_mac, mac) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            record.seq as i64,
            record.log_id,
            record.entry.timestamp_ms,
            record.entry.kind,
            record.entry.actor,
            record.entry.subject,
            record.entry.outcome,
            record.entry.details,
            record.key_id,
            &record.prev_mac[..],
            &record.mac[..],
        ],
    )?;
    Ok(())
}

impl AuditWriter {
    /// Opens the log at `path` for appending with `keys` (the newest key signs).
    pub fn open(path: &Path, keys: KeyRing) -> Result<AuditWriter, StoreError> {
        let connection = open(path)?;
        let sqlite = |source| StoreError::Sqlite {
            path: path.to_owned(),
            source,
        };
        let log_id = log_id(&connection, path)?;
        let head: Option<(i64, Vec<u8>, String)> = connection
            .query_row(
                "SELECT seq, mac, key_id FROM records ORDER BY seq DESC LIMIT 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()
            .map_err(sqlite)?;
        let (found_seq, found_mac, head_key_id) = match head {
            Some((seq, mac, key_id)) => (seq as u64, mac_from(mac, path, seq)?, Some(key_id)),
            None => (0, GENESIS_MAC, None),
        };
        let went_backwards = written_head(&connection, path)?
            .filter(|&(seq, mac)| seq > found_seq || (seq == found_seq && mac != found_mac))
            .map(|(written_seq, written_mac)| WentBackwards {
                written_seq,
                written_mac,
                found_seq,
                found_mac,
            });
        // After a rollback the chain links to the head found but numbers on from the newest
        // head written: the sequence numbers in between are never used again.
        let resume_seq = went_backwards
            .as_ref()
            .map_or(found_seq, |back| back.written_seq);
        Ok(AuditWriter {
            connection,
            path: path.to_owned(),
            keys,
            chain: Chain::resume(&log_id, resume_seq, found_mac),
            head_key_id,
            went_backwards,
        })
    }

    /// When the newest record was signed with another key than the one that signs now, records
    /// the rotation as the first record under the new key, so the log itself says when keys
    /// changed. Returns the rotation record, if one was written.
    pub fn record_key_rotation(&mut self, timestamp_ms: i64) -> Result<Option<Record>, StoreError> {
        let active = self.keys.active().id().to_owned();
        let Some(previous) = self.head_key_id.clone().filter(|id| *id != active) else {
            return Ok(None);
        };
        let entry = Entry {
            timestamp_ms,
            kind: foretell_core::audit::EventKind::KeyRotated.to_string(),
            actor: "foretell".into(),
            subject: active.clone(),
            outcome: "ok".into(),
            details: serde_json::json!({"from": previous, "to": active}).to_string(),
        };
        let (record, _) =
            self.transaction(|transaction, appender| appender.append(transaction, entry))?;
        Ok(Some(record))
    }

    /// Runs `work` in one transaction: the state changes it makes through the transaction and
    /// the records it appends commit together or not at all. The chain's head moves only when
    /// the commit succeeds.
    pub fn transaction<T>(
        &mut self,
        work: impl FnOnce(&Transaction, &mut Appender) -> Result<T, rusqlite::Error>,
    ) -> Result<(T, Vec<Record>), StoreError> {
        let sqlite = |source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        };
        let transaction = self.connection.transaction().map_err(sqlite)?;
        let mut appender = Appender {
            keys: &self.keys,
            chain: self.chain.clone(),
            written: Vec::new(),
        };
        let value = work(&transaction, &mut appender).map_err(sqlite)?;
        let (chain, written) = (appender.chain, appender.written);
        if !written.is_empty() {
            record_written_head(&transaction, &chain).map_err(sqlite)?;
        }
        transaction.commit().map_err(sqlite)?;
        self.chain = chain;
        if let Some(last) = written.last() {
            self.head_key_id = Some(last.key_id.clone());
        }
        Ok((value, written))
    }

    pub fn head_seq(&self) -> u64 {
        self.chain.head_seq()
    }

    pub fn head_mac(&self) -> &[u8; MAC_BYTES] {
        self.chain.head_mac()
    }

    /// Whether the log's head was behind the newest head written when it was opened.
    pub fn went_backwards(&self) -> Option<&WentBackwards> {
        self.went_backwards.as_ref()
    }
}

/// Keeps the newest head written in `meta`, in the transaction that writes it: a later open
/// that finds the records' head behind it knows records were removed.
fn record_written_head(transaction: &Transaction, chain: &Chain) -> Result<(), rusqlite::Error> {
    transaction.execute(
        "INSERT OR REPLACE INTO meta (name, value) VALUES ('head_seq', ?1), ('head_mac', ?2)",
        params![
            chain.head_seq().to_string(),
            foretell_core::audit::keys::encode_hex(chain.head_mac())
        ],
    )?;
    Ok(())
}

/// The newest head written, as [`record_written_head`] kept it; `None` in a log from before it
/// was kept.
fn written_head(
    connection: &Connection,
    path: &Path,
) -> Result<Option<(u64, [u8; MAC_BYTES])>, StoreError> {
    let value = |name: &str| -> Result<Option<String>, StoreError> {
        connection
            .query_row("SELECT value FROM meta WHERE name = ?1", [name], |row| {
                row.get(0)
            })
            .optional()
            .map_err(|source| StoreError::Sqlite {
                path: path.to_owned(),
                source,
            })
    };
    match (value("head_seq")?, value("head_mac")?) {
        (Some(seq), Some(mac)) => {
            let seq = seq
                .parse()
                .map_err(|_| corrupt(path, format!("meta head_seq `{seq}` is not a number")))?;
            let mac = foretell_core::audit::keys::decode_hex(&mac)
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| corrupt(path, "meta head_mac is not a MAC".into()))?;
            Ok(Some((seq, mac)))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
impl AuditWriter {
    /// Appends one record in its own transaction.
    pub fn append(&mut self, entry: Entry) -> Result<Record, StoreError> {
        let (record, _) =
            self.transaction(|transaction, appender| appender.append(transaction, entry))?;
        Ok(record)
    }

    pub fn log_id(&self) -> &str {
        self.chain.log_id()
    }
}

#[cfg(test)]
mod tests;
