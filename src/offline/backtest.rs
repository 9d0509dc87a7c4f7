//! `foretell backtest`: one configured query's models replayed on Prometheus history.
//!
//! The range is fetched with the sidecar's own reader (split into requests Prometheus accepts,
//! retried like live fetches), laid on the query's step grid, and handed series by series to
//! [`foretell_core::backtest`], which runs the same model code as the sidecar. The report is a
//! table for people or JSON for scripts.

use std::fmt::Write as _;
use std::time::Duration;

use foretell_core::backtest::{
    backtest_series, AnomalyTally, BacktestSettings, ForecastTally, SeriesBacktest,
};
use foretell_core::Labels;
use serde_json::json;

use super::{parse_instant, timestamp};
use crate::config::{duration, Config, QueryConfig, PROMETHEUS_MAX_POINTS};
use crate::pipeline::tracker_settings;
use crate::reader::{PrometheusReader, RangeQuery, ReadError};

#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    #[error("no query named `{name}` in the configuration (queries: {known})")]
    UnknownQuery { name: String, known: String },
    #[error("{flag}: {message}")]
    Flag { flag: &'static str, message: String },
    #[error("cannot fetch the range from Prometheus: {0}")]
    Fetch(#[from] ReadError),
}

/// The flags of the command, as text.
#[derive(Clone, Debug)]
pub struct BacktestFlags<'a> {
    pub query: &'a str,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub horizon: Option<&'a str>,
    pub origins: usize,
}

/// What to fetch and how to score it, validated.
#[derive(Clone, Debug)]
pub struct BacktestPlan {
    pub query: QueryConfig,
    pub start_ms: i64,
    pub end_ms: i64,
    pub settings: BacktestSettings,
    pub horizon: Duration,
}

