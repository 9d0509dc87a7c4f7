//! The command line: parses it and runs the command it names, one module per group of
//! commands; each returns an [`Exit`].

mod audit;
#[cfg(feature = "tools")]
mod bench;
mod dead_letters;
mod offline;
mod serve;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;

use crate::cli::{Cli, Command, LogFormat};
use crate::config;

/// What a command's exit code says, as Prometheus' tools use them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0.
    Success,
    /// 1: the command could not do its work (Prometheus unreachable, a log that does not
    /// verify, a file that cannot be written).
    Failed,
    /// 2: invalid configuration, flags or input, as clap exits for bad usage.
    Invalid,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(match exit {
            Exit::Success => 0,
            Exit::Failed => 1,
            Exit::Invalid => 2,
        })
    }
}

/// Runs the command line of this process; its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log_level);
    dispatch(cli.command).into()
}

/// Runs `command`.
fn dispatch(command: Command) -> Exit {
    match command {
        Command::CheckConfig { file } => serve::check_config(&file),
        Command::Run {
            config,
            config_auto_reload_interval,
            shard,
            web_config_file,
            web_listen_address,
            web_enable_lifecycle,
            web_external_url,
        } => serve::run(
            &config,
            crate::app::Overrides {
                shard,
                listen_address: web_listen_address,
                enable_lifecycle: web_enable_lifecycle,
                external_url: web_external_url,
                auto_reload_interval: config_auto_reload_interval,
            },
            web_config_file.as_deref(),
        ),
        #[cfg(feature = "tools")]
        Command::Demo { listen, dir } => {
            serve::demo(crate::tools::demo::DemoSettings { listen, dir })
        }
        Command::Detect {
            input,
            output,
            model,
            refit_interval,
            allow_disorder,
            evidence,
            plot,
        } => offline::report(
            "detect",
            offline::detect(
                &input,
                output.as_deref(),
                &model,
                refit_interval,
                allow_disorder,
                evidence,
                plot.as_deref(),
            ),
        ),
        Command::Forecast {
            input,
            output,
            horizon,
            model,
            plot,
        } => offline::report(
            "forecast",
            offline::forecast(&input, output.as_deref(), &horizon, &model, plot.as_deref()),
        ),
        Command::Backtest {
            config,
            query,
            from,
            to,
            horizon,
            origins,
            format,
            output,
        } => offline::backtest(
            &config,
            &crate::offline::backtest::BacktestFlags {
                query: &query,
                from: from.as_deref(),
                to: to.as_deref(),
                horizon: horizon.as_deref(),
                origins,
            },
            format,
            output.as_deref(),
        ),
        Command::Audit { command } => audit::audit(command),
        Command::DeadLetters { command } => dead_letters::dead_letters(command),
        #[cfg(feature = "tools")]
        Command::Bench { command } => bench::bench(command),
        Command::SampleData {
            history_out,
            rules_out,
            end,
            span,
            step,
            spike_at,
            spike_secs,
            instances,
            rule_interval,
        } => match offline::sample_data(offline::SampleData {
            history_out: &history_out,
            rules_out: &rules_out,
            end,
            span,
            step,
            spike_at,
            spike_secs,
            instances: instances as usize,
            rule_interval,
        }) {
            Ok(()) => Exit::Success,
            Err(error) => {
                eprintln!("foretell sample-data: {error:#}");
                Exit::Invalid
            }
        },
    }
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    match format {
        LogFormat::Logfmt => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .event_format(crate::log_lines::LogLines::Logfmt)
            .init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .event_format(crate::log_lines::LogLines::Json)
            .init(),
    }
}

/// Loads the configuration, or prints every problem in it and gives exit code 2.
fn load_config(config_path: &std::path::Path) -> Result<config::Config, Exit> {
    config::load_file(config_path, &config::SystemEnvironment).map_err(|error| {
        for line in error.lines() {
            eprintln!("{line}");
        }
        Exit::Invalid
    })
}

/// How many worker threads a command's async runtime gets.
enum Threads {
    /// A client making a request or two.
    One,
    /// The sidecar and what runs it (demo, benchmarks).
    Many,
}

/// The async runtime of a command; on failure the message is printed and exit code 1 returned.
fn runtime(threads: Threads) -> Result<tokio::runtime::Runtime, Exit> {
    let mut builder = match threads {
        Threads::One => tokio::runtime::Builder::new_current_thread(),
        Threads::Many => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all().build().map_err(|error| {
        eprintln!("foretell: cannot start the async runtime: {error}");
        Exit::Failed
    })
}

fn write_output(output: Option<&std::path::Path>, text: &str) -> anyhow::Result<()> {
    match output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
        }
        None => {
            use std::io::Write as _;
            std::io::stdout()
                .lock()
                .write_all(text.as_bytes())
                .context("cannot write to standard output")
        }
    }
}

/// Exit 0, or 1 with the error when the output cannot be written.
fn finish(command: &str, result: anyhow::Result<()>) -> Exit {
    match result {
        Ok(()) => Exit::Success,
        Err(error) => {
            eprintln!("foretell {command}: {error:#}");
            Exit::Failed
        }
    }
}
