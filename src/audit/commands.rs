//! `foretell audit verify` and `foretell audit show`: read a log file, check or print it.

use std::fmt::Write as _;
use std::path::Path;

use crate::views::markup::terminal_cell;
use foretell_core::audit::keys::encode_hex;
use foretell_core::audit::{
    ExpectedHead, KeyError, KeyRing, Problem, ProblemClass, Record, Verification,
};
use serde_json::json;

use super::store;
use crate::db::{self, Database, DbError};
use crate::offline::timestamp::format_rfc3339;

impl AuditCommandError {
    /// True when the user's flags or key material are at fault (exit code 2), false when the
    /// log itself cannot be read or does not verify (exit code 1).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            AuditCommandError::KeyFile { .. }
                | AuditCommandError::Keys { .. }
                | AuditCommandError::NoKeys
        )
    }
}

/// Environment variable that may hold the key file's text instead of `--key-file`.
pub const KEYS_ENV: &str = "FORETELL_AUDIT_KEYS";

#[derive(Debug, thiserror::Error)]
pub enum AuditCommandError {
    #[error("{0}")]
    Store(#[from] DbError),
    #[error("cannot read the key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("key file {origin}: {source}")]
    Keys { origin: String, source: KeyError },
    #[error("no keys: pass --key-file FILE or set {KEYS_ENV}")]
    NoKeys,
    #[error("no audit database at {0}")]
    NoDatabase(String),
    #[error("refusing to prune {db}: the log does not verify ({problem}); pruning would destroy the evidence")]
    DoesNotVerify { db: String, problem: String },
}

/// The key ring from `--key-file`, else from the environment's text.
pub fn load_keys(
    key_file: Option<&Path>,
    from_env: Option<String>,
) -> Result<KeyRing, AuditCommandError> {
    let (text, origin) = match (key_file, from_env) {
        (Some(path), _) => (
            crate::config::read_bounded(path, crate::config::MAX_FILE_BYTES)
                .and_then(|bytes| {
                    String::from_utf8(bytes).map_err(|_| {
                        std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text")
                    })
                })
                .map_err(|source| AuditCommandError::KeyFile {
                    path: path.display().to_string(),
                    source,
                })?,
            path.display().to_string(),
        ),
        (None, Some(text)) => (text, format!("${KEYS_ENV}")),
        (None, None) => return Err(AuditCommandError::NoKeys),
    };
    KeyRing::parse(&text).map_err(|source| AuditCommandError::Keys { origin, source })
}

/// Reads and verifies the log at `db`. The database must exist: verifying a path that is not
/// there would otherwise create an empty log and report it clean. A file that holds no audit
/// log (zero bytes, another program's database) is a problem of its own class, never clean.
pub fn verify_file(
    db: &Path,
    keys: &KeyRing,
    expect_head: Option<ExpectedHead>,
) -> Result<(String, Verification), AuditCommandError> {
    if !db.is_file() {
        return Err(AuditCommandError::NoDatabase(db.display().to_string()));
    }
    let not_a_log = |message: String| {
        Ok((
            String::new(),
            Verification {
                checked: 0,
                head_seq: 0,
                problem: Some(Problem {
                    class: ProblemClass::NotALog,
                    position: None,
                    message,
                }),
            },
        ))
    };
    if std::fs::metadata(db).map(|m| m.len()).unwrap_or(0) == 0 {
        return not_a_log("the file is empty (0 bytes): it holds no audit log".into());
    }
    let connection = db::open_read_only(db)?;
    let tables = db::table_names(&connection, db)?;
    if !tables.iter().any(|t| t == "records") {
        if tables.iter().any(|t| t == "meta") {
            return Ok((
                String::new(),
                Verification {
                    checked: 0,
                    head_seq: 0,
                    problem: Some(Problem {
                        class: ProblemClass::Empty,
                        position: None,
                        message: "the log's `records` table is gone (dropped)".into(),
                    }),
                },
            ));
        }
        return not_a_log(if tables.is_empty() {
            "the database has no tables: it holds no audit log".into()
        } else {
            format!(
                "the database holds no audit log (its tables: {}); is this the right file?",
                tables.join(", ")
            )
        });
    }
    Ok(store::verify_log(&connection, db, keys, expect_head)?)
}

/// Verifies the log, then prunes the records older than `before_ms` behind a signed anchor.
/// Run it while no sidecar writes to the log: the sidecar's writer keeps the head in memory.
pub fn prune_file(
    db: &Path,
    keys: &KeyRing,
    before_ms: i64,
    now_ms: i64,
) -> Result<Option<store::Pruned>, AuditCommandError> {
    let (_, outcome) = verify_file(db, keys, None)?;
    if let Some(problem) = outcome.problem {
        return Err(AuditCommandError::DoesNotVerify {
            db: db.display().to_string(),
            problem: problem.to_string(),
        });
    }
    let connection = db::open(db)?;
    let log = store::read_log(&connection, db)?;
    drop(connection);
    let mut writer = Database::open(db, keys.clone())?;
    Ok(store::prune(
        &mut writer,
        &log.records,
        before_ms,
        now_ms,
        "cli:audit prune",
    )?)
}

/// The verify report: a summary line and the first problem, if any.
pub fn render_verification(db: &Path, log_id: &str, outcome: &Verification) -> String {
    let mut out = format!(
        "{}: log {log_id}, {} records checked, head seq {}\n",
        db.display(),
        outcome.checked,
        outcome.head_seq
    );
    match &outcome.problem {
        None => out.push_str("OK: every record verifies and the chain is unbroken\n"),
        Some(problem) => {
            let _ = writeln!(out, "PROBLEM {problem}");
        }
    }
    out
}

/// Which records `show` prints.
#[derive(Clone, Debug, Default)]
pub struct RecordFilter {
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub kind: Option<String>,
    pub subject: Option<String>,
}

impl RecordFilter {
    pub fn matches(&self, record: &Record) -> bool {
        let at = record.entry.timestamp_ms;
        self.since_ms.is_none_or(|since| at >= since)
            && self.until_ms.is_none_or(|until| at < until)
            && self.kind.as_ref().is_none_or(|kind| {
                record.entry.kind == *kind
                    || record
                        .entry
                        .kind
                        .strip_prefix(kind.as_str())
                        .is_some_and(|rest| rest.starts_with('.'))
            })
            && self
                .subject
                .as_ref()
                .is_none_or(|subject| record.entry.subject == *subject)
    }
}

/// Records read from `db` (which must exist), in storage order, filtered.
pub fn read_records(db: &Path, filter: &RecordFilter) -> Result<Vec<Record>, AuditCommandError> {
    if !db.is_file() {
        return Err(AuditCommandError::NoDatabase(db.display().to_string()));
    }
    let connection = db::open_read_only(db)?;
    let log = store::read_log(&connection, db)?;
    Ok(log
        .records
        .into_iter()
        .filter(|r| filter.matches(r))
        .collect())
}

/// One line per record: seq, time, kind, actor, subject, outcome, details.
pub fn render_table(records: &[Record]) -> String {
    let mut out = format!(
        "{:>8}  {:<20}  {:<22} {:<16} {:<24} {:<10} details\n",
        "seq", "time", "kind", "actor", "subject", "outcome"
    );
    for record in records {
        let entry = &record.entry;
        let _ = writeln!(
            out,
            "{:>8}  {:<20}  {:<22} {:<16} {:<24} {:<10} {}",
            record.seq,
            format_rfc3339(entry.timestamp_ms),
            terminal_cell(&entry.kind),
            terminal_cell(&entry.actor),
            terminal_cell(&entry.subject),
            terminal_cell(&entry.outcome),
            terminal_cell(&entry.details)
        );
    }
    out
}

/// One JSON object per line, with the chain fields, for export to other systems.
pub fn render_jsonl(records: &[Record]) -> String {
    let mut out = String::new();
    for record in records {
        let entry = &record.entry;
        let details: serde_json::Value = serde_json::from_str(&entry.details)
            .unwrap_or_else(|_| serde_json::Value::String(entry.details.clone()));
        let line = json!({
            "seq": record.seq,
            "time": format_rfc3339(entry.timestamp_ms),
            "timestamp_ms": entry.timestamp_ms,
            "kind": entry.kind,
            "actor": entry.actor,
            "subject": entry.subject,
            "outcome": entry.outcome,
            "details": details,
            "log_id": record.log_id,
            "key_id": record.key_id,
            "prev_mac": encode_hex(&record.prev_mac),
            "mac": encode_hex(&record.mac),
        });
        let _ = writeln!(out, "{line}");
    }
    out
}

/// Counts by kind and outcome, with the period the records span.
pub fn render_report(records: &[Record]) -> String {
    let mut counts: std::collections::BTreeMap<(&str, &str), u64> = Default::default();
    for record in records {
        *counts
            .entry((record.entry.kind.as_str(), record.entry.outcome.as_str()))
            .or_default() += 1;
    }
    let mut out = match (records.first(), records.last()) {
        (Some(first), Some(last)) => format!(
            "{} records, seq {} to {}, {} to {}\n",
            records.len(),
            first.seq,
            last.seq,
            format_rfc3339(first.entry.timestamp_ms),
            format_rfc3339(last.entry.timestamp_ms)
        ),
        _ => "no records\n".to_owned(),
    };
    if !counts.is_empty() {
        let _ = writeln!(out, "{:<28} {:<12} {:>8}", "kind", "outcome", "records");
    }
    for ((kind, outcome), count) in counts {
        let _ = writeln!(out, "{kind:<28} {outcome:<12} {count:>8}");
    }
    out
}

#[cfg(test)]
mod tests {
    use foretell_core::audit::Entry;

