//! What a `/graph` request asks for, parsed and checked, and the links that ask for it.

use std::time::Duration;

use foretell_core::chart::link::LinkSigner;
use foretell_core::labels::METRIC_NAME;
use foretell_core::Labels;
use url::Url;

use super::{Source, DEFAULT_RANGE, GRAPH_PATH};
use crate::config::duration;
use crate::views::chart as svg;

#[derive(Clone, Debug, PartialEq)]
pub struct GraphRequest {
    pub source: Source,
    /// Labels the series must have (a subset is enough when it singles one series out).
    pub series: Labels,
    pub range: Duration,
    /// Pixels wide (`width=`, for pages that show the chart wider or narrower).
    pub width: u32,
    /// `sig`: the signature of an `expr` link foretell made ([`link`]).
    pub signature: Option<String>,
}

/// Why no chart was drawn; each maps to an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("Prometheus could not evaluate the chart's expression: {0}")]
    Upstream(String),
    #[error("{0}")]
    NotEnoughData(String),
    #[error("too many charts are being drawn; try again in a moment")]
    Busy,
    #[error("{0}")]
    Forbidden(String),
}

impl GraphError {
    pub fn status(&self) -> http::StatusCode {
        match self {
            GraphError::BadRequest(_) => http::StatusCode::BAD_REQUEST,
            GraphError::NotFound(_) => http::StatusCode::NOT_FOUND,
            GraphError::Upstream(_) => http::StatusCode::BAD_GATEWAY,
            GraphError::NotEnoughData(_) => http::StatusCode::UNPROCESSABLE_ENTITY,
            GraphError::Busy => http::StatusCode::SERVICE_UNAVAILABLE,
            GraphError::Forbidden(_) => http::StatusCode::FORBIDDEN,
        }
    }
}

/// Reads `query=NAME` or `expr=PROMQL`, `series={name="value", ...}` and `range=6h`.
pub fn parse_request(query_string: &str) -> Result<GraphRequest, GraphError> {
    let bad = |message: String| GraphError::BadRequest(message);
    let mut query = None;
    let mut expr = None;
    let mut series = Labels::default();
    let mut range = DEFAULT_RANGE;
    let mut width = svg::DEFAULT_WIDTH;
    let mut signature = None;
    for (name, value) in url::form_urlencoded::parse(query_string.as_bytes()) {
        match name.as_ref() {
            "query" => query = Some(value.into_owned()),
            "sig" => signature = Some(value.into_owned()),
            "expr" => expr = Some(value.into_owned()),
            "series" => {
                series = Labels::parse_selector(&value)
                    .map_err(|e| bad(format!("parameter `series`: {e}")))?;
            }
            "range" => {
                range = duration::parse(&value)
                    .ok()
                    .filter(|r| !r.is_zero())
                    .ok_or_else(|| {
                        bad(format!(
                            "parameter `range`: `{value}` is not a positive duration such as 6h"
                        ))
                    })?;
            }
            "width" => {
                width = value
                    .parse()
                    .ok()
                    .filter(|w| (svg::MIN_WIDTH..=svg::MAX_WIDTH).contains(w))
                    .ok_or_else(|| {
                        bad(format!(
                            "parameter `width`: `{}` is not a number of pixels from {} to {}",
                            value.chars().take(16).collect::<String>(),
                            svg::MIN_WIDTH,
                            svg::MAX_WIDTH
                        ))
                    })?;
            }
            other => {
                return Err(bad(format!(
                    "unknown parameter `{}` (known: query, expr, sig, series, range, width)",
                    other.chars().take(64).collect::<String>()
                )))
            }
        }
    }
    let source = match (query, expr) {
        (Some(query), None) => Source::Query(query),
        (None, Some(expr)) if !expr.trim().is_empty() => Source::Expr(expr),
        (Some(_), Some(_)) => return Err(bad("give `query` or `expr`, not both".into())),
        _ => {
            return Err(bad(
                "name the series: `query=NAME` (a configured query) or `expr=PROMQL`, with `series={label=\"value\", ...}`".into(),
            ))
        }
    };
    Ok(GraphRequest {
        source,
        series,
        range,
        width,
        signature,
    })
}

/// The link to a chart, relative to foretell's external URL. A link to an expression's chart
/// carries its signature when there is a signer: only such links are drawn by default.
pub fn link(base: &Url, source: &Source, series: &Labels, signer: Option<&LinkSigner>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    match source {
        Source::Query(name) => query.append_pair("query", name),
        Source::Expr(expr) => {
            query.append_pair("expr", expr);
            if let Some(signer) = signer {
                query.append_pair("sig", &signer.sign(expr));
            }
            &mut query
        }
    };
    let shown: Vec<(&str, &str)> = series.iter().filter(|(n, _)| *n != METRIC_NAME).collect();
    query.append_pair("series", &Labels::from_pairs(shown).to_string());
    format!(
        "{}{GRAPH_PATH}?{}",
        base.as_str().trim_end_matches('/'),
        query.finish()
    )
}
