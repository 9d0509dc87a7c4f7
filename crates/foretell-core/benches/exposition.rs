//! `/metrics` rendering: `cargo bench -p foretell-core --bench exposition [-- SERIES]`.
//!
//! A snapshot of SERIES tracked series (default 100,000: 20 queries of 5,000 node-exporter-like
//! series, every model ready, no forecast horizon) is rendered by foretell's encoder, which
//! writes each series' label block once per cycle and reuses it on every scrape, and the same
//! samples by prometheus-client 0.26's text encoder (the reference). Six families per series:
//! baseline, its lower and upper edge, score, probability, model ready. Wall-clock median of
//! several renders on one core; the machine's other core should be idle.
//!
//! foretell is measured twice: into a renderer and a body kept from the previous render (the
//! text's own cost), and into a new renderer and a new body every time, which adds what the
//! kernel takes to fault in and zero a hundred megabytes of new pages (an uncompressed scrape
//! pays that for its body; a compressed one writes the renderer's pieces straight into the
//! encoder and keeps no copy of the text).

// A benchmark is a stopwatch around the core: it reads the clock the core itself never does.
#![allow(clippy::disallowed_methods)]
// A benchmark binary: a failed render is a failed run, which is what `expect` reports.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use foretell_core::exposition::{render_snapshot, Format, ScrapeRenderer};
use foretell_core::model::{Band, Excursion};
use foretell_core::snapshot::{export_labels, QueryOutput, SeriesOutput, SeriesState, Snapshot};
use foretell_core::Labels;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

const QUERIES: usize = 20;
const RENDERS: usize = 7;

fn state(i: usize) -> SeriesState {
    let x = i as f64;
    SeriesState::Ready {
        band: Band {
            expected: 1000.0 + x * 0.37,
            lower: 900.0 + x * 0.29,
            upper: 1100.0 + x * 0.41,
        },
        score: Some((i % 97) as f64 / 31.0),
        probability: (i % 1000) as f64 / 1001.0,
        forecasts: vec![],
        threshold_eta_seconds: None,
        excursion: Excursion::default(),
    }
}

fn source(query: usize, i: usize) -> Labels {
    Labels::from_pairs([
        ("__name__", "node_network_receive_bytes_total".to_owned()),
        (
            "instance",
            format!("host-{:05}.prod.example.com:9100", i / 4),
        ),
        ("job", "node".to_owned()),
        ("device", format!("eth{}", i % 4)),
        ("datacenter", format!("dc-{}", query % 3)),
    ])
}

fn snapshot(series: usize) -> Snapshot {
    let per_query = series / QUERIES;
    (0..QUERIES).fold(Snapshot::default(), |snapshot, q| {
        let name = format!("network_{q:02}");
        snapshot.with_query(QueryOutput {
            query: name.clone(),
            evaluated_at_ms: 0,
            horizons: vec![],
            series: (0..per_query)
                .map(|i| SeriesOutput::new(export_labels(&name, &source(q, i)), state(i)))
                .collect(),
        })
    })
}

type GaugeFamily = Family<Vec<(String, String)>, Gauge<f64, AtomicU64>>;

/// The same samples in a prometheus-client registry.
fn registry(snapshot: &Snapshot) -> Registry {
    let mut registry = Registry::default();
    let families: Vec<(&str, GaugeFamily)> = [
        "foretell_baseline",
        "foretell_baseline_lower",
        "foretell_baseline_upper",
        "foretell_anomaly_score",
        "foretell_anomaly_probability",
        "foretell_model_ready",
    ]
    .into_iter()
    .map(|name| (name, GaugeFamily::default()))
    .collect();
    for series in snapshot.series() {
        let labels: Vec<(String, String)> = series
            .labels()
            .iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        if let SeriesState::Ready {
            band,
            score,
            probability,
            ..
        } = &series.state
        {
            let values = [
                band.expected,
                band.lower,
                band.upper,
                score.unwrap_or(f64::NAN),
                *probability,
                1.0,
            ];
            for ((_, family), value) in families.iter().zip(values) {
                family.get_or_create(&labels).set(value);
            }
        }
    }
    for (name, family) in families {
        // prometheus-client wants names without the unit/total suffix handling of its own.
        registry.register(name, "help", family);
    }
    registry
}

