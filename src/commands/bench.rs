//! `bench metrics|scale|enrichment`: benchmarks with documented inputs.

use super::{runtime, Exit, Threads};
use crate::cli::BenchCommand;
use crate::{pipeline, server};

/// `foretell bench ...`: exit 0 with the report, 1 when the run fails, 2 for bad flags.
/// `foretell bench ...`: exit 0 with the report, 1 when the run fails, 2 for bad flags.
pub(super) fn bench(command: BenchCommand) -> Exit {
    match command {
        BenchCommand::Metrics {
            series,
            clients,
            duration,
            gzip,
        } => {
            let settings = server::bench::MetricsLoadSettings {
                series,
                clients,
                duration,
                gzip,
            };
            run_bench(
                "metrics",
                server::bench::run(&settings),
                server::bench::render,
            )
        }
        BenchCommand::Scale {
            series,
            queries,
            history,
            step,
            season,
            refit_interval,
            live_record,
            cycles,
            threads,
        } => {
            if history < step * 30 {
                eprintln!("foretell bench scale: --history must hold at least 30 steps");
                return Exit::Invalid;
            }
            let settings = pipeline::bench::ScaleSettings {
                series,
                queries: queries.clamp(1, series),
                history,
                step,
                season: season.0,
                refit_interval,
                live_record,
                cycles,
                threads,
            };
            print!(
                "{}",
                pipeline::bench::render(&pipeline::bench::run(&settings))
            );
            Exit::Success
        }
        BenchCommand::Enrichment {
            dir,
            notifications,
            rate,
            tracked_series,
            prometheus,
            expr,
            time_limit,
        } => {
            let settings = crate::alerts::bench::BenchSettings {
                dir,
                notifications,
                rate,
                tracked_series,
                prometheus: prometheus.zip(expr),
                time_limit,
            };
            run_bench(
                "enrichment",
                crate::alerts::bench::run(&settings),
                |reports| crate::alerts::bench::render(reports),
            )
        }
    }
}

/// Runs `foretell bench NAME`'s future on a multi-threaded runtime and prints its report.
fn run_bench<T>(
    name: &str,
    bench: impl std::future::Future<Output = Result<T, String>>,
    render: impl FnOnce(&T) -> String,
) -> Exit {
    let runtime = match runtime(Threads::Many) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(bench) {
        Ok(report) => {
            print!("{}", render(&report));
            Exit::Success
        }
        Err(error) => {
            eprintln!("foretell bench {name}: {error}");
            Exit::Failed
        }
    }
}
