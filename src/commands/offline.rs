//! `detect`, `forecast`, `backtest` and `sample-data`: the commands that read files or a
//! range of history and write a report.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use foretell_core::synthetic;

use super::{load_config, write_output, Exit};
use crate::cli::{BacktestFormat, ModelArgs};
use crate::offline::{self, progress};
use crate::{clock, reader};

/// What `sample-data` writes, from its flags.
pub(super) struct SampleData<'a> {
    pub history_out: &'a Path,
    pub rules_out: &'a Path,
    pub end: Option<i64>,
    pub span: Duration,
    /// Whole seconds, at least one (clap checked).
    pub step: Duration,
    pub spike_at: Option<i64>,
    pub spike_secs: u32,
    pub instances: usize,
    /// Whole seconds, at least one (clap checked).
    pub rule_interval: Duration,
}

pub(super) fn sample_data(args: SampleData) -> anyhow::Result<()> {
    let (span, step, rule_interval) = (args.span, args.step, args.rule_interval);
    let end = args.end.unwrap_or_else(|| clock::system().now_ms() / 1000);
    let spike = args.spike_at.map(|start| synthetic::Spike {
        start_secs: start as f64,
        end_secs: (start + i64::from(args.spike_secs)) as f64,
        height: 60.0,
    });
    let mut series = synthetic::demo_set(args.instances, end, spike);
    series.extend(synthetic::demo_peer_set(end));
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
pub(super) fn report(command: &str, result: anyhow::Result<()>) -> Exit {
    match result {
        Ok(()) => Exit::Success,
        Err(error) => {
            eprintln!("foretell {command}: {error:#}");
            Exit::Invalid
        }
    }
}

fn read_rows(
    input: &Path,
    disorder: offline::csv::Disorder,
) -> anyhow::Result<Vec<offline::csv::Row>> {
    let text = std::fs::read_to_string(input)
        .with_context(|| format!("cannot read {}", input.display()))?;
    offline::csv::parse(&text, disorder).with_context(|| input.display().to_string())
}

fn model_options(args: &ModelArgs) -> anyhow::Result<offline::ModelOptions> {
    let coverage = foretell_core::model::Coverage::new(args.coverage).context("--coverage")?;
    let history = args.history;
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

pub(super) fn detect(
    input: &Path,
    output: Option<&Path>,
    model: &ModelArgs,
    refit_interval: Duration,
    allow_disorder: bool,
    evidence: bool,
    plot: Option<&Path>,
) -> anyhow::Result<()> {
    let disorder = if allow_disorder {
        offline::csv::Disorder::Tolerate
    } else {
        offline::csv::Disorder::Reject
    };
    let rows = read_rows(input, disorder)?;
    let options = offline::DetectOptions {
        model: model_options(model)?,
        refit_interval,
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
    path: &Path,
    trace: &foretell_core::chart::Trace,
    input: &Path,
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

pub(super) fn forecast(
    input: &Path,
    output: Option<&Path>,
    horizon: &str,
    model: &ModelArgs,
    plot: Option<&Path>,
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
pub(super) fn backtest(
    config_path: &Path,
    flags: &offline::backtest::BacktestFlags,
    format: BacktestFormat,
    output: Option<&Path>,
) -> Exit {
    let config = match load_config(config_path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let plan = match offline::backtest::plan(&config, flags, clock::system().now_ms()) {
        Ok(plan) => plan,
        Err(error) => {
            eprintln!("foretell backtest: {error}");
            return Exit::Invalid;
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
            return Exit::Failed;
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
        return Exit::Failed;
    }
    tracing::info!(series = series.len(), "range fetched; backtesting");
    let report = offline::backtest::run(&plan, &series);
    let text = match format {
        BacktestFormat::Table => offline::backtest::render_table(&plan, &report),
        BacktestFormat::Json => offline::backtest::render_json(&plan, &report),
    };
    match write_output(output, &text) {
        Ok(()) => Exit::Success,
        Err(error) => {
            eprintln!("foretell backtest: {error:#}");
            Exit::Failed
        }
    }
}
