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

/// Time steps the x axis may tick at, in seconds.
const TIME_TICKS: [i64; 17] = [
    10, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400, 172_800, 604_800,
    1_209_600, 2_592_000,
];

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

/// The value range drawn: every observed and expected value (past and forecast), then the
/// band edges that lie within one such span of them, padded. A band edge further out is left
/// to the clip: one wild band must not flatten the whole picture.
fn value_range(trace: &Trace) -> (f64, f64) {
    let core = trace
        .points
        .iter()
        .flat_map(|p| [p.value, p.band.expected])
        .chain(trace.forecast.iter().map(|(_, band)| band.expected))
        .filter(|v| v.is_finite());
    let (mut low, mut high) = min_max(core);
    if !low.is_finite() {
        return (0.0, 1.0);
    }
    let reach = (high - low).max(1e-9 * low.abs().max(1.0));
    let edges = trace
        .points
        .iter()
        .map(|p| p.band)
        .chain(trace.forecast.iter().map(|(_, band)| *band))
        .flat_map(|band| [band.lower, band.upper])
        .filter(|v| v.is_finite() && *v >= low - reach && *v <= high + reach);
    let (edge_low, edge_high) = min_max(edges);
    if edge_low.is_finite() {
        low = low.min(edge_low);
        high = high.max(edge_high);
    }
    if high - low < 1e-12 * low.abs().max(1.0) {
        let pad = (low.abs() * 0.1).max(1.0);
        low -= pad;
        high += pad;
    }
    let pad = (high - low) * 0.06;
    (low - pad, high + pad)
}

