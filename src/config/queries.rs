//! The `queries` section: what each query fetches, how its series are modelled, and what it
//! exports.

use std::collections::BTreeSet;
use std::time::Duration;

use foretell_core::model::{ensemble, Coverage, ForecastModel, SeasonSpec};
use foretell_core::peers::{PeerMethod, PeerSettings};
use foretell_core::store::StoreLimits;
use foretell_core::tracker::{FirstFit, Horizon, ThresholdBound, ThresholdSettings};
use promql_parser::parser::value::ValueType;

use super::duration;
use super::raw::{RawModel, RawPeers, RawQuery, RawSeasonality, RawThreshold};
use super::validator::Validator;

const MAX_POINTS_PER_SERIES: u64 = 1_000_000;
/// Charts show the 6h view from the live record by default.
const DEFAULT_LIVE_RECORD: Duration = Duration::from_secs(6 * 3600);
/// A live record longer than this would cost more memory than the window itself at common
/// steps; longer ranges are replayed.
const MAX_LIVE_RECORD_POINTS: usize = 20_000;
/// Chart axes show the unit in a few characters.
const MAX_UNIT_CHARS: usize = 32;
/// Forecasts further out than this say more about the model than about the series.
const MAX_HORIZON: Duration = Duration::from_secs(90 * 86_400);

#[derive(Debug, Clone, PartialEq)]
pub struct QueryConfig {
    pub name: String,
    pub expr: String,
    pub step: Duration,
    pub history: Duration,
    pub evaluation_interval: Duration,
    pub freshness: Duration,
    pub max_series: usize,
    pub model: ForecastModel,
    pub refit_interval: Duration,
    /// How a series' first model is fitted: cheaply, then fully at its first refit (`quick`),
    /// or fully from the start (`full`).
    pub first_fit: FirstFit,
    pub horizons: Vec<Horizon>,
    pub threshold: Option<ThresholdSettings>,
    /// How far back each series keeps what the live model did, for the charts (`0s`: none;
    /// charts are then replayed from Prometheus).
    pub live_record: Duration,
    /// The unit of the query's values, for chart axes (`requests/s`, `bytes`); empty: none.
    pub unit: String,
    /// Peer outlier detection among the query's series; `None`: off.
    pub peers: Option<PeerSettings>,
}

impl QueryConfig {
    pub fn step_ms(&self) -> i64 {
        self.step.as_millis() as i64
    }

    /// Points each series' live record holds.
    pub fn live_record_points(&self) -> usize {
        (self.live_record.as_millis() / self.step.as_millis().max(1)) as usize
    }

    pub fn store_limits(&self) -> StoreLimits {
        StoreLimits {
            step_ms: self.step_ms(),
            capacity_points: (self.history.as_millis() / self.step.as_millis().max(1)) as usize + 1,
            max_series: self.max_series,
            freshness_ms: self.freshness.as_millis() as i64,
        }
    }

    /// True when `other` fetches the same data into the same windows, so a reload can keep
    /// the series already loaded.
    pub fn same_data_as(&self, other: &QueryConfig) -> bool {
        self.expr == other.expr
            && self.step == other.step
            && self.history == other.history
            && self.max_series == other.max_series
            && self.freshness == other.freshness
    }
}