    use super::*;
    use crate::db::Database;

    const KEY_TEXT: &str = "k1:0101010101010101010101010101010101010101010101010101010101010101";

    fn entry(kind: &str, subject: &str, at_ms: i64) -> Entry {
        Entry {
            timestamp_ms: at_ms,
            kind: kind.into(),
            actor: "foretell".into(),
            subject: subject.into(),
            outcome: "ok".into(),
            details: r#"{"n":1}"#.into(),
        }
    }

    #[test]
    fn verify_reports_the_count_the_head_and_the_first_problem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("audit.db");
        let keys = KeyRing::parse(KEY_TEXT).expect("keys");
        let mut writer = Database::open(&db, keys.clone()).expect("open");
        for i in 0..3 {
            writer
                .append(entry("config.loaded", "foretell.yml", i))
                .expect("append");
        }
        let log_id = writer.log_id().to_owned();
        drop(writer);
        let (id, outcome) = verify_file(&db, &keys, Some(3.into())).expect("verify");
        assert_eq!(id, log_id);
        let text = render_verification(&db, &id, &outcome);
        assert!(text.contains("3 records checked, head seq 3"), "{text}");
        assert!(text.contains("\nOK: "), "{text}");
        let (_, outcome) = verify_file(&db, &keys, Some(5.into())).expect("verify");
        let text = render_verification(&db, &id, &outcome);
        assert!(
            text.contains("PROBLEM truncated: the newest record is seq 3, but seq 5"),
            "{text}"
        );
        // Verifying writes nothing: the file is byte for byte what it was.
        let before = std::fs::read(&db).expect("read");
        verify_file(&db, &keys, None).expect("verify");
        read_records(&db, &RecordFilter::default()).expect("show");
        assert!(
            std::fs::read(&db).expect("read") == before,
            "verify changed the file"
        );
        // Issue 16, item 6: none of these is a log that verifies. A log without records (its
        // creation cut short, every record deleted, the table dropped) is empty; a zero-byte
        // file or another program's database is not a log.
        let cut_short = dir.path().join("cut-short.db");
        drop(db::open(&cut_short).expect("schema only"));
        let emptied = dir.path().join("emptied.db");
        std::fs::copy(&db, &emptied).expect("copy");
        let dropped = dir.path().join("dropped.db");
        std::fs::copy(&db, &dropped).expect("copy");
        for (path, sql) in [
            (&emptied, "DELETE FROM records"),
            (&dropped, "DROP TABLE records"),
        ] {
            rusqlite::Connection::open(path)
                .and_then(|c| c.execute_batch(sql))
                .expect("tamper");
        }
        let zero_bytes = dir.path().join("zero.db");
        std::fs::write(&zero_bytes, b"").expect("empty file");
        let foreign = dir.path().join("foreign.db");
        rusqlite::Connection::open(&foreign)
            .and_then(|c| {
                c.execute_batch("CREATE TABLE users (name TEXT); INSERT INTO users VALUES ('a');")
            })
            .expect("foreign");
        for (path, class, words) in [
            (&cut_short, ProblemClass::Empty, "holds no record"),
            (&emptied, ProblemClass::Empty, "holds no record"),
            (&dropped, ProblemClass::Empty, "`records` table is gone"),
            (&zero_bytes, ProblemClass::NotALog, "0 bytes"),
            (&foreign, ProblemClass::NotALog, "its tables: users"),
        ] {
            let (id, outcome) = verify_file(path, &keys, None).expect("verify");
            let problem = outcome.problem.clone().expect(words);
            assert_eq!(problem.class, class, "{}", path.display());
            let text = render_verification(path, &id, &outcome);
            assert!(text.contains(words) && !text.contains("OK"), "{text}");
        }
        let missing = verify_file(&dir.path().join("nope.db"), &keys, None).expect_err("missing");
        assert!(
            missing.to_string().contains("no audit database at"),
            "{missing}"
        );
        assert!(
            !dir.path().join("nope.db").exists(),
            "verify must not create a database"
        );
    }

