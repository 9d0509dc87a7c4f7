//! The Prometheus text exposition format 0.0.4 and OpenMetrics 1.0 text, as a pure encoder
//! into a `String`.
//!
//! The exporter renders the current [`Snapshot`] plus self-metrics on every scrape. Model
//! outputs carry pre-escaped label blocks, so a scrape is mostly string concatenation. The two
//! formats differ only where this module writes metadata: an OpenMetrics counter family is
//! named without its samples' `_total`, help text escapes `"` too, and the exposition ends
//! with `# EOF` ([`Format::close`]). Which one a scrape gets is [`Format::negotiate`]d from
//! its `Accept` header, as Prometheus' own client libraries do.

use std::convert::Infallible;

use crate::labels::Labels;
use crate::model::Band;
use crate::peers::PeerVerdict;
use crate::snapshot::{QueryOutput, SeriesOutput, SeriesState, Snapshot, HORIZON_LABEL};

/// Content type of the text format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of OpenMetrics 1.0 text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The exposition format of one scrape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format 0.0.4: what every scraper reads.
    #[default]
    Text,
    /// OpenMetrics 1.0 text, for scrapers that ask for it (Prometheus does, first).
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }

    /// The format an `Accept` header (its values, in order) asks for: the media range with the
    /// highest `q` that names one of the two (OpenMetrics at version 1.0.0 or unversioned,
    /// text/plain at 0.0.4 or unversioned; `*/*` and `text/*` mean the text format), the first
    /// listed on a tie. Without any, the text format: it is what a scraper that asks for
    /// nothing in particular (curl, an old Prometheus) reads.
    pub fn negotiate<'a>(accept: impl IntoIterator<Item = &'a str>) -> Format {
        let mut best: Option<(f64, Format)> = None;
        for range in accept.into_iter().flat_map(|value| value.split(',')) {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let mut quality = 1.0;
            let mut version = None;
            for parameter in parts {
                let Some((key, value)) = parameter.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match key.trim().to_ascii_lowercase().as_str() {
                    "q" => quality = value.parse::<f64>().unwrap_or(0.0),
                    "version" => version = Some(value.to_owned()),
                    _ => {}
                }
            }
            let format = match (media.as_str(), version.as_deref()) {
                ("application/openmetrics-text", None | Some("1.0.0")) => Format::OpenMetrics,
                ("text/plain", None | Some("0.0.4")) | ("text/*" | "*/*", _) => Format::Text,
                _ => continue,
            };
            if quality > 0.0 && best.is_none_or(|(q, _)| quality > q) {
                best = Some((quality, format));
            }
        }
        best.map_or(Format::Text, |(_, format)| format)
    }

    /// Ends an exposition: OpenMetrics requires `# EOF` after the last family.
    pub fn close(self, out: &mut String) {
        if self == Format::OpenMetrics {
            out.push_str("# EOF\n");
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
}

impl MetricType {
    fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
        }
    }
}

/// Cumulative histogram values: `bucket_counts[i]` counts observations `<= upper_bounds[i]`
/// (not cumulative yet; the writer accumulates), `count` includes the `+Inf` bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramValues<'a> {
    pub upper_bounds: &'a [f64],
    pub bucket_counts: &'a [u64],
    pub sum: f64,
    pub count: u64,
}

/// Appends families and samples to a text buffer.
pub struct TextWriter<'a> {
    out: &'a mut String,
    format: Format,
    /// The sample name of the family opened last, for [`TextWriter::value`]: a family's name
    /// is written once, where it is opened.
    family: String,
}

impl<'a> TextWriter<'a> {
    /// A writer of the text format 0.0.4.
    pub fn new(out: &'a mut String) -> Self {
        Self::with_format(out, Format::Text)
    }

    pub fn with_format(out: &'a mut String, format: Format) -> Self {
        TextWriter {
            out,
            format,
            family: String::new(),
        }
    }

    /// Writes the `# HELP` and `# TYPE` lines that open a family. `name` is the name of its
    /// samples (a counter's ends in `_total`, which OpenMetrics leaves out of the family's).
    pub fn family(&mut self, name: &str, help: &str, metric_type: MetricType) {
        debug_assert!(
            metric_type != MetricType::Counter || name.ends_with("_total"),
            "counter {name} must end in _total"
        );
        self.family.clear();
        self.family.push_str(name);
        let (name, quote_help) = match self.format {
            Format::Text => (name, false),
            Format::OpenMetrics if metric_type == MetricType::Counter => {
                (name.strip_suffix("_total").unwrap_or(name), true)
            }
            Format::OpenMetrics => (name, true),
        };
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        escape_into(self.out, help, quote_help);
        self.out.push_str("\n# TYPE ");
        self.out.push_str(name);
        self.out.push(' ');
        self.out.push_str(metric_type.as_str());
        self.out.push('\n');
    }

