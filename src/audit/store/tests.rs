use foretell_core::audit::{verify, ProblemClass};

use super::*;
use crate::audit::ledger::insert;
use crate::db::open;
use rusqlite::Connection;

fn ring(ids: &[(&str, u8)]) -> KeyRing {
    let text: Vec<String> = ids
        .iter()
        .map(|(id, byte)| format!("{id}:{}", format!("{byte:02x}").repeat(32)))
        .collect();
    KeyRing::parse(&text.join("\n")).expect("valid")
}

use crate::audit::sample_entry as entry;

/// A log of `count` records at `path`, written by a writer that is then dropped.
fn write_log(path: &Path, keys: &KeyRing, count: usize) {
    let mut writer = Database::open(path, keys.clone()).expect("open");
    for i in 0..count {
        writer.append(entry(i)).expect("append");
    }
}

fn check(
    path: &Path,
    keys: &KeyRing,
    expect_head: Option<u64>,
) -> foretell_core::audit::Verification {
    let connection = open(path).expect("open");
    let log = read_log(&connection, path).expect("read");
    verify(
        &log.log_id,
        &log.records,
        keys,
        log.start,
        expect_head.map(Into::into),
    )
}

fn class(path: &Path, keys: &KeyRing, expect_head: Option<u64>) -> Option<ProblemClass> {
    check(path, keys, expect_head).problem.map(|p| p.class)
}

#[test]
fn appends_survive_a_reopen_and_the_chain_continues() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.db");
    let keys = ring(&[("k1", 1)]);
    write_log(&path, &keys, 5);
    let mut writer = Database::open(&path, keys.clone()).expect("reopen");
    assert_eq!(writer.head_seq(), 5);
    let record = writer.append(entry(5)).expect("append");
    assert_eq!(record.seq, 6);
    let outcome = check(&path, &keys, Some(6));
    assert_eq!(
        (outcome.checked, outcome.head_seq, outcome.problem),
        (6, 6, None)
    );
}

/// Runs raw SQL against the log, as someone with write access to the file would.
fn tamper(path: &Path, sql: &str) {
    let connection = Connection::open(path).expect("raw");
    connection.execute_batch(sql).expect(sql);
}

#[test]
fn tampering_with_the_file_is_caught_and_classified() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = ring(&[("k1", 1)]);
    let fresh = |name: &str| {
        let path = dir.path().join(name);
        write_log(&path, &keys, 10);
        path
    };

    let path = fresh("modified.db");
    tamper(
        &path,
        "UPDATE records SET details = replace(details, 'pager', 'pagex') WHERE seq = 4",
    );
    assert_eq!(class(&path, &keys, None), Some(ProblemClass::Modified));

    let path = fresh("deleted.db");
    tamper(&path, "DELETE FROM records WHERE seq = 5");
    assert_eq!(class(&path, &keys, None), Some(ProblemClass::Missing));

    let path = fresh("swapped.db");
    // Exchange the contents of rows 3 and 7 (seq is unique, so via a free number).
    tamper(
        &path,
        "UPDATE records SET seq = -1 WHERE id = 3;
         UPDATE records SET seq = 3 WHERE id = 7;
         UPDATE records SET seq = 7 WHERE id = 3;
         CREATE TEMP TABLE a AS SELECT * FROM records WHERE id = 3;
         CREATE TEMP TABLE b AS SELECT * FROM records WHERE id = 7;
         UPDATE records SET (ts_ms, kind, actor, subject, outcome, details, key_id, prev_mac, mac) =
           (SELECT ts_ms, kind, actor, subject, outcome, details, key_id, prev_mac, mac FROM b) WHERE id = 3;
         UPDATE records SET (ts_ms, kind, actor, subject, outcome, details, key_id, prev_mac, mac) =
           (SELECT ts_ms, kind, actor, subject, outcome, details, key_id, prev_mac, mac FROM a) WHERE id = 7;",
    );
    assert_eq!(class(&path, &keys, None), Some(ProblemClass::Reordered));

    let path = fresh("inserted.db");
    {
        // A record signed with another secret under the same key id, slotted after seq 4.
        let forger = ring(&[("k1", 2)]);
        let connection = open(&path).expect("open");
        let log = read_log(&connection, &path).expect("read");
        let forged = foretell_core::audit::record::sign(
            forger.active(),
            &log.log_id,
            5,
            entry(99),
            log.records[3].mac,
        );
        // Make room: the genuine records from seq 5 on move one place up.
        tamper(
            &path,
            "UPDATE records SET id = id + 100, seq = seq + 1000 WHERE seq >= 5;
             UPDATE records SET seq = seq - 999 WHERE seq >= 1005;",
        );
        let mut connection = open(&path).expect("open");
        let tx = connection.transaction().expect("tx");
        insert(&tx, &forged).expect("insert");
        tx.commit().expect("commit");
        tamper(&path, "UPDATE records SET id = 5 WHERE seq = 5");
    }
    assert_eq!(class(&path, &keys, None), Some(ProblemClass::Inserted));

    let path = fresh("truncated.db");
    tamper(&path, "DELETE FROM records WHERE seq > 7");
    assert_eq!(
        class(&path, &keys, None),
        None,
        "a cut tail needs an independent head"
    );
    assert_eq!(class(&path, &keys, Some(10)), Some(ProblemClass::Truncated));

    let path = fresh("restored.db");
    let copy = dir.path().join("restored-copy.db");
    std::fs::copy(&path, &copy).expect("copy");
    let mut writer = Database::open(&path, keys.clone()).expect("open");
    writer.append(entry(10)).expect("append");
    drop(writer);
    std::fs::copy(&copy, &path).expect("restore");
    assert_eq!(class(&path, &keys, Some(11)), Some(ProblemClass::Truncated));

    let path = fresh("spliced.db");
    let other = fresh("other.db");
    {
        let connection = open(&other).expect("open");
        let foreign = read_log(&connection, &other).expect("read").records[5].clone();
        tamper(&path, "DELETE FROM records WHERE seq = 6");
        let mut connection = open(&path).expect("open");
        let tx = connection.transaction().expect("tx");
        insert(&tx, &foreign).expect("insert");
        tx.commit().expect("commit");
        // Put it back at position 6 of the storage order.
        tamper(&path, "UPDATE records SET id = 6 WHERE seq = 6 AND id > 10");
    }
    assert_eq!(class(&path, &keys, None), Some(ProblemClass::ForeignLog));

    let path = fresh("wrong-key.db");
    assert_eq!(
        class(&path, &ring(&[("k1", 3)]), None),
        Some(ProblemClass::WrongKey)
    );
}

