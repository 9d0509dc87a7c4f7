//! Draws a [`Trace`] as a self-contained SVG: the observed values, the band each point was judged
//! by, the forecast after the newest point, and the points outside the band or anomalous
//! marked. No script, no external reference: safe to serve as `image/svg+xml` and to embed with
//! `<img>`. Every text from the outside (titles hold label values) is escaped.

use std::fmt::Write as _;

use super::Trace;
use crate::markup::escape;
use crate::timestamp::format_rfc3339;

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 330.0;
const PLOT_LEFT: f64 = 70.0;
const PLOT_RIGHT: f64 = 784.0;
const PLOT_TOP: f64 = 52.0;
const PLOT_BOTTOM: f64 = 282.0;

const ACTUAL: &str = "#1f77b4";
const BAND: &str = "#9ecae1";
const FORECAST: &str = "#fd8d3c";
const OUTSIDE: &str = "#e6550d";
const ANOMALOUS: &str = "#cb181d";
const MUTED: &str = "#666666";

/// Time steps the x axis may tick at, in seconds.
const TIME_TICKS: [i64; 16] = [
    10, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400, 172_800, 604_800,
    2_592_000,
];

/// Maps data coordinates to the plot area.
struct Scale {
    t0: f64,
    t1: f64,
    y0: f64,
    y1: f64,
}

impl Scale {
    fn x(&self, timestamp_ms: i64) -> f64 {
        let span = (self.t1 - self.t0).max(1.0);
        PLOT_LEFT + (timestamp_ms as f64 - self.t0) / span * (PLOT_RIGHT - PLOT_LEFT)
    }

    /// Clamped a little beyond the plot so that a band of 1e300 stays a finite path (the clip
    /// path cuts what is outside).
    fn y(&self, value: f64) -> f64 {
        let span = (self.y1 - self.y0).max(f64::MIN_POSITIVE);
        let y = PLOT_BOTTOM - (value - self.y0) / span * (PLOT_BOTTOM - PLOT_TOP);
        y.clamp(PLOT_TOP - 1000.0, PLOT_BOTTOM + 1000.0)
    }
}

