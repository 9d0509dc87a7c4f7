//! The offline commands: `detect` and `forecast` read a `timestamp,value` CSV and run the same
//! models the sidecar runs, with no Prometheus; `backtest` replays a configured query's models on
//! Prometheus history. `detect` drives the live pipeline's
//! [`QueryTracker`] one row at a time, so its output is what the sidecar would have exported
//! for each row, using only the rows up to it.

pub mod backtest;
pub mod plot;
pub mod progress;
pub use foretell_core::csv;
pub use foretell_core::timestamp;

use std::fmt::Write as _;
use std::time::Duration;

use foretell_core::alerts::confidence::{Confidence, Features};
use foretell_core::model::{
    Band, Coverage, Excursion, ForecastModel, ProbabilitySettings, SeasonSpec,
};
use foretell_core::snapshot::SeriesState;
use foretell_core::store::{Sample, StoreLimits};
use foretell_core::timestamp::format_rfc3339;
use foretell_core::tracker::{FirstFit, QueryTracker, TrackerSettings};
use foretell_core::Labels;

use crate::config::{auto_season_candidates, duration};
use csv::Row;

/// Longest grid the offline commands build, as in the sidecar's configuration.
const MAX_POINTS: i64 = 1_000_000;

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum OfflineError {
    #[error("{0}")]
    Csv(#[from] csv::CsvError),
    #[error("cannot find the step: the file needs at least two rows with different timestamps")]
    NoStep,
    #[error("{flag}: {message}")]
    Flag { flag: &'static str, message: String },
    #[error("the rows span {points} steps of {step}; at most {MAX_POINTS} (pass --history to keep only the newest part)")]
    TooLong { points: i64, step: String },
    #[error("the model is not ready: {0}")]
    NotReady(String),
}

/// `--season`: `auto`, `none`, a number of rows or a duration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SeasonChoice {
    Auto,
    None,
    Points(usize),
    Period(Duration),
}

impl SeasonChoice {
    pub fn parse(text: &str) -> Result<SeasonChoice, OfflineError> {
        let flag_error = |message: String| OfflineError::Flag {
            flag: "--season",
            message,
        };
        match text {
            "auto" => Ok(SeasonChoice::Auto),
            "none" => Ok(SeasonChoice::None),
            digits if digits.bytes().all(|b| b.is_ascii_digit()) => {
                let points: usize = digits
                    .parse()
                    .map_err(|_| flag_error(format!("`{digits}` is too large")))?;
                if points < 2 {
                    return Err(flag_error(format!(
                        "a season spans at least 2 rows, got {points}"
                    )));
                }
                Ok(SeasonChoice::Points(points))
            }
            other => duration::parse(other)
                .map(SeasonChoice::Period)
                .map_err(|message| {
                    flag_error(format!("{message}; or `auto`, `none`, or a number of rows"))
                }),
        }
    }

    /// The season in grid steps; `Auto` tries a day and a week (as `seasonality: auto` does).
    fn spec(&self, step_ms: i64, window_points: usize) -> Result<SeasonSpec, OfflineError> {
        let points = match self {
            SeasonChoice::Auto => {
                let step = Duration::from_millis(step_ms as u64);
                return Ok(SeasonSpec::Auto(auto_season_candidates(
                    step,
                    step * (window_points as u32),
                )));
            }
            SeasonChoice::None => return Ok(SeasonSpec::None),
            SeasonChoice::Points(points) => *points,
            SeasonChoice::Period(period) => (period.as_millis() as i64 / step_ms) as usize,
        };
        if points < 2 {
            return Err(OfflineError::Flag {
                flag: "--season",
                message: format!(
                    "the season must span at least two steps of {}",
                    duration::format(Duration::from_millis(step_ms as u64))
                ),
            });
        }
        if points * 2 > window_points {
            return Err(OfflineError::Flag {
                flag: "--season",
                message: format!(
                    "a season of {points} steps needs a history of two periods ({} steps) for MSTL to separate it; the history holds {window_points}",
                    points * 2
                ),
            });
        }
        Ok(SeasonSpec::Periods(vec![points]))
    }
}

/// Settings shared by the offline commands.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelOptions {
    pub season: SeasonChoice,
    pub coverage: Coverage,
    /// Window the model learns from; `None`: every row.
    pub history: Option<Duration>,
    pub min_points: usize,
}

