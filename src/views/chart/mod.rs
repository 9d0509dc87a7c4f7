//! Draws a [`Trace`] as a self-contained SVG: the observed values, the band each point was judged
//! by, the forecast and its interval after the newest point, the points outside the band, and
//! one shaded span per anomaly episode ([`foretell_core::chart::episodes`]). No script, no external reference:
//! safe to serve as `image/svg+xml` and to embed with `<img>`. Every text from the outside
//! (titles hold label values) is escaped.
//!
//! The width is a parameter (pages ask for the width they show it at); with more points than
//! pixel columns, each column draws its points' extremes and widest band, so a day of 15 s
//! points stays a readable picture of bounded size.

use std::fmt::Write as _;

use foretell_core::chart::Trace;
use foretell_core::timestamp::format_rfc3339;

use super::markup::escape;

mod axes;
mod legend;

use axes::{draw_axes, value_range};
use legend::{draw_legend, legend, legend_positions};

/// How a chart is framed: its texts and its width.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// For example the series' labels.
    pub title: &'a str,
    pub subtitle: &'a str,
    /// The values' unit, written along the y axis; empty for none.
    pub unit: &'a str,
    /// In pixels; clamped to [`MIN_WIDTH`]..=[`MAX_WIDTH`].
    pub width: u32,
}

pub const DEFAULT_WIDTH: u32 = 960;
pub const MIN_WIDTH: u32 = 480;
pub const MAX_WIDTH: u32 = 2400;
pub const HEIGHT: u32 = 360;

const TITLE_Y: f64 = 20.0;
const SUBTITLE_Y: f64 = 38.0;
const LEGEND_Y: f64 = 52.0;
const LEGEND_ROW: f64 = 16.0;
const PLOT_LEFT: f64 = 72.0;
const RIGHT_MARGIN: f64 = 16.0;
/// Below the plot: the time labels, then the time zone.
const BOTTOM_MARGIN: f64 = 46.0;
/// Average advance of a character of the 11 px sans-serif text, for laying text out (wide
/// enough for digits and most label text; names in capitals may run a little longer).
const CHAR_WIDTH: f64 = 6.4;
const TITLE_CHAR_WIDTH: f64 = 8.2;

const ACTUAL: &str = "#1f77b4";
const EXPECTED: &str = "#3f3f3f";
const BAND: &str = "#9ecae1";
const FORECAST: &str = "#e6550d";
const OUTSIDE: &str = "#fd8d3c";
const ANOMALOUS: &str = "#cb181d";
const REPLAYED: &str = "#efefef";
const MUTED: &str = "#666666";

/// Where things go for one width.
struct Layout {
    width: f64,
    right: f64,
    top: f64,
    bottom: f64,
}

/// Maps data coordinates to the plot area.
struct Scale {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    t0: f64,
    t1: f64,
    y0: f64,
    y1: f64,
}

impl Scale {
    fn x(&self, timestamp_ms: i64) -> f64 {
        let span = (self.t1 - self.t0).max(1.0);
        self.left + (timestamp_ms as f64 - self.t0) / span * (self.right - self.left)
    }

    /// Clamped a little beyond the plot so that a band of 1e300 stays a finite path (the clip
    /// path cuts what is outside).
    fn y(&self, value: f64) -> f64 {
        let span = (self.y1 - self.y0).max(f64::MIN_POSITIVE);
        let y = self.bottom - (value - self.y0) / span * (self.bottom - self.top);
        y.clamp(self.top - 1000.0, self.bottom + 1000.0)
    }
}