/// Resolves the flags against the configuration. `--to` defaults to now, `--from` to two
/// histories before `--to` (the first origin then has a full window behind it), the horizon to
/// the query's longest configured horizon.
pub fn plan(
    config: &Config,
    flags: &BacktestFlags,
    now_ms: i64,
) -> Result<BacktestPlan, BacktestError> {
    let query = config
        .queries
        .iter()
        .find(|q| q.name == flags.query)
        .cloned()
        .ok_or_else(|| BacktestError::UnknownQuery {
            name: flags.query.to_owned(),
            known: config
                .queries
                .iter()
                .map(|q| format!("`{}`", q.name))
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let step_ms = query.step_ms().max(1);
    let history_ms = query.history.as_millis() as i64;
    let end_ms = match flags.to {
        Some(text) => instant("--to", text, now_ms)?,
        None => now_ms,
    };
    let end_ms = end_ms - end_ms.rem_euclid(step_ms);
    let start_ms = match flags.from {
        Some(text) => instant("--from", text, now_ms)?,
        None => end_ms - 2 * history_ms,
    };
    let start_ms = start_ms + (step_ms - start_ms.rem_euclid(step_ms)) % step_ms;
    if start_ms >= end_ms {
        return Err(BacktestError::Flag {
            flag: "--from",
            message: "must be before --to".into(),
        });
    }
    let points = (end_ms - start_ms) / step_ms + 1;
    if points as u64 > 100 * PROMETHEUS_MAX_POINTS {
        return Err(BacktestError::Flag {
            flag: "--from",
            message: format!(
                "the range is {points} steps of {}; at most {} (shorten it)",
                duration::format(query.step),
                100 * PROMETHEUS_MAX_POINTS
            ),
        });
    }
    let horizon_steps = match flags.horizon {
        Some(text) => {
            let horizon = duration::parse(text).map_err(|message| BacktestError::Flag {
                flag: "--horizon",
                message,
            })?;
            let steps = horizon.as_millis() as i64 / step_ms;
            if steps < 1 || horizon.as_millis() as i64 % step_ms != 0 {
                return Err(BacktestError::Flag {
                    flag: "--horizon",
                    message: format!(
                        "must be a positive multiple of the query's step ({}), got {text}",
                        duration::format(query.step)
                    ),
                });
            }
            steps as u32
        }
        None => query.horizons.iter().map(|h| h.steps).max().unwrap_or(1),
    };
    if flags.origins == 0 {
        return Err(BacktestError::Flag {
            flag: "--origins",
            message: "must be at least 1".into(),
        });
    }
    let horizon = Duration::from_millis(u64::from(horizon_steps) * step_ms as u64);
    Ok(BacktestPlan {
        settings: BacktestSettings {
            tracker: tracker_settings(&query),
            horizon_steps,
            origins: flags.origins,
        },
        query,
        start_ms,
        end_ms,
        horizon,
    })
}

fn instant(flag: &'static str, text: &str, now_ms: i64) -> Result<i64, BacktestError> {
    parse_instant(text, now_ms).map_err(|message| BacktestError::Flag { flag, message })
}

/// Fetches the range and lays each series on the grid (NaN where Prometheus has no point), at
/// most the query's `max_series` series, in label order.
pub async fn fetch(
    reader: &PrometheusReader,
    plan: &BacktestPlan,
) -> Result<(Vec<(Labels, Vec<f64>)>, Vec<String>), BacktestError> {
    let step_ms = plan.query.step_ms().max(1);
    // History, so through remote read where the server serves it (as the sidecar's loads).
    let answer = reader
        .history_counting(
            &RangeQuery {
                expr: &plan.query.expr,
                start_ms: plan.start_ms,
                end_ms: plan.end_ms,
                step_ms,
            },
            &mut 0,
        )
        .await?;
    let points = ((plan.end_ms - plan.start_ms) / step_ms + 1) as usize;
    let mut series: Vec<(Labels, Vec<f64>)> = answer
        .series
        .into_iter()
        .map(|(labels, samples)| {
            let mut values = vec![f64::NAN; points];
            for sample in samples {
                let offset = sample.timestamp_ms - plan.start_ms;
                if offset >= 0 && offset % step_ms == 0 {
                    if let Some(slot) = values.get_mut((offset / step_ms) as usize) {
                        *slot = sample.value;
                    }
                }
            }
            (labels, values)
        })
        .collect();
    series.sort_by(|a, b| a.0.cmp(&b.0));
    series.truncate(plan.query.max_series);
    Ok((series, answer.warnings))
}

/// The report: every series and the pooled totals.
#[derive(Debug)]
pub struct BacktestReport {
    pub series: Vec<(Labels, SeriesBacktest)>,
    pub forecast: ForecastTally,
    pub anomalies: AnomalyTally,
}

pub fn run(plan: &BacktestPlan, series: &[(Labels, Vec<f64>)]) -> BacktestReport {
    let mut report = BacktestReport {
        series: Vec::with_capacity(series.len()),
        forecast: ForecastTally::default(),
        anomalies: AnomalyTally::default(),
    };
    for (labels, values) in series {
        let result = backtest_series(&plan.settings, labels, plan.start_ms, values);
        report.forecast.merge(&result.forecast);
        report.anomalies.merge(&result.anomalies);
        report.series.push((labels.clone(), result));
    }
    report
}

fn cell(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

fn percent(value: Option<f64>) -> String {
    cell(value.map(|v| 100.0 * v), 1)
}

/// A fixed-width table, one row per series and a pooled row.
pub fn render_table(plan: &BacktestPlan, report: &BacktestReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "query {} from {} to {} (step {}, horizon {}, {} origins, interval {:.0}%)",
        plan.query.name,
        rfc3339(plan.start_ms),
        rfc3339(plan.end_ms),
        duration::format(plan.query.step),
        duration::format(plan.horizon),
        plan.settings.origins,
        100.0 * plan.query.model.coverage.get()
    );
    let _ = writeln!(
        out,
        "{:>7} {:>7} {:>8} {:>9} {:>9} {:>9} {:>8} {:>7}  {:<28} series",
        "origins", "MASE", "naive", "sMAPE%", "cover%", "anomaly%", "scored", "onsets", "model"
    );
    let mut row = |origins: usize,
                   forecast: &ForecastTally,
                   anomalies: &AnomalyTally,
                   model: &str,
                   name: &str| {
        let _ = writeln!(
            out,
            "{:>7} {:>7} {:>8} {:>9} {:>9} {:>9} {:>8} {:>7}  {:<28} {}",
            origins,
            cell(forecast.mase(), 3),
            cell(forecast.naive_mase(), 3),
            cell(forecast.smape_percent(), 2),
            percent(forecast.coverage()),
            cell(anomalies.rate().map(|r| 100.0 * r), 2),
            anomalies.scored,
            anomalies.onsets,
            model,
            name
        );
    };
    for (labels, result) in &report.series {
        row(
            result.forecast.origins,
            &result.forecast,
            &result.anomalies,
            &result.model,
            &labels.to_string(),
        );
    }
    row(
        report.forecast.origins,
        &report.forecast,
        &report.anomalies,
        "",
        &format!("all {} series (pooled)", report.series.len()),
    );
    out.push_str(
        "MASE: mean absolute forecast error / in-sample seasonal naive one-step error, lower is \
         better (naive: the seasonal naive forecast's own MASE)\n\
         cover%: actual values inside the forecast interval; anomaly%: points outside the band \
         when scored online; onsets: points whose probability reached the onset level\n",
    );
    out
}

fn number(value: Option<f64>) -> serde_json::Value {
    value.map_or(serde_json::Value::Null, |v| json!(v))
}

fn tallies(forecast: &ForecastTally, anomalies: &AnomalyTally) -> serde_json::Value {
    json!({
        "origins": forecast.origins,
        "forecast_points": forecast.points,
        "mase": number(forecast.mase()),
        "naive_mase": number(forecast.naive_mase()),
        "smape_percent": number(forecast.smape_percent()),
        "coverage": number(forecast.coverage()),
        "scored_points": anomalies.scored,
        "anomaly_rate": number(anomalies.rate()),
        "onsets": anomalies.onsets,
    })
}

/// One JSON document: the plan, each series and the pooled totals.
pub fn render_json(plan: &BacktestPlan, report: &BacktestReport) -> String {
    let series: Vec<serde_json::Value> = report
        .series
        .iter()
        .map(|(labels, result)| {
            let labels: serde_json::Map<String, serde_json::Value> = labels
                .iter()
                .map(|(name, value)| (name.to_owned(), json!(value)))
                .collect();
            let mut entry = tallies(&result.forecast, &result.anomalies);
            entry["labels"] = serde_json::Value::Object(labels);
            entry["model"] = json!(result.model);
            entry
        })
        .collect();
    let document = json!({
        "query": plan.query.name,
        "expr": plan.query.expr,
        "from": rfc3339(plan.start_ms),
        "to": rfc3339(plan.end_ms),
        "step_seconds": plan.query.step.as_secs_f64(),
        "horizon_seconds": plan.horizon.as_secs_f64(),
        "origins_per_series": plan.settings.origins,
        "interval_coverage_target": plan.query.model.coverage.get(),
        "series": series,
        "pooled": tallies(&report.forecast, &report.anomalies),
    });
    let mut text = document.to_string();
    text.push('\n');
    text
}

fn rfc3339(ms: i64) -> String {
    timestamp::format_rfc3339(ms)
}

#[cfg(test)]
mod tests;
