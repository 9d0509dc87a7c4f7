//! Pure core of foretell: series windows, models, scoring, snapshots and exposition.
//!
//! Nothing in this crate performs I/O, reads a clock or the environment. Time arrives as
//! millisecond timestamps in arguments, data arrives as slices, results leave as values. The
//! `foretell` binary owns every edge (HTTP, files, signals) and calls into this crate.

pub mod alerts;
pub mod audit;
pub mod backoff;
pub mod backtest;
pub mod batch;
pub mod bitpack;
pub mod chart;
pub mod csv;
pub mod exposition;
pub mod labels;
pub mod model;
pub mod peers;
pub mod protobuf;
pub mod redact;
pub mod remote_write;
pub mod selector;
pub mod shard;
pub mod snapshot;
pub mod store;
pub mod synthetic;
pub mod timestamp;
pub mod tracker;
pub mod wire;

pub use labels::Labels;
