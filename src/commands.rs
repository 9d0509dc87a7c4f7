//! The command line: parses it and runs the command it names.

use crate::offline::progress;
use crate::{admin, app, audit, cli, clock, config, demo, offline, pipeline, reader, server};
use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use foretell_core::synthetic;

use cli::{
    AuditCommand, BacktestFormat, BenchCommand, Cli, Command, DeadLetterCommand, DeadLetterFormat,
    LogFormat, ModelArgs, RecordFormat,
};

/// Exit codes: 0 success, 1 runtime failure, 2 invalid configuration or usage (as clap).
const EXIT_RUNTIME: u8 = 1;
const EXIT_INVALID: u8 = 2;

/// Runs the command line of this process; its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log_level);
    match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Run {
            config,
            shard,
            web_config_file,
        } => run(
            &config,
            app::Overrides { shard },
            web_config_file.as_deref(),
        ),
        Command::Demo { listen, dir } => demo(demo::DemoSettings { listen, dir }),
        Command::Detect {
            input,
            output,
            model,
            refit_interval,
            allow_disorder,
            evidence,
            plot,
        } => report(
            "detect",
            detect(
                &input,
                output.as_deref(),
                &model,
                &refit_interval,
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
        } => report(
            "forecast",
            forecast(&input, output.as_deref(), &horizon, &model, plot.as_deref()),
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
        } => backtest(
            &config,
            &offline::backtest::BacktestFlags {
                query: &query,
                from: from.as_deref(),
                to: to.as_deref(),
                horizon: horizon.as_deref(),
                origins,
            },
            format,
            output.as_deref(),
        ),
        Command::Audit { command } => audit(command),
        Command::DeadLetters { command } => dead_letters(command),
        Command::Bench { command } => bench(command),
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
        } => match sample_data(SampleData {
            history_out: &history_out,
            rules_out: &rules_out,
            end,
            span: &span,
            step: &step,
            spike_at,
            spike_secs,
            instances: instances as usize,
            rule_interval: &rule_interval,
        }) {
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
        // Colour only for a person at a terminal, never in files or log collectors.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match config::load_file(file, &config::SystemEnvironment) {
        Ok(config) => {
            for warning in &config.warnings {
                eprintln!("warning: {warning}");
            }
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

/// Loads the configuration, or prints every problem in it and gives exit code 2.
fn load_config(config_path: &std::path::Path) -> Result<config::Config, ExitCode> {
    config::load_file(config_path, &config::SystemEnvironment).map_err(|error| {
        for line in error.lines() {
            eprintln!("{line}");
        }
        ExitCode::from(EXIT_INVALID)
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
fn runtime(threads: Threads) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut builder = match threads {
        Threads::One => tokio::runtime::Builder::new_current_thread(),
        Threads::Many => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all().build().map_err(|error| {
        eprintln!("foretell: cannot start the async runtime: {error}");
        ExitCode::from(EXIT_RUNTIME)
    })
}

fn run(
    config_path: &std::path::Path,
    overrides: app::Overrides,
    web_config_file: Option<&std::path::Path>,
) -> ExitCode {
    let config = match load_config(config_path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let web = match web_config_file.map(server::web_config::load).transpose() {
        Ok(web) => web.unwrap_or_default(),
        Err(error) => {
            eprintln!("foretell: --web.config.file: {error}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let runtime = match runtime(Threads::Many) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(app::run(config_path, config, overrides, web)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "foretell failed");
            eprintln!("foretell: {error}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

struct SampleData<'a> {
    history_out: &'a std::path::Path,
    rules_out: &'a std::path::Path,
    end: Option<i64>,
    span: &'a str,
    step: &'a str,
    spike_at: Option<i64>,
    spike_secs: u32,
    instances: usize,
    rule_interval: &'a str,
}

fn sample_data(args: SampleData) -> anyhow::Result<()> {
    let parse = |flag: &str, text: &str| {
        config::duration::parse(text)
            .map_err(anyhow::Error::msg)
            .with_context(|| flag.to_owned())
    };
    let span = parse("--span", args.span)?;
    let step = parse("--step", args.step)?;
    let rule_interval = parse("--rule-interval", args.rule_interval)?;
    anyhow::ensure!(step.as_secs() >= 1, "--step must be at least 1s");
    anyhow::ensure!(
        rule_interval.as_secs() >= 1,
        "--rule-interval must be at least 1s"
    );
    let end = args.end.unwrap_or_else(|| clock::system().now_ms() / 1000);
    let spike = args.spike_at.map(|start| synthetic::Spike {
        start_secs: start as f64,
        end_secs: (start + i64::from(args.spike_secs)) as f64,
        height: 60.0,
    });
    let series = synthetic::demo_set(args.instances, end, spike);
    let start = end - span.as_secs() as i64;
    let history = synthetic::openmetrics_history(&series, start, end, step.as_secs() as i64);
    std::fs::write(args.history_out, history)
        .with_context(|| format!("cannot write {}", args.history_out.display()))?;
    let rules = synthetic::recording_rules(&series, rule_interval.as_secs() as u32);
    std::fs::write(args.rules_out, rules)
        .with_context(|| format!("cannot write {}", args.rules_out.display()))?;
    Ok(())
}

/// Prints an offline command's error and maps it to exit code 2 (bad input or flags).
fn report(command: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("foretell {command}: {error:#}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}

fn read_rows(
    input: &std::path::Path,
    disorder: offline::csv::Disorder,
) -> anyhow::Result<Vec<offline::csv::Row>> {
    let text = std::fs::read_to_string(input)
        .with_context(|| format!("cannot read {}", input.display()))?;
    offline::csv::parse(&text, disorder).with_context(|| input.display().to_string())
}

fn model_options(args: &ModelArgs) -> anyhow::Result<offline::ModelOptions> {
    let coverage = foretell_core::model::Coverage::new(args.coverage).context("--coverage")?;
    let history = args
        .history
        .as_deref()
        .map(|text| {
            config::duration::parse(text)
                .map_err(anyhow::Error::msg)
                .context("--history")
        })
        .transpose()?;
    anyhow::ensure!(
        args.min_history_points >= 8,
        "--min-history-points: at least 8, got {}",
        args.min_history_points
    );
    Ok(offline::ModelOptions {
        season: offline::SeasonChoice::parse(&args.season)?,
        coverage,
        history,
        min_points: args.min_history_points,
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

fn detect(
    input: &std::path::Path,
    output: Option<&std::path::Path>,
    model: &ModelArgs,
    refit_interval: &str,
    allow_disorder: bool,
    evidence: bool,
    plot: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let disorder = if allow_disorder {
        offline::csv::Disorder::Tolerate
    } else {
        offline::csv::Disorder::Reject
    };
    let rows = read_rows(input, disorder)?;
    let options = offline::DetectOptions {
        model: model_options(model)?,
        refit_interval: config::duration::parse(refit_interval)
            .map_err(anyhow::Error::msg)
            .context("--refit-interval")?,
    };
    // A person waiting at a terminal on a long file sees how far it got; pipes see nothing.
    let detections = if std::io::stderr().is_terminal() && rows.len() >= progress::MIN_ROWS {
        let mut meter = progress::Meter::new("detect", std::io::stderr());
        offline::detect_reporting(&rows, &options, &mut |done, total| {
            meter.report(done, total)
        })?
    } else {
        offline::detect(&rows, &options)?
    };
    write_output(output, &offline::render_detections(&detections, evidence))?;
    if let Some(path) = plot {
        let trace = offline::plot::detection_trace(&detections, options.model.coverage.get());
        let onsets = trace
            .points
            .iter()
            .filter(|p| p.probability >= trace.onset_probability)
            .count();
        let subtitle = format!(
            "foretell detect: {} rows judged, {onsets} anomaly onsets",
            trace.points.len()
        );
        write_plot(path, &trace, input, &subtitle)?;
    }
    Ok(())
}

/// Writes `trace` as an SVG chart titled with the input file's name.
fn write_plot(
    path: &std::path::Path,
    trace: &foretell_core::chart::Trace,
    input: &std::path::Path,
    subtitle: &str,
) -> anyhow::Result<()> {
    let title = input.file_name().map_or_else(
        || input.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let svg = crate::views::chart::render(
        trace,
        &crate::views::chart::Frame {
            title: &title,
            subtitle,
            unit: "",
            width: crate::views::chart::DEFAULT_WIDTH,
        },
    );
    std::fs::write(path, svg).with_context(|| format!("--plot: cannot write {}", path.display()))
}

fn forecast(
    input: &std::path::Path,
    output: Option<&std::path::Path>,
    horizon: &str,
    model: &ModelArgs,
    plot: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let rows = read_rows(input, offline::csv::Disorder::Reject)?;
    let steps = offline::horizon_steps(horizon, &rows)?;
    let options = model_options(model)?;
    let (forecast, description) = offline::forecast(&rows, &options, steps)?;
    tracing::info!(model = %description, steps, "forecast fitted");
    write_output(output, &offline::render_forecast(&forecast))?;
    if let Some(path) = plot {
        // Three horizons of history (at least 200 rows) put the forecast in context.
        let shown = (3 * steps as usize).max(200);
        let trace = offline::plot::forecast_trace(&rows, &forecast, options.coverage.get(), shown);
        // The model's description is long; the log line above has it.
        let subtitle = format!(
            "foretell forecast: {steps} steps ahead with the {}% interval",
            options.coverage.get() * 100.0
        );
        write_plot(path, &trace, input, &subtitle)?;
    }
    Ok(())
}

/// Exit 2 for a bad configuration or flags, 1 when Prometheus cannot give the range.
fn backtest(
    config_path: &std::path::Path,
    flags: &offline::backtest::BacktestFlags,
    format: BacktestFormat,
    output: Option<&std::path::Path>,
) -> ExitCode {
    let config = match load_config(config_path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let plan = match offline::backtest::plan(&config, flags, clock::system().now_ms()) {
        Ok(plan) => plan,
        Err(error) => {
            eprintln!("foretell backtest: {error}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let fetched = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))
        .and_then(|runtime| {
            let reader = reader::PrometheusReader::new(&config.prometheus)?;
            Ok(runtime.block_on(offline::backtest::fetch(&reader, &plan))?)
        });
    let (series, warnings) = match fetched {
        Ok(fetched) => fetched,
        Err(error) => {
            eprintln!("foretell backtest: {error:#}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    for warning in &warnings {
        tracing::warn!(%warning, "Prometheus answered with a warning");
    }
    if series.is_empty() {
        eprintln!(
            "foretell backtest: `{}` returned no series between {} and {}",
            plan.query.expr,
            flags.from.unwrap_or("the default start"),
            flags.to.unwrap_or("now")
        );
        return ExitCode::from(EXIT_RUNTIME);
    }
    tracing::info!(series = series.len(), "range fetched; backtesting");
    let report = offline::backtest::run(&plan, &series);
    let text = match format {
        BacktestFormat::Table => offline::backtest::render_table(&plan, &report),
        BacktestFormat::Json => offline::backtest::render_json(&plan, &report),
    };
    match write_output(output, &text) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("foretell backtest: {error:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// Exit 0, or 1 with the error when the output cannot be written.
fn finish(command: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("foretell {command}: {error:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// Prints an audit command's error; exit 2 for bad flags or keys, 1 for a log that cannot be
/// read or does not verify.
fn audit_failure(error: audit::commands::AuditCommandError) -> ExitCode {
    eprintln!("foretell audit: {error}");
    ExitCode::from(if error.is_bad_input() {
        EXIT_INVALID
    } else {
        EXIT_RUNTIME
    })
}

/// The records `args` select, or the exit code after printing why there are none to give.
fn audit_records(args: &cli::RecordArgs) -> Result<Vec<foretell_core::audit::Record>, ExitCode> {
    use audit::commands::{self, RecordFilter};
    let now = clock::system().now_ms();
    let instant = |flag: &str, text: &Option<String>| {
        text.as_deref()
            .map(|t| offline::parse_instant(t, now).map_err(|m| format!("{flag}: {m}")))
            .transpose()
    };
    let (since_ms, until_ms) = match (
        instant("--since", &args.since),
        instant("--until", &args.until),
    ) {
        (Ok(since), Ok(until)) => (since, until),
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("foretell audit: {error}");
            return Err(ExitCode::from(EXIT_INVALID));
        }
    };
    let filter = RecordFilter {
        since_ms,
        until_ms,
        kind: args.kind.clone(),
        subject: args.subject.clone(),
    };
    commands::read_records(&args.db, &filter).map_err(audit_failure)
}

/// `foretell demo`: exit 0 when stopped by a signal, 1 when it cannot start.
fn demo(settings: demo::DemoSettings) -> ExitCode {
    let runtime = match runtime(Threads::Many) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(demo::run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("foretell demo: {error}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// `foretell bench ...`: exit 0 with the report, 1 when the run fails, 2 for bad flags.
fn bench(command: BenchCommand) -> ExitCode {
    match command {
        BenchCommand::Metrics {
            series,
            clients,
            duration,
            gzip,
        } => {
            let duration = match config::duration::parse(&duration) {
                Ok(d) if !d.is_zero() && d <= std::time::Duration::from_secs(600) => d,
                _ => {
                    eprintln!("foretell bench metrics: --duration: `{duration}` is not a duration between 1ms and 10m");
                    return ExitCode::from(EXIT_INVALID);
                }
            };
            if series == 0 || clients == 0 {
                eprintln!("foretell bench metrics: --series and --clients must be positive");
                return ExitCode::from(EXIT_INVALID);
            }
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
            let parse = |flag: &str, text: &str| match config::duration::parse(text) {
                Ok(duration) if !duration.is_zero() => Ok(duration),
                _ => Err(format!(
                    "foretell bench scale: --{flag}: `{text}` is not a positive duration such as 1m"
                )),
            };
            let settings = (|| {
                let step = parse("step", &step)?;
                let history = parse("history", &history)?;
                if history < step * 30 {
                    return Err(
                        "foretell bench scale: --history must hold at least 30 steps".to_owned(),
                    );
                }
                Ok(pipeline::bench::ScaleSettings {
                    series,
                    queries: queries.clamp(1, series.max(1)),
                    history,
                    step,
                    season: match season.as_str() {
                        "none" => None,
                        text => Some(parse("season", text)?),
                    },
                    refit_interval: parse("refit-interval", &refit_interval)?,
                    live_record: config::duration::parse(&live_record)
                        .map_err(|e| format!("foretell bench scale: --live-record: {e}"))?,
                    cycles,
                    threads,
                })
            })();
            match settings {
                Ok(settings) if settings.series > 0 => {
                    print!(
                        "{}",
                        pipeline::bench::render(&pipeline::bench::run(&settings))
                    );
                    ExitCode::SUCCESS
                }
                Ok(_) => {
                    eprintln!("foretell bench scale: --series must be positive");
                    ExitCode::from(EXIT_INVALID)
                }
                Err(message) => {
                    eprintln!("{message}");
                    ExitCode::from(EXIT_INVALID)
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
            let time_limit = match config::duration::parse(&time_limit) {
                Ok(limit) if !limit.is_zero() => limit,
                _ => {
                    eprintln!("foretell bench enrichment: --time-limit: `{time_limit}` is not a positive duration such as 120s");
                    return ExitCode::from(EXIT_INVALID);
                }
            };
            if !(rate.is_finite() && rate > 0.0) || notifications == 0 {
                eprintln!("foretell bench enrichment: --rate and --notifications must be positive");
                return ExitCode::from(EXIT_INVALID);
            }
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

/// `foretell dead-letters ...`: exit 0 when done, 1 when foretell is unreachable or refuses,
/// 2 for bad flags.
/// Runs `foretell bench NAME`'s future on a multi-threaded runtime and prints its report.
fn run_bench<T>(
    name: &str,
    bench: impl std::future::Future<Output = Result<T, String>>,
    render: impl FnOnce(&T) -> String,
) -> ExitCode {
    let runtime = match runtime(Threads::Many) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(bench) {
        Ok(report) => {
            print!("{}", render(&report));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("foretell bench {name}: {error}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn dead_letters(command: DeadLetterCommand) -> ExitCode {
    let runtime = match runtime(Threads::One) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let url = match &command {
        DeadLetterCommand::List { url, .. } | DeadLetterCommand::Retry { url, .. } => url,
    };
    let client = match admin::AdminClient::new(url) {
        Ok(client) => client,
        Err(error) => {
            eprintln!("foretell dead-letters: {error}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let outcome = runtime.block_on(async {
        match &command {
            DeadLetterCommand::List { format, .. } => {
                let letters = client.list().await?;
                Ok(match format {
                    DeadLetterFormat::Table => admin::render_table(&letters),
                    DeadLetterFormat::Json => letters
                        .iter()
                        .map(|l| serde_json::to_string(l).unwrap_or_default() + "\n")
                        .collect(),
                })
            }
            DeadLetterCommand::Retry { ids, all, .. } => {
                client.retry((!*all).then_some(ids.as_slice())).await
            }
        }
    });
    match outcome {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("foretell dead-letters: {error}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// `foretell audit ...`: exit 0 when fine, 1 when verification finds a problem or the log
/// cannot be read, 2 for bad flags or keys.
fn audit(command: AuditCommand) -> ExitCode {
    use audit::commands;
    let fail = audit_failure;
    match command {
        AuditCommand::Verify {
            db,
            key_file,
            expect_head,
        } => {
            let keys = match commands::load_keys(
                key_file.as_deref(),
                std::env::var(commands::KEYS_ENV).ok(),
            ) {
                Ok(keys) => keys,
                Err(error) => return fail(error),
            };
            match commands::verify_file(&db, &keys, expect_head) {
                Ok((log_id, outcome)) => {
                    print!("{}", commands::render_verification(&db, &log_id, &outcome));
                    if outcome.problem.is_some() {
                        ExitCode::from(EXIT_RUNTIME)
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err(error) => fail(error),
            }
        }
        AuditCommand::Show { records, format } => {
            let records = match audit_records(&records) {
                Ok(records) => records,
                Err(code) => return code,
            };
            let text = match format {
                RecordFormat::Table => commands::render_table(&records),
                RecordFormat::Jsonl => commands::render_jsonl(&records),
            };
            finish("audit show", write_output(None, &text))
        }
        AuditCommand::Export { records, output } => {
            let records = match audit_records(&records) {
                Ok(records) => records,
                Err(code) => return code,
            };
            finish(
                "audit export",
                write_output(output.as_deref(), &commands::render_jsonl(&records)),
            )
        }
        AuditCommand::Prune {
            db,
            key_file,
            before,
        } => {
            let now = clock::system().now_ms();
            let before_ms = match offline::parse_instant(&before, now) {
                Ok(ms) => ms,
                Err(error) => {
                    eprintln!("foretell audit prune: --before: {error}");
                    return ExitCode::from(EXIT_INVALID);
                }
            };
            let keys = match commands::load_keys(
                key_file.as_deref(),
                std::env::var(commands::KEYS_ENV).ok(),
            ) {
                Ok(keys) => keys,
                Err(error) => return fail(error),
            };
            match commands::prune_file(&db, &keys, before_ms, now) {
                Ok(Some(pruned)) => {
                    println!(
                        "{}: removed {} records through seq {}; anchor record seq {}",
                        db.display(),
                        pruned.removed,
                        pruned.through_seq,
                        pruned.anchor_seq
                    );
                    ExitCode::SUCCESS
                }
                Ok(None) => {
                    println!(
                        "{}: no record before {before}; nothing pruned",
                        db.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(error) => fail(error),
            }
        }
        AuditCommand::Bench {
            dir,
            records,
            append,
        } => match commands::bench(&dir, records, append) {
            Ok(report) => {
                println!(
                    "{} records: {:.0} records/s with one durable commit each ({} records), {:.0} records/s batched by the writer thread, {:.0} records/s verified",
                    report.records,
                    report.single_per_second,
                    (report.records / 10).max(1),
                    report.batched_per_second,
                    report.verify_per_second
                );
                ExitCode::SUCCESS
            }
            Err(error) => fail(error),
        },
        AuditCommand::Report { records } => {
            let selected = match audit_records(&records) {
                Ok(selected) => selected,
                Err(code) => return code,
            };
            finish(
                "audit report",
                write_output(None, &commands::render_report(&selected)),
            )
        }
    }
}