    #[test]
    fn a_pruned_log_still_verifies_and_a_forged_prune_does_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("audit.db");
        let keys = KeyRing::parse(KEY_TEXT).expect("keys");
        let mut writer = Database::open(&db, keys.clone()).expect("open");
        for i in 0..10 {
            writer
                .append(entry("model.refit", "load", 1_000 * i))
                .expect("append");
        }
        drop(writer);
        let pruned = prune_file(&db, &keys, 4_500, 20_000)
            .expect("prune")
            .expect("pruned");
        assert_eq!(
            (pruned.removed, pruned.through_seq, pruned.anchor_seq),
            (5, 5, 11)
        );
        let (_, outcome) = verify_file(&db, &keys, Some(11.into())).expect("verify");
        assert_eq!(
            (outcome.checked, outcome.head_seq, outcome.problem),
            (6, 11, None)
        );
        let kept: Vec<u64> = read_records(&db, &RecordFilter::default())
            .expect("read")
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(kept, vec![6, 7, 8, 9, 10, 11]);
        // Nothing old enough: no anchor, nothing removed.
        assert_eq!(prune_file(&db, &keys, 0, 30_000).expect("prune"), None);
        // Someone deletes two more records and moves the recorded start past them.
        let raw = rusqlite::Connection::open(&db).expect("raw");
        let mac_7: Vec<u8> = raw
            .query_row("SELECT mac FROM records WHERE seq = 7", [], |r| r.get(0))
            .expect("mac");
        raw.execute_batch("DELETE FROM records WHERE seq <= 7")
            .expect("delete");
        raw.execute(
            "UPDATE meta SET value = ?1 WHERE name = 'pruned_through_mac'",
            [foretell_core::audit::keys::encode_hex(&mac_7)],
        )
        .expect("mac");
        raw.execute_batch("UPDATE meta SET value = '7' WHERE name = 'pruned_through_seq'")
            .expect("seq");
        drop(raw);
        let (_, outcome) = verify_file(&db, &keys, None).expect("verify");
        let problem = outcome.problem.expect("caught");
        assert_eq!(problem.class, foretell_core::audit::ProblemClass::Missing);
        // And a damaged log is not pruned further.
        let error = prune_file(&db, &keys, 100_000, 200_000).expect_err("refused");
        assert!(
            error.to_string().starts_with("refusing to prune"),
            "{error}"
        );
    }

    #[test]
    fn keys_come_from_the_file_first_then_the_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("keys");
        std::fs::write(&file, KEY_TEXT).expect("write");
        let other = "k9:0202020202020202020202020202020202020202020202020202020202020202";
        let ring = load_keys(Some(&file), Some(other.into())).expect("file");
        assert_eq!(ring.active().id(), "k1");
        let ring = load_keys(None, Some(other.into())).expect("env");
        assert_eq!(ring.active().id(), "k9");
        assert!(matches!(
            load_keys(None, None),
            Err(AuditCommandError::NoKeys)
        ));
        let error = load_keys(None, Some("k1:00".into())).expect_err("short");
        assert_eq!(
            error.to_string(),
            "key file $FORETELL_AUDIT_KEYS: key `k1` has 1 bytes of secret; at least 32 are needed"
        );
    }

    #[test]
    fn show_filters_by_time_kind_and_subject_and_exports_jsonl() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("audit.db");
        let keys = KeyRing::parse(KEY_TEXT).expect("keys");
        let mut writer = Database::open(&db, keys).expect("open");
        writer
            .append(entry("config.loaded", "foretell.yml", 1_000))
            .expect("append");
        writer
            .append(entry("alert.forwarded", "fp-a", 2_000))
            .expect("append");
        writer
            .append(entry("alert.suppressed", "fp-b", 3_000))
            .expect("append");
        writer
            .append(entry("alerting.other", "fp-c", 4_000))
            .expect("append");
        writer
            .append(entry(
                "webhook.escape",
                "g\u{1b}]0;owned\u{7}\u{1b}[2J",
                5_000,
            ))
            .expect("append");
        drop(writer);
        let seqs = |filter: RecordFilter| -> Vec<u64> {
            read_records(&db, &filter)
                .expect("read")
                .iter()
                .map(|r| r.seq)
                .collect()
        };
        assert_eq!(seqs(RecordFilter::default()), vec![1, 2, 3, 4, 5]);
        let all = render_table(&read_records(&db, &RecordFilter::default()).expect("read"));
        assert!(!all.contains('\u{1b}') && !all.contains('\u{7}'), "{all}");
        assert!(all.contains("g\\u{1b}]0;owned\\u{7}"), "{all}");
        let by_kind = RecordFilter {
            kind: Some("alert".into()),
            ..RecordFilter::default()
        };
        assert_eq!(
            seqs(by_kind),
            vec![2, 3],
            "a kind prefix matches whole dotted parts"
        );
        let by_time = RecordFilter {
            since_ms: Some(2_000),
            until_ms: Some(4_000),
            ..RecordFilter::default()
        };
        assert_eq!(seqs(by_time), vec![2, 3]);
        let by_subject = RecordFilter {
            subject: Some("fp-b".into()),
            ..RecordFilter::default()
        };
        let records = read_records(&db, &by_subject).expect("read");
        let table = render_table(&records);
        assert!(
            table.contains("alert.suppressed") && !table.contains("fp-a"),
            "{table}"
        );
        let line: serde_json::Value =
            serde_json::from_str(render_jsonl(&records).trim()).expect("JSON line");
        assert_eq!(line["seq"], 3);
        assert_eq!(line["details"]["n"], 1);
        assert_eq!(line["time"], "1970-01-01T00:00:03Z");
        assert_eq!(line["mac"].as_str().expect("mac").len(), 64);
    }
}