    /// Writes one sample of the family opened last (see [`TextWriter::family`]).
    pub fn value(&mut self, labels: &[(&str, &str)], value: f64) {
        let name = std::mem::take(&mut self.family);
        self.sample(&name, labels, value);
        self.family = name;
    }

    /// Writes one sample with labels given as pairs (values escaped here).
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, label_value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(label);
                self.out.push_str("=\"");
                escape_into(self.out, label_value, true);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        push_value(self.out, value);
        self.out.push('\n');
    }

    /// Writes the `_bucket`, `_sum` and `_count` samples of one histogram of the family opened
    /// last.
    pub fn histogram(&mut self, labels: &[(&str, &str)], values: &HistogramValues) {
        let name = std::mem::take(&mut self.family);
        let bucket_name = format!("{name}_bucket");
        let mut cumulative = 0u64;
        for (bound, count) in values.upper_bounds.iter().zip(values.bucket_counts) {
            cumulative += count;
            let le = format_value(*bound);
            let mut with_le: Vec<(&str, &str)> = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket_name, &with_le, cumulative as f64);
        }
        let mut with_le: Vec<(&str, &str)> = labels.to_vec();
        with_le.push(("le", "+Inf"));
        self.sample(&bucket_name, &with_le, values.count as f64);
        self.sample(&format!("{name}_sum"), labels, values.sum);
        self.sample(&format!("{name}_count"), labels, values.count as f64);
        self.family = name;
    }
}

/// Renders `name="value",...` for a label set, values escaped, without braces.
pub fn label_block(labels: &Labels) -> String {
    let mut block = String::new();
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            block.push(',');
        }
        block.push_str(name);
        block.push_str("=\"");
        escape_into(&mut block, value, true);
        block.push('"');
    }
    block
}

/// Escapes `\` and newline, and `"` when `quotes` (label values in both formats, help text
/// in OpenMetrics), as the formats require.
fn escape_into(out: &mut String, text: &str, quotes: bool) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            other => out.push(other),
        }
    }
}

/// Formats a sample value: `NaN`, `+Inf`, `-Inf`, or the shortest round-trip decimal.
pub fn format_value(value: f64) -> String {
    let mut out = String::new();
    push_value(&mut out, value);
    out
}

fn push_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value == f64::INFINITY {
        out.push_str("+Inf");
    } else if value == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        // Integers print without a fraction ("3", not "3.0"), as Prometheus' own clients do.
        out.push_str(itoa::Buffer::new().format(value as i64));
    } else {
        // The shortest decimal that reads back as the same f64 (Ryū), without the formatting
        // machinery: this runs for every sample of every scrape.
        out.push_str(ryu::Buffer::new().format_finite(value));
    }
}

/// Names of the per-series families, in the order they are rendered.
pub mod names {
    pub const BASELINE: &str = "foretell_baseline";
    pub const BASELINE_LOWER: &str = "foretell_baseline_lower";
    pub const BASELINE_UPPER: &str = "foretell_baseline_upper";
    pub const ANOMALY_SCORE: &str = "foretell_anomaly_score";
    pub const ANOMALY_PROBABILITY: &str = "foretell_anomaly_probability";
    pub const MODEL_READY: &str = "foretell_model_ready";
    pub const FORECAST: &str = "foretell_forecast";
    pub const FORECAST_LOWER: &str = "foretell_forecast_lower";
    pub const FORECAST_UPPER: &str = "foretell_forecast_upper";
    pub const THRESHOLD_ETA: &str = "foretell_threshold_eta_seconds";
    pub const PEER_OUTLIER_SCORE: &str = "foretell_peer_outlier_score";
    pub const PEER_OUTLIER: &str = "foretell_peer_outlier";
}

type Pick = fn(&SeriesState) -> Option<f64>;
type PickBand = fn(&Band) -> f64;

fn ready_band(state: &SeriesState) -> Option<Band> {
    match state {
        SeriesState::Ready { band, .. } => Some(*band),
        SeriesState::NotReady => None,
    }
}

