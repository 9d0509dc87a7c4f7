//! Serde mirror of Prometheus' HTTP API answers, and its conversion into series.
//!
//! Format: <https://prometheus.io/docs/prometheus/latest/querying/api/#format-overview>.
//! Sample values are JSON strings so that `NaN`, `+Inf` and `-Inf` survive.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::labels::{check_label_name, describe_label_name, LabelNameProblem};
use crate::store::Sample;
use crate::timestamp::unix_seconds_to_ms;
use crate::Labels;
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

pub mod remote_read;
mod scan;
mod xor_chunk;

/// A `query_range` answer, decoded in one pass: `data.result` goes straight into [`Sample`]s
/// as it is read when `resultType` came before it (Prometheus writes it first); otherwise it is
/// kept as raw text and decoded once `resultType` is known (JSON keys come in any order).
#[derive(Debug, Default)]
struct ApiResponse<'a> {
    status: String,
    data: Option<RangeData<'a>>,
    error_type: Option<String>,
    error: Option<String>,
    warnings: Vec<String>,
}

#[derive(Debug, Default)]
struct RangeData<'a> {
    result_type: String,
    result: RangeResult<'a>,
}

#[derive(Debug, Default)]
enum RangeResult<'a> {
    #[default]
    Missing,
    /// Decoded as it was read, into the caller's [`Matrix`].
    Decoded,
    /// Read before `resultType`.
    Deferred(&'a RawValue),
    /// Not a matrix: skipped.
    Other,
}

/// Decodes an answer, its matrix into the [`Matrix`] it borrows.
struct ResponseSeed<'m>(&'m mut Matrix);

impl<'de> serde::de::DeserializeSeed<'de> for ResponseSeed<'_> {
    type Value = ApiResponse<'de>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ResponseSeed<'_> {
    type Value = ApiResponse<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a Prometheus API answer")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut response = ApiResponse::default();
        let mut status: Option<String> = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "status" => status = Some(map.next_value()?),
                "data" => response.data = map.next_value_seed(DataSeed(&mut *self.0))?,
                "errorType" => response.error_type = map.next_value()?,
                "error" => response.error = map.next_value()?,
                "warnings" => {
                    response.warnings = map.next_value::<Option<Vec<String>>>()?.unwrap_or_default()
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        response.status = status.ok_or_else(|| serde::de::Error::missing_field("status"))?;
        Ok(response)
    }
}

/// Decodes an answer's `data` (`null`: none), its matrix into the [`Matrix`] it borrows.
struct DataSeed<'m>(&'m mut Matrix);

impl<'de> serde::de::DeserializeSeed<'de> for DataSeed<'_> {
    type Value = Option<RangeData<'de>>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for DataSeed<'_> {
    type Value = Option<RangeData<'de>>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a query answer's data")
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut data = RangeData::default();
        let mut result_type: Option<String> = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "resultType" => result_type = Some(map.next_value()?),
                "result" => {
                    data.result = match result_type.as_deref() {
                        Some("matrix") => {
                            self.0.started = true;
                            map.next_value_seed(MatrixSeed(&mut *self.0))?;
                            self.0.finished = true;
                            RangeResult::Decoded
                        }
                        Some(_) => {
                            map.next_value::<IgnoredAny>()?;
                            RangeResult::Other
                        }
                        None => RangeResult::Deferred(map.next_value()?),
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        data.result_type =
            result_type.ok_or_else(|| serde::de::Error::missing_field("resultType"))?;
        Ok(Some(data))
    }
}

/// Decodes a matrix into the [`Matrix`] it borrows.
struct MatrixSeed<'m>(&'m mut Matrix);

impl<'de> serde::de::DeserializeSeed<'de> for MatrixSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(MatrixVisitor(self.0))
    }
}

#[derive(Debug, Deserialize)]
struct WireSeries {
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: WireSamples,
}

/// A series' `values`, converted into samples as they are read (no list of pairs in between,
/// no string allocated per sample), or the first sample that could not be (the rest of the
/// list is then only skipped).
#[derive(Debug)]
struct WireSamples(Result<Vec<Sample>, WireError>);

/// A series without `values` has no samples.
impl Default for WireSamples {
    fn default() -> Self {
        WireSamples(Ok(Vec::new()))
    }
}

