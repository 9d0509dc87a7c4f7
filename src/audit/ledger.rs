//! The audit chain as it is written: which record comes next, signed with which key, and the
//! checks made when a log is opened (its head went backwards, its key changed).
//!
//! The ledger never touches the file on its own: [`crate::db::Database`] opens a transaction,
//! hands the work an [`Appender`] from [`Ledger::begin`], and moves the ledger's head with
//! [`Ledger::committed`] only after the commit succeeded.

use std::path::Path;

use foretell_core::audit::{Chain, Entry, Event, KeyRing, Record, GENESIS_MAC, MAC_BYTES};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::db::{self, DbError};

/// Where a log's chain stands, and the key that signs its next records.
pub struct Ledger {
    keys: KeyRing,
    chain: Chain,
    /// The key id of the newest record when the log was opened.
    head_key_id: Option<String>,
    /// Set when the log's head was behind the head this ledger's log had reached.
    went_backwards: Option<WentBackwards>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("keys", &self.keys)
            .field("head_seq", &self.chain.head_seq())
            .finish()
    }
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
        Event::AuditHeadWentBackwards {
            written_seq: self.written_seq,
            written_mac: self.written_mac,
            found_seq: self.found_seq,
            found_mac: self.found_mac,
        }
        .entry(timestamp_ms)
    }
}

/// Appends records inside one transaction; see [`crate::db::Database::transaction`].
pub struct Appender<'l> {
    keys: &'l KeyRing,
    chain: Chain,
    written: Vec<Record>,
}

/// What a transaction appended, to hand to [`Ledger::committed`] once it is on disk.
pub struct Appended {
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

    /// Ends the transaction's appends: when there were any, the newest head written is kept
    /// in `meta` in the same transaction, so a later open that finds the records' head
    /// behind it knows records were removed.
    pub fn finish(self, transaction: &Transaction) -> Result<Appended, rusqlite::Error> {
        if !self.written.is_empty() {
            db::set_meta(
                transaction,
                &[
                    ("head_seq", self.chain.head_seq().to_string()),
                    (
                        "head_mac",
                        foretell_core::audit::keys::encode_hex(self.chain.head_mac()),
                    ),
                ],
            )?;
        }
        Ok(Appended {
            chain: self.chain,
            written: self.written,
        })
    }
}

pub(in crate::audit) fn insert(
    transaction: &Transaction,
    record: &Record,
) -> Result<(), rusqlite::Error> {
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

impl Ledger {
    /// Reads where the log at `connection` stands, creating its id when it is new.
    pub fn open(connection: &Connection, path: &Path, keys: KeyRing) -> Result<Ledger, DbError> {
        let sqlite = |source| DbError::sqlite(path, source);
        let log_id = log_id(connection, path)?;
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
        let went_backwards = written_head(connection, path)?
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
        Ok(Ledger {
            keys,
            chain: Chain::resume(&log_id, resume_seq, found_mac),
            head_key_id,
            went_backwards,
        })
    }

    /// Starts a transaction's appends after the committed head.
    pub fn begin(&self) -> Appender<'_> {
        Appender {
            keys: &self.keys,
            chain: self.chain.clone(),
            written: Vec::new(),
        }
    }

    /// Moves the head past what a committed transaction appended; returns those records.
    pub fn committed(&mut self, appended: Appended) -> Vec<Record> {
        self.chain = appended.chain;
        if let Some(last) = appended.written.last() {
            self.head_key_id = Some(last.key_id.clone());
        }
        appended.written
    }

    /// The record of a key rotation, when the newest record was signed with another key than
    /// the one that signs now.
    pub fn key_rotation(&self, timestamp_ms: i64) -> Option<Entry> {
        let active = self.keys.active().id().to_owned();
        let previous = self.head_key_id.clone().filter(|id| *id != active)?;
        Some(
            Event::KeyRotated {
                from: previous,
                to: active,
            }
            .entry(timestamp_ms),
        )
    }

    pub fn head_seq(&self) -> u64 {
        self.chain.head_seq()
    }

    pub fn head_mac(&self) -> &[u8; MAC_BYTES] {
        self.chain.head_mac()
    }

    pub fn went_backwards(&self) -> Option<&WentBackwards> {
        self.went_backwards.as_ref()
    }

    #[cfg(test)]
    pub fn log_id(&self) -> &str {
        self.chain.log_id()
    }
}

/// The log's random id, created with the database.
fn log_id(connection: &Connection, path: &Path) -> Result<String, DbError> {
    let sqlite = |source| DbError::sqlite(path, source);
    if let Some(id) = db::meta_value(connection, "log_id").map_err(sqlite)? {
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

pub(super) fn mac_from(blob: Vec<u8>, path: &Path, id: i64) -> Result<[u8; MAC_BYTES], DbError> {
    blob.try_into().map_err(|b: Vec<u8>| {
        DbError::corrupt(path, format!("row id {id}: a MAC of {} bytes", b.len()))
    })
}

/// The newest head written, as [`Appender::finish`] kept it; `None` in a log from before it
/// was kept.
fn written_head(
    connection: &Connection,
    path: &Path,
) -> Result<Option<(u64, [u8; MAC_BYTES])>, DbError> {
    let value = |name: &str| db::meta_value(connection, name).map_err(|e| DbError::sqlite(path, e));
    match (value("head_seq")?, value("head_mac")?) {
        (Some(seq), Some(mac)) => {
            let seq = seq.parse().map_err(|_| {
                DbError::corrupt(path, format!("meta head_seq `{seq}` is not a number"))
            })?;
            let mac = foretell_core::audit::keys::decode_hex(&mac)
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| DbError::corrupt(path, "meta head_mac is not a MAC".into()))?;
            Ok(Some((seq, mac)))
        }
        _ => Ok(None),
    }
}
