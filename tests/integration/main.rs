//! The integration test binary. `cli` runs the real binary without any server; `e2e` needs a
//! real Prometheus and is ignored unless asked for (`-- --ignored`).

// A test binary: a failed expectation is a failed test, which is what `expect` reports.
#![allow(clippy::expect_used, clippy::unwrap_used)]
// The tests watch real processes from the outside, on the machine's own clocks; the rule that
// time is read only in src/clock.rs is the program's, not theirs.
#![allow(clippy::disallowed_methods)]

mod alerts;
mod audit;
mod browser;
mod cli;
mod clock;
mod crash;
mod dashboards;
mod deploy;
mod e2e;
mod incident;
mod reload;
mod remote_read;
mod restart;
mod security;
mod shard;
mod shutdown;
mod support;