/// The list is taken as raw text first and read by the one-pass reader's sample scanner
/// (`scan::sample_list`) when it has the form Prometheus writes, by the general parser
/// otherwise, which also gives the error of a bad sample: an answer the one-pass reader did not
/// take as a whole (whitespace elsewhere, say) still has its lists read fast.
impl<'de> Deserialize<'de> for WireSamples {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue as Deserialize<'de>>::deserialize(deserializer)?;
        if let Some(samples) = scan::sample_list(raw.get()) {
            return Ok(WireSamples(Ok(samples)));
        }
        let mut general = serde_json::Deserializer::from_str(raw.get());
        // The parser's position is within the list, not the answer: say so.
        serde::Deserializer::deserialize_seq(&mut general, SamplesVisitor)
            .map_err(|e| serde::de::Error::custom(format_args!("in a series' values list, {e}")))
    }
}

struct SamplesVisitor;

impl<'de> Visitor<'de> for SamplesVisitor {
    type Value = WireSamples;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of [timestamp, \"value\"] pairs")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WireSamples, A::Error> {
        let mut samples = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
        while let Some(pair) = seq.next_element::<WirePair<'de>>()? {
            match pair.sample() {
                Ok(sample) => samples.push(sample),
                Err(error) => {
                    while seq.next_element::<IgnoredAny>()?.is_some() {}
                    return Ok(WireSamples(Err(error)));
                }
            }
        }
        Ok(WireSamples(Ok(samples)))
    }
}

/// One `[timestamp, "value"]` pair; the value borrows from the body.
#[derive(Debug, Deserialize)]
struct WirePair<'a>(f64, #[serde(borrow)] Cow<'a, str>);

impl WirePair<'_> {
    fn sample(&self) -> Result<Sample, WireError> {
        let WirePair(timestamp, text) = self;
        Ok(Sample {
            timestamp_ms: unix_seconds_to_ms(*timestamp).ok_or(WireError::BadTimestamp {
                timestamp: *timestamp,
            })?,
            value: parse_value(text).ok_or_else(|| WireError::BadValue {
                value: text.chars().take(64).collect(),
                timestamp: *timestamp,
            })?,
        })
    }
}

/// A decoded successful `query_range` answer.
#[derive(Debug, Default, PartialEq)]
pub struct RangeBody {
    pub series: Vec<(Labels, Vec<Sample>)>,
    pub warnings: Vec<String>,
    /// Series left out because a label name cannot be exported or queried.
    pub refused: RefusedSeries,
}

/// Series of an answer left out for their label names, counted by problem, with the first
/// offending name (escaped for logs) as an example.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RefusedSeries {
    pub counts: BTreeMap<LabelNameProblem, u64>,
    pub example: Option<String>,
}

impl RefusedSeries {
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Adds another answer's refusals (a range fetched in several requests).
    pub fn absorb(&mut self, other: RefusedSeries) {
        for (problem, count) in other.counts {
            *self.counts.entry(problem).or_default() += count;
        }
        if self.example.is_none() {
            self.example = other.example;
        }
    }

    fn refuse(&mut self, problem: LabelNameProblem, name: &str) {
        *self.counts.entry(problem).or_default() += 1;
        if self.example.is_none() {
            self.example = Some(describe_label_name(name));
        }
    }
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
    /// A timestamp no Prometheus writes for a range query: before 1970, after the year 9999,
    /// or not a number. The whole answer is refused; its source is broken or hostile.
    #[error("sample timestamp {timestamp} is not Unix seconds between 1970 and the year 9999")]
    BadTimestamp { timestamp: f64 },
}

/// Decodes a `query_range` body whatever its HTTP status: an API error object is returned as
/// [`WireError::Api`] so the caller can report Prometheus' own words.
///
/// Series with a label name that cannot be exported ([`check_label_name`]) are left out and
/// counted in [`RangeBody::refused`]; a sample with an impossible timestamp fails the answer.
pub fn decode_range(body: &[u8]) -> Result<RangeBody, WireError> {
    match scan::matrix_answer(body) {
        Some(answer) => Ok(answer),
        None => decode_general(body),
    }
}