fn step_text(step_ms: i64) -> String {
    duration::format(Duration::from_millis(step_ms.max(0) as u64))
}

fn window_points(
    rows: &[Row],
    step_ms: i64,
    history: Option<Duration>,
) -> Result<usize, OfflineError> {
    let slot = |row: Option<&Row>| row.map_or(0, |r| nearest_slot(r.timestamp_ms, step_ms));
    let span = slot(rows.last()) - slot(rows.first());
    let points = match history {
        Some(h) => h.as_millis() as i64 / step_ms + 1,
        None => span / step_ms + 1,
    };
    if points > MAX_POINTS {
        return Err(OfflineError::TooLong {
            points,
            step: step_text(step_ms),
        });
    }
    Ok(points.max(2) as usize)
}

/// One output row of `detect`.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection<'a> {
    pub row: &'a Row,
    /// What the model predicted for this row (None before the model is ready).
    pub band: Option<Band>,
    pub score: Option<f64>,
    pub probability: f64,
    /// The excursion open after this row and the confidence an alert would get from it.
    pub excursion: Excursion,
    pub confidence: Option<Confidence>,
}

/// Settings of `detect` beyond the model: how often the model is refitted, in data time.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectOptions {
    pub model: ModelOptions,
    pub refit_interval: Duration,
}

/// A time given on the command line: `now`, `now-DURATION` (`now-7d`), Unix seconds,
/// `YYYY-MM-DD HH:MM:SS` (UTC) or RFC 3339. Shared by `backtest` and the `audit` commands.
pub fn parse_instant(text: &str, now_ms: i64) -> Result<i64, String> {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix("now") {
        if rest.is_empty() {
            return Ok(now_ms);
        }
        let ago = rest
            .strip_prefix('-')
            .ok_or_else(|| format!("`{text}`: write now or now-DURATION, e.g. now-7d"))?;
        let ago = duration::parse(ago).map_err(|m| format!("`{text}`: {m}"))?;
        return Ok(now_ms - ago.as_millis() as i64);
    }
    timestamp::parse(text)
        .map(|(ms, _)| ms)
        .map_err(|m| format!("{m}, or now-DURATION"))
}

/// Two weekly cycles and a day: the shortest window in which a weekly season can be modelled.
pub const DEFAULT_DETECT_HISTORY: Duration = Duration::from_secs(15 * 86_400);

/// The grid point a row belongs to: the nearest multiple of the step. Rows that arrive a little
/// late or early (scrapes and exporters jitter) keep one grid point each; rounding down instead
/// would put a row that came a few seconds early into the slot of the row before it, where it
/// is dropped, and leave its own slot a gap.
fn nearest_slot(timestamp_ms: i64, step_ms: i64) -> i64 {
    let half = step_ms / 2;
    (timestamp_ms + half).div_euclid(step_ms) * step_ms
}

/// Scores every row using only the rows up to it. A row whose timestamp falls on the same grid
/// point as an earlier row (the nearest multiple of the step; or before it) brings no new point
/// in time and repeats the previous row's output.
pub fn detect<'a>(
    rows: &'a [Row],
    options: &DetectOptions,
) -> Result<Vec<Detection<'a>>, OfflineError> {
    detect_reporting(rows, options, &mut |_, _| {})
}

/// Rows between two calls of `detect_reporting`'s progress callback.
const PROGRESS_EVERY: usize = 1_000;