/// The families exported once per series: name, help, and the value (none: not exported).
const PER_SERIES: [(&str, &str, Pick); 6] = [
    (
        names::BASELINE,
        "Expected value of the source series at its newest point, predicted by its model before the point arrived.",
        |s| ready_band(s).map(|b| b.expected),
    ),
    (
        names::BASELINE_LOWER,
        "Lower edge of the prediction band of the newest point at the configured coverage.",
        |s| ready_band(s).map(|b| b.lower),
    ),
    (
        names::BASELINE_UPPER,
        "Upper edge of the prediction band of the newest point at the configured coverage.",
        |s| ready_band(s).map(|b| b.upper),
    ),
    (
        names::ANOMALY_SCORE,
        "Distance of the newest point from the baseline in band half-widths: below 1 inside the band, 1 on its edge, above 1 outside.",
        |s| match s {
            SeriesState::Ready { score, .. } => *score,
            SeriesState::NotReady => None,
        },
    ),
    (
        names::ANOMALY_PROBABILITY,
        "Probability in [0, 1] that the series is behaving anomalously, from its recent surprise against its usual surprise.",
        |s| match s {
            SeriesState::Ready { probability, .. } => Some(*probability),
            SeriesState::NotReady => None,
        },
    ),
    (
        names::MODEL_READY,
        "1 when the series has enough history for its model, 0 while it is still learning.",
        |s| match s {
            SeriesState::Ready { .. } => Some(1.0),
            SeriesState::NotReady => Some(0.0),
        },
    ),
];
/// The families exported once per series and forecast horizon.
const PER_HORIZON: [(&str, &str, PickBand); 3] = [
    (
        names::FORECAST,
        "Forecast of the source series at the horizon after its newest point (stamped now, never in the future).",
        |b| b.expected,
    ),
    (
        names::FORECAST_LOWER,
        "Lower edge of the forecast's prediction interval at the configured coverage.",
        |b| b.lower,
    ),
    (
        names::FORECAST_UPPER,
        "Upper edge of the forecast's prediction interval at the configured coverage.",
        |b| b.upper,
    ),
];
/// Calls `emit(family, horizon, value)` for every sample one series exports, the same samples
/// the text format renders (remote write sends them series by series).
pub fn for_each_sample(
    series: &SeriesOutput,
    horizons: &[String],
    mut emit: impl FnMut(&'static str, Option<&str>, f64),
) {
    for (name, _, pick) in PER_SERIES {
        if let Some(value) = pick(&series.state) {
            emit(name, None, value);
        }
    }
    if let SeriesState::Ready {
        forecasts,
        threshold_eta_seconds,
        ..
    } = &series.state
    {
        for (name, _, pick) in PER_HORIZON {
            for (horizon, band) in horizons.iter().zip(forecasts) {
                emit(name, Some(horizon), pick(band));
            }
        }
        if let Some(eta) = threshold_eta_seconds {
            emit(names::THRESHOLD_ETA, None, *eta);
        }
    }
    if let Some(peer) = &series.peer {
        for (name, _, pick) in PEER_FAMILIES {
            emit(name, None, pick(peer));
        }
    }
}

/// Renders every series of the snapshot: one family at a time, all series in each.
pub fn render_snapshot(snapshot: &Snapshot, out: &mut String) {
    render_snapshot_limited(snapshot, out, usize::MAX, Format::Text);
}

/// Renders the first `max_series` series of the snapshot (in query order, then series order)
/// with all their families, and returns how many series were left out: a global cap on what
/// one scrape carries, whatever each query's own `max_series`. A scraper that renders again
/// and again keeps a [`ScrapeRenderer`] instead, so its buffers stay allocated between scrapes.
pub fn render_snapshot_limited(
    snapshot: &Snapshot,
    out: &mut String,
    max_series: usize,
    format: Format,
) -> usize {
    let mut renderer = ScrapeRenderer::default();
    let rendered = renderer.render(snapshot, max_series, format, &mut |piece| {
        out.push_str(piece);
        Ok::<(), Infallible>(())
    });
    match rendered {
        Ok(left_out) => left_out,
        Err(never) => match never {},
    }
}

/// Bytes of text handed to the sink at a time: small enough to stay in the cache between the
/// renderer writing a piece and the sink (a compressor, or the body) reading it.
const PIECE_BYTES: usize = 64 * 1024;

/// Writes the per-series families of a scrape, family after family, in pieces to a sink.
///
/// The text formats want a family's samples together, one family after the other. Read
/// straight from the snapshot once per family, every series' label block is a pointer chase
/// into a heap of a hundred thousand small strings (14 MB at 100,000 series), missed in cache
/// on each of the nine or more passes: half the render's time went there. So a render first
/// copies the blocks of the series it shows into one contiguous buffer (the only pass with
/// those misses), then writes each family in a sequential pass over that buffer and the
/// series (the forecasts, another heap allocation per series read by three families, are
/// gathered the same way). The text leaves in pieces of 64 KB (to a gzip encoder, or
/// the body), so no copy of the whole exposition is kept: what stays allocated between scrapes
/// is the gathered blocks and forecasts, about an eighth of the text, and one piece. (Buffering
/// each family's samples instead, as an earlier renderer did, was 12 % faster on the text
/// alone but kept the whole text, 120 MB at 100,000 series, between scrapes.)
#[derive(Debug, Default)]
pub struct ScrapeRenderer {
    /// The label blocks of the shown series, one after the other.
    blocks: String,
    /// The forecasts of the shown series, one after the other (a series' forecasts are a
    /// heap allocation of their own, read again by each forecast family's pass).
    forecasts: Vec<Band>,
    /// Where each shown series' block ends in `blocks` and its forecasts in `forecasts`, in
    /// render order.
    ends: Vec<(usize, usize)>,
    piece: String,
}

const THRESHOLD_ETA_HELP: &str = "Seconds until the forecast crosses the query's threshold (0 when already crossed); absent when it does not within the search horizon.";

/// One shown series in a family pass: its query, its output, its label block and forecasts.
type Shown<'a> = (&'a QueryOutput, &'a SeriesOutput, &'a str, &'a [Band]);

impl ScrapeRenderer {
    /// Renders the first `max_series` series of the snapshot, handing the text to `sink` in
    /// pieces, and returns how many series were left out. Stops at the sink's first error.
    pub fn render<E>(
        &mut self,
        snapshot: &Snapshot,
        max_series: usize,
        format: Format,
        sink: &mut dyn FnMut(&str) -> Result<(), E>,
    ) -> Result<usize, E> {
        self.blocks.clear();
        self.forecasts.clear();
        self.ends.clear();
        self.piece.clear();
        for series in snapshot.series().take(max_series) {
            self.blocks.push_str(series.label_block());
            if let SeriesState::Ready { forecasts, .. } = &series.state {
                self.forecasts.extend_from_slice(forecasts);
            }
            self.ends.push((self.blocks.len(), self.forecasts.len()));
        }
        let mut out = Pieces {
            piece: &mut self.piece,
            sink,
            format,
            family: ("", ""),
            opened: false,
        };
        let (blocks, forecasts) = (self.blocks.as_str(), self.forecasts.as_slice());
        let ends = self.ends.as_slice();
        let shown = || {
            let starts = std::iter::once((0, 0)).chain(ends.iter().copied());
            let parts = starts
                .zip(ends)
                .map(|((block, band), &(block_end, band_end))| {
                    (&blocks[block..block_end], &forecasts[band..band_end])
                });
            snapshot
                .queries()
                .flat_map(|query| query.series.iter().map(move |series| (query, series)))
                .zip(parts)
                .map(|((query, series), (block, bands))| (query, series, block, bands))
        };
        for (name, help, pick) in PER_SERIES {
            out.family(name, help, shown(), |(_, series, block, _): Shown, out| {
                if let Some(value) = pick(&series.state) {
                    out.sample(name, block, None, value)?;
                }
                Ok(())
            })?;
        }
        for (name, help, pick) in PER_HORIZON {
            out.family(
                name,
                help,
                shown(),
                |(query, _, block, bands): Shown, out| {
                    for (horizon, band) in query.horizons.iter().zip(bands) {
                        out.sample(name, block, Some((HORIZON_LABEL, horizon)), pick(band))?;
                    }
                    Ok(())
                },
            )?;
        }
        out.family(
            names::THRESHOLD_ETA,
            THRESHOLD_ETA_HELP,
            shown(),
            |(_, series, block, _): Shown, out| match &series.state {
                SeriesState::Ready {
                    threshold_eta_seconds: Some(eta),
                    ..
                } => out.sample(names::THRESHOLD_ETA, block, None, *eta),
                _ => Ok(()),
            },
        )?;
        for (name, help, pick) in PEER_FAMILIES {
            out.family(
                name,
                help,
                shown(),
                |(_, series, block, _): Shown, out| match &series.peer {
                    Some(verdict) => out.sample(name, block, None, pick(verdict)),
                    None => Ok(()),
                },
            )?;
        }
        out.flush()?;
        Ok(snapshot.series().count().saturating_sub(max_series))
    }

    /// Bytes the buffers hold allocated (kept between renders).
    pub fn capacity(&self) -> usize {
        self.blocks.capacity()
            + self.forecasts.capacity() * std::mem::size_of::<Band>()
            + self.ends.capacity() * std::mem::size_of::<(usize, usize)>()
            + self.piece.capacity()
    }
}

/// The piece being written and where it goes when full.
struct Pieces<'a, E> {
    piece: &'a mut String,
    sink: &'a mut dyn FnMut(&str) -> Result<(), E>,
    format: Format,
    /// The family being written: name and help, for its header.
    family: (&'static str, &'static str),
    /// Its header is written (before its first sample: a family without samples has none).
    opened: bool,
}

