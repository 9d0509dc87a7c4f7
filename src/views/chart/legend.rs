//! The chart's legend: which entries a trace needs and where they go.

use std::fmt::Write as _;

use foretell_core::chart::Trace;

use super::*;

/// One legend entry: its swatch and text.
pub(super) enum Swatch {
    Line {
        color: &'static str,
        dash: &'static str,
    },
    Area {
        color: &'static str,
        opacity: f64,
    },
    Dot {
        color: &'static str,
    },
}

pub(super) fn legend(trace: &Trace, episodes: usize) -> Vec<(Swatch, String)> {
    let mut entries = vec![
        (
            Swatch::Line {
                color: ACTUAL,
                dash: "",
            },
            "observed".to_owned(),
        ),
        (
            Swatch::Line {
                color: EXPECTED,
                dash: "5 3",
            },
            "expected".to_owned(),
        ),
        (
            Swatch::Area {
                color: BAND,
                opacity: 0.6,
            },
            format!("{:.0}% band", trace.coverage * 100.0),
        ),
    ];
    if !trace.forecast.is_empty() {
        entries.push((
            Swatch::Line {
                color: FORECAST,
                dash: "6 3",
            },
            "forecast and interval".to_owned(),
        ));
    }
    entries.push((
        Swatch::Dot { color: OUTSIDE },
        "outside the band".to_owned(),
    ));
    entries.push((
        Swatch::Area {
            color: ANOMALOUS,
            opacity: 0.25,
        },
        match episodes {
            1 => "1 anomaly episode".to_owned(),
            n => format!("{n} anomaly episodes"),
        },
    ));
    if trace.replayed_through_ms.is_some() {
        entries.push((
            Swatch::Area {
                color: "#cccccc",
                opacity: 0.6,
            },
            "replayed from history".to_owned(),
        ));
    }
    entries
}

pub(super) const SWATCH_WIDTH: f64 = 18.0;

pub(super) const LEGEND_GAP: f64 = 16.0;

/// Lays the legend out in rows that fit between `left` and `right`: (x, row) per entry and
/// the number of rows.
pub(super) fn legend_positions(
    entries: &[(Swatch, String)],
    left: f64,
    right: f64,
) -> (Vec<(f64, usize)>, usize) {
    let mut positions = Vec::with_capacity(entries.len());
    let (mut x, mut row) = (left, 0);
    for (_, text) in entries {
        let width = SWATCH_WIDTH + 5.0 + text.chars().count() as f64 * CHAR_WIDTH;
        if x > left && x + width > right {
            x = left;
            row += 1;
        }
        positions.push((x, row));
        x += width + LEGEND_GAP;
    }
    (positions, row + 1)
}

pub(super) fn draw_legend(
    out: &mut String,
    entries: &[(Swatch, String)],
    positions: &[(f64, usize)],
) {
    for ((swatch, text), (x, row)) in entries.iter().zip(positions) {
        let y = LEGEND_Y + *row as f64 * LEGEND_ROW;
        match swatch {
            Swatch::Line { color, dash } => {
                let _ = write!(
                    out,
                    r#"<line x1="{x:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/>"#,
                    x + SWATCH_WIDTH,
                    y - 4.0,
                    y - 4.0
                );
            }
            Swatch::Area { color, opacity } => {
                let _ = write!(
                    out,
                    r#"<rect x="{x:.1}" y="{:.1}" width="{SWATCH_WIDTH}" height="10" fill="{color}" fill-opacity="{opacity}"/>"#,
                    y - 9.0
                );
            }
            Swatch::Dot { color } => {
                let _ = write!(
                    out,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                    x + SWATCH_WIDTH / 2.0,
                    y - 4.0
                );
            }
        }
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{y:.1}">{}</text>"#,
            x + SWATCH_WIDTH + 5.0,
            escape(text)
        );
    }
}
