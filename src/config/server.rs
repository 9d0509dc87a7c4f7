//! The `server` section: where foretell listens, how it stops, and the URL users reach it at.

use std::net::SocketAddr;
use std::time::Duration;

use foretell_core::redact;
use url::Url;

use super::raw::RawServer;
use super::validator::Validator;

pub const DEFAULT_LISTEN_ADDRESS: &str = "0.0.0.0:9896";
/// Series one scrape carries at most by default: twice the 100,000 series one replica is
/// measured at (`docs/benchmarks.md`), about 2 million samples with three horizons.
pub const DEFAULT_MAX_EXPORTED_SERIES: usize = 200_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub listen_address: SocketAddr,
    pub shutdown_grace: Duration,
    pub enable_lifecycle: bool,
    /// The URL users reach foretell at, for links (graph links in enriched alerts); `None`:
    /// derived from the listen address at start.
    pub external_url: Option<Url>,
    /// Tracked series `/metrics` exports at most, across every query (in query order); the
    /// rest are left out and counted.
    pub max_exported_series: usize,
}

impl Validator<'_> {
    pub(super) fn server(&mut self, raw: &RawServer) -> Option<ServerConfig> {
        let text = raw
            .listen_address
            .as_deref()
            .unwrap_or(DEFAULT_LISTEN_ADDRESS);
        let listen_address = match listen_address(text) {
            Ok(address) => Some(address),
            Err(message) => {
                self.fail("server.listen_address", message);
                None
            }
        };
        let shutdown_grace = self.positive_duration(
            "server.shutdown_grace",
            raw.shutdown_grace.as_deref(),
            Duration::from_secs(10),
        );
        let external_url = match raw.external_url.as_deref().map(external_url) {
            None => Some(None),
            Some(Ok(url)) => Some(Some(url)),
            Some(Err(message)) => {
                self.fail("server.external_url", message);
                None
            }
        };
        let max_exported_series = raw
            .max_exported_series
            .unwrap_or(DEFAULT_MAX_EXPORTED_SERIES);
        if max_exported_series == 0 {
            self.fail(
                "server.max_exported_series",
                "must be at least 1 (each tracked series exports 6 samples plus 3 per horizon)",
            );
        }
        Some(ServerConfig {
            max_exported_series,
            listen_address: listen_address?,
            shutdown_grace: shutdown_grace?,
            enable_lifecycle: raw.enable_lifecycle,
            external_url: external_url?,
        })
    }
}

/// A listen address as `HOST:PORT` with a numeric host; Prometheus' `:PORT` shorthand means
/// every interface. Shared by `server.listen_address` and `--web.listen-address`.
pub fn listen_address(text: &str) -> Result<SocketAddr, String> {
    let normalised = if text.starts_with(':') {
        format!("0.0.0.0{text}")
    } else {
        text.to_owned()
    };
    normalised.parse::<SocketAddr>().map_err(|_| {
        format!("`{text}` is not HOST:PORT with a numeric host, e.g. `0.0.0.0:9896` or `127.0.0.1:9896`")
    })
}

/// The URL users reach foretell at: http:// or https:// with a host. Shared by
/// `server.external_url` and `--web.external-url`.
pub fn external_url(text: &str) -> Result<Url, String> {
    match Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(url),
        Ok(url) => Err(format!(
            "`{}` is not an http:// or https:// URL with a host",
            redact::url(url.as_str(), redact::Path::Shown)
        )),
        Err(error) => Err(format!(
            "`{}` is not a URL ({error}); for example https://foretell.example.com",
            redact::url(text, redact::Path::Shown)
        )),
    }
}