impl<E> Pieces<'_, E> {
    /// Writes one family: `each` is called for every shown series and writes its samples.
    fn family<'s>(
        &mut self,
        name: &'static str,
        help: &'static str,
        shown: impl Iterator<Item = Shown<'s>>,
        mut each: impl FnMut(Shown<'s>, &mut Self) -> Result<(), E>,
    ) -> Result<(), E> {
        self.family = (name, help);
        self.opened = false;
        for series in shown {
            each(series, self)?;
        }
        Ok(())
    }

    /// One sample of the current family, its header first if it is the first.
    fn sample(
        &mut self,
        name: &str,
        block: &str,
        extra: Option<(&str, &str)>,
        value: f64,
    ) -> Result<(), E> {
        if !self.opened {
            self.opened = true;
            let (family, help) = self.family;
            TextWriter::with_format(self.piece, self.format).family(
                family,
                help,
                MetricType::Gauge,
            );
        }
        push_sample(self.piece, name, block, extra, value);
        if self.piece.len() >= PIECE_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), E> {
        if !self.piece.is_empty() {
            (self.sink)(self.piece)?;
            self.piece.clear();
        }
        Ok(())
    }
}
/// One sample line: `name{block[,extra]} value`.
fn push_sample(out: &mut String, name: &str, block: &str, extra: Option<(&str, &str)>, value: f64) {
    out.push_str(name);
    match (block.is_empty(), extra) {
        (true, None) => {}
        (false, None) => {
            out.push('{');
            out.push_str(block);
            out.push('}');
        }
        (_, Some((label, label_value))) => {
            out.push('{');
            if !block.is_empty() {
                out.push_str(block);
                out.push(',');
            }
            out.push_str(label);
            out.push_str("=\"");
            escape_into(out, label_value, true);
            out.push('"');
            out.push('}');
        }
    }
    out.push(' ');
    push_value(out, value);
    out.push('\n');
}