/// `text` cut to `max_chars` characters, with an ellipsis when cut.
fn fit_text(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Appends `M x y L x y ...` for the finite points, starting a new segment after each gap.
fn polyline(out: &mut String, points: impl Iterator<Item = Option<(f64, f64)>>) {
    let mut drawing = false;
    for point in points {
        match point {
            Some((x, y)) => {
                let _ = write!(out, "{}{x:.1} {y:.1} ", if drawing { "L" } else { "M" });
                drawing = true;
            }
            None => drawing = false,
        }
    }
}

/// Appends a `<path>` of `class` through `points` (a new segment after each gap), unfilled,
/// with the stroke attributes `stroke`.
fn line(
    out: &mut String,
    class: &str,
    points: impl Iterator<Item = Option<(f64, f64)>>,
    stroke: &str,
) {
    let mut path = String::new();
    polyline(&mut path, points);
    let _ = write!(
        out,
        r#"<path class="{class}" d="{path}" fill="none" {stroke}/>"#
    );
}

/// Appends one closed area per run of finite bands (upper edge forward, lower edge back).
fn band_area(out: &mut String, bands: &[(f64, f64, f64)]) {
    for run in bands.split(|(_, lower, upper)| !(lower.is_finite() && upper.is_finite())) {
        if run.is_empty() {
            continue;
        }
        for (i, (x, _, upper)) in run.iter().enumerate() {
            let _ = write!(out, "{}{x:.1} {upper:.1} ", if i == 0 { "M" } else { "L" });
        }
        for (x, lower, _) in run.iter().rev() {
            let _ = write!(out, "L{x:.1} {lower:.1} ");
        }
        out.push_str("Z ");
    }
}

/// The points of one pixel column, reduced to what can be seen there: the observed values'
/// extremes in the order they came, the widest band, the mean expected value and the point
/// furthest outside the band. With fewer points than columns, a column is one point.
struct Column {
    x: f64,
    /// (first extreme, second extreme), in time order; `None` when all values are gaps.
    values: Option<(f64, f64)>,
    band: (f64, f64),
    expected: f64,
    outside: Option<f64>,
}

fn columns(trace: &Trace, scale: &Scale) -> Vec<Column> {
    let pixels = (scale.right - scale.left).max(1.0) as usize;
    let per_column = trace.points.len().div_ceil(pixels).max(1);
    trace
        .points
        .chunks(per_column)
        .map(|chunk| {
            let mut lowest: Option<(usize, f64)> = None;
            let mut highest: Option<(usize, f64)> = None;
            let (mut lower, mut upper) = (f64::INFINITY, f64::NEG_INFINITY);
            let (mut expected_sum, mut expected_count) = (0.0, 0usize);
            let mut outside: Option<(f64, f64)> = None;
            for (i, p) in chunk.iter().enumerate() {
                if p.value.is_finite() {
                    if lowest.is_none_or(|(_, v)| p.value < v) {
                        lowest = Some((i, p.value));
                    }
                    if highest.is_none_or(|(_, v)| p.value > v) {
                        highest = Some((i, p.value));
                    }
                }
                if p.band.lower.is_finite() && p.band.upper.is_finite() {
                    lower = lower.min(p.band.lower);
                    upper = upper.max(p.band.upper);
                }
                if p.band.expected.is_finite() {
                    expected_sum += p.band.expected;
                    expected_count += 1;
                }
                if let Some(score) = p.score.filter(|s| *s > 1.0) {
                    if outside.is_none_or(|(s, _)| score > s) {
                        outside = Some((score, p.value));
                    }
                }
            }
            let values = match (lowest, highest) {
                (Some((i, low)), Some((j, high))) if i <= j => Some((low, high)),
                (Some((_, low)), Some((_, high))) => Some((high, low)),
                _ => None,
            };
            let middle = chunk[chunk.len() / 2].timestamp_ms;
            Column {
                x: scale.x(middle),
                values,
                band: if lower.is_finite() {
                    (lower, upper)
                } else {
                    (f64::NAN, f64::NAN)
                },
                expected: if expected_count > 0 {
                    expected_sum / expected_count as f64
                } else {
                    f64::NAN
                },
                outside: outside.map(|(_, value)| value),
            }
        })
        .collect()
}

/// Renders `trace` framed by `frame`.
pub fn render(trace: &Trace, frame: &Frame) -> String {
    let width = f64::from(frame.width.clamp(MIN_WIDTH, MAX_WIDTH));
    let height = f64::from(HEIGHT);
    let mut out = String::with_capacity(24 * 1024);
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(out, "<title>{}</title>", escape(frame.title));
    let episodes = trace.episodes();
    let outside = trace
        .points
        .iter()
        .filter(|p| p.score.is_some_and(|s| s > 1.0))
        .count();
    let _ = write!(
        out,
        "<desc>{} points, {outside} outside the {:.0}% band, {} anomaly episode(s); forecast for {} steps.</desc>",
        trace.points.len(),
        trace.coverage * 100.0,
        episodes.len(),
        trace.forecast.len()
    );
    let _ = write!(
        out,
        r#"<rect width="{width}" height="{height}" fill="white"/><text x="12" y="{TITLE_Y}" font-size="14" font-weight="bold">{}</text><text x="12" y="{SUBTITLE_Y}" fill="{MUTED}">{}</text>"#,
        escape(&fit_text(
            frame.title,
            ((width - 24.0) / TITLE_CHAR_WIDTH) as usize
        )),
        escape(&fit_text(
            frame.subtitle,
            ((width - 24.0) / CHAR_WIDTH) as usize
        ))
    );
    let entries = legend(trace, episodes.len());
    let right = width - RIGHT_MARGIN;
    let (positions, rows) = legend_positions(&entries, PLOT_LEFT, right);
    let layout = Layout {
        width,
        right,
        top: LEGEND_Y + rows as f64 * LEGEND_ROW + 8.0,
        bottom: height - BOTTOM_MARGIN,
    };
    let (Some(first), Some(newest)) = (trace.points.first(), trace.points.last()) else {
        let _ = write!(
            out,
            r#"<text x="{:.0}" y="{:.0}" text-anchor="middle">no data</text></svg>"#,
            width / 2.0,
            height / 2.0
        );
        return out;
    };
    draw_legend(&mut out, &entries, &positions);
    let end_ms = trace.forecast.last().map_or(newest.timestamp_ms, |f| f.0);
    let (y0, y1) = value_range(trace);
    let scale = Scale {
        left: PLOT_LEFT,
        right: layout.right,
        top: layout.top,
        bottom: layout.bottom,
        t0: first.timestamp_ms as f64,
        t1: end_ms as f64,
        y0,
        y1,
    };
    draw_axes(
        &mut out,
        &layout,
        &scale,
        frame.unit,
        first.timestamp_ms,
        end_ms,
    );

    let _ = write!(out, r#"<g clip-path="url(#foretell-plot)">"#);
    if let Some(replayed_ms) = trace.replayed_through_ms {
        let edge = scale.x(replayed_ms);
        let _ = write!(
            out,
            r#"<rect class="replayed" x="{PLOT_LEFT}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{REPLAYED}"/><text x="{:.1}" y="{:.1}" fill="{MUTED}">replayed from history</text>"#,
            layout.top,
            (edge - PLOT_LEFT).max(0.0),
            layout.bottom - layout.top,
            PLOT_LEFT + 6.0,
            layout.top + 13.0
        );
        if replayed_ms < newest.timestamp_ms {
            // Right of the boundary when it fits there, else left of it, pointing right.
            let label = "live record";
            let fits_right = edge + 12.0 + label.len() as f64 * CHAR_WIDTH <= layout.right;
            let (x, anchor, text) = if fits_right {
                (edge + 6.0, "start", label.to_owned())
            } else {
                (edge - 6.0, "end", format!("{label} →"))
            };
            let _ = write!(
                out,
                r##"<line x1="{edge:.1}" x2="{edge:.1}" y1="{:.1}" y2="{:.1}" stroke="#aaaaaa" stroke-dasharray="3 3"/><text x="{x:.1}" y="{:.1}" text-anchor="{anchor}" fill="{MUTED}">{text}</text>"##,
                layout.top,
                layout.bottom,
                layout.top + (if fits_right { 13.0 } else { 28.0 })
            );
        }
    }
    // Episodes under everything else: one shaded span each.
    let step_ms = trace
        .points
        .get(1)
        .map_or(0, |p| p.timestamp_ms - first.timestamp_ms);
    for episode in &episodes {
        let from = scale.x(trace.points[episode.first].timestamp_ms - step_ms / 2);
        let to = scale.x(trace.points[episode.last].timestamp_ms + step_ms / 2);
        let span = (to - from).max(4.0);
        let _ = write!(
            out,
            r#"<rect class="episode" x="{:.1}" y="{:.1}" width="{span:.1}" height="{:.1}" fill="{ANOMALOUS}" fill-opacity="0.14"/>"#,
            (from + to - span) / 2.0,
            layout.top,
            layout.bottom - layout.top
        );
    }
    let drawn = columns(trace, &scale);
    // Bands: the past one each point was judged by, then the forecast's from the newest point.
    let past: Vec<(f64, f64, f64)> = drawn
        .iter()
        .map(|c| {
            (
                c.x,
                scale_or_nan(&scale, c.band.0),
                scale_or_nan(&scale, c.band.1),
            )
        })
        .collect();
    let ahead: Vec<(f64, f64, f64)> = std::iter::once((
        scale.x(newest.timestamp_ms),
        scale_or_nan(&scale, newest.band.lower),
        scale_or_nan(&scale, newest.band.upper),
    ))
    .chain(trace.forecast.iter().map(|(t, band)| {
        (
            scale.x(*t),
            scale_or_nan(&scale, band.lower),
            scale_or_nan(&scale, band.upper),
        )
    }))
    .collect();
    let mut path = String::new();
    band_area(&mut path, &past);
    let _ = write!(
        out,
        r#"<path class="band" d="{path}" fill="{BAND}" fill-opacity="0.5" stroke="none"/>"#
    );
    if !trace.forecast.is_empty() {
        path.clear();
        band_area(&mut path, &ahead);
        let _ = write!(
            out,
            r#"<path class="forecast-band" d="{path}" fill="{FORECAST}" fill-opacity="0.18" stroke="none"/>"#
        );
    }
    line(
        &mut out,
        "expected",
        drawn
            .iter()
            .map(|c| c.expected.is_finite().then(|| (c.x, scale.y(c.expected)))),
        &format!(r#"stroke="{EXPECTED}" stroke-width="1.3" stroke-dasharray="5 3""#),
    );
    line(
        &mut out,
        "forecast",
        std::iter::once(Some((scale.x(newest.timestamp_ms), scale.y(newest.value))))
            .filter(|_| newest.value.is_finite())
            .chain(trace.forecast.iter().map(|(t, band)| {
                band.expected
                    .is_finite()
                    .then(|| (scale.x(*t), scale.y(band.expected)))
            })),
        &format!(r#"stroke="{FORECAST}" stroke-width="1.8" stroke-dasharray="6 3""#),
    );
    line(
        &mut out,
        "actual",
        drawn.iter().flat_map(|c| match c.values {
            Some((a, b)) => [Some((c.x, scale.y(a))), Some((c.x, scale.y(b)))],
            None => [None, None],
        }),
        &format!(r#"stroke="{ACTUAL}" stroke-width="1.5" stroke-linejoin="round""#),
    );
    for column in &drawn {
        if let Some(value) = column.outside {
            let _ = write!(
                out,
                r#"<circle class="outside" cx="{:.1}" cy="{:.1}" r="2.5" fill="{OUTSIDE}"/>"#,
                column.x,
                scale.y(value)
            );
        }
    }
    for episode in &episodes {
        let peak = &trace.points[episode.peak];
        let value = if peak.value.is_finite() {
            peak.value
        } else {
            peak.band.expected
        };
        if value.is_finite() {
            let _ = write!(
                out,
                r#"<circle class="episode-peak" cx="{:.1}" cy="{:.1}" r="5" fill="{ANOMALOUS}" stroke="white" stroke-width="1.5"><title>anomaly episode from {} to {}, probability up to {:.2}</title></circle>"#,
                scale.x(peak.timestamp_ms),
                scale.y(value),
                format_rfc3339(trace.points[episode.first].timestamp_ms),
                format_rfc3339(trace.points[episode.last].timestamp_ms),
                peak.probability
            );
        }
    }
    out.push_str("</g>");
    let now_x = scale.x(newest.timestamp_ms);
    let _ = write!(
        out,
        r##"<line x1="{now_x:.1}" x2="{now_x:.1}" y1="{:.1}" y2="{:.1}" stroke="#999999" stroke-dasharray="2 2"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="{MUTED}">newest</text>"##,
        layout.top,
        layout.bottom,
        now_x - 4.0,
        layout.bottom - 6.0
    );
    out.push_str("</svg>");
    out
}

/// `scale.y(value)`, NaN kept (a gap in the band).
fn scale_or_nan(scale: &Scale, value: f64) -> f64 {
    if value.is_finite() {
        scale.y(value)
    } else {
        f64::NAN
    }
}

#[cfg(test)]
mod tests;
