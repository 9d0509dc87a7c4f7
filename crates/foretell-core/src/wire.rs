//! Serde mirror of Prometheus' HTTP API answers, and its conversion into series.
//!
//! Format: <https://prometheus.io/docs/prometheus/latest/querying/api/#format-overview>.
//! Sample values are JSON strings so that `NaN`, `+Inf` and `-Inf` survive.

use std::collections::BTreeMap;

use crate::store::Sample;
use crate::Labels;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<RangeData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct RangeData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct WireSeries {
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// A decoded successful `query_range` answer.
#[derive(Debug, Default, PartialEq)]
pub struct RangeBody {
    pub series: Vec<(Labels, Vec<Sample>)>,
    pub warnings: Vec<String>,
}

/// Why a body could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WireError {
    /// Prometheus answered `"status": "error"`.
    #[error("Prometheus error ({error_type}): {message}")]
    Api { error_type: String, message: String },
    #[error("the answer is not Prometheus API JSON ({detail}); it starts with: {excerpt}")]
    NotJson { detail: String, excerpt: String },
    #[error("expected a range query answer (resultType \"matrix\"), got resultType {0:?}")]
    UnexpectedResultType(String),
    #[error("malformed series in the answer: {0}")]
    MalformedSeries(String),
    #[error("sample value {value:?} at {timestamp} is not a number")]
    BadValue { value: String, timestamp: f64 },
}

/// Decodes a `query_range` body whatever its HTTP status: an API error object is returned as
/// [`WireError::Api`] so the caller can report Prometheus' own words.
pub fn decode_range(body: &[u8]) -> Result<RangeBody, WireError> {
    let response: ApiResponse = serde_json::from_slice(body).map_err(|e| WireError::NotJson {
        detail: e.to_string(),
        excerpt: excerpt(body),
    })?;
    if response.status != "success" {
        return Err(WireError::Api {
            error_type: response.error_type.unwrap_or_else(|| "unknown".to_owned()),
            message: response.error.unwrap_or_else(|| {
                format!("status {:?} without an error message", response.status)
            }),
        });
    }
    let data = response.data.ok_or_else(|| WireError::NotJson {
        detail: "a success answer without `data`".to_owned(),
        excerpt: excerpt(body),
    })?;
    if data.result_type != "matrix" {
        return Err(WireError::UnexpectedResultType(data.result_type));
    }
    let wire: Vec<WireSeries> = serde_json::from_value(data.result)
        .map_err(|e| WireError::MalformedSeries(e.to_string()))?;
    let mut series = Vec::with_capacity(wire.len());
    for s in wire {
        let samples = s
            .values
            .into_iter()
            .map(|(timestamp, text)| {
                Ok(Sample {
                    timestamp_ms: (timestamp * 1000.0).round() as i64,
                    value: parse_value(&text).ok_or(WireError::BadValue {
                        value: text,
                        timestamp,
                    })?,
                })
            })
            .collect::<Result<Vec<_>, WireError>>()?;
        series.push((Labels::from_pairs(s.metric), samples));
    }
    Ok(RangeBody {
        series,
        warnings: response.warnings,
    })
}

/// Parses a sample value as Prometheus (Go's strconv.ParseFloat) writes it.
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse::<f64>().ok().filter(|v| v.is_finite()),
    }
}

/// The first 120 characters of a body, on one line, for error messages.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(480)]);
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let trimmed = flat.trim();
    if trimmed.is_empty() {
        return "(empty body)".to_owned();
    }
    let short: String = trimmed.chars().take(120).collect();
    if short.len() < trimmed.len() {
        format!("{short}…")
    } else {
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_matrix_with_special_values_and_warnings() {
        let body = br#"{"status":"success","warnings":["partial response"],"data":{"resultType":"matrix","result":[
            {"metric":{"__name__":"up","job":"a"},"values":[[1700000000,"1"],[1700000015.5,"NaN"],[1700000030,"+Inf"],[1700000045,"-Inf"],[1700000060,"2.5e3"]]},
            {"metric":{},"values":[]}]}}"#;
        let decoded = decode_range(body).expect("valid");
        assert_eq!(decoded.warnings, vec!["partial response"]);
        let (labels, samples) = &decoded.series[0];
        assert_eq!(labels.get("job"), Some("a"));
        assert_eq!(samples[0].timestamp_ms, 1_700_000_000_000);
        assert_eq!(samples[1].timestamp_ms, 1_700_000_015_500);
        assert!(samples[1].value.is_nan());
        assert_eq!(samples[2].value, f64::INFINITY);
        assert_eq!(samples[3].value, f64::NEG_INFINITY);
        assert_eq!(samples[4].value, 2500.0);
        assert!(decoded.series[1].1.is_empty());
    }

    #[test]
    fn api_errors_keep_prometheus_words() {
        let body = br#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected end of input"}"#;
        assert_eq!(
            decode_range(body),
            Err(WireError::Api {
                error_type: "bad_data".into(),
                message: "1:5: parse error: unexpected end of input".into()
            })
        );
    }

    #[test]
    fn html_and_truncated_json_are_not_json() {
        let html = b"<html>\n<head><title>502 Bad Gateway</title></head></html>";
        match decode_range(html) {
            Err(WireError::NotJson { excerpt, .. }) => {
                assert!(
                    excerpt.starts_with("<html> <head><title>502 Bad Gateway"),
                    "{excerpt}"
                )
            }
            other => panic!("{other:?}"),
        }
        let truncated =
            br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{}"#;
        match decode_range(truncated) {
            Err(WireError::NotJson { detail, .. }) => assert!(detail.contains("EOF"), "{detail}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_result_types_and_bad_values_are_rejected() {
        let vector = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(
            decode_range(vector),
            Err(WireError::UnexpectedResultType("vector".into()))
        );
        let bad = br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"abc"]]}]}}"#;
        assert!(matches!(decode_range(bad), Err(WireError::BadValue { .. })));
        let wrong_shape = br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[["x"]]}]}}"#;
        assert!(matches!(
            decode_range(wrong_shape),
            Err(WireError::MalformedSeries(_))
        ));
    }

    #[test]
    fn excerpt_is_single_line_and_bounded() {
        assert_eq!(excerpt(b""), "(empty body)");
        assert_eq!(excerpt(b"Service Unavailable\r\n"), "Service Unavailable");
        let long = vec![b'x'; 1000];
        assert_eq!(excerpt(&long).chars().count(), 121);
    }
}