/// The value range drawn: every observed value and every expected value (past and forecast),
/// padded. Bands are left out of it on purpose: one wild band would flatten the whole picture.
fn value_range(trace: &Trace) -> (f64, f64) {
    let values = trace
        .points
        .iter()
        .flat_map(|p| [p.value, p.band.expected])
        .chain(trace.forecast.iter().map(|(_, band)| band.expected))
        .filter(|v| v.is_finite());
    let (mut low, mut high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !low.is_finite() {
        return (0.0, 1.0);
    }
    if high - low < 1e-12 * low.abs().max(1.0) {
        let pad = (low.abs() * 0.1).max(1.0);
        low -= pad;
        high += pad;
    }
    let pad = (high - low) * 0.12;
    (low - pad, high + pad)
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

/// Renders `trace` with a title (for example the series' labels) and a subtitle.
pub fn render(trace: &Trace, title: &str, subtitle: &str) -> String {
    let mut out = String::with_capacity(16 * 1024 + trace.points.len() * 64);
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(out, "<title>{}</title>", escape(title));
    let outside = trace
        .points
        .iter()
        .filter(|p| p.score.is_some_and(|s| s > 1.0))
        .count();
    let _ = write!(
        out,
        "<desc>{} points, {outside} outside the {:.0}% band; forecast for {} steps.</desc>",
        trace.points.len(),
        trace.coverage * 100.0,
        trace.forecast.len()
    );
    let _ = write!(
        out,
        r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/><text x="12" y="20" font-size="14" font-weight="bold">{}</text><text x="12" y="38" fill="{MUTED}">{}</text>"#,
        escape(title),
        escape(subtitle)
    );
    let (Some(first), Some(newest)) = (trace.points.first(), trace.points.last()) else {
        out.push_str(r#"<text x="400" y="170" text-anchor="middle">no data</text></svg>"#);
        return out;
    };
    let end_ms = trace.forecast.last().map_or(newest.timestamp_ms, |f| f.0);
    let (y0, y1) = value_range(trace);
    let scale = Scale {
        t0: first.timestamp_ms as f64,
        t1: end_ms as f64,
        y0,
        y1,
    };

    // Axes, grid and tick labels.
    let _ = write!(
        out,
        r#"<defs><clipPath id="foretell-plot"><rect x="{PLOT_LEFT}" y="{PLOT_TOP}" width="{}" height="{}"/></clipPath></defs>"#,
        PLOT_RIGHT - PLOT_LEFT,
        PLOT_BOTTOM - PLOT_TOP
    );
    for tick in value_ticks(y0, y1, 5) {
        let y = scale.y(tick);
        let _ = write!(
            out,
            r##"<line x1="{PLOT_LEFT}" x2="{PLOT_RIGHT}" y1="{y:.1}" y2="{y:.1}" stroke="#e5e5e5"/><text x="{}" y="{:.1}" text-anchor="end" fill="{MUTED}">{}</text>"##,
            PLOT_LEFT - 6.0,
            y + 4.0,
            short_number(tick)
        );
    }
    let span_ms = end_ms - first.timestamp_ms;
    let tick_seconds = TIME_TICKS
        .iter()
        .copied()
        .find(|s| s * 1000 * 8 >= span_ms)
        .unwrap_or(2_592_000);
    let tick_ms = tick_seconds * 1000;
    let mut tick = first.timestamp_ms.div_euclid(tick_ms) * tick_ms;
    if tick < first.timestamp_ms {
        tick += tick_ms;
    }
    while tick <= end_ms {
        let x = scale.x(tick);
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{PLOT_TOP}" y2="{PLOT_BOTTOM}" stroke="#f0f0f0"/><text x="{x:.1}" y="{}" text-anchor="middle" fill="{MUTED}">{}</text>"##,
            PLOT_BOTTOM + 16.0,
            time_label(tick, span_ms)
        );
        tick += tick_ms;
    }
    let _ = write!(
        out,
        r##"<rect x="{PLOT_LEFT}" y="{PLOT_TOP}" width="{}" height="{}" fill="none" stroke="#bbbbbb"/><text x="{PLOT_RIGHT}" y="{}" text-anchor="end" fill="{MUTED}">UTC</text>"##,
        PLOT_RIGHT - PLOT_LEFT,
        PLOT_BOTTOM - PLOT_TOP,
        PLOT_BOTTOM + 30.0
    );

    out.push_str(r#"<g clip-path="url(#foretell-plot)">"#);
    // Bands: the past one each point was judged by, then the forecast's.
    let past: Vec<(f64, f64, f64)> = trace
        .points
        .iter()
        .map(|p| {
            (
                scale.x(p.timestamp_ms),
                scale.y(p.band.lower),
                scale.y(p.band.upper),
            )
        })
        .collect();
    let ahead: Vec<(f64, f64, f64)> = std::iter::once((
        scale.x(newest.timestamp_ms),
        scale.y(newest.band.lower),
        scale.y(newest.band.upper),
    ))
    .chain(
        trace
            .forecast
            .iter()
            .map(|(t, band)| (scale.x(*t), scale.y(band.lower), scale.y(band.upper))),
    )
    .collect();
    let mut path = String::new();
    band_area(&mut path, &past);
    let _ = write!(
        out,
        r#"<path class="band" d="{path}" fill="{BAND}" fill-opacity="0.45" stroke="none"/>"#
    );
    path.clear();
    band_area(&mut path, &ahead);
    let _ = write!(
        out,
        r#"<path class="forecast-band" d="{path}" fill="{FORECAST}" fill-opacity="0.25" stroke="none"/>"#
    );
    // Expected values, then the forecast's expected path, then what was observed.
    path.clear();
    polyline(
        &mut path,
        trace.points.iter().map(|p| {
            p.band
                .expected
                .is_finite()
                .then(|| (scale.x(p.timestamp_ms), scale.y(p.band.expected)))
        }),
    );
    let _ = write!(
        out,
        r#"<path class="expected" d="{path}" fill="none" stroke="{MUTED}" stroke-width="1" stroke-dasharray="4 3"/>"#
    );
    path.clear();
    polyline(
        &mut path,
        std::iter::once(Some((scale.x(newest.timestamp_ms), scale.y(newest.value))))
            .filter(|_| newest.value.is_finite())
            .chain(trace.forecast.iter().map(|(t, band)| {
                band.expected
                    .is_finite()
                    .then(|| (scale.x(*t), scale.y(band.expected)))
            })),
    );
    let _ = write!(
        out,
        r#"<path class="forecast" d="{path}" fill="none" stroke="{FORECAST}" stroke-width="1.5" stroke-dasharray="6 3"/>"#
    );
    path.clear();
    polyline(
        &mut path,
        trace.points.iter().map(|p| {
            p.value
                .is_finite()
                .then(|| (scale.x(p.timestamp_ms), scale.y(p.value)))
        }),
    );
    let _ = write!(
        out,
        r#"<path class="actual" d="{path}" fill="none" stroke="{ACTUAL}" stroke-width="1.5"/>"#
    );
    // Marks: outside the band (orange), anomalous by probability (red, larger).
    for point in trace.points.iter().filter(|p| p.value.is_finite()) {
        let (x, y) = (scale.x(point.timestamp_ms), scale.y(point.value));
        if point.probability >= trace.onset_probability {
            let _ = write!(
                out,
                r#"<circle class="anomalous" cx="{x:.1}" cy="{y:.1}" r="4" fill="{ANOMALOUS}"/>"#
            );
        } else if point.score.is_some_and(|s| s > 1.0) {
            let _ = write!(
                out,
                r#"<circle class="outside" cx="{x:.1}" cy="{y:.1}" r="2.5" fill="{OUTSIDE}"/>"#
            );
        }
    }
    out.push_str("</g>");
    let now_x = scale.x(newest.timestamp_ms);
    let _ = write!(
        out,
        r##"<line x1="{now_x:.1}" x2="{now_x:.1}" y1="{PLOT_TOP}" y2="{PLOT_BOTTOM}" stroke="#999999" stroke-dasharray="2 2"/><text x="{now_x:.1}" y="{}" text-anchor="middle" fill="{MUTED}">newest</text>"##,
        PLOT_TOP - 3.0
    );

    // Legend.
    let legend = [
        (ACTUAL, "observed".to_owned()),
        (MUTED, "expected".to_owned()),
        (BAND, format!("{:.0}% band", trace.coverage * 100.0)),
        (FORECAST, "forecast".to_owned()),
        (OUTSIDE, "outside the band".to_owned()),
        (ANOMALOUS, "anomalous".to_owned()),
    ];
    let mut x = PLOT_LEFT;
    for (color, label) in legend {
        let _ = write!(
            out,
            r#"<rect x="{x:.1}" y="{}" width="10" height="10" fill="{color}"/><text x="{:.1}" y="{}">{label}</text>"#,
            HEIGHT - 22.0,
            x + 14.0,
            HEIGHT - 13.0
        );
        x += 22.0 + label.len() as f64 * 6.0;
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::TracePoint;
    use crate::model::Band;

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
            onset_probability: crate::model::ProbabilitySettings::default().onset_probability(),
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

    #[test]
    fn the_chart_is_well_formed_and_draws_every_part() {
        let svg = render(&sample_trace(), "demo {instance=\"a\"}", "query demo");
        assert_well_formed(&svg);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        for class in ["band", "forecast-band", "expected", "forecast", "actual"] {
            assert!(
                svg.contains(&format!("class=\"{class}\" d=\"M")),
                "{class} missing"
            );
        }
        assert_eq!(svg.matches("class=\"anomalous\"").count(), 1);
        assert_eq!(svg.matches("class=\"outside\"").count(), 1);
        assert!(svg.contains("99% band"));
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
        let svg = render(&sample_trace(), title, "<img src=x onerror=alert(1)>");
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
        let svg = render(&trace, "t", "s");
        assert_well_formed(&svg);
        assert!(!svg.contains("inf") && !svg.contains("NaN"), "{svg}");
        let empty = Trace {
            points: vec![],
            forecast: vec![],
            ..trace
        };
        let svg = render(&empty, "t", "s");
        assert_well_formed(&svg);
        assert!(svg.contains("no data"));
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
