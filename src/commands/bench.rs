//! `bench metrics|peers|scale|history|enrichment`: benchmarks with documented inputs.

use super::{runtime, Exit, Threads};
use crate::cli::BenchCommand;

/// `foretell bench ...`: exit 0 with the report, 1 when the run fails, 2 for bad flags.
pub(super) fn bench(command: BenchCommand) -> Exit {
    match command {
        BenchCommand::Metrics {
            series,
            clients,
            duration,
            gzip,
        } => {
            let settings = crate::tools::bench::metrics::MetricsLoadSettings {
                series,
                clients,
                duration,
                gzip,
            };
            run_bench(
                "metrics",
                crate::tools::bench::metrics::run(&settings),
                crate::tools::bench::metrics::render,
            )
        }
        BenchCommand::Peers {
            group_sizes,
            seeds,
            method,
            sensitivity,
            nab,
        } => {
            if !(sensitivity > 0.0 && sensitivity < 1.0) {
                eprintln!("foretell bench peers: --sensitivity must be between 0 and 1, got {sensitivity}");
                return Exit::Invalid;
            }
            if let Some(dir) = nab {
                return match crate::tools::bench::peers_nab::run(&dir, method.into(), sensitivity) {
                    Ok(report) => {
                        print!("{}", crate::tools::bench::peers_nab::render(&report));
                        Exit::Success
                    }
                    Err(error) => {
                        eprintln!("foretell bench peers --nab: {error:#}");
                        Exit::Failed
                    }
                };
            }
            let settings = crate::tools::bench::peers::PeerBenchSettings {
                group_sizes,
                seeds,
                method: method.into(),
                sensitivity,
            };
            print!(
                "{}",
                crate::tools::bench::peers::render(&crate::tools::bench::peers::run(&settings))
            );
            Exit::Success
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
            state,
            first_fit,
            peers,
        } => {
            if history < step * 30 {
                eprintln!("foretell bench scale: --history must hold at least 30 steps");
                return Exit::Invalid;
            }
            let settings = crate::tools::bench::scale::ScaleSettings {
                series,
                queries: queries.clamp(1, series),
                history,
                step,
                season: season.0,
                refit_interval,
                live_record,
                cycles,
                threads,
                state_dir: state,
                first_fit: first_fit.into(),
                peer_group: peers,
            };
            print!(
                "{}",
                crate::tools::bench::scale::render(&crate::tools::bench::scale::run(&settings))
            );
            Exit::Success
        }
        BenchCommand::History {
            config,
            query,
            history,
            rounds,
        } => {
            let config = match super::load_config(&config) {
                Ok(config) => config,
                Err(code) => return code,
            };
            let chosen = match &query {
                Some(name) => config.queries.iter().find(|q| &q.name == name),
                None => config.queries.first(),
            };
            let Some(chosen) = chosen else {
                eprintln!(
                    "foretell bench history: the configuration has no query {}",
                    query.map_or("at all".to_owned(), |name| format!("named {name:?}"))
                );
                return Exit::Invalid;
            };
            let settings = crate::tools::bench::history::HistorySettings {
                prometheus: config.prometheus.clone(),
                query: chosen.clone(),
                history: history.unwrap_or(chosen.history),
                rounds,
                now_ms: crate::clock::system().now_ms(),
            };
            let runtime = match runtime(Threads::Many) {
                Ok(runtime) => runtime,
                Err(code) => return code,
            };
            match runtime.block_on(crate::tools::bench::history::run(&settings)) {
                Ok(report) => {
                    print!("{}", crate::tools::bench::history::render(&report));
                    if report.differences == 0 {
                        Exit::Success
                    } else {
                        Exit::Failed
                    }
                }
                Err(error) => {
                    eprintln!("foretell bench history: {error}");
                    Exit::Failed
                }
            }
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
            let settings = crate::tools::bench::alerts::BenchSettings {
                dir,
                notifications,
                rate,
                tracked_series,
                prometheus: prometheus.zip(expr),
                time_limit,
            };
            run_bench(
                "enrichment",
                crate::tools::bench::alerts::run(&settings),
                |reports| crate::tools::bench::alerts::render(reports),
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
