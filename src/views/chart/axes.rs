//! The chart's axes: the value range and its ticks, time ticks and their labels.

use std::fmt::Write as _;

use foretell_core::chart::Trace;
use foretell_core::timestamp::format_rfc3339;

use super::*;

/// Time steps the x axis may tick at, in seconds.
pub(super) const TIME_TICKS: [i64; 17] = [
    10, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400, 172_800, 604_800,
    1_209_600, 2_592_000,
];

/// The value range drawn: every observed and expected value (past and forecast), then the
/// band edges that lie within one such span of them, padded. A band edge further out is left
/// to the clip: one wild band must not flatten the whole picture.
pub(super) fn value_range(trace: &Trace) -> (f64, f64) {
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

pub(super) fn min_max(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

/// Round tick values (1, 2 or 5 times a power of ten) covering `low..=high`, about `count`.
pub(super) fn value_ticks(low: f64, high: f64, count: usize) -> Vec<f64> {
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
pub(super) fn short_number(value: f64) -> String {
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
pub(super) fn time_label(timestamp_ms: i64, span_ms: i64) -> String {
    let text = format_rfc3339(timestamp_ms);
    if span_ms > 86_400_000 {
        text[5..16].replace('T', " ")
    } else {
        text[11..16].to_owned()
    }
}

/// The clip path, the value and time grids with their labels, the unit and the time zone.
pub(super) fn draw_axes(
    out: &mut String,
    layout: &Layout,
    scale: &Scale,
    unit: &str,
    t0_ms: i64,
    t1_ms: i64,
) {
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
