//! `foretell bench`: load generators with documented inputs (figures in
//! `docs/benchmarks.md`), each driving the real code path it measures.

pub mod alerts;
pub mod audit;
pub mod history;
pub mod metrics;
pub mod peers;
pub mod peers_nab;
pub mod scale;
