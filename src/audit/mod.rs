//! The signed audit log: SQLite storage of the records that `foretell_core::audit` signs and
//! verifies, and the `foretell audit` commands.

pub mod commands;
pub mod ledger;
pub mod log;
pub mod store;

/// The `i`-th of a run of ordinary records, for tests of the log and the database.
#[cfg(test)]
pub(crate) fn sample_entry(i: usize) -> foretell_core::audit::Entry {
    foretell_core::audit::Entry {
        timestamp_ms: 1_700_000_000_000 + 1000 * i as i64,
        kind: "alert.forwarded".into(),
        actor: "foretell".into(),
        subject: format!("fingerprint-{i}"),
        outcome: "ok".into(),
        details: format!(r#"{{"receiver":"pager","attempt":{i}}}"#),
    }
}
