//! One `/metrics` scrape: what the scraper asked for (format, compression) and the body that
//! answers it. The HTTP response around it is the server's.

use std::io::Write as _;

use foretell_core::exposition::{self, Format};
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

/// The whole exposition: the first `max_series` series of the snapshot, then the self-metrics
/// of every stage registered in `registry`, in `format`. Records in `telemetry` how many
/// series the cap left out. `capacity` sizes the buffer (the previous scrape's length), so a
/// scrape of tens of megabytes does not grow it step by step.
pub fn render(
    snapshot: &Snapshot,
    telemetry: &Telemetry,
    registry: &Registry,
    max_series: usize,
    format: Format,
    capacity: usize,
) -> String {
    let mut body = String::with_capacity(capacity);
    let left_out = exposition::render_snapshot_limited(snapshot, &mut body, max_series, format);
    telemetry.series_not_exported(left_out);
    registry.collect(&mut body, format);
    format.close(&mut body);
    body
}

/// `body` gzip-compressed at the fastest level: a scrape is compressed once and read once.
pub fn gzip(body: &str) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 6),
        flate2::Compression::fast(),
    );
    encoder.write_all(body.as_bytes())?;
    encoder.finish()
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

    /// The body of a scrape: predictions, then the self-metrics, then `# EOF` in OpenMetrics;
    /// the cap's leftovers are recorded for `foretell_series_not_exported`.
    #[test]
    fn the_body_holds_predictions_then_self_metrics() {
        let telemetry = std::sync::Arc::new(Telemetry::new("1"));
        let registry = Registry::with(telemetry.clone());
        let body = render(
            &Snapshot::default(),
            &telemetry,
            &registry,
            10,
            Format::OpenMetrics,
            0,
        );
        assert!(body.starts_with("# HELP foretell_build_info "), "{body}");
        assert!(body.ends_with("\n# EOF\n"), "{body}");
        assert!(
            body.contains("\nforetell_series_not_exported 0\n"),
            "{body}"
        );
        let text = render(
            &Snapshot::default(),
            &telemetry,
            &registry,
            10,
            Format::Text,
            0,
        );
        assert!(!text.contains("# EOF"));
        let packed = gzip(&text).expect("gzip");
        let mut unpacked = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(&packed[..]),
            &mut unpacked,
        )
        .expect("valid gzip");
        assert_eq!(unpacked, text);
    }
}