fn min_max(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

/// Round tick values (1, 2 or 5 times a power of ten) covering `low..=high`, about `count`.
fn value_ticks(low: f64, high: f64, count: usize) -> Vec<f64> {
    let raw = (high - low) / count.max(1) as f64;
    if !(raw.is_finite() && raw > 0.0) {
        return vec![low];
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        // The round step nearest the raw one, a little finer rather than coarser.
        .find(|s| *s >= raw * 0.7)
        .unwrap_or(10.0 * magnitude);
    let mut ticks = Vec::new();
    let mut tick = (low / step).ceil() * step;
    while tick <= high && ticks.len() < 2 * count + 2 {
        ticks.push(if tick.abs() < step * 1e-9 { 0.0 } else { tick });
        tick += step;
    }
    ticks
}

/// Four significant digits, with k/M/G for large magnitudes.
fn short_number(value: f64) -> String {
    let (scaled, suffix) = match value.abs() {
        v if v >= 1e9 => (value / 1e9, "G"),
        v if v >= 1e6 => (value / 1e6, "M"),
        v if v >= 1e4 => (value / 1e3, "k"),
        _ => (value, ""),
    };
    if scaled == 0.0 {
        return "0".into();
    }
    let digits = (3 - scaled.abs().log10().floor() as i32).clamp(0, 12) as usize;
    let text = format!("{scaled:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    };
    format!("{text}{suffix}")
}

/// `HH:MM` within a day, `MM-DD HH:MM` beyond (UTC).
fn time_label(timestamp_ms: i64, span_ms: i64) -> String {
    let text = format_rfc3339(timestamp_ms);
    if span_ms > 86_400_000 {
        text[5..16].replace('T', " ")
    } else {
        text[11..16].to_owned()
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

/// One legend entry: its swatch and text.
enum Swatch {
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

fn legend(trace: &Trace, episodes: usize) -> Vec<(Swatch, String)> {
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

const SWATCH_WIDTH: f64 = 18.0;
const LEGEND_GAP: f64 = 16.0;

/// Lays the legend out in rows that fit between `left` and `right`: (x, row) per entry and
/// the number of rows.
fn legend_positions(
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

fn draw_legend(out: &mut String, entries: &[(Swatch, String)], positions: &[(f64, usize)]) {
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

/// The clip path, the value and time grids with their labels, the unit and the time zone.
fn draw_axes(out: &mut String, layout: &Layout, scale: &Scale, unit: &str, t0_ms: i64, t1_ms: i64) {
    let plot_width = layout.right - PLOT_LEFT;
    let plot_height = layout.bottom - layout.top;
    let _ = write!(
        out,
        r#"<defs><clipPath id="foretell-plot"><rect x="{PLOT_LEFT}" y="{:.1}" width="{plot_width:.1}" height="{plot_height:.1}"/></clipPath></defs>"#,
        layout.top
    );
    let rows = ((plot_height / 40.0) as usize).clamp(3, 8);
    for tick in value_ticks(scale.y0, scale.y1, rows) {
        let y = scale.y(tick);
        let _ = write!(
            out,
            r##"<line x1="{PLOT_LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="{MUTED}">{}</text>"##,
            layout.right,
            PLOT_LEFT - 6.0,
            y + 4.0,
            short_number(tick)
        );
    }
    if !unit.is_empty() {
        let middle = (layout.top + layout.bottom) / 2.0;
        let _ = write!(
            out,
            r#"<text class="unit" x="14" y="{middle:.1}" transform="rotate(-90 14 {middle:.1})" text-anchor="middle" fill="{MUTED}">{}</text>"#,
            escape(&fit_text(unit, (plot_height / CHAR_WIDTH) as usize))
        );
    }
    let span_ms = (t1_ms - t0_ms).max(1);
    let label_chars = time_label(t0_ms, span_ms).chars().count() as f64;
    // Ticks far enough apart for their labels and a gap between them.
    let room = label_chars * CHAR_WIDTH + 24.0;
    let most = (plot_width / room).floor().max(1.0) as i64;
    let tick_seconds = TIME_TICKS
        .iter()
        .copied()
        .find(|s| span_ms / (s * 1000) <= most)
        .unwrap_or(TIME_TICKS[TIME_TICKS.len() - 1]);
    let tick_ms = tick_seconds * 1000;
    let mut tick = t0_ms.div_euclid(tick_ms) * tick_ms;
    if tick < t0_ms {
        tick += tick_ms;
    }
    let half_label = label_chars * CHAR_WIDTH / 2.0;
    while tick <= t1_ms {
        let x = scale.x(tick);
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" stroke="#f0f0f0"/>"##,
            layout.top, layout.bottom
        );
        // A label that would run off the picture is left out; its grid line stays.
        if x - half_label >= 0.0 && x + half_label <= layout.width {
            let _ = write!(
                out,
                r#"<text class="time" x="{x:.1}" y="{:.1}" text-anchor="middle" fill="{MUTED}">{}</text>"#,
                layout.bottom + 16.0,
                time_label(tick, span_ms)
            );
        }
        tick += tick_ms;
    }
    let _ = write!(
        out,
        r##"<rect x="{PLOT_LEFT}" y="{:.1}" width="{plot_width:.1}" height="{plot_height:.1}" fill="none" stroke="#bbbbbb"/><text x="{PLOT_LEFT}" y="{:.1}" fill="{MUTED}">times in UTC</text>"##,
        layout.top,
        layout.bottom + 36.0
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use foretell_core::chart::TracePoint;
    use foretell_core::model::Band;

    fn band(expected: f64, half: f64) -> Band {
        Band {
            expected,
            lower: expected - half,
            upper: expected + half,
        }
    }

    fn sample_trace() -> Trace {
        let points = (0..60)
            .map(|i| {
                let value = match i {
                    40 => 180.0,
                    41 => 150.0,
                    50 => f64::NAN,
                    _ => 100.0 + (i % 5) as f64,
                };
                TracePoint {
                    timestamp_ms: 1_700_000_000_000 + i * 60_000,
                    value,
                    band: band(102.0, 6.0),
                    score: value.is_finite().then(|| (value - 102.0).abs() / 6.0),
                    probability: if i == 40 { 0.7 } else { 0.01 },
                }
            })
            .collect();
        Trace {
            points,
            excursion: Default::default(),
            forecast: (1..=10)
                .map(|s| (1_700_000_000_000 + (59 + s) * 60_000, band(103.0, 8.0)))
                .collect(),
            coverage: 0.99,
            onset_probability: foretell_core::model::ProbabilitySettings::default()
                .onset_probability(),
            replayed_through_ms: None,
        }
    }

    /// Tags open and close in order, attributes are quoted, no raw `<` or `&` in text.
    fn assert_well_formed(svg: &str) {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = svg;
        while let Some(open) = rest.find('<') {
            let text = &rest[..open];
            assert!(!text.contains('>'), "raw > in text: {text}");
            for (i, _) in text.match_indices('&') {
                assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                        .iter()
                        .any(|e| text[i..].starts_with(e)),
                    "raw & in text: {text}"
                );
            }
            let close = rest[open..].find('>').expect("tag closes") + open;
            let tag = &rest[open + 1..close];
            assert!(!tag.contains('<'), "< inside a tag: {tag}");
            assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes: {tag}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().expect("tag name");
                stack.push(name.to_owned());
            }
            rest = &rest[close + 1..];
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
    }

    fn frame<'a>(title: &'a str, subtitle: &'a str) -> Frame<'a> {
        Frame {
            title,
            subtitle,
            unit: "requests/s",
            width: DEFAULT_WIDTH,
        }
    }

    /// The numbers of an attribute of every element of `class`.
    fn attribute_of(svg: &str, class: &str, attribute: &str) -> Vec<f64> {
        svg.split(&format!("class=\"{class}\""))
            .skip(1)
            .filter_map(|rest| {
                let tag = rest.split('>').next()?;
                let value = tag.split(&format!(" {attribute}=\"")).nth(1)?;
                value.split('"').next()?.parse().ok()
            })
            .collect()
    }

    #[test]
    fn the_chart_is_well_formed_and_draws_every_part() {
        let svg = render(
            &sample_trace(),
            &frame("demo {instance=\"a\"}", "query demo"),
        );
        assert_well_formed(&svg);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"960\""));
        for class in ["band", "forecast-band", "expected", "forecast", "actual"] {
            assert!(
                svg.contains(&format!("class=\"{class}\" d=\"M")),
                "{class} missing"
            );
        }
        // The spike at 40-41 is one episode with one marker; 41 is outside without reaching
        // the onset: two points outside.
        assert_eq!(svg.matches("class=\"episode\"").count(), 1);
        assert_eq!(svg.matches("class=\"episode-peak\"").count(), 1);
        assert_eq!(svg.matches("class=\"outside\"").count(), 2);
        assert!(svg.contains("1 anomaly episode<"), "{svg}");
        assert!(svg.contains("99% band"));
        assert!(svg.contains(">requests/s</text>"), "the unit on the y axis");
        assert!(!svg.contains("class=\"replayed\""), "nothing was replayed");
        // The gap at point 50 splits the observed line in two.
        let actual = svg
            .split("class=\"actual\" d=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("actual path");
        assert_eq!(actual.matches('M').count(), 2, "{actual}");
    }

    #[test]
    fn label_values_cannot_inject_markup() {
        let title = "x{job=\"</title><script>alert(1)</script>\", a=\"&\"}";
        let svg = render(
            &sample_trace(),
            &frame(title, "<img src=x onerror=alert(1)>"),
        );
        assert_well_formed(&svg);
        assert!(!svg.contains("<script"), "{svg}");
        assert!(!svg.contains("<img"), "{svg}");
        assert!(svg.contains("&lt;/title&gt;&lt;script&gt;"));
    }

    #[test]
    fn wild_bands_and_empty_traces_still_render() {
        let mut trace = sample_trace();
        trace.points[10].band = band(100.0, 1e300);
        trace.points[11].band = band(f64::NAN, f64::NAN);
        let svg = render(&trace, &frame("t", "s"));
        assert_well_formed(&svg);
        assert!(!svg.contains("inf") && !svg.contains("NaN"), "{svg}");
        let empty = Trace {
            points: vec![],
            forecast: vec![],
            ..trace
        };
        let svg = render(&empty, &frame("t", "s"));
        assert_well_formed(&svg);
        assert!(svg.contains("no data"));
    }

    /// Issue 19, item 2: nothing collides at any width, the band is inside the plot and a
    /// day of points is drawn per pixel column.
    #[test]
    fn labels_do_not_collide_and_long_ranges_stay_small() {
        // A day at 15 s: 5,760 points, with a band wider than the values.
        let points: Vec<TracePoint> = (0..5760)
            .map(|i| {
                let value = 100.0 + 20.0 * (i as f64 / 916.0).sin();
                TracePoint {
                    timestamp_ms: 1_700_000_000_000 + i * 15_000,
                    value,
                    band: band(value, 25.0),
                    score: Some(0.2),
                    probability: 0.0,
                }
            })
            .collect();
        let trace = Trace {
            points,
            replayed_through_ms: Some(1_700_000_000_000 + 4000 * 15_000),
            forecast: vec![(1_700_000_000_000 + 5820 * 15_000, band(100.0, 30.0))],
            ..sample_trace()
        };
        for width in [MIN_WIDTH, DEFAULT_WIDTH, 1800] {
            let svg = render(&trace, &frame("t", "s"));
            let svg = if width == DEFAULT_WIDTH {
                svg
            } else {
                render(
                    &trace,
                    &Frame {
                        width,
                        ..frame("t", "s")
                    },
                )
            };
            assert_well_formed(&svg);
            assert!(svg.len() < 120_000, "{width}: {} bytes", svg.len());
            assert!(svg.contains(&format!("viewBox=\"0 0 {width} {HEIGHT}\"")));
            // Time labels: at least two, none overlapping the next (11 characters each).
            let xs = attribute_of(&svg, "time", "x");
            assert!(xs.len() >= 2, "{width}: {xs:?}");
            let label = 11.0 * CHAR_WIDTH;
            assert!(
                xs.windows(2).all(|w| w[1] - w[0] > label),
                "{width}: {xs:?}"
            );
            assert!(xs
                .iter()
                .all(|x| *x - label / 2.0 >= 0.0 && *x + label / 2.0 <= f64::from(width)));
            // Legend entries in a row do not run into each other, nor off the picture.
            let legend: Vec<(f64, f64, usize)> = svg
                .split("<text x=\"")
                .skip(1)
                .filter_map(|rest| {
                    let x: f64 = rest.split('"').next()?.parse().ok()?;
                    let y: f64 = rest.split("y=\"").nth(1)?.split('"').next()?.parse().ok()?;
                    let text = rest.split('>').nth(1)?.split('<').next()?;
                    (y < 90.0 && y != TITLE_Y && y != SUBTITLE_Y).then_some((
                        x,
                        y,
                        text.chars().count(),
                    ))
                })
                .collect();
            assert!(legend.len() >= 6, "{width}: {legend:?}");
            for pair in legend.windows(2) {
                let ((x0, y0, chars), (x1, y1, _)) = (pair[0], pair[1]);
                if y0 == y1 {
                    assert!(
                        x0 + chars as f64 * CHAR_WIDTH + 18.0 <= x1,
                        "{width}: {pair:?}"
                    );
                }
            }
            assert!(legend
                .iter()
                .all(|(x, _, chars)| x + *chars as f64 * CHAR_WIDTH <= f64::from(width)));
            // The band is drawn inside the plot: its edges are in the value range.
            let band_path = svg
                .split("class=\"band\" d=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .expect("band");
            let ys: Vec<f64> = band_path
                .split(['M', 'L', 'Z'])
                .filter_map(|p| p.split_whitespace().nth(1)?.parse().ok())
                .collect();
            let top = LEGEND_Y + 8.0;
            assert!(
                ys.iter()
                    .all(|y| *y >= top && *y <= f64::from(HEIGHT) - BOTTOM_MARGIN + 0.1),
                "{width}"
            );
            assert!(svg.contains("replayed from history</text>"));
        }
    }

    #[test]
    fn ticks_are_round_and_numbers_short() {
        assert_eq!(
            value_ticks(0.0, 10.0, 5),
            vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
        );
        assert_eq!(
            value_ticks(95.0, 121.0, 5),
            vec![95.0, 100.0, 105.0, 110.0, 115.0, 120.0]
        );
        assert_eq!(short_number(1234.56), "1235");
        assert_eq!(short_number(25_000.0), "25k");
        assert_eq!(short_number(0.012345), "0.01235");
        assert_eq!(short_number(3.0e9), "3G");
        assert_eq!(time_label(1_700_000_000_000, 3_600_000), "22:13");
        assert_eq!(time_label(1_700_000_000_000, 3 * 86_400_000), "11-14 22:13");
    }
}