fn median_of(mut run: impl FnMut() -> usize) -> (Duration, usize) {
    let mut times = Vec::with_capacity(RENDERS);
    let mut bytes = 0;
    for _ in 0..RENDERS {
        let start = Instant::now();
        bytes = black_box(run());
        times.push(start.elapsed());
    }
    times.sort();
    (times[RENDERS / 2], bytes)
}

fn main() {
    let series: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let snapshot = snapshot(series);
    // The renderer's buffers kept from one scrape to the next, as the server keeps them, and
    // the text into a body kept too (the server's body is new each scrape; see below).
    let mut renderer = ScrapeRenderer::default();
    let mut body = String::new();
    let (ours, ours_bytes) = median_of(|| {
        body.clear();
        renderer
            .render(&snapshot, usize::MAX, Format::Text, &mut |piece| {
                body.push_str(piece);
                Ok::<(), std::convert::Infallible>(())
            })
            .expect("renders");
        body.len()
    });
    // Fresh buffers every time (the body sized by the previous render).
    let mut capacity = 0;
    let (fresh, _) = median_of(|| {
        let mut out = String::with_capacity(capacity);
        render_snapshot(&snapshot, &mut out);
        capacity = out.len();
        out.len()
    });
    let mut rendered = String::new();
    render_snapshot(&snapshot, &mut rendered);
    // What the server adds when the scraper sends `Accept-Encoding: gzip` (Prometheus does).
    let (gzip, gzip_bytes) = median_of(|| {
        use std::io::Write as _;
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(rendered.len() / 6),
            flate2::Compression::fast(),
        );
        encoder.write_all(rendered.as_bytes()).expect("compress");
        encoder.finish().expect("compress").len()
    });
    // A compressed scrape as the server renders it: the pieces straight into the encoder.
    let (scrape, _) = median_of(|| {
        use std::io::Write as _;
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(gzip_bytes),
            flate2::Compression::fast(),
        );
        renderer
            .render(&snapshot, usize::MAX, Format::Text, &mut |piece| {
                encoder.write_all(piece.as_bytes())
            })
            .expect("compress");
        encoder.finish().expect("compress").len()
    });
    let registry = registry(&snapshot);
    // prometheus-client into a kept buffer too, so both sides skip the fresh pages.
    let mut out = String::new();
    let (theirs, theirs_bytes) = median_of(|| {
        out.clear();
        encode(&mut out, &registry).expect("encodes");
        out.len()
    });
    println!(
        "{series} series x 6 families: foretell {:.1} ms ({:.1} MB), prometheus-client 0.26 {:.1} ms ({:.1} MB): {:.1}x faster",
        ours.as_secs_f64() * 1000.0,
        ours_bytes as f64 / 1e6,
        theirs.as_secs_f64() * 1000.0,
        theirs_bytes as f64 / 1e6,
        theirs.as_secs_f64() / ours.as_secs_f64()
    );
    println!(
        "foretell into fresh buffers every time: {:.1} ms ({:.1}x faster than prometheus-client)",
        fresh.as_secs_f64() * 1000.0,
        theirs.as_secs_f64() / fresh.as_secs_f64()
    );
    println!(
        "gzip (fast) of foretell's output: {:.1} ms, {:.1} MB ({:.1}x smaller)",
        gzip.as_secs_f64() * 1000.0,
        gzip_bytes as f64 / 1e6,
        ours_bytes as f64 / gzip_bytes as f64
    );
    println!(
        "a compressed scrape as the server renders it (the pieces straight into gzip): {:.1} ms",
        scrape.as_secs_f64() * 1000.0
    );
}
