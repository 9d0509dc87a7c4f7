//! Finding the series an alert is about, and the evidence of a series foretell does not track.
//!
//! First among the tracked series: a series matches when every one of its labels (its metric
//! name aside) has the same value on the alert; the most specific match wins. Otherwise the
//! alert rule's expression (from `generatorURL`'s `g0.expr`) is evaluated over a recent range,
//! without its final comparison (`rate(errors[5m]) > 0.05` becomes `rate(errors[5m])`, so the
//! range holds every point and not only those above the threshold), and the result series
//! matching the alert's labels is replayed through a model fitted on the fly.

use std::collections::BTreeMap;

use crate::chart::{self, Grid};
use crate::labels::{Labels, METRIC_NAME};
use crate::model::{Band, Excursion, ForecastModel, NotReady, ProbabilitySettings};
use crate::snapshot::{QueryOutput, SeriesOutput, SeriesState, QUERY_LABEL, SOURCE_METRIC_LABEL};

/// An excursion at least this large (robust standard deviations) makes a sibling series count
/// as anomalous too.
pub const SIBLING_SIGMAS: f64 = 3.0;

/// A tracked series that matches an alert, with its query's output.
pub struct Tracked<'a> {
    pub query: &'a QueryOutput,
    pub series: &'a SeriesOutput,
    /// Other series of the query, and how many of them have an excursion of at least
    /// [`SIBLING_SIGMAS`] open.
    pub siblings: usize,
    pub siblings_anomalous: usize,
}

/// The labels of an exported series that identify its source series (what foretell adds is
/// left out).
pub fn source_labels(series: &SeriesOutput) -> impl Iterator<Item = (&str, &str)> {
    series
        .labels()
        .iter()
        .filter(|(name, _)| *name != QUERY_LABEL && *name != SOURCE_METRIC_LABEL)
}

/// The tracked series an alert with `labels` is about. An alert that carries a `query` label
/// (an alert on foretell's own metrics) or a `foretell_query` annotation looks in that query
/// only.
pub fn find_tracked<'a>(
    queries: impl Iterator<Item = &'a QueryOutput>,
    labels: &BTreeMap<String, String>,
    only_query: Option<&str>,
) -> Option<Tracked<'a>> {
    let only_query = only_query.or_else(|| labels.get(QUERY_LABEL).map(String::as_str));
    let mut best: Option<(usize, &QueryOutput, &SeriesOutput)> = None;
    for query in queries {
        if only_query.is_some_and(|q| q != query.query) {
            continue;
        }
        for series in &query.series {
            let mut matched = 0;
            let all = source_labels(series).all(|(name, value)| {
                matched += 1;
                labels.get(name).is_some_and(|v| v == value)
            });
            if all && matched > 0 && best.as_ref().is_none_or(|(n, _, _)| matched > *n) {
                best = Some((matched, query, series));
            }
        }
    }
    let (_, query, series) = best?;
    let siblings = query.series.len().saturating_sub(1);
    let siblings_anomalous = query
        .series
        .iter()
        .filter(|s| !std::ptr::eq(*s, series))
        .filter(|s| {
            matches!(&s.state, SeriesState::Ready { excursion, .. }
                if excursion.is_open() && excursion.peak_sigmas >= SIBLING_SIGMAS)
        })
        .count();
    Some(Tracked {
        query,
        series,
        siblings,
        siblings_anomalous,
    })
}

/// The PromQL expression of the rule that fired, from Prometheus' `generatorURL`
/// (`.../graph?g0.expr=...`).
pub fn rule_expression(generator_url: &str) -> Option<String> {
    let query = generator_url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == "g0.expr")
            .then(|| percent_decode(value))
            .flatten()
            .filter(|expr| !expr.trim().is_empty())
    })
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space); `None` when the bytes
/// are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// `expr` without a comparison with a number at its top level (`X > 0.05`, `X >= bool 3`,
/// `0.9 < X`); other expressions are returned unchanged.
pub fn without_threshold(expr: &str) -> &str {
    let bytes = expr.as_bytes();
    let mut depth = 0i32;
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if let Some(q) = quote {
            if c == b'\\' {
                i += 1;
            } else if c == q {
                quote = None;
            }
        } else {
            match c {
                b'"' | b'\'' | b'`' => quote = Some(c),
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => depth -= 1,
                b'>' | b'<' | b'=' | b'!' if depth == 0 => {
                    let operator_len = match bytes.get(i + 1) {
                        Some(b'=') => 2,
                        _ if c == b'>' || c == b'<' => 1,
                        _ => {
                            i += 1;
                            continue;
                        }
                    };
                    let left = expr[..i].trim();
                    let mut right = expr[i + operator_len..].trim();
                    right = right.strip_prefix("bool").map_or(right, str::trim);
                    if is_number(right) && !left.is_empty() {
                        return left;
                    }
                    if is_number(left) && !right.is_empty() {
                        return right;
                    }
                    return expr.trim();
                }
                _ => {}
            }
        }
        i += 1;
    }
    expr.trim()
}

fn is_number(text: &str) -> bool {
    let text = text.trim();
    !text.is_empty() && text.parse::<f64>().is_ok()
}

/// The result series of an on-demand query that the alert is about: every label of it (the
/// metric name aside) equal on the alert; the most specific wins; a lone series matches when
/// it has no labels at all (an aggregate).
pub fn pick_series<'a, T>(
    results: &'a [(Labels, T)],
    labels: &BTreeMap<String, String>,
) -> Option<&'a (Labels, T)> {
    if let [only] = results {
        if only.0.iter().all(|(name, _)| name == METRIC_NAME) {
            return Some(only);
        }
    }
    results
        .iter()
        .filter_map(|result| {
            let mut matched = 0;
            let all = result
                .0
                .iter()
                .filter(|(name, _)| *name != METRIC_NAME)
                .all(|(name, value)| {
                    matched += 1;
                    labels.get(name).is_some_and(|v| v == value)
                });
            (all && matched > 0).then_some((matched, result))
        })
        .max_by_key(|(matched, _)| *matched)
        .map(|(_, result)| result)
}

/// What replaying a series through a freshly fitted model found.
#[derive(Clone, Debug, PartialEq)]
pub struct Replayed {
    pub band: Band,
    pub score: Option<f64>,
    pub probability: f64,
    pub excursion: Excursion,
    /// The band `horizon_steps` after the newest point.
    pub forecast: Band,
}

/// Fits `model` on the points before `replay_from` and takes the rest in one by one, as the
/// sidecar would have, so the excursion and probability at the end are what a tracked series
/// would show. `values` are on the step grid, NaN for gaps.
pub fn replay(
    values: &[f64],
    replay_from: usize,
    model: &ForecastModel,
    probability: ProbabilitySettings,
    horizon_steps: u32,
) -> Result<Replayed, NotReady> {
    // Only the newest point and the last forecast step matter here; the grid is positional.
    let grid = Grid {
        start_ms: 0,
        step_ms: 1,
    };
    let trace = chart::trace(values, grid, replay_from, model, probability, horizon_steps)?;
    let (last, forecast) = match (trace.points.last(), trace.forecast.last()) {
        (Some(last), Some((_, forecast))) => (*last, *forecast),
        _ => {
            return Err(NotReady::TooFewPoints {
                have: values.len(),
                need: values.len() + 1,
            })
        }
    };
    Ok(Replayed {
        band: last.band,
        score: last.score,
        probability: last.probability,
        excursion: trace.excursion,
        forecast,
    })
}

#[cfg(test)]
mod tests;
