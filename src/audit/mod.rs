//! The signed audit log: SQLite storage of the records that `foretell_core::audit` signs and
//! verifies, and the `foretell audit` commands.

pub mod commands;
pub mod ledger;
pub mod log;
pub mod store;
