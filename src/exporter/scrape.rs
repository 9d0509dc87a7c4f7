//! One `/metrics` scrape: what the scraper asked for (format, compression) and the body that
//! answers it. The HTTP response around it is the server's.

use std::io::Write as _;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use foretell_core::exposition::{Format, ScrapeRenderer};
use foretell_core::snapshot::Snapshot;
use http::{header, HeaderMap};

use super::registry::Registry;
use super::telemetry::Telemetry;

/// What a scrape asked for in its headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scrape {
    /// From `Accept` (see [`Format::negotiate`]).
    pub format: Format,
    /// `Accept-Encoding` names `gzip` (or `*`) without `q=0`: Prometheus asks for it on
    /// every scrape.
    pub gzip: bool,
}

impl Scrape {
    pub fn of(headers: &HeaderMap) -> Scrape {
        let values = |name| {
            headers
                .get_all(name)
                .iter()
                .filter_map(|value| value.to_str().ok())
        };
        let gzip = values(header::ACCEPT_ENCODING)
            .flat_map(|value| value.split(','))
            .any(|coding| {
                let mut parts = coding.split(';').map(str::trim);
                let name = parts.next().unwrap_or_default();
                let refused = parts.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f64>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
            });
        Scrape {
            format: Format::negotiate(values(header::ACCEPT)),
            gzip,
        }
    }
}

/// What one scrape leaves for the next: the renderer's buffers ([`ScrapeRenderer`], the label
/// blocks of the shown series and one piece of text) and the size of the last body.
///
/// The text itself is not kept: a compressed scrape (Prometheus asks for gzip on every one)
/// writes the renderer's pieces straight into the encoder, so the only copy of a scrape at
/// 100,000 series is its compressed body, about a tenth of the 120 MB of text. Scrapes at the
/// same moment (an HA pair of Prometheus) take turns: the renders would share the same two
/// cores anyway, and one set of buffers bounds the memory.
#[derive(Debug, Default)]
pub struct ScrapeBuffers {
    renderer: ScrapeRenderer,
    /// Bytes of the last body of each kind, to size the next one in a single allocation.
    last_text: usize,
    last_compressed: usize,
}

