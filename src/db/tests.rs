use std::path::Path;

use foretell_core::audit::{verify, KeyRing};
use rusqlite::Connection;

use super::migrations::MIGRATIONS;
use super::*;
use crate::audit::store::read_log;

fn ring() -> KeyRing {
    KeyRing::parse(&format!("k1:{}", "01".repeat(32))).expect("valid")
}

use crate::audit::sample_entry as entry;

/// Whether the log at `path` verifies up to `expect_head`.
fn verifies(path: &Path, expect_head: u64) -> bool {
    let connection = open(path).expect("open");
    let log = read_log(&connection, path).expect("read");
    verify(
        &log.log_id,
        &log.records,
        &ring(),
        log.start,
        Some(expect_head.into()),
    )
    .problem
    .is_none()
}

#[test]
fn a_new_database_gets_wal_full_sync_and_every_migration_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.db");
    let connection = open(&path).expect("open");
    let mode: String = connection
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .expect("mode");
    let sync: i64 = connection
        .pragma_query_value(None, "synchronous", |r| r.get(0))
        .expect("sync");
    let version: i64 = connection
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(
        (mode.as_str(), sync, version),
        ("wal", 2, MIGRATIONS.len() as i64)
    );
    drop(connection);
    // Reopening applies nothing twice (a second CREATE TABLE would fail).
    open(&path).expect("reopen");
    // A database from a newer foretell is refused, not downgraded.
    let connection = Connection::open(&path).expect("raw");
    connection
        .pragma_update(None, "user_version", MIGRATIONS.len() as i64 + 1)
        .expect("bump");
    drop(connection);
    let error = open(&path).expect_err("newer schema");
    assert!(matches!(error, DbError::NewerSchema { .. }), "{error}");
}

#[test]
fn a_record_and_the_state_it_describes_commit_together_or_not_at_all() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.db");
    let mut writer = Database::open(&path, ring()).expect("open");
    writer
        .transaction(|tx, _| tx.execute_batch("CREATE TABLE outbox (body TEXT NOT NULL)"))
        .expect("table");
    let failed = writer.transaction(|tx, appender| {
        tx.execute("INSERT INTO outbox (body) VALUES ('alert')", [])?;
        appender.append(tx, entry(0))?;
        // The outbox insert and the record are rolled back with this failure.
        tx.execute("INSERT INTO no_such_table VALUES (1)", [])
    });
    assert!(failed.is_err());
    assert_eq!(
        writer.head_seq(),
        0,
        "the head does not move for a rolled-back record"
    );
    let (_, written) = writer
        .transaction(|tx, appender| {
            tx.execute("INSERT INTO outbox (body) VALUES ('alert')", [])?;
            appender.append(tx, entry(1))
        })
        .expect("commit");
    assert_eq!(written[0].seq, 1);
    let connection = open(&path).expect("open");
    let outbox: i64 = connection
        .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))
        .expect("count");
    assert_eq!(outbox, 1);
    assert!(verifies(&path, 1));
}

/// Issue 16, item 8: the audit database holds notification bodies and was created 0644.
#[test]
fn a_new_log_and_its_wal_are_readable_by_the_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.db");
    let mut database = Database::open(&path, ring()).expect("open");
    for i in 0..3 {
        database.append(entry(i)).expect("append");
    }
    let connection = open(&path).expect("open");
    connection
        .execute_batch("CREATE TABLE IF NOT EXISTS probe (x); INSERT INTO probe VALUES (1);")
        .expect("write");
    for file in ["audit.db", "audit.db-wal"] {
        let mode = std::fs::metadata(dir.path().join(file))
            .expect(file)
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}: {mode:o}");
    }
    // An existing file keeps the mode its owner gave it.
    let shared = dir.path().join("shared.db");
    std::fs::write(&shared, b"").expect("create");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    drop(open(&shared).expect("open"));
    let mode = std::fs::metadata(&shared)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
}

/// Issue 21, item 6: the bundled SQLite has 2025's fixes (CVE-2025-6965 was fixed in 3.50.2).
#[test]
fn the_bundled_sqlite_is_at_least_3_50_2() {
    let version: String = Connection::open_in_memory()
        .expect("memory")
        .query_row("SELECT sqlite_version()", [], |row| row.get(0))
        .expect("version");
    let parts: Vec<u32> = version
        .split('.')
        .map(|p| p.parse().expect("number"))
        .collect();
    assert!(parts >= vec![3, 50, 2], "SQLite {version}");
}

/// `audit verify` after a crash reads everything the killed writer committed, and writes
/// nothing. (When SQLite must recover such a log's index first, a read-only connection is
/// refused, "attempt to write a readonly database"; `open_read_only` then reopens it with
/// `query_only`. That race showed in about one of five runs of the SIGKILL test, and in none of
/// eight after the change; it could not be reproduced here deterministically.)
#[test]
fn a_log_left_by_a_killed_writer_opens_for_reading() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.db");
    let mut database = Database::open(&path, ring()).expect("open");
    let crashed = dir.path().join("crashed");
    std::fs::create_dir(&crashed).expect("dir");
    for i in 0..10 {
        database.append(entry(i)).expect("append");
    }
    // What a kill -9 can leave: the database and its WAL as they were, beside a shared-memory
    // index whose header was never completed (the writer died while writing it).
    let shm = std::fs::metadata(dir.path().join("audit.db-shm"))
        .expect("shm")
        .len();
    std::fs::write(crashed.join("audit.db-shm"), vec![0u8; shm as usize]).expect("blank shm");
    for i in 10..20 {
        database.append(entry(i)).expect("append");
    }
    std::fs::copy(&path, crashed.join("audit.db")).expect("copy db");
    std::fs::copy(
        dir.path().join("audit.db-wal"),
        crashed.join("audit.db-wal"),
    )
    .expect("copy wal");
    drop(database);
    let copy = crashed.join("audit.db");
    let connection = open_read_only(&copy).expect("opens for reading");
    let log = read_log(&connection, &copy).expect("reads");
    assert_eq!(log.records.len(), 20);
    // Reading it wrote nothing to the log itself.
    assert!(connection
        .execute_batch("CREATE TABLE written (x)")
        .is_err());
}
