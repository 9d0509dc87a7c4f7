//! The schema of foretell's database, every table in one list: the audit log's records and
//! the alert path's outbox live in one SQLite file so that a state change and the record
//! that describes it commit in one transaction.

use std::path::Path;

use rusqlite::Connection;

use super::DbError;

/// Schema changes, applied in order; `PRAGMA user_version` counts those applied. Append only:
/// a released migration is never edited.
pub const MIGRATIONS: &[&str] = &[
    // 1: the audit log's identity (`meta`, also the newest head written and the prune point)
    // and its records (`audit::store`, `audit::ledger`).
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
    // 2: the alert outbox (`alerts::outbox`): notifications as received, then one delivery
    // per receiver.
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

/// Migrations the database has had; a database from a newer foretell is refused, not read
/// with assumptions that may no longer hold.
pub(super) fn applied(connection: &Connection, path: &Path) -> Result<usize, DbError> {
    let applied: i64 = connection
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|source| DbError::sqlite(path, source))?;
    if applied < 0 || applied as usize > MIGRATIONS.len() {
        return Err(DbError::NewerSchema {
            path: path.to_owned(),
            found: applied,
            known: MIGRATIONS.len(),
        });
    }
    Ok(applied as usize)
}

/// Applies the migrations `connection` lacks, each in its own transaction.
pub(super) fn migrate(connection: &mut Connection, path: &Path) -> Result<(), DbError> {
    let sqlite = |source| DbError::sqlite(path, source);
    let applied = applied(connection, path)?;
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