impl Validator<'_> {
    pub(super) fn queries(
        &mut self,
        raw: &[RawQuery],
        timeout: Option<Duration>,
    ) -> Vec<QueryConfig> {
        if raw.is_empty() {
            self.fail("queries", "needs at least one query");
        }
        let mut names = BTreeSet::new();
        raw.iter()
            .enumerate()
            .filter_map(|(i, q)| {
                let path = format!("queries[{i}]");
                if !names.insert(q.name.as_str()) {
                    self.fail(
                        format!("{path}.name"),
                        format!(
                            "`{}` is used by an earlier query; names must be unique",
                            q.name
                        ),
                    );
                }
                self.query(&path, q, timeout)
            })
            .collect()
    }

    pub(super) fn query(
        &mut self,
        path: &str,
        raw: &RawQuery,
        timeout: Option<Duration>,
    ) -> Option<QueryConfig> {
        let before = self.errors.len();
        let name_ok = !raw.name.is_empty()
            && raw
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
        if !name_ok {
            self.fail(
                format!("{path}.name"),
                format!(
                    "`{}` must be non-empty and use only letters, digits, `_`, `-`, `.` and `:`",
                    raw.name
                ),
            );
        }
        if raw.expr.trim().is_empty() {
            self.fail(
                format!("{path}.expr"),
                "must be a PromQL expression, got an empty string",
            );
        } else {
            let expr_path = format!("{path}.expr");
            match promql_parser::parser::parse(&raw.expr) {
                Err(reason) => {
                    // The parser's own words, on one bounded line: they name the token and the
                    // position within the expression.
                    let reason: String = reason
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                        .chars()
                        .take(200)
                        .collect();
                    let at = self.at(self.locations.value(&expr_path));
                    self.fail(expr_path, format!("not valid PromQL{at}: {reason}"));
                }
                // A range query evaluates an instant vector (or a scalar) at each step; a
                // range vector or a string is refused by Prometheus on every cycle.
                Ok(parsed) => match parsed.value_type() {
                    ValueType::Vector | ValueType::Scalar => {}
                    other => {
                        let at = self.at(self.locations.value(&expr_path));
                        self.fail(
                            expr_path,
                            format!(
                                "must return an instant vector{at}, got a {other}: foretell evaluates it as a range query at each step (for a range vector such as `x[5m]`, wrap it: `rate(x[5m])`, `avg_over_time(x[5m])`)"
                            ),
                        );
                    }
                },
            }
        }
        let step = self.positive_duration(
            &format!("{path}.step"),
            raw.step.as_deref(),
            Duration::from_secs(60),
        );
        let history = self.positive_duration(
            &format!("{path}.history"),
            raw.history.as_deref(),
            Duration::from_secs(7 * 86_400),
        );
        let interval = self.positive_duration(
            &format!("{path}.evaluation_interval"),
            raw.evaluation_interval.as_deref(),
            Duration::from_secs(60),
        );
        if let (Some(interval), Some(timeout)) = (interval, timeout) {
            if timeout >= interval {
                self.fail(
                    format!("{path}.evaluation_interval"),
                    format!(
                        "must be longer than prometheus.timeout ({}), got {}; a slow Prometheus would otherwise make cycles overlap",
                        duration::format(timeout),
                        duration::format(interval)
                    ),
                );
            }
        }
        let max_series = raw.max_series.unwrap_or(10_000);
        if max_series == 0 {
            self.fail(format!("{path}.max_series"), "must be > 0, got 0");
        }
        let (step, history) = (step?, history?);
        let points = (history.as_millis() / step.as_millis().max(1)) as u64;
        if points < 2 {
            self.fail(
                format!("{path}.history"),
                format!(
                    "must cover at least 2 steps of {}, got {}",
                    duration::format(step),
                    duration::format(history)
                ),
            );
        } else if points > MAX_POINTS_PER_SERIES {
            self.fail(
                format!("{path}.history"),
                format!(
                    "{} at step {} is {points} points per series; at most {MAX_POINTS_PER_SERIES} (raise step or shorten history)",
                    duration::format(history),
                    duration::format(step)
                ),
            );
        }
        let freshness = self.duration(
            &format!("{path}.freshness"),
            raw.freshness.as_deref(),
            (step * 2).max(Duration::from_secs(300)),
        );
        if let Some(f) = freshness {
            if f < step {
                self.fail(
                    format!("{path}.freshness"),
                    format!(
                        "must be at least one step ({}), got {}",
                        duration::format(step),
                        duration::format(f)
                    ),
                );
            }
        }
        let model = self.model(&format!("{path}.model"), &raw.model, step, history);
        let refit_interval = self.positive_duration(
            &format!("{path}.model.refit_interval"),
            raw.model.refit_interval.as_deref(),
            Duration::from_secs(3600),
        );
        let first_fit = match raw.model.first_fit.as_deref() {
            None | Some("quick") => FirstFit::Quick,
            Some("full") => FirstFit::Full,
            Some(other) => {
                self.fail(
                    format!("{path}.model.first_fit"),
                    format!("must be `quick` (a cheap first model, the full fit at the series' first refit) or `full` (the full fit from the start: slower to be ready), got `{other}`"),
                );
                FirstFit::Quick
            }
        };
        let horizons = self.horizons(
            &format!("{path}.model.horizons"),
            raw.model.horizons.as_deref(),
            step,
        );
        let threshold = match &raw.threshold {
            Some(t) => self
                .threshold(&format!("{path}.threshold"), t, step)
                .map(Some),
            None => Some(None),
        };
        let live_record = self.live_record(path, raw.live_record.as_deref(), step);
        let unit = self.unit(path, raw.unit.as_deref());
        let peers = match &raw.peers {
            Some(p) => self
                .peers(&format!("{path}.peers"), p, step, history)
                .map(Some),
            None => Some(None),
        };
        if self.errors.len() > before {
            return None;
        }
        if let (Some(model), Some(horizons)) = (&model, &horizons) {
            self.warn_unvalidated_horizons(path, model, horizons, step, history);
        }
        Some(QueryConfig {
            name: raw.name.clone(),
            expr: raw.expr.clone(),
            step,
            history,
            evaluation_interval: interval?,
            freshness: freshness?,
            max_series,
            model: ForecastModel {
                // Refits validate their model choice at the exported horizons.
                horizon_steps: horizons
                    .iter()
                    .flatten()
                    .map(|h| h.steps)
                    .max()
                    .unwrap_or(0),
                ..model?
            },
            refit_interval: refit_interval?,
            first_fit,
            horizons: horizons?,
            threshold: threshold?,
            live_record: live_record?,
            unit: unit?,
            peers: peers?,
        })
    }

    /// `peers`: labels that exist in PromQL's grammar, a known method, a window of at least
    /// three steps within `history`, a sensitivity strictly between 0 and 1.
    fn peers(
        &mut self,
        path: &str,
        raw: &RawPeers,
        step: Duration,
        history: Duration,
    ) -> Option<PeerSettings> {
        let before = self.errors.len();
        for (i, name) in raw.by.iter().enumerate() {
            if let Err(problem) = foretell_core::labels::check_label_name(name) {
                self.fail(
                    format!("{path}.by[{i}]"),
                    format!(
                        "{} is not a label name foretell can group by: {problem}",
                        foretell_core::labels::describe_label_name(name)
                    ),
                );
            }
        }
        let method = match raw.method.as_deref() {
            None | Some("mad") => PeerMethod::Mad,
            Some("dbscan") => PeerMethod::Dbscan,
            Some(other) => {
                self.fail(
                    format!("{path}.method"),
                    format!("must be `mad` (distance from the group's median in robust standard deviations) or `dbscan` (outside the cluster holding most of the group), got `{other}`"),
                );
                PeerMethod::Mad
            }
        };
        let window = self.positive_duration(
            &format!("{path}.window"),
            raw.window.as_deref(),
            Duration::from_secs(3600).min(history),
        )?;
        if window < step * 3 || window > history {
            self.fail(
                format!("{path}.window"),
                format!(
                    "must be between three steps ({}) and `history` ({}), got {}",
                    duration::format(step * 3),
                    duration::format(history),
                    duration::format(window)
                ),
            );
        }
        let sensitivity = raw.sensitivity.unwrap_or(0.5);
        if !(sensitivity > 0.0 && sensitivity < 1.0) {
            self.fail(
                format!("{path}.sensitivity"),
                format!("must be between 0 and 1 (higher finds more outliers), got {sensitivity}"),
            );
        }
        if self.errors.len() > before {
            return None;
        }
        Some(PeerSettings {
            by: raw.by.clone(),
            method,
            window_points: (window.as_millis() / step.as_millis().max(1)) as usize,
            sensitivity,
        })
    }

    /// `live_record`: a duration of at most [`MAX_LIVE_RECORD_POINTS`] steps, `0s` for none.
    pub(super) fn live_record(
        &mut self,
        path: &str,
        text: Option<&str>,
        step: Duration,
    ) -> Option<Duration> {
        let path = format!("{path}.live_record");
        let record = self.duration(&path, text, DEFAULT_LIVE_RECORD)?;
        let points = record.as_millis() / step.as_millis().max(1);
        if points > MAX_LIVE_RECORD_POINTS as u128 {
            self.fail(
                path,
                format!(
                    "{} at step {} is {points} points per series; at most {MAX_LIVE_RECORD_POINTS} (12 bytes each): shorten it, charts replay older ranges from Prometheus",
                    duration::format(record),
                    duration::format(step)
                ),
            );
            return None;
        }
        Some(record)
    }

    /// `unit`: short printable text for chart axes.
    pub(super) fn unit(&mut self, path: &str, text: Option<&str>) -> Option<String> {
        let unit = text.unwrap_or_default().trim();
        if unit.chars().count() > MAX_UNIT_CHARS || unit.chars().any(char::is_control) {
            self.fail(
                format!("{path}.unit"),
                format!("must be at most {MAX_UNIT_CHARS} printable characters (for example `requests/s` or `bytes`)"),
            );
            return None;
        }
        Some(unit.to_owned())
    }

    pub(super) fn model(
        &mut self,
        path: &str,
        raw: &RawModel,
        step: Duration,
        history: Duration,
    ) -> Option<ForecastModel> {
        let coverage = match Coverage::new(raw.coverage.unwrap_or(Coverage::DEFAULT.get())) {
            Ok(c) => Some(c),
            Err(e) => {
                self.fail(format!("{path}.coverage"), e.to_string());
                None
            }
        };
        let history_points = (history.as_millis() / step.as_millis().max(1)) as usize + 1;
        let min_points = raw.min_history_points.unwrap_or(30.min(history_points));
        if min_points < 8 || min_points > history_points {
            self.fail(
                format!("{path}.min_history_points"),
                format!("must be between 8 and the {history_points} points the history holds, got {min_points}"),
            );
        }
        let season = match &raw.seasonality {
            None => SeasonSpec::Auto(auto_season_candidates(step, history)),
            Some(RawSeasonality::One(word)) if word == "auto" => {
                SeasonSpec::Auto(auto_season_candidates(step, history))
            }
            Some(RawSeasonality::One(word)) if word == "none" => SeasonSpec::None,
            Some(RawSeasonality::One(period)) => SeasonSpec::Periods(vec![self.season_period(
                &format!("{path}.seasonality"),
                period,
                step,
                history,
            )?]),
            Some(RawSeasonality::Many(periods)) => {
                if periods.is_empty() {
                    self.fail(
                        format!("{path}.seasonality"),
                        "an empty list; write `none` for no season",
                    );
                }
                let mut steps = Vec::new();
                for (i, period) in periods.iter().enumerate() {
                    if let Some(p) = self.season_period(
                        &format!("{path}.seasonality[{i}]"),
                        period,
                        step,
                        history,
                    ) {
                        if steps.contains(&p) {
                            self.fail(
                                format!("{path}.seasonality[{i}]"),
                                format!("{period} is listed twice"),
                            );
                        }
                        steps.push(p);
                    }
                }
                steps.sort_unstable();
                SeasonSpec::Periods(steps)
            }
        };
        Some(ForecastModel {
            coverage: coverage?,
            min_points,
            season,
            horizon_steps: 0,
        })
    }

    /// Warns when the history cannot spare a held-out part for the forecasts' model choice at
    /// the longest horizon (README, "How the model works", item 4): the forecasts then come
    /// from the in-sample model alone, or are validated at a shorter horizon only. With
    /// `seasonality: auto` the daily cycle is assumed kept, the usual case.
    pub(super) fn warn_unvalidated_horizons(
        &mut self,
        path: &str,
        model: &ForecastModel,
        horizons: &[Horizon],
        step: Duration,
        history: Duration,
    ) {
        let Some(longest) = horizons.iter().map(|h| h.steps as usize).max() else {
            return;
        };
        let window = (history.as_millis() / step.as_millis().max(1)) as usize + 1;
        let fitting = |periods: &[usize]| -> Vec<usize> {
            periods
                .iter()
                .copied()
                .filter(|&p| p >= 2 && 2 * p <= window)
                .collect()
        };
        let (periods, naive) = match &model.season {
            SeasonSpec::None => (Vec::new(), Vec::new()),
            SeasonSpec::Periods(periods) => (fitting(periods), fitting(periods)),
            SeasonSpec::Auto(candidates) => {
                let naive = fitting(candidates);
                (naive.iter().copied().min().into_iter().collect(), naive)
            }
        };
        let validated =
            ensemble::validated_horizon(window, &periods, &naive, model.min_points, longest);
        if validated >= longest {
            return;
        }
        let needed =
            ensemble::training_points_needed(&periods, &naive, model.min_points) + 2 * longest;
        // Rounded up to whole hours (or steps, when longer), as a person would write it.
        let unit = step.max(Duration::from_secs(3600)).as_millis();
        let points_span = step.as_millis() * (needed as u128 - 1);
        let suggested = duration::format(Duration::from_millis(
            (points_span.div_ceil(unit) * unit) as u64,
        ));
        let horizon = duration::format(step * longest as u32);
        let consequence = if validated == 0 {
            "leaves no held-out part for the forecasts' model choice, so the in-sample model forecasts alone (intervals from its in-sample errors)".to_owned()
        } else {
            format!(
                "validates the forecasts' model choice up to {} only; longer horizons reuse its weights",
                duration::format(step * validated as u32)
            )
        };
        self.warnings.push(format!(
            "{path}.history: {} at step {} {consequence}; a history of at least {suggested} validates the {horizon} horizon",
            duration::format(history),
            duration::format(step),
        ));
    }

    /// One configured season period, in steps. MSTL needs two full cycles in the window.
    pub(super) fn season_period(
        &mut self,
        path: &str,
        text: &str,
        step: Duration,
        history: Duration,
    ) -> Option<usize> {
        let period = match duration::parse(text) {
            Ok(p) => p,
            Err(message) => {
                self.fail(path.to_owned(), format!("{message}, or `auto` or `none`"));
                return None;
            }
        };
        if period * 2 > history {
            self.fail(
                path.to_owned(),
                format!(
                    "a season of {} needs a history of at least two periods ({}) for MSTL to separate it, got {} (raise `history`)",
                    duration::format(period),
                    duration::format(period * 2),
                    duration::format(history)
                ),
            );
            return None;
        }
        if period < step * 2 {
            self.fail(
                path.to_owned(),
                format!(
                    "a season must span at least two steps ({}), got {}",
                    duration::format(step * 2),
                    duration::format(period)
                ),
            );
            return None;
        }
        Some((period.as_millis() / step.as_millis().max(1)) as usize)
    }

    pub(super) fn horizons(
        &mut self,
        path: &str,
        raw: Option<&[String]>,
        step: Duration,
    ) -> Option<Vec<Horizon>> {
        let default = [String::from("1h")];
        let raw = raw.unwrap_or(&default);
        let before = self.errors.len();
        let mut horizons: Vec<(Duration, Horizon)> = Vec::new();
        for (i, text) in raw.iter().enumerate() {
            let item = format!("{path}[{i}]");
            let Some(horizon) = self.positive_duration(&item, Some(text), step) else {
                continue;
            };
            if horizon > MAX_HORIZON {
                self.fail(
                    item,
                    format!(
                        "at most {}, got {}",
                        duration::format(MAX_HORIZON),
                        duration::format(horizon)
                    ),
                );
                continue;
            }
            let steps = horizon.as_millis().div_ceil(step.as_millis().max(1)).max(1);
            let label = duration::format(horizon);
            if horizons.iter().any(|(_, h)| h.label == label) {
                self.fail(item, format!("{label} is listed twice"));
                continue;
            }
            horizons.push((
                horizon,
                Horizon {
                    label,
                    steps: u32::try_from(steps).unwrap_or(u32::MAX),
                },
            ));
        }
        if self.errors.len() > before {
            return None;
        }
        horizons.sort_by_key(|(d, _)| *d);
        Some(horizons.into_iter().map(|(_, h)| h).collect())
    }

    pub(super) fn threshold(
        &mut self,
        path: &str,
        raw: &RawThreshold,
        step: Duration,
    ) -> Option<ThresholdSettings> {
        let before = self.errors.len();
        if !raw.value.is_finite() {
            self.fail(
                format!("{path}.value"),
                format!("must be a finite number, got {}", raw.value),
            );
        }
        let rising = match raw.direction.as_deref() {
            None | Some("above") => true,
            Some("below") => false,
            Some(other) => {
                self.fail(format!("{path}.direction"), format!("must be `above` (the series rising past the value is the event) or `below`, got `{other}`"));
                true
            }
        };
        let bound = match raw.bound.as_deref() {
            None | Some("expected") => ThresholdBound::Expected,
            Some("band") => ThresholdBound::Band,
            Some(other) => {
                self.fail(format!("{path}.bound"), format!("must be `expected` (the forecast itself) or `band` (its interval edge: the earlier, pessimistic time), got `{other}`"));
                ThresholdBound::Expected
            }
        };
        let within = self.positive_duration(
            &format!("{path}.within"),
            raw.within.as_deref(),
            Duration::from_secs(7 * 86_400),
        );
        if let Some(w) = within {
            if w > MAX_HORIZON || w < step {
                self.fail(
                    format!("{path}.within"),
                    format!(
                        "must be between one step ({}) and {}, got {}",
                        duration::format(step),
                        duration::format(MAX_HORIZON),
                        duration::format(w)
                    ),
                );
            }
        }
        if self.errors.len() > before {
            return None;
        }
        let steps = within?.as_millis().div_ceil(step.as_millis().max(1)).max(1);
        Some(ThresholdSettings {
            value: raw.value,
            rising,
            bound,
            within_steps: u32::try_from(steps).unwrap_or(u32::MAX),
        })
    }
}

/// Calendar periods `seasonality: auto` tries: a day and a week, where a period spans at
/// least 4 steps and two cycles fit in the history. Each is kept only when the series shows it.
pub(crate) fn auto_season_candidates(step: Duration, history: Duration) -> Vec<usize> {
    [Duration::from_secs(86_400), Duration::from_secs(7 * 86_400)]
        .into_iter()
        .filter(|period| *period * 2 <= history && *period >= step * 4)
        .map(|period| (period.as_millis() / step.as_millis().max(1)) as usize)
        .collect()
}
