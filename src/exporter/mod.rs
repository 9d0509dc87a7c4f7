//! What foretell exports: the snapshot's predictions and its own metrics on `/metrics`
//! ([`scrape`]), the same predictions pushed by remote write ([`remote_write`]), and the
//! self-metrics every stage reports into ([`telemetry`], with the process' own in
//! [`process`]), gathered from the stages by the [`registry`] they register in. The encoding
//! itself is pure and lives in core (`foretell_core::exposition`).

pub mod process;
pub mod registry;
pub mod remote_write;
pub mod scrape;
pub mod telemetry;