#[test]
fn a_key_rotation_mid_log_verifies_with_both_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.db");
    let old = ring(&[("k1", 1)]);
    let both = ring(&[("k1", 1), ("k2", 2)]);
    write_log(&path, &old, 3);
    let mut writer = Database::open(&path, both.clone()).expect("open");
    // The rotation is itself the first record under the new key.
    let rotation = writer
        .record_key_rotation(42)
        .expect("write")
        .expect("a rotation");
    assert_eq!((rotation.seq, rotation.key_id.as_str()), (4, "k2"));
    assert_eq!(rotation.entry.kind, "key.rotated");
    assert_eq!(rotation.entry.details, r#"{"from":"k1","to":"k2"}"#);
    assert!(writer.record_key_rotation(43).expect("write").is_none());
    drop(writer);
    let mut same = Database::open(&path, both.clone()).expect("reopen");
    assert!(same.record_key_rotation(44).expect("write").is_none());
    same.append(entry(4)).expect("append");
    drop(same);
    assert_eq!(check(&path, &both, Some(5)).problem, None);
    let outcome = check(&path, &old, None);
    assert_eq!(
        outcome.problem.map(|p| p.class),
        Some(ProblemClass::WrongKey)
    );
    assert_eq!(outcome.checked, 3);
}

#[test]
fn a_full_disk_fails_appends_cleanly_and_they_resume_when_space_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.db");
    let keys = ring(&[("k1", 1)]);
    let mut writer = Database::open(&path, keys.clone()).expect("open");
    writer.append(entry(0)).expect("append");
    // Cap the file at the pages it has now: the database is "full".
    let pages: i64 = writer
        .transaction(|tx, _| tx.query_row("PRAGMA page_count", [], |r| r.get(0)))
        .expect("pages")
        .0;
    writer
        .transaction(|tx, _| {
            tx.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .expect("cap");
    let mut failures = 0;
    for i in 1..200 {
        let big = Entry {
            details: format!(r#"{{"padding":"{}"}}"#, "x".repeat(2000)),
            ..entry(i)
        };
        match writer.append(big) {
            Ok(_) => {}
            Err(error) => {
                assert!(error.to_string().contains("full"), "{error}");
                failures += 1;
            }
        }
    }
    assert!(failures > 0, "the cap never bit");
    let head = writer.head_seq();
    // Space returns: appends continue the chain where the last committed record left it.
    writer
        .transaction(|tx, _| {
            tx.query_row("PRAGMA max_page_count = 1073741823", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .expect("uncap");
    let record = writer
        .append(entry(500))
        .expect("append after space returns");
    assert_eq!(record.seq, head + 1);
    drop(writer);
    let outcome = check(&path, &keys, Some(head + 1));
    assert_eq!((outcome.checked, outcome.problem), (head + 1, None));
}