/// [`decode_range`] by serde_json, for every form of the answer and every error.
fn decode_general(body: &[u8]) -> Result<RangeBody, WireError> {
    let mut decoded = Matrix::default();
    let response = decode_response(body, &mut decoded).map_err(|e| {
        // A value of the wrong shape inside the series (`[["x"]]`) is the series' fault; text
        // that is not JSON at all, or ends early, is the answer's.
        let in_series = decoded.started && !decoded.finished;
        if e.classify() == serde_json::error::Category::Data && in_series {
            WireError::MalformedSeries(e.to_string())
        } else {
            WireError::NotJson {
                detail: e.to_string(),
                excerpt: excerpt(body),
            }
        }
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
    match data.result {
        RangeResult::Decoded => {}
        RangeResult::Deferred(raw) => {
            let mut deserializer = serde_json::Deserializer::from_str(raw.get());
            serde::Deserializer::deserialize_seq(&mut deserializer, MatrixVisitor(&mut decoded))
                .map_err(|e| WireError::MalformedSeries(e.to_string()))?;
        }
        RangeResult::Missing | RangeResult::Other => {
            return Err(WireError::NotJson {
                detail: "a matrix answer without `result`".to_owned(),
                excerpt: excerpt(body),
            })
        }
    }
    if let Some(error) = decoded.error {
        return Err(error);
    }
    Ok(RangeBody {
        series: decoded.series,
        warnings: response.warnings,
        refused: decoded.refused,
    })
}

/// The answer, its matrix decoded into `matrix` as it is read; the whole body must be one
/// JSON value.
fn decode_response<'a>(
    body: &'a [u8],
    matrix: &mut Matrix,
) -> Result<ApiResponse<'a>, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let response =
        serde::de::DeserializeSeed::deserialize(ResponseSeed(matrix), &mut deserializer)?;
    deserializer.end()?;
    Ok(response)
}

/// What the matrix decoder keeps: converted series, refusals, and the first sample error
/// (after which the rest of the answer is only skipped).
#[derive(Debug, Default)]
struct Matrix {
    /// The decoder entered and left the matrix (an error between is the series' fault).
    started: bool,
    finished: bool,
    series: Vec<(Labels, Vec<Sample>)>,
    refused: RefusedSeries,
    error: Option<WireError>,
}

struct MatrixVisitor<'m>(&'m mut Matrix);

