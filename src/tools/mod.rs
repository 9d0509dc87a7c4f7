//! What the binary carries besides the sidecar: `foretell demo` with its built-in data source
//! and receiver, the `foretell bench` load generators, and the small in-process HTTP servers
//! they run on 127.0.0.1.
//!
//! Compiled with the `tools` cargo feature, on by default; the serving path never imports
//! this module, so `cargo build --no-default-features` builds the sidecar alone.

pub mod bench;
pub mod demo;
pub mod loopback;