/// [`detect`], calling `progress(rows done, rows in all)` every thousand rows and once at the
/// end.
pub fn detect_reporting<'a>(
    rows: &'a [Row],
    options: &DetectOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Detection<'a>>, OfflineError> {
    let step_ms = csv::infer_step_ms(rows).ok_or(OfflineError::NoStep)?;
    let history = options.model.history.unwrap_or(DEFAULT_DETECT_HISTORY);
    let capacity = window_points(rows, step_ms, Some(history))?;
    let min_points = options.model.min_points.min(capacity);
    let settings = TrackerSettings {
        query: "detect".to_owned(),
        limits: StoreLimits {
            step_ms,
            capacity_points: capacity,
            max_series: 1,
            freshness_ms: history.as_millis() as i64,
        },
        model: ForecastModel {
            coverage: options.model.coverage,
            min_points,
            season: options.model.season.spec(step_ms, capacity)?,
            // `detect` scores each point against the next-step band; it reads no forecast.
            horizon_steps: 0,
        },
        probability: ProbabilitySettings::default(),
        refit_interval_ms: (options.refit_interval.as_millis() as i64).max(step_ms),
        horizons: Vec::new(),
        threshold: None,
        // Offline runs draw their own chart from every row (`--plot`).
        record_points: 0,
        // One series.
        load_threads: 1,
        first_fit: FirstFit::Full,
        peers: None,
    };
    let mut tracker = QueryTracker::new(settings);
    let labels = Labels::from_pairs([("__name__", "input")]);
    let mut newest_slot = i64::MIN;
    let mut last = (None, 0.0, Excursion::default(), None, None);
    let mut detections = Vec::with_capacity(rows.len());
    for (done, row) in rows.iter().enumerate() {
        if done % PROGRESS_EVERY == 0 {
            progress(done, rows.len());
        }
        let slot = nearest_slot(row.timestamp_ms, step_ms);
        if slot > newest_slot {
            newest_slot = slot;
            let sample = Sample {
                timestamp_ms: slot,
                value: row.value,
            };
            let (output, _) = tracker.evaluate(vec![(labels.clone(), vec![sample])], slot);
            last = match output.series.first().map(|s| &s.state) {
                Some(SeriesState::Ready {
                    band,
                    score,
                    probability,
                    excursion,
                    ..
                }) => (
                    *score,
                    *probability,
                    *excursion,
                    Some(Features::of(excursion, step_ms).confidence()),
                    Some(*band),
                ),
                _ => (None, 0.0, Excursion::default(), None, None),
            };
        }
        detections.push(Detection {
            row,
            band: last.4,
            score: last.0,
            probability: last.1,
            excursion: last.2,
            confidence: last.3,
        });
    }
    progress(rows.len(), rows.len());
    Ok(detections)
}

/// `timestamp,value,anomaly_score,anomaly_probability`; the score is empty where there is none.
/// With `evidence`, the open excursion, the confidence and the band the row was judged against
/// follow (empty before the model is ready).
pub fn render_detections(detections: &[Detection], evidence: bool) -> String {
    let mut out = String::from("timestamp,value,anomaly_score,anomaly_probability");
    if evidence {
        out.push_str(
            ",excursion_points,outside_points,peak_sigmas,peak_probability,latest_sigmas,range_excess,familiarity,confidence,expected,lower,upper",
        );
    }
    out.push('\n');
    for d in detections {
        let score = d.score.map(number).unwrap_or_default();
        let _ = write!(
            out,
            "{},{},{},{}",
            d.row.timestamp_text,
            d.row.value_text,
            score,
            number(d.probability)
        );
        if evidence {
            match d.confidence {
                Some(confidence) => {
                    let e = &d.excursion;
                    let _ = write!(
                        out,
                        ",{},{},{},{},{},{},{},{}",
                        e.length,
                        e.outside,
                        number(e.peak_sigmas),
                        number(e.peak_probability),
                        number(e.latest_sigmas),
                        number(e.range_excess),
                        number(e.familiarity),
                        number(confidence.get())
                    );
                }
                None => out.push_str(",,,,,,,,"),
            }
            match d.band {
                Some(band) => {
                    let _ = write!(
                        out,
                        ",{},{},{}",
                        number(band.expected),
                        number(band.lower),
                        number(band.upper)
                    );
                }
                None => out.push_str(",,,"),
            }
        }
        out.push('\n');
    }
    out
}