/// The body of a scrape: the first `max_series` series of the snapshot, then the self-metrics
/// of every stage registered in `registry`, in the scrape's format, gzip-compressed at the
/// fastest level when it asked (a scrape is compressed once and read once). Records in
/// `telemetry` how many series the cap left out. Blocks while another scrape renders: call it
/// on the blocking pool.
pub fn render(
    snapshot: &Snapshot,
    telemetry: &Telemetry,
    registry: &Registry,
    max_series: usize,
    scrape: Scrape,
    buffers: &Mutex<ScrapeBuffers>,
) -> std::io::Result<Bytes> {
    // Poisoned: a render panicked midway; the renderer empties its buffers before each render.
    let mut buffers = buffers.lock().unwrap_or_else(PoisonError::into_inner);
    let buffers = &mut *buffers;
    // The self-metrics are collected after the predictions so that they count this scrape's
    // left-out series.
    let finish = |left_out: usize| {
        telemetry.series_not_exported(left_out);
        let mut tail = String::new();
        registry.collect(&mut tail, scrape.format);
        scrape.format.close(&mut tail);
        tail
    };
    if scrape.gzip {
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(buffers.last_compressed),
            flate2::Compression::fast(),
        );
        let left_out =
            buffers
                .renderer
                .render(snapshot, max_series, scrape.format, &mut |piece| {
                    encoder.write_all(piece.as_bytes())
                })?;
        encoder.write_all(finish(left_out).as_bytes())?;
        let body = encoder.finish()?;
        buffers.last_compressed = body.len();
        return Ok(Bytes::from(body));
    }
    let mut body = String::with_capacity(buffers.last_text);
    let rendered = buffers
        .renderer
        .render(snapshot, max_series, scrape.format, &mut |piece| {
            body.push_str(piece);
            Ok::<(), std::convert::Infallible>(())
        });
    let left_out = match rendered {
        Ok(left_out) => left_out,
        Err(never) => match never {},
    };
    body.push_str(&finish(left_out));
    buffers.last_text = body.len();
    Ok(Bytes::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(name: header::HeaderName, value: &str) -> Scrape {
        let mut headers = HeaderMap::new();
        headers.insert(name, header::HeaderValue::from_str(value).expect("header"));
        Scrape::of(&headers)
    }

    #[test]
    fn gzip_is_taken_unless_refused() {
        let accepts = |value: &str| scrape(header::ACCEPT_ENCODING, value).gzip;
        assert!(accepts("gzip"));
        assert!(accepts("deflate, GZIP;q=0.5"));
        assert!(accepts("*"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("identity"));
        assert!(!Scrape::of(&HeaderMap::new()).gzip);
    }

    #[test]
    fn the_format_comes_from_accept() {
        assert_eq!(
            scrape(header::ACCEPT, "application/openmetrics-text;version=1.0.0").format,
            Format::OpenMetrics
        );
        assert_eq!(Scrape::of(&HeaderMap::new()).format, Format::Text);
    }

    fn text(rendered: &Bytes, gzip: bool) -> String {
        let mut text = String::new();
        if gzip {
            std::io::Read::read_to_string(
                &mut flate2::read::GzDecoder::new(&rendered[..]),
                &mut text,
            )
            .expect("valid gzip");
        } else {
            text = String::from_utf8(rendered.to_vec()).expect("utf-8");
        }
        text
    }

    /// The body of a scrape: predictions, then the self-metrics, then `# EOF` in OpenMetrics;
    /// the cap's leftovers are recorded for `foretell_series_not_exported`; compressed when
    /// asked, the same text.
    #[test]
    fn the_body_holds_predictions_then_self_metrics() {
        let telemetry = std::sync::Arc::new(Telemetry::new("1"));
        let registry = Registry::with(telemetry.clone());
        let buffers = Mutex::new(ScrapeBuffers::default());
        let scrape = |format, gzip| Scrape { format, gzip };
        let open_metrics = render(
            &Snapshot::default(),
            &telemetry,
            &registry,
            10,
            scrape(Format::OpenMetrics, false),
            &buffers,
        )
        .expect("render");
        let body = text(&open_metrics, false);
        assert!(body.starts_with("# HELP foretell_build_info "), "{body}");
        assert!(body.ends_with("\n# EOF\n"), "{body}");
        assert!(
            body.contains("\nforetell_series_not_exported 0\n"),
            "{body}"
        );
        let plain = render(
            &Snapshot::default(),
            &telemetry,
            &registry,
            10,
            scrape(Format::Text, false),
            &buffers,
        )
        .expect("render");
        assert!(!text(&plain, false).contains("# EOF"));
        let packed = render(
            &Snapshot::default(),
            &telemetry,
            &registry,
            10,
            scrape(Format::Text, true),
            &buffers,
        )
        .expect("render");
        let unpacked = text(&packed, true);
        assert!(unpacked.starts_with("# HELP foretell_build_info "));
        assert!(!unpacked.contains("# EOF"));
    }

    /// The renderer's buffers stay allocated from one scrape to the next, and a second scrape
    /// renders the same text as the first.
    #[test]
    fn the_buffers_are_kept_between_scrapes() {
        let telemetry = std::sync::Arc::new(Telemetry::new("1"));
        let registry = Registry::with(telemetry.clone());
        let buffers = Mutex::new(ScrapeBuffers::default());
        let plain = Scrape {
            format: Format::Text,
            gzip: false,
        };
        let labels = foretell_core::Labels::from_pairs([("__name__", "up"), ("job", "a")]);
        let snapshot = Snapshot::default().with_query(foretell_core::snapshot::QueryOutput {
            query: "q".into(),
            evaluated_at_ms: 0,
            horizons: vec![],
            series: vec![foretell_core::snapshot::SeriesOutput::new(
                foretell_core::snapshot::export_labels("q", &labels),
                foretell_core::snapshot::SeriesState::NotReady,
            )],
        });
        let first = text(
            &render(&snapshot, &telemetry, &registry, 10, plain, &buffers).expect("render"),
            false,
        );
        let kept = buffers.lock().expect("lock").renderer.capacity();
        assert!(kept > 0);
        assert!(
            first.contains("foretell_model_ready{job=\"a\",query=\"q\",source_metric=\"up\"} 0\n"),
            "{first}"
        );
        let second = text(
            &render(&snapshot, &telemetry, &registry, 10, plain, &buffers).expect("render"),
            false,
        );
        assert_eq!(buffers.lock().expect("lock").renderer.capacity(), kept);
        let predictions = |text: &str| {
            text.split("# HELP foretell_build_info")
                .next()
                .map(str::to_owned)
        };
        assert_eq!(predictions(&first), predictions(&second));
    }
}
