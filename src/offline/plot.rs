//! `--plot FILE.svg` of `detect` and `forecast`: their results as a picture, drawn by the same
//! chart code as the status page and the graph links of enriched alerts
//! (`crate::views::chart`).

use foretell_core::chart::{Trace, TracePoint};
use foretell_core::model::{Band, Excursion, ProbabilitySettings};

use super::csv::Row;
use super::{Detection, ForecastRow};

/// The band of a point that has none to show (the history before a forecast).
const NO_BAND: Band = Band {
    expected: f64::NAN,
    lower: f64::NAN,
    upper: f64::NAN,
};

/// What `detect` did to each row, as the chart of a tracked series shows it: every row the
/// model judged (from the first it was ready for), with the band it was judged against, its
/// score and probability. A row that repeats an earlier timestamp (`--allow-disorder`) is not
/// a new point and is left out.
pub fn detection_trace(detections: &[Detection], coverage: f64) -> Trace {
    let mut points: Vec<TracePoint> = Vec::with_capacity(detections.len());
    for d in detections {
        let Some(band) = d.band else { continue };
        if points
            .last()
            .is_some_and(|p| p.timestamp_ms >= d.row.timestamp_ms)
        {
            continue;
        }
        points.push(TracePoint {
            timestamp_ms: d.row.timestamp_ms,
            value: d.row.value,
            band,
            score: d.score,
            probability: d.probability,
        });
    }
    Trace {
        points,
        excursion: detections.last().map(|d| d.excursion).unwrap_or_default(),
        forecast: Vec::new(),
        coverage,
        onset_probability: ProbabilitySettings::default().onset_probability(),
        replayed_through_ms: None,
    }
}

/// The newest `shown` rows and the forecast after them, with its interval.
pub fn forecast_trace(
    rows: &[Row],
    forecast: &[ForecastRow],
    coverage: f64,
    shown: usize,
) -> Trace {
    let mut history: Vec<&Row> = rows.iter().collect();
    history.sort_by_key(|r| r.timestamp_ms);
    let points = history[history.len().saturating_sub(shown)..]
        .iter()
        .map(|r| TracePoint {
            timestamp_ms: r.timestamp_ms,
            value: r.value,
            band: NO_BAND,
            score: None,
            probability: 0.0,
        })
        .collect();
    Trace {
        points,
        excursion: Excursion::default(),
        forecast: forecast
            .iter()
            .map(|f| {
                (
                    f.timestamp_ms,
                    Band {
                        expected: f.forecast,
                        lower: f.lower,
                        upper: f.upper,
                    },
                )
            })
            .collect(),
        coverage,
        onset_probability: ProbabilitySettings::default().onset_probability(),
        replayed_through_ms: None,
    }
}