/// One forecast step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ForecastRow {
    pub step: u32,
    /// When the step falls: the newest row's time plus `step` grid steps (Unix milliseconds).
    pub timestamp_ms: i64,
    pub forecast: f64,
    pub lower: f64,
    pub upper: f64,
}

/// Fits on the rows (the newest `history` of them) and forecasts `horizon_steps` steps after
/// the newest. Returns the rows and a description of the fitted model.
pub fn forecast(
    rows: &[Row],
    options: &ModelOptions,
    horizon_steps: u32,
) -> Result<(Vec<ForecastRow>, String), OfflineError> {
    let step_ms = csv::infer_step_ms(rows).ok_or(OfflineError::NoStep)?;
    let points = window_points(rows, step_ms, options.history)?;
    let newest_slot = rows
        .iter()
        .map(|r| nearest_slot(r.timestamp_ms, step_ms))
        .max()
        .unwrap_or(0);
    let first_slot = newest_slot - (points as i64 - 1) * step_ms;
    let mut grid = vec![f64::NAN; points];
    for row in rows {
        let slot = nearest_slot(row.timestamp_ms, step_ms);
        if slot >= first_slot {
            grid[((slot - first_slot) / step_ms) as usize] = row.value;
        }
    }
    let model = ForecastModel {
        coverage: options.coverage,
        min_points: options.min_points.min(points),
        season: options.season.spec(step_ms, points)?,
        horizon_steps,
    };
    let fitted = model
        .fit(&grid, None)
        .map_err(|reason| OfflineError::NotReady(reason.to_string()))?
        .model;
    let newest_ms = rows.iter().map(|r| r.timestamp_ms).max().unwrap_or(0);
    let rows = (1..=horizon_steps)
        .map(|step| {
            let band = fitted.forecast(step);
            ForecastRow {
                step,
                timestamp_ms: newest_ms + i64::from(step) * step_ms,
                forecast: band.expected,
                lower: band.lower,
                upper: band.upper,
            }
        })
        .collect();
    Ok((rows, fitted.describe()))
}

pub fn render_forecast(rows: &[ForecastRow]) -> String {
    let mut out = String::from("step,timestamp,forecast,lower,upper\n");
    for r in rows {
        let _ = writeln!(
            out,
            "{},{},{},{},{}",
            r.step,
            format_rfc3339(r.timestamp_ms),
            number(r.forecast),
            number(r.lower),
            number(r.upper)
        );
    }
    out
}

/// A number as CSV text: shortest round-trip decimal, `+Inf`/`-Inf`/`NaN` spelled as Prometheus
/// does.
fn number(value: f64) -> String {
    foretell_core::exposition::format_value(value)
}

/// Parses `--horizon`: a number of steps or a duration (rounded up to whole steps).
pub fn horizon_steps(text: &str, rows: &[Row]) -> Result<u32, OfflineError> {
    let flag_error = |message: String| OfflineError::Flag {
        flag: "--horizon",
        message,
    };
    let steps = if text.bytes().all(|b| b.is_ascii_digit()) && !text.is_empty() {
        text.parse::<u64>()
            .map_err(|_| flag_error(format!("`{text}` is too large")))?
    } else {
        let span =
            duration::parse(text).map_err(|m| flag_error(format!("{m}; or a number of steps")))?;
        let step_ms = csv::infer_step_ms(rows).ok_or(OfflineError::NoStep)?;
        (span.as_millis() as u64).div_ceil(step_ms as u64)
    };
    if steps == 0 || steps > 1_000_000 {
        return Err(flag_error(format!(
            "must be between 1 and 1000000 steps, got {steps}"
        )));
    }
    Ok(steps as u32)
}

#[cfg(test)]
mod tests;
