//! foretell: forecasts, baselines and anomaly scores for Prometheus series, served as metrics.
//!
//! The binary (`src/main.rs`) only calls [`commands::main`]. The library exists so the fuzz
//! targets in `fuzz/` reach the configuration loader and the audit store; its modules are
//! not a stable API.

mod admin;
mod alerts;
mod app;
pub mod audit;
mod auth;
mod cli;
mod clock;
pub mod commands;
pub mod config;
pub mod db;
mod error_text;
mod exporter;
mod graph;
mod log_lines;
mod offline;
mod pipeline;
mod reader;
mod retry;
mod server;
mod shutdown;
mod state;
#[cfg(feature = "tools")]
mod tools;
mod views;
