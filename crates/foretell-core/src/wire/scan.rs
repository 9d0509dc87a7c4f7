//! A `query_range` answer read in one pass, without a general JSON parser, when it has the form
//! Prometheus (and Thanos, Mimir, VictoriaMetrics) write: no whitespace between tokens, sample
//! pairs `[t,"v"]` with plain decimal timestamps, no escapes inside the pairs.
//!
//! On the sidecar's cold load, reading answers was the largest part of its CPU. The general
//! decoder (serde_json) had to step over every `values` list once to capture it as raw text
//! before the sample scanner read it again; here each byte of a sample list is looked at once.
//! Only the small parts (label sets, `status`, `warnings`, unknown keys) go through serde_json,
//! which also validates them.
//!
//! Anything else, including every error, answers `None`, and the caller decodes the body with
//! the general decoder, which gives the same series or the error with its usual words. So this
//! reader decides nothing on its own: `tests::the_one_pass_reader_agrees_with_the_general_decoder`
//! compares the two over canonical answers and every truncation and many mutations of them.

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::{parse_value, RangeBody, RefusedSeries};
use crate::labels::check_label_name;
use crate::store::Sample;
use crate::timestamp::MAX_UNIX_SECONDS;
use crate::Labels;

/// The series of a matrix and those left out for their label names.
type Matrix = (Vec<(Labels, Vec<Sample>)>, RefusedSeries);

/// The answer, when the whole body is a successful matrix answer in the form this module reads
/// and every sample converts; `None` otherwise.
pub(super) fn matrix_answer(body: &[u8]) -> Option<RangeBody> {
    let mut cursor = Cursor { bytes: body, at: 0 };
    let mut status: Option<String> = None;
    let mut matrix: Option<Matrix> = None;
    let mut warnings: Option<Vec<String>> = None;
    cursor.object(|cursor, key| match key {
        b"status" => set_once(&mut status, cursor.small_value()?),
        b"data" => set_once(&mut matrix, data(cursor)?),
        b"warnings" => set_once(
            &mut warnings,
            cursor
                .small_value::<Option<Vec<String>>>()?
                .unwrap_or_default(),
        ),
        // Keys the general decoder reads too: in an answer of another kind only.
        b"errorType" | b"error" => None,
        _ => cursor.small_value::<IgnoredAny>().map(drop),
    })?;
    // JSON allows whitespace after the value, and nothing else.
    if !cursor.bytes[cursor.at..]
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        return None;
    }
    if status? != "success" {
        return None;
    }
    let (series, refused) = matrix?;
    Some(RangeBody {
        series,
        warnings: warnings.unwrap_or_default(),
        refused,
    })
}

/// A sample list alone, `[[t,"v"],...]` and nothing after it, every pair converted; `None` for
/// any other form and any sample that does not convert (the general parser reads those).
pub(super) fn sample_list(text: &str) -> Option<Vec<Sample>> {
    let mut cursor = Cursor {
        bytes: text.as_bytes(),
        at: 0,
    };
    // Two days at one minute: one allocation for the common list.
    let samples = cursor.samples(text.len() / 24)?;
    (cursor.at == text.len()).then_some(samples)
}

/// Stores the first value of a key; `None` for a repeated key, whose meaning the general
/// decoder settles.
fn set_once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

/// `data`: `resultType` "matrix" before `result`.
fn data(cursor: &mut Cursor) -> Option<Matrix> {
    let mut result_type: Option<String> = None;
    let mut matrix = None;
    cursor.object(|cursor, key| match key {
        b"resultType" => set_once(&mut result_type, cursor.small_value()?),
        b"result" if result_type.as_deref() == Some("matrix") => {
            set_once(&mut matrix, series_list(cursor)?)
        }
        b"result" => None,
        _ => cursor.small_value::<IgnoredAny>().map(drop),
    })?;
    matrix
}

/// `result`: the list of series, converted; series with a label name that cannot be exported
/// are counted, as the general decoder does.
fn series_list(cursor: &mut Cursor) -> Option<Matrix> {
    let mut series = Vec::new();
    let mut refused = RefusedSeries::default();
    // The previous series' length: the series of one answer usually share one.
    let mut expected_points = 0;
    cursor.byte(b'[')?;
    if cursor.peek()? == b']' {
        cursor.at += 1;
        return Some((series, refused));
    }
    loop {
        let mut metric: Option<BTreeMap<String, String>> = None;
        let mut values: Option<Vec<Sample>> = None;
        cursor.object(|cursor, key| match key {
            b"metric" => set_once(&mut metric, cursor.small_value()?),
            b"values" => set_once(&mut values, cursor.samples(expected_points)?),
            _ => cursor.small_value::<IgnoredAny>().map(drop),
        })?;
        let metric = metric?;
        let values = values.unwrap_or_default();
        expected_points = values.len();
        match metric
            .keys()
            .find_map(|name| check_label_name(name).err().zip(Some(name)))
        {
            Some((problem, name)) => refused.refuse(problem, name),
            None => series.push((Labels::from_pairs(metric), values)),
        }
        match cursor.next()? {
            b',' => {}
            b']' => return Some((series, refused)),
            _ => return None,
        }
    }
}

