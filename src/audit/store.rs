//! The audit log as stored: reading it whole or one record at a time (show, export,
//! verify) and pruning it behind a signed anchor. Writing goes through
//! [`crate::db::Database`] and the [`super::ledger::Ledger`].

use std::path::Path;

use foretell_core::audit::{
    Anchor, ChainStart, Entry, Event, ExpectedHead, KeyRing, Record, Verification, Verifier,
};
use rusqlite::{params, Connection};

use super::ledger::mac_from;
use crate::db::{self, Database, DbError};

/// The log's id as stored; a log that never had one is not an audit log.
fn stored_log_id(connection: &Connection, path: &Path) -> Result<String, DbError> {
    db::meta_value(connection, "log_id")
        .map_err(|source| DbError::sqlite(path, source))?
        .ok_or_else(|| DbError::corrupt(path, "the log has no id (meta.log_id is missing)".into()))
}

/// Every record in storage order, the log's id and where its chain starts.
pub struct StoredLog {
    pub log_id: String,
    pub start: ChainStart,
    pub records: Vec<Record>,
}

/// Reads the whole log (for `show`, `export`, `prune`).
pub fn read_log(connection: &Connection, path: &Path) -> Result<StoredLog, DbError> {
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
) -> Result<(String, Verification), DbError> {
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
) -> Result<Option<(String, ChainStart)>, DbError> {
    let sqlite = |source| DbError::sqlite(path, source);
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
) -> Result<(String, ChainStart), DbError> {
    let sqlite = |source| DbError::sqlite(path, source);
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
                .map_err(|_| DbError::corrupt(path, format!("row id {id}: negative seq {seq}")))?,
            entry,
            key_id,
            prev_mac: mac_from(prev_mac, path, id)?,
            mac: mac_from(mac, path, id)?,
        });
    }
    Ok(identity)
}

/// Where the stored chain begins: after the newest prune, or at the genesis.
fn chain_start(connection: &Connection, path: &Path) -> Result<ChainStart, DbError> {
    let value = |name: &str| db::meta_value(connection, name).map_err(|e| DbError::sqlite(path, e));
    match (value("pruned_through_seq")?, value("pruned_through_mac")?) {
        (Some(seq), Some(mac)) => {
            let after_seq = seq.parse().map_err(|_| {
                DbError::corrupt(path, format!("pruned_through_seq `{seq}` is not a number"))
            })?;
            let prev_mac = foretell_core::audit::keys::decode_hex(&mac)
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| DbError::corrupt(path, "pruned_through_mac is not a MAC".into()))?;
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
    database: &mut Database,
    records: &[Record],
    before_ms: i64,
    now_ms: i64,
    actor: &str,
) -> Result<Option<Pruned>, DbError> {
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
    let (anchor_seq, _) = database.transaction(|transaction, appender| {
        let record = appender.append(
            transaction,
            Event::AuditPruned(anchor).entry_by(now_ms, actor),
        )?;
        transaction.execute(
            "DELETE FROM records WHERE seq <= ?1",
            params![anchor.through_seq as i64],
        )?;
        db::set_meta(
            transaction,
            &[
                ("pruned_through_seq", anchor.through_seq.to_string()),
                (
                    "pruned_through_mac",
                    foretell_core::audit::keys::encode_hex(&anchor.through_mac),
                ),
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

#[cfg(test)]
mod tests;
