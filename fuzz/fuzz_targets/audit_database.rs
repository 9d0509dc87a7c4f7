//! `audit verify` on a corrupted database file: a real audit database, written by foretell's
//! own writer, has bytes overwritten as the input says, then is opened, read and verified the
//! way `foretell audit verify` does. Nothing may panic: SQLite's corruption errors and the
//! chain's problems are reported, and the untouched file verifies.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use foretell::audit::store;
use foretell::db::Database;
use foretell_core::audit::{verify, AuditKey, Entry, KeyRing};
use libfuzzer_sys::fuzz_target;

fn keys() -> KeyRing {
    match AuditKey::new("k1", vec![7u8; 32]) {
        Ok(key) => KeyRing::single(key),
        Err(error) => panic!("key: {error}"),
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("foretell-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir.join(name)
}

fn remove(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// The bytes of a closed audit database holding a dozen records.
fn pristine() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let path = scratch("pristine.db");
        remove(&path);
        {
            let mut writer = match Database::open(&path, keys()) {
                Ok(writer) => writer,
                Err(error) => panic!("writer: {error}"),
            };
            for i in 0..12 {
                let entry = Entry {
                    timestamp_ms: 1_700_000_000_000 + i,
                    kind: "alert.forwarded".into(),
                    actor: "foretell".into(),
                    subject: format!("fingerprint-{i}"),
                    outcome: "ok".into(),
                    details: format!("{{\"n\":{i}}}"),
                };
                let appended =
                    writer.transaction(|transaction, appender| appender.append(transaction, entry));
                if let Err(error) = appended {
                    panic!("append: {error}");
                }
            }
        }
        match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) => panic!("read: {error}"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = pristine().to_vec();
    // Each three input bytes overwrite one byte of the file: offset (big-endian), value.
    for patch in data.chunks_exact(3) {
        let offset = usize::from(u16::from_be_bytes([patch[0], patch[1]])) % bytes.len();
        bytes[offset] = patch[2];
    }
    let path = scratch("damaged.db");
    remove(&path);
    if std::fs::write(&path, &bytes).is_err() {
        return;
    }
    let Ok(connection) = foretell::db::open_read_only(&path) else {
        return;
    };
    let Ok(stored) = store::read_log(&connection, &path) else {
        return;
    };
    let outcome = verify(&stored.log_id, &stored.records, &keys(), stored.start, None);
    if data.len() < 3 {
        assert_eq!(outcome.problem, None, "the untouched database verifies");
        assert_eq!(outcome.checked, 12);
    }
});