impl<'de> Visitor<'de> for MatrixVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of series")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let matrix = self.0;
        while matrix.error.is_none() {
            let Some(series) = seq.next_element::<WireSeries>()? else {
                return Ok(());
            };
            match convert(series) {
                Ok(Converted::Series(labels, samples)) => matrix.series.push((labels, samples)),
                Ok(Converted::Refused(problem, name)) => matrix.refused.refuse(problem, &name),
                Err(error) => matrix.error = Some(error),
            }
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

enum Converted {
    Series(Labels, Vec<Sample>),
    Refused(LabelNameProblem, String),
}

fn convert(series: WireSeries) -> Result<Converted, WireError> {
    for name in series.metric.keys() {
        if let Err(problem) = check_label_name(name) {
            return Ok(Converted::Refused(problem, name.clone()));
        }
    }
    let samples = series.values.0?;
    Ok(Converted::Series(
        Labels::from_pairs(series.metric),
        samples,
    ))
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
        match decode_range(wrong_shape) {
            Err(WireError::MalformedSeries(message)) => {
                assert!(
                    message.starts_with("in a series' values list, "),
                    "{message}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    /// Issue 16, item 1: label names that would forge samples or break the exposition.
    #[test]
    fn series_with_label_names_that_cannot_be_exported_are_refused_and_counted() {
        let injected = r#"zz=\"1\"} 1\nforetell_anomaly_score{query=\"payments\",instance=\"db-1\",injected=\"yes\"} 999\nx{a"#;
        let body = format!(
            r#"{{"status":"success","data":{{"resultType":"matrix","result":[
            {{"metric":{{"{injected}":"v","job":"a"}},"values":[[1700000000,"1"]]}},
            {{"metric":{{"":"v"}},"values":[[1700000000,"1"]]}},
            {{"metric":{{"bad name":"v"}},"values":[[1700000000,"1"]]}},
            {{"metric":{{"__meta_x":"v"}},"values":[[1700000000,"1"]]}},
            {{"metric":{{"__name__":"up","job":"ok"}},"values":[[1700000000,"2"]]}}]}}}}"#
        );
        let decoded = decode_range(body.as_bytes()).expect("decodes");
        assert_eq!(decoded.series.len(), 1);
        assert_eq!(decoded.series[0].0.get("job"), Some("ok"));
        assert_eq!(decoded.refused.total(), 4);
        assert_eq!(decoded.refused.counts[&LabelNameProblem::NotClassic], 2);
        assert_eq!(decoded.refused.counts[&LabelNameProblem::Empty], 1);
        assert_eq!(decoded.refused.counts[&LabelNameProblem::Reserved], 1);
        let example = decoded.refused.example.expect("an example");
        assert!(
            example.starts_with(r#""zz=\"1\"} 1\nforetell"#),
            "{example}"
        );
        assert!(!example.contains('\n'));
    }

    /// The list as Prometheus writes it is read by the scanner; any other spelling of the same
    /// JSON by the general parser, with the same samples or the same error.
    #[test]
    fn the_fast_reading_of_values_agrees_with_the_general_parser() {
        let general = |text: &str| {
            let mut parser = serde_json::Deserializer::from_str(text);
            serde::Deserializer::deserialize_seq(&mut parser, SamplesVisitor)
                .expect("valid JSON")
                .0
        };
        let canonical = r#"[[1700000000,"1"],[1700000015.5,"NaN"],[1700000030,"-2.5e-3"],[1700000045.125,"+Inf"]]"#;
        // Compared bit for bit (NaN is not equal to itself).
        let bits = |samples: Result<Vec<Sample>, WireError>| {
            samples.map(|s| {
                s.iter()
                    .map(|x| (x.timestamp_ms, x.value.to_bits()))
                    .collect::<Vec<_>>()
            })
        };
        let fast = scan::sample_list(canonical).expect("the canonical form");
        assert_eq!(fast.len(), 4);
        assert_eq!(bits(Ok(fast)), bits(general(canonical)));
        assert_eq!(scan::sample_list("[]"), Some(Vec::new()));
        // Whitespace, an escaped character, a value of another type, a bad sample, a timestamp
        // finer than a millisecond: the general parser.
        for other in [
            r#"[[1e400,"1"]]"#,
            r#"[ [1700000000, "1"] ]"#,
            r#"[[1700000000,"\u0031"]]"#,
            r#"[[1700000000,1]]"#,
            r#"[["1700000000","1"]]"#,
            r#"[[1700000000,"x"]]"#,
            r#"[[1700000000.0001,"1"]]"#,
            r#"[[1700000000,"1"]]x"#,
        ] {
            assert_eq!(scan::sample_list(other), None, "{other}");
        }
        // The same samples through `decode_range` whichever way the list is spelt.
        let answer = |values: &str| {
            format!(
                r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{"job":"a"}},"values":{values}}}]}}}}"#
            )
        };
        let spaced =
            decode_range(answer(r#"[ [1700000000, "1"] , [1700000060, "\u0032"] ]"#).as_bytes())
                .expect("valid");
        let plain = decode_range(answer(r#"[[1700000000,"1"],[1700000060,"2"]]"#).as_bytes())
            .expect("valid");
        assert_eq!(spaced, plain);
        // The first bad sample is the error.
        assert!(matches!(
            general(r#"[[1700000000,"1"],[1700000060,"x"],[1,"y"]]"#),
            Err(WireError::BadValue { .. })
        ));
        assert!(matches!(
            general(r#"[[1700000000,"1"],[-5,"2"]]"#),
            Err(WireError::BadTimestamp { .. })
        ));
    }

    /// Issue 16, item 2: timestamps that overflowed the series window.
    #[test]
    fn impossible_timestamps_fail_the_answer() {
        for timestamp in ["1e300", "-1e18", "-1", "253402300800"] {
            let body = format!(
                r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{}},"values":[[1700000000,"1"],[{timestamp},"1"]]}}]}}}}"#
            );
            match decode_range(body.as_bytes()) {
                Err(WireError::BadTimestamp { .. }) => {}
                other => panic!("{timestamp}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_object_without_status_or_result_type_is_not_an_answer() {
        for body in [
            &br#"{}"#[..],
            br#"{"data":{"resultType":"matrix","result":[]}}"#,
            br#"{"status":"success","data":{"result":[]}}"#,
            br#"{"status":"success","data":{"resultType":"matrix"}}"#,
        ] {
            assert!(
                matches!(decode_range(body), Err(WireError::NotJson { .. })),
                "{}: {:?}",
                String::from_utf8_lossy(body),
                decode_range(body)
            );
        }
    }

    #[test]
    fn result_before_result_type_decodes_too() {
        let body = br#"{"data":{"result":[{"values":[[1,"1"]],"metric":{"a":"b"}}],"resultType":"matrix"},"status":"success"}"#;
        let decoded = decode_range(body).expect("valid");
        assert_eq!(decoded.series[0].0.get("a"), Some("b"));
        assert_eq!(decoded.series[0].1[0].timestamp_ms, 1000);
    }

    #[test]
    fn excerpt_is_single_line_and_bounded() {
        assert_eq!(excerpt(b""), "(empty body)");
        assert_eq!(excerpt(b"Service Unavailable\r\n"), "Service Unavailable");
        let long = vec![b'x'; 1000];
        assert_eq!(excerpt(&long).chars().count(), 121);
    }
}
