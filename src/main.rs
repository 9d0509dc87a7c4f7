//! foretell: forecasts, baselines and anomaly scores for Prometheus series, served as metrics.

mod app;
mod cli;
mod clock;
mod config;
mod pipeline;
mod reader;
mod server;
mod shutdown;
mod telemetry;
#[cfg(test)]
mod testing;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use foretell_core::synthetic;

use cli::{Cli, Command, LogFormat};
use clock::Clock;

/// Exit codes: 0 success, 1 runtime failure, 2 invalid configuration or usage (as clap).
const EXIT_RUNTIME: u8 = 1;
const EXIT_INVALID: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log_level);
    match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Run { config } => run(&config),
        Command::SampleData {
            history_out,
            rules_out,
            end,
            span,
            step,
            spike_at,
            spike_secs,
        } => match sample_data(
            &history_out,
            &rules_out,
            end,
            &span,
            &step,
            spike_at,
            spike_secs,
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("foretell sample-data: {error:#}");
                ExitCode::from(EXIT_INVALID)
            }
        },
    }
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match config::load_file(file, &config::SystemEnvironment) {
        Ok(config) => {
            println!(
                "{}: valid, {} quer{}",
                file.display(),
                config.queries.len(),
                if config.queries.len() == 1 {
                    "y"
                } else {
                    "ies"
                }
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            for line in error.lines() {
                eprintln!("{line}");
            }
            ExitCode::from(EXIT_INVALID)
        }
    }
}

fn run(config_path: &std::path::Path) -> ExitCode {
    let config = match config::load_file(config_path, &config::SystemEnvironment) {
        Ok(config) => config,
        Err(error) => {
            for line in error.lines() {
                eprintln!("{line}");
            }
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("foretell: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    match runtime.block_on(app::run(config_path, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "foretell failed");
            eprintln!("foretell: {error}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn sample_data(
    history_out: &std::path::Path,
    rules_out: &std::path::Path,
    end: Option<i64>,
    span: &str,
    step: &str,
    spike_at: Option<i64>,
    spike_secs: u32,
) -> anyhow::Result<()> {
    let span = config::duration::parse(span)
        .map_err(anyhow::Error::msg)
        .context("--span")?;
    let step = config::duration::parse(step)
        .map_err(anyhow::Error::msg)
        .context("--step")?;
    anyhow::ensure!(step.as_secs() >= 1, "--step must be at least 1s");
    let end = end.unwrap_or_else(|| clock::SystemClock.now_ms() / 1000);
    let spike = spike_at.map(|start| synthetic::Spike {
        start_secs: start as f64,
        end_secs: (start + i64::from(spike_secs)) as f64,
        height: 60.0,
    });
    let series = synthetic::demo_set(end, spike);
    let start = end - span.as_secs() as i64;
    let history = synthetic::openmetrics_history(&series, start, end, step.as_secs() as i64);
    std::fs::write(history_out, history)
        .with_context(|| format!("cannot write {}", history_out.display()))?;
    std::fs::write(rules_out, synthetic::recording_rules(&series, 1))
        .with_context(|| format!("cannot write {}", rules_out.display()))?;
    Ok(())
}