type PickPeer = fn(&PeerVerdict) -> f64;
/// The families of a series assessed against its peers (`queries[].peers`).
const PEER_FAMILIES: [(&str, &str, PickPeer); 2] = [
    (
        names::PEER_OUTLIER_SCORE,
        "How far the series is from its peer group over the newest window: the median distance from the group's median, 1 = the detector's boundary.",
        |p| p.score,
    ),
    (
        names::PEER_OUTLIER,
        "1 when the series was beyond its peer group's boundary for more than half of the newest window, else 0.",
        |p| f64::from(u8::from(p.outlier)),
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{export_labels, QueryOutput, SeriesOutput};

    fn snapshot() -> Snapshot {
        let ready = SeriesOutput::new(
            export_labels(
                "load",
                &Labels::from_pairs([("__name__", "node_load1"), ("instance", "a\"b\\c\nd")]),
            ),
            SeriesState::Ready {
                band: Band {
                    expected: 1.5,
                    lower: 0.5,
                    upper: 2.5,
                },
                score: Some(3.0),
                probability: 0.25,
                forecasts: vec![
                    Band {
                        expected: 2.0,
                        lower: 1.0,
                        upper: 3.0,
                    },
                    Band {
                        expected: 4.0,
                        lower: 0.0,
                        upper: 8.5,
                    },
                ],
                threshold_eta_seconds: Some(3600.0),
                excursion: Default::default(),
            },
        );
        let learning = SeriesOutput::new(
            export_labels("load", &Labels::from_pairs([("instance", "new")])),
            SeriesState::NotReady,
        );
        Snapshot::default().with_query(QueryOutput {
            query: "load".into(),
            evaluated_at_ms: 0,
            horizons: vec!["15m".into(), "1d".into()],
            series: vec![ready, learning],
        })
    }

    #[test]
    fn a_cap_keeps_the_first_series_with_all_their_families_and_counts_the_rest() {
        let snapshot = snapshot();
        let mut all = String::new();
        assert_eq!(
            render_snapshot_limited(&snapshot, &mut all, 2, Format::Text),
            0
        );
        let mut unlimited = String::new();
        render_snapshot(&snapshot, &mut unlimited);
        assert_eq!(all, unlimited);
        let mut capped = String::new();
        assert_eq!(
            render_snapshot_limited(&snapshot, &mut capped, 1, Format::Text),
            1
        );
        // The second series is still learning: it exports only its model_ready line.
        let second = "foretell_model_ready{instance=\"new\",query=\"load\"} 0\n";
        assert!(unlimited.contains(second));
        assert_eq!(capped, unlimited.replace(second, ""));
        let mut none = String::new();
        assert_eq!(
            render_snapshot_limited(&snapshot, &mut none, 0, Format::Text),
            2
        );
        assert!(none.is_empty(), "{none}");
    }

    fn render_to_string(
        renderer: &mut ScrapeRenderer,
        snapshot: &Snapshot,
        max_series: usize,
        format: Format,
    ) -> (String, usize) {
        let mut text = String::new();
        let rendered = renderer.render(snapshot, max_series, format, &mut |piece| {
            text.push_str(piece);
            Ok::<(), Infallible>(())
        });
        match rendered {
            Ok(left_out) => (text, left_out),
            Err(never) => match never {},
        }
    }

    #[test]
    fn a_renderer_kept_between_scrapes_renders_what_a_fresh_one_does() {
        let full = snapshot();
        let mut fresh = String::new();
        render_snapshot(&full, &mut fresh);
        let mut renderer = ScrapeRenderer::default();
        assert_eq!(
            render_to_string(&mut renderer, &full, usize::MAX, Format::Text),
            (fresh.clone(), 0)
        );
        let kept = renderer.capacity();
        assert!(kept > 0);
        // A smaller render with the same renderer: nothing of the previous one lingers, and
        // the buffers keep their allocation.
        let mut one = String::new();
        render_snapshot_limited(&full, &mut one, 1, Format::Text);
        assert_eq!(
            render_to_string(&mut renderer, &full, 1, Format::Text),
            (one.clone(), full.series().count() - 1)
        );
        assert!(one.len() < fresh.len());
        assert_eq!(renderer.capacity(), kept);
        // An empty snapshot renders nothing, not even family headers.
        let (empty, _) = render_to_string(
            &mut renderer,
            &Snapshot::default(),
            usize::MAX,
            Format::OpenMetrics,
        );
        assert!(empty.is_empty(), "{empty}");
    }

    /// A large exposition leaves in pieces of about [`PIECE_BYTES`] that join into the whole
    /// text, and the sink's first error ends the render with that error.
    #[test]
    fn the_text_leaves_in_bounded_pieces_and_a_sink_error_stops_it() {
        let series = (0..3_000)
            .map(|i| {
                SeriesOutput::new(
                    export_labels(
                        "many",
                        &Labels::from_pairs([("instance", format!("host-{i:05}"))]),
                    ),
                    SeriesState::NotReady,
                )
            })
            .collect();
        let many = Snapshot::default().with_query(QueryOutput {
            query: "many".into(),
            evaluated_at_ms: 0,
            horizons: vec![],
            series,
        });
        let mut whole = String::new();
        render_snapshot(&many, &mut whole);
        assert!(whole.len() > 2 * PIECE_BYTES, "{}", whole.len());
        let mut renderer = ScrapeRenderer::default();
        let mut pieces = Vec::new();
        renderer
            .render(&many, usize::MAX, Format::Text, &mut |piece| {
                pieces.push(piece.to_owned());
                Ok::<(), std::fmt::Error>(())
            })
            .expect("renders");
        assert!(pieces.len() >= 2, "{} pieces", pieces.len());
        // A piece is sent once it reaches the size: at most one sample line over it.
        assert!(pieces.iter().all(|p| p.len() < PIECE_BYTES + 200));
        assert_eq!(pieces.concat(), whole);
        let mut calls = 0;
        let failed = renderer.render(&many, usize::MAX, Format::Text, &mut |_| {
            calls += 1;
            Err(std::fmt::Error)
        });
        assert_eq!(failed, Err(std::fmt::Error));
        assert_eq!(calls, 1);
    }

    #[test]
    fn snapshot_renders_exact_text() {
        let mut out = String::new();
        render_snapshot(&snapshot(), &mut out);
        let labels = r#"instance="a\"b\\c\nd",query="load",source_metric="node_load1""#;
        let expected = format!(
            "# HELP foretell_baseline Expected value of the source series at its newest point, predicted by its model before the point arrived.\n\
             # TYPE foretell_baseline gauge\n\
             foretell_baseline{{{labels}}} 1.5\n\
             # HELP foretell_baseline_lower Lower edge of the prediction band of the newest point at the configured coverage.\n\
             # TYPE foretell_baseline_lower gauge\n\
             foretell_baseline_lower{{{labels}}} 0.5\n\
             # HELP foretell_baseline_upper Upper edge of the prediction band of the newest point at the configured coverage.\n\
             # TYPE foretell_baseline_upper gauge\n\
             foretell_baseline_upper{{{labels}}} 2.5\n\
             # HELP foretell_anomaly_score Distance of the newest point from the baseline in band half-widths: below 1 inside the band, 1 on its edge, above 1 outside.\n\
             # TYPE foretell_anomaly_score gauge\n\
             foretell_anomaly_score{{{labels}}} 3\n\
             # HELP foretell_anomaly_probability Probability in [0, 1] that the series is behaving anomalously, from its recent surprise against its usual surprise.\n\
             # TYPE foretell_anomaly_probability gauge\n\
             foretell_anomaly_probability{{{labels}}} 0.25\n\
             # HELP foretell_model_ready 1 when the series has enough history for its model, 0 while it is still learning.\n\
             # TYPE foretell_model_ready gauge\n\
             foretell_model_ready{{{labels}}} 1\n\
             foretell_model_ready{{instance=\"new\",query=\"load\"}} 0\n\
             # HELP foretell_forecast Forecast of the source series at the horizon after its newest point (stamped now, never in the future).\n\
             # TYPE foretell_forecast gauge\n\
             foretell_forecast{{{labels},horizon=\"15m\"}} 2\n\
             foretell_forecast{{{labels},horizon=\"1d\"}} 4\n\
             # HELP foretell_forecast_lower Lower edge of the forecast's prediction interval at the configured coverage.\n\
             # TYPE foretell_forecast_lower gauge\n\
             foretell_forecast_lower{{{labels},horizon=\"15m\"}} 1\n\
             foretell_forecast_lower{{{labels},horizon=\"1d\"}} 0\n\
             # HELP foretell_forecast_upper Upper edge of the forecast's prediction interval at the configured coverage.\n\
             # TYPE foretell_forecast_upper gauge\n\
             foretell_forecast_upper{{{labels},horizon=\"15m\"}} 3\n\
             foretell_forecast_upper{{{labels},horizon=\"1d\"}} 8.5\n\
             # HELP foretell_threshold_eta_seconds Seconds until the forecast crosses the query's threshold (0 when already crossed); absent when it does not within the search horizon.\n\
             # TYPE foretell_threshold_eta_seconds gauge\n\
             foretell_threshold_eta_seconds{{{labels}}} 3600\n"
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn peer_verdicts_render_as_two_families_and_are_sent_by_remote_write() {
        let labels = export_labels("lat", &Labels::from_pairs([("pod", "web-3")]));
        let mut assessed = SeriesOutput::new(labels, SeriesState::NotReady);
        assessed.peer = Some(PeerVerdict {
            score: 2.5,
            outlier: true,
            group_size: 12,
        });
        let alone = SeriesOutput::new(
            export_labels("lat", &Labels::from_pairs([("pod", "web-9")])),
            SeriesState::NotReady,
        );
        let snapshot = Snapshot::default().with_query(QueryOutput {
            query: "lat".into(),
            evaluated_at_ms: 0,
            horizons: vec![],
            series: vec![assessed, alone],
        });
        let mut out = String::new();
        render_snapshot(&snapshot, &mut out);
        assert!(out.contains("# TYPE foretell_peer_outlier_score gauge\nforetell_peer_outlier_score{pod=\"web-3\",query=\"lat\"} 2.5\n# HELP foretell_peer_outlier "), "{out}");
        assert!(out.ends_with("# TYPE foretell_peer_outlier gauge\nforetell_peer_outlier{pod=\"web-3\",query=\"lat\"} 1\n"), "{out}");
        assert!(
            !out.contains("web-9\",query=\"lat\"} 0\nforetell_peer"),
            "{out}"
        );
        let mut sent = Vec::new();
        let series: Vec<_> = snapshot.series().collect();
        for_each_sample(series[0], &[], |name, _, value| sent.push((name, value)));
        assert!(sent.contains(&(names::PEER_OUTLIER_SCORE, 2.5)));
        assert!(sent.contains(&(names::PEER_OUTLIER, 1.0)));
        let mut none = Vec::new();
        for_each_sample(series[1], &[], |name, _, _| none.push(name));
        assert!(!none.iter().any(|n| n.starts_with("foretell_peer")));
    }

    #[test]
    fn the_format_follows_the_accept_header() {
        // What Prometheus 2.x sends on every scrape: OpenMetrics first.
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate([prometheus]), Format::OpenMetrics);
        assert_eq!(
            Format::negotiate(["application/openmetrics-text"]),
            Format::OpenMetrics
        );
        // Split over several header values, spaces and case as clients write them.
        assert_eq!(
            Format::negotiate([
                "text/plain; q=0.5",
                "Application/OpenMetrics-Text; version=1.0.0"
            ]),
            Format::OpenMetrics
        );
        for text in [
            "",
            "*/*",
            "text/plain;version=0.0.4",
            "application/openmetrics-text;q=0.5,text/plain",
            // A version this encoder does not write, or refused outright.
            "application/openmetrics-text;version=2.0.0,text/plain;q=0.1",
            "application/openmetrics-text;q=0",
            // A tie goes to the first listed.
            "text/plain,application/openmetrics-text",
            "application/json",
        ] {
            assert_eq!(Format::negotiate([text]), Format::Text, "{text}");
        }
        assert_eq!(Format::negotiate([]), Format::Text);
        assert_eq!(Format::OpenMetrics.content_type(), OPENMETRICS_CONTENT_TYPE);
        assert_eq!(Format::Text.content_type(), CONTENT_TYPE);
    }

    #[test]
    fn openmetrics_names_counter_families_without_total_and_ends_with_eof() {
        let write = |format: Format| {
            let mut out = String::new();
            let mut writer = TextWriter::with_format(&mut out, format);
            writer.family(
                "x_requests_total",
                "Requests by \"code\".",
                MetricType::Counter,
            );
            writer.sample("x_requests_total", &[("code", "200")], 3.0);
            writer.family("x_up", "Up.", MetricType::Gauge);
            writer.sample("x_up", &[], 1.0);
            format.close(&mut out);
            out
        };
        assert_eq!(
            write(Format::OpenMetrics),
            "# HELP x_requests Requests by \\\"code\\\".\n# TYPE x_requests counter\n\
             x_requests_total{code=\"200\"} 3\n# HELP x_up Up.\n# TYPE x_up gauge\nx_up 1\n# EOF\n"
        );
        assert_eq!(
            write(Format::Text),
            "# HELP x_requests_total Requests by \"code\".\n# TYPE x_requests_total counter\n\
             x_requests_total{code=\"200\"} 3\n# HELP x_up Up.\n# TYPE x_up gauge\nx_up 1\n"
        );
        // The per-series families are gauges: the same lines in both formats, then `# EOF`.
        let (mut text, mut open) = (String::new(), String::new());
        render_snapshot_limited(&snapshot(), &mut text, usize::MAX, Format::Text);
        render_snapshot_limited(&snapshot(), &mut open, usize::MAX, Format::OpenMetrics);
        Format::OpenMetrics.close(&mut open);
        assert_eq!(open, format!("{text}# EOF\n"));
    }

    /// A family's name is written once: `value` and `histogram` write samples of the family
    /// opened last, a counter's with its `_total` in both formats.
    #[test]
    fn values_belong_to_the_family_opened_last() {
        for format in [Format::Text, Format::OpenMetrics] {
            let mut out = String::new();
            let mut writer = TextWriter::with_format(&mut out, format);
            writer.family("x_total", "X.", MetricType::Counter);
            writer.value(&[("a", "1")], 2.0);
            writer.family("y", "Y.", MetricType::Gauge);
            writer.value(&[], 3.0);
            writer.value(&[("b", "2")], 4.0);
            let samples: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
            assert_eq!(
                samples,
                ["x_total{a=\"1\"} 2", "y 3", "y{b=\"2\"} 4"],
                "{format:?}"
            );
        }
    }

    #[test]
    fn independent_parser_reads_back_labels_and_values() {
        let mut out = String::new();
        render_snapshot(&snapshot(), &mut out);
        let lines = out.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("parses");
        let score = scrape
            .samples
            .iter()
            .find(|s| s.metric == "foretell_anomaly_score")
            .expect("score present");
        // prometheus-parse hands label values back still escaped; promtool (end-to-end stage)
        // checks the unescaped reading.
        assert_eq!(score.labels.get("instance"), Some(r#"a\"b\\c\nd"#));
        assert_eq!(score.labels.get("source_metric"), Some("node_load1"));
        assert!(matches!(score.value, prometheus_parse::Value::Gauge(v) if v == 3.0));
        let ready_count = scrape
            .samples
            .iter()
            .filter(|s| s.metric == "foretell_model_ready")
            .count();
        assert_eq!(ready_count, 2);
        let forecast = scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == "foretell_forecast_upper" && s.labels.get("horizon") == Some("1d")
            })
            .expect("1d forecast present");
        assert!(matches!(forecast.value, prometheus_parse::Value::Gauge(v) if v == 8.5));
    }

    #[test]
    fn special_values_and_histograms_use_the_text_format_spelling() {
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(0.25), "0.25");
        assert_eq!(format_value(-2.0), "-2");
        assert_eq!(format_value(1e300), "1e300");
        let mut out = String::new();
        let mut writer = TextWriter::new(&mut out);
        writer.family(
            "x_seconds",
            "Help with \\ and\nnewline.",
            MetricType::Histogram,
        );
        writer.histogram(
            &[("query", "q")],
            &HistogramValues {
                upper_bounds: &[0.1, 1.0],
                bucket_counts: &[2, 1],
                sum: 1.5,
                count: 4,
            },
        );
        assert_eq!(
            out,
            "# HELP x_seconds Help with \\\\ and\\nnewline.\n# TYPE x_seconds histogram\n\
             x_seconds_bucket{query=\"q\",le=\"0.1\"} 2\nx_seconds_bucket{query=\"q\",le=\"1\"} 3\n\
             x_seconds_bucket{query=\"q\",le=\"+Inf\"} 4\nx_seconds_sum{query=\"q\"} 1.5\n\
             x_seconds_count{query=\"q\"} 4\n"
        );
    }
}