/// A position in the body.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn byte(&mut self, expected: u8) -> Option<()> {
        (self.next()? == expected).then_some(())
    }

    /// An object whose keys have no escapes; `each` reads the value of every key.
    fn object(&mut self, mut each: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.byte(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            self.byte(b'"')?;
            let start = self.at;
            let length = self.bytes[start..]
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
            self.at += length;
            self.byte(b'"')?;
            let key = &self.bytes[start..start + length];
            // The general decoder refuses a key that is not UTF-8.
            std::str::from_utf8(key).ok()?;
            self.byte(b':')?;
            each(self, key)?;
            match self.next()? {
                b',' => {}
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// The next value, found by its brackets and strings, then read and validated by
    /// serde_json: for the small parts of an answer.
    fn small_value<T: Deserialize<'a>>(&mut self) -> Option<T> {
        let start = self.at;
        let mut depth = 0usize;
        // Up to the `,`, `}` or `]` that ends it within the enclosing object or list.
        while let Some(byte) = self.peek() {
            match byte {
                b'"' => {
                    self.at += 1;
                    loop {
                        match self.next()? {
                            b'"' => break,
                            b'\\' => self.at += 1,
                            _ => {}
                        }
                    }
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth > 0 => depth -= 1,
                b',' | b'}' | b']' if depth == 0 => break,
                _ => {}
            }
            self.at += 1;
        }
        serde_json::from_slice(self.bytes.get(start..self.at)?).ok()
    }

    /// A sample list, `[[t,"v"],...]`, each pair converted as it is read.
    fn samples(&mut self, expected_points: usize) -> Option<Vec<Sample>> {
        self.byte(b'[')?;
        let mut samples = Vec::with_capacity(expected_points);
        if self.peek()? == b']' {
            self.at += 1;
            return Some(samples);
        }
        loop {
            self.byte(b'[')?;
            let timestamp_ms = self.timestamp_ms()?;
            self.byte(b',')?;
            self.byte(b'"')?;
            let start = self.at;
            let length = self.bytes[start..].iter().position(|&b| b == b'"')?;
            self.at += length + 1;
            let value = parse_value(std::str::from_utf8(&self.bytes[start..start + length]).ok()?)?;
            self.byte(b']')?;
            samples.push(Sample {
                timestamp_ms,
                value,
            });
            match self.next()? {
                b',' => {}
                b']' => return Some(samples),
                _ => return None,
            }
        }
    }

    /// A timestamp in Unix seconds as Prometheus writes it (`1700000000`, `1700000015.5`: at
    /// most millisecond precision), in milliseconds, within the general decoder's bounds. It is
    /// read as an integer, which is exact and what the general decoder's `f64` gives rounded to
    /// the millisecond; more decimals are left to the general decoder.
    fn timestamp_ms(&mut self) -> Option<i64> {
        let start = self.at;
        let whole = self.digits();
        // JSON numbers have no leading zeros; an empty or signed one is not for this reader.
        if whole == 0 || (whole > 1 && self.bytes[start] == b'0') || whole > 12 {
            return None;
        }
        let mut ms = std::str::from_utf8(&self.bytes[start..self.at])
            .ok()?
            .parse::<i64>()
            .ok()?
            * 1000;
        if self.peek() == Some(b'.') {
            self.at += 1;
            let fraction_start = self.at;
            let decimals = self.digits();
            if decimals == 0 || decimals > 3 {
                return None;
            }
            let mut fraction = 0;
            for (i, digit) in self.bytes[fraction_start..self.at].iter().enumerate() {
                fraction += i64::from(digit - b'0') * [100, 10, 1][i];
            }
            ms += fraction;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            return None;
        }
        (ms <= MAX_UNIX_SECONDS as i64 * 1000).then_some(ms)
    }

    /// Steps over ASCII digits; how many.
    fn digits(&mut self) -> usize {
        let count = self.bytes[self.at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        self.at += count;
        count
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode_general;
    use super::*;

    /// Bit for bit (NaN is not equal to itself).
    fn bits(body: &RangeBody) -> Vec<(Labels, Vec<(i64, u64)>)> {
        body.series
            .iter()
            .map(|(labels, samples)| {
                let samples = samples
                    .iter()
                    .map(|s| (s.timestamp_ms, s.value.to_bits()))
                    .collect();
                (labels.clone(), samples)
            })
            .collect()
    }

    const CANONICAL: &str = concat!(
        r#"{"status":"success","data":{"resultType":"matrix","result":["#,
        r#"{"metric":{"__name__":"up","job":"a \"b\"","x":"é"},"values":[[1700000000,"1"],[1700000015.5,"NaN"],[1700000030.25,"+Inf"],[1700000045.125,"-Inf"],[1700000060.5,"2.5e3"],[0,"-0"]]},"#,
        r#"{"metric":{},"values":[]},"#,
        r#"{"metric":{"bad-name":"v"},"values":[[1700000000,"1"]]},"#,
        r#"{"metric":{"job":"c"},"values":[[253402300799,"1e-300"]]}"#,
        r#"]},"warnings":["partial response"],"infos":["PromQL info: x"]}"#
    );

    #[test]
    fn the_canonical_answer_is_read_in_one_pass_as_the_general_decoder_reads_it() {
        let fast = matrix_answer(CANONICAL.as_bytes()).expect("the canonical form");
        let general = decode_general(CANONICAL.as_bytes()).expect("valid");
        assert_eq!(bits(&fast), bits(&general));
        assert_eq!(fast.warnings, general.warnings);
        assert_eq!(fast.refused, general.refused);
        assert_eq!(fast.series.len(), 3);
        assert_eq!(fast.refused.total(), 1);
        assert_eq!(fast.series[0].1[3].timestamp_ms, 1_700_000_045_125);
        assert_eq!(fast.series[0].0.get("job"), Some("a \"b\""));
        // Keys in another order, an empty result, trailing whitespace.
        for body in [
            r#"{"data":{"resultType":"matrix","result":[{"values":[[1,"1"]],"metric":{"a":"b"}}]},"status":"success"}"#,
            r#"{"status":"success","isPartial":false,"data":{"resultType":"matrix","result":[]},"stats":{"seriesFetched":"0"}}"#,
            "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[]}}\n",
        ] {
            let fast = matrix_answer(body.as_bytes()).expect(body);
            assert_eq!(Ok(fast), decode_general(body.as_bytes()), "{body}");
        }
    }

    /// What the reader does not take, the general decoder reads: whitespace, escapes in a
    /// pair, other number forms, errors of every kind, another result type.
    #[test]
    fn other_forms_and_every_error_are_left_to_the_general_decoder() {
        for body in [
            r#"{ "status":"success","data":{"resultType":"matrix","result":[]}}"#,
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1700000000,"\u0031"]]}]}}"#,
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1.7e9,"1"]]}]}}"#,
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1700000000.1234,"1"]]}]}}"#,
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1700000000,"x"]]}]}}"#,
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[999999999999,"1"]]}]}}"#,
            r#"{"status":"success","data":{"result":[],"resultType":"matrix"}}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
            r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
            r#"{"status":"success","status":"success","data":{"resultType":"matrix","result":[]}}"#,
            r#"{"status":"success","data":{"resultType":"matrix","result":[]}}x"#,
        ] {
            assert!(matrix_answer(body.as_bytes()).is_none(), "{body}");
        }
    }

    /// Every truncation of the canonical answer and every single-byte change of it to a byte
    /// that matters to JSON: whatever the reader accepts, the general decoder decodes to the
    /// same series, warnings and refusals.
    #[test]
    fn the_one_pass_reader_agrees_with_the_general_decoder() {
        let canonical = CANONICAL.as_bytes();
        let mut accepted = 0;
        let mut check = |body: &[u8]| {
            if let Some(fast) = matrix_answer(body) {
                accepted += 1;
                let general = decode_general(body).unwrap_or_else(|e| {
                    panic!("{e}: {}", String::from_utf8_lossy(body));
                });
                assert_eq!(
                    bits(&fast),
                    bits(&general),
                    "{}",
                    String::from_utf8_lossy(body)
                );
                assert_eq!(fast.warnings, general.warnings);
                assert_eq!(fast.refused, general.refused);
            }
        };
        for end in 0..=canonical.len() {
            check(&canonical[..end]);
        }
        for at in 0..canonical.len() {
            for byte in *br#" "\,:[]{}0159.e-+xN"# {
                let mut body = canonical.to_vec();
                body[at] = byte;
                check(&body);
                body.insert(at, byte);
                check(&body);
            }
        }
        assert!(accepted > 100, "{accepted} variants read");
    }
}
