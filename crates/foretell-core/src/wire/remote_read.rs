//! Prometheus' remote read API (`/api/v1/read`) in its streamed form: the request that asks for
//! the stored samples of a plain selector, the answer's frames of XOR chunks, and the series
//! they make once put on a query's grid exactly as `query_range` would.
//!
//! Loading the history of thousands of series through `query_range` makes Prometheus evaluate
//! every grid point and write every value as JSON text; remote read sends the compressed
//! chunks it has stored, so Prometheus does a fraction of the work (a tenth of the CPU for
//! 10,000 series in `docs/benchmarks.md`) and foretell reads far fewer bytes.
//!
//! Messages (`prometheus/prompb/remote.proto`, `types.proto`):
//!
//! ```text
//! ReadRequest          { repeated Query queries = 1; repeated ResponseType accepted_response_types = 2; }
//! Query                { int64 start_timestamp_ms = 1; int64 end_timestamp_ms = 2;
//!                        repeated LabelMatcher matchers = 3; }
//! LabelMatcher         { Type type = 1 (EQ, NEQ, RE, NRE); string name = 2; string value = 3; }
//! ChunkedReadResponse  { repeated ChunkedSeries chunked_series = 1; int64 query_index = 2; }
//! ChunkedSeries        { repeated Label labels = 1; repeated Chunk chunks = 2; }
//! Chunk                { int64 min_time_ms = 1; int64 max_time_ms = 2; Encoding type = 3 (XOR = 1);
//!                        bytes data = 4; }
//! ```
//!
//! The request is sent snappy-compressed (block format); the answer is a sequence of frames,
//! each a varint length, the big-endian CRC-32C (Castagnoli) of the frame and a
//! `ChunkedReadResponse`. One series may continue over several frames.

use super::xor_chunk::{self, ChunkError};
use super::{RangeBody, RefusedSeries};
use crate::labels::check_label_name;
use crate::protobuf::{self, put_bytes, put_varint_field, Field, Fields, ProtobufError};
use crate::selector::{MatchKind, Matcher};
use crate::store::Sample;
use crate::Labels;

/// `Content-Type` of a streamed answer; any other means the server did not stream.
pub const STREAMED_CONTENT_TYPE: &str =
    "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";

/// The value bits Prometheus writes when a series ends (a staleness marker): the series has no
/// value from there until its next real sample.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// `ResponseType.STREAMED_XOR_CHUNKS`.
const STREAMED_XOR_CHUNKS: u64 = 1;
/// `Chunk.Encoding.XOR`; the histogram encodings are skipped (foretell models floats).
const ENCODING_XOR: u64 = 1;

/// The protobuf `ReadRequest` for the stored samples of `matchers` between `start_ms` and
/// `end_ms` (both included), asking for streamed XOR chunks. Compression is the caller's.
pub fn encode_request(matchers: &[Matcher], start_ms: i64, end_ms: i64) -> Vec<u8> {
    let mut query = Vec::new();
    put_varint_field(&mut query, 1, start_ms as u64);
    put_varint_field(&mut query, 2, end_ms as u64);
    let mut field = Vec::new();
    for matcher in matchers {
        field.clear();
        let kind = match matcher.kind {
            MatchKind::Equal => 0,
            MatchKind::NotEqual => 1,
            MatchKind::Regex => 2,
            MatchKind::NotRegex => 3,
        };
        put_varint_field(&mut field, 1, kind);
        put_bytes(&mut field, 2, matcher.name.as_bytes());
        put_bytes(&mut field, 3, matcher.value.as_bytes());
        put_bytes(&mut query, 3, &field);
    }
    let mut request = Vec::new();
    put_bytes(&mut request, 1, &query);
    // A packed repeated enum, as proto3 writes it.
    put_bytes(&mut request, 2, &[STREAMED_XOR_CHUNKS as u8]);
    request
}

/// Why a streamed answer could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RemoteReadError {
    #[error("frame {frame} of the streamed answer is cut off (at byte {at})")]
    Truncated { frame: usize, at: usize },
    /// The chunks hold more samples than the caller can keep: XOR chunks store a repeated
    /// value in two bits, so a small answer can unpack to far more memory than its size.
    #[error("the streamed answer unpacks to more than {limit} samples")]
    TooManySamples { limit: usize },
    #[error("frame {frame} of the streamed answer fails its CRC-32C check (corrupt in transit)")]
    Checksum { frame: usize },
    #[error("frame {frame} of the streamed answer: {source}")]
    Protobuf { frame: usize, source: ProtobufError },
    #[error("frame {frame} of the streamed answer: a label is not UTF-8")]
    NotUtf8 { frame: usize },
    #[error("series {labels}: {source}")]
    Chunk { labels: String, source: ChunkError },
}

/// One series of a streamed answer: its labels and its stored samples (staleness markers
/// included), in time order without repeated timestamps.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredSeries {
    pub labels: Vec<(String, String)>,
    pub samples: Vec<(i64, f64)>,
}

/// Reads every frame of a streamed answer into its series, holding at most `max_samples`
/// samples in all (the chunks' own counts are checked before each is unpacked).
pub fn decode_stream(
    body: &[u8],
    max_samples: usize,
) -> Result<Vec<StoredSeries>, RemoteReadError> {
    let mut series: Vec<StoredSeries> = Vec::new();
    let mut samples_left = max_samples;
    let mut at = 0;
    let mut frame = 0;
    while at < body.len() {
        let truncated = RemoteReadError::Truncated { frame, at };
        let size = protobuf::read_varint(body, &mut at).ok_or(truncated.clone())?;
        let checksum = body
            .get(at..at + 4)
            .ok_or(truncated.clone())?
            .try_into()
            .map(u32::from_be_bytes)
            .map_err(|_| truncated.clone())?;
        at += 4;
        let end = usize::try_from(size)
            .ok()
            .and_then(|size| at.checked_add(size))
            .ok_or(truncated.clone())?;
        let data = body.get(at..end).ok_or(truncated)?;
        at = end;
        if crc32c(data) != checksum {
            return Err(RemoteReadError::Checksum { frame });
        }
        read_frame(data, frame, &mut series, &mut samples_left, max_samples)?;
        frame += 1;
    }
    for one in &mut series {
        // Chunks of a series come in time order and do not overlap, except where the storage
        // merged overlapping blocks: then the samples are sorted and a repeated timestamp kept
        // once, as the query engine sees it.
        if one.samples.windows(2).any(|w| w[0].0 >= w[1].0) {
            one.samples.sort_by_key(|&(t, _)| t);
            one.samples.dedup_by_key(|&mut (t, _)| t);
        }
    }
    Ok(series)
}

fn read_frame(
    data: &[u8],
    frame: usize,
    series: &mut Vec<StoredSeries>,
    samples_left: &mut usize,
    max_samples: usize,
) -> Result<(), RemoteReadError> {
    let protobuf = |source| RemoteReadError::Protobuf { frame, source };
    for field in Fields::of(data) {
        let (1, Field::Bytes(chunked)) = field.map_err(protobuf)? else {
            continue;
        };
        let mut labels = Vec::new();
        let mut chunks = Vec::new();
        for field in Fields::of(chunked) {
            match field.map_err(protobuf)? {
                (1, Field::Bytes(label)) => labels.push(read_label(label, frame)?),
                (2, Field::Bytes(chunk)) => chunks.push(chunk),
                _ => {}
            }
        }
        // A series too long for one frame continues in the next with the same labels.
        let current = match series.last_mut() {
            Some(last) if last.labels == labels => last,
            _ => {
                series.push(StoredSeries {
                    labels,
                    samples: Vec::new(),
                });
                let index = series.len() - 1;
                &mut series[index]
            }
        };
        for chunk in chunks {
            let (mut encoding, mut bytes) = (0, &[][..]);
            for field in Fields::of(chunk) {
                match field.map_err(protobuf)? {
                    (3, Field::Varint(value)) => encoding = value,
                    (4, Field::Bytes(data)) => bytes = data,
                    _ => {}
                }
            }
            if encoding == ENCODING_XOR {
                let count = bytes.get(..2).map_or(0, |head| {
                    usize::from(u16::from_be_bytes([head[0], head[1]]))
                });
                *samples_left = samples_left
                    .checked_sub(count)
                    .ok_or(RemoteReadError::TooManySamples { limit: max_samples })?;
                xor_chunk::decode(bytes, &mut current.samples).map_err(|source| {
                    RemoteReadError::Chunk {
                        labels: Labels::from_pairs(current.labels.iter().cloned()).to_string(),
                        source,
                    }
                })?;
            }
        }
    }
    Ok(())
}

fn read_label(label: &[u8], frame: usize) -> Result<(String, String), RemoteReadError> {
    let (mut name, mut value) = (String::new(), String::new());
    for field in Fields::of(label) {
        let field = field.map_err(|source| RemoteReadError::Protobuf { frame, source })?;
        let text = |bytes: &[u8]| {
            std::str::from_utf8(bytes)
                .map(str::to_owned)
                .map_err(|_| RemoteReadError::NotUtf8 { frame })
        };
        match field {
            (1, Field::Bytes(bytes)) => name = text(bytes)?,
            (2, Field::Bytes(bytes)) => value = text(bytes)?,
            _ => {}
        }
    }
    Ok((name, value))
}

/// How the query engine picks each grid point's value from the stored samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    pub start_ms: i64,
    pub end_ms: i64,
    pub step_ms: i64,
    /// Prometheus' `--query.lookback-delta`: how old the newest sample may be.
    pub lookback_ms: i64,
    /// Whether a sample exactly `lookback_ms` old still counts (Prometheus 2; Prometheus 3
    /// excludes it).
    pub lookback_inclusive: bool,
}

impl Grid {
    /// The earliest sample any grid point can use: the start of the remote read.
    pub fn first_needed_ms(&self) -> i64 {
        self.start_ms - self.lookback_ms
    }
}

/// Each stored series on the grid, as `query_range` of the selector answers: at every grid
/// point the newest sample at or before it, unless that is older than the lookback or a
/// staleness marker (any other NaN is the one NaN JSON's `"NaN"` reads as); a series without any point is left out, as are series with a label name
/// that cannot be exported ([`check_label_name`], counted in [`RangeBody::refused`]).
pub fn on_grid(stored: Vec<StoredSeries>, grid: &Grid) -> RangeBody {
    let mut body = RangeBody::default();
    let mut refused = RefusedSeries::default();
    'series: for one in stored {
        for (name, _) in &one.labels {
            if let Err(problem) = check_label_name(name) {
                refused.refuse(problem, name);
                continue 'series;
            }
        }
        let samples = grid_points(&one.samples, grid);
        if !samples.is_empty() {
            body.series.push((Labels::from_pairs(one.labels), samples));
        }
    }
    body.refused = refused;
    body
}

fn grid_points(stored: &[(i64, f64)], grid: &Grid) -> Vec<Sample> {
    let mut points = Vec::new();
    if grid.step_ms <= 0 || stored.is_empty() {
        return points;
    }
    let mut next = 0;
    let mut t = grid.start_ms;
    while t <= grid.end_ms {
        while next < stored.len() && stored[next].0 <= t {
            next += 1;
        }
        if let Some(&(sampled_at, value)) = next.checked_sub(1).map(|i| &stored[i]) {
            let age = t - sampled_at;
            let fresh = if grid.lookback_inclusive {
                age <= grid.lookback_ms
            } else {
                age < grid.lookback_ms
            };
            if fresh && value.to_bits() != STALE_NAN_BITS {
                points.push(Sample {
                    timestamp_ms: t,
                    // One NaN, whatever bits the exporter wrote: `query_range` writes "NaN".
                    value: if value.is_nan() { f64::NAN } else { value },
                });
            }
        }
        t += grid.step_ms;
    }
    points
}

/// CRC-32C (Castagnoli polynomial, reflected), the checksum of each frame. No crate for it is
/// among the dependencies; at a table lookup per byte it costs far less than reading the frame.
fn crc32c(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut crc = i as u32;
            let mut bit = 0;
            while bit < 8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0x82f6_3b78
                } else {
                    crc >> 1
                };
                bit += 1;
            }
            table[i] = crc;
            i += 1;
        }
        table
    };
    !data.iter().fold(!0u32, |crc, &byte| {
        TABLE[((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protobuf::put_varint;
    use crate::wire::xor_chunk::tests::encode;

    fn chunk_message(samples: &[(i64, f64)], encoding: u64) -> Vec<u8> {
        let mut chunk = Vec::new();
        put_varint_field(&mut chunk, 1, samples.first().map_or(0, |s| s.0) as u64);
        put_varint_field(&mut chunk, 2, samples.last().map_or(0, |s| s.0) as u64);
        put_varint_field(&mut chunk, 3, encoding);
        put_bytes(&mut chunk, 4, &encode(samples));
        chunk
    }

    fn series_message(labels: &[(&str, &str)], chunks: &[Vec<u8>]) -> Vec<u8> {
        let mut series = Vec::new();
        for (name, value) in labels {
            let mut label = Vec::new();
            put_bytes(&mut label, 1, name.as_bytes());
            put_bytes(&mut label, 2, value.as_bytes());
            put_bytes(&mut series, 1, &label);
        }
        for chunk in chunks {
            put_bytes(&mut series, 2, chunk);
        }
        series
    }

    fn frame(series: &[Vec<u8>], out: &mut Vec<u8>) {
        let mut message = Vec::new();
        for one in series {
            put_bytes(&mut message, 1, one);
        }
        put_varint_field(&mut message, 2, 0);
        put_varint(out, message.len() as u64);
        out.extend_from_slice(&crc32c(&message).to_be_bytes());
        out.extend_from_slice(&message);
    }

    #[test]
    fn the_checksum_is_crc32c() {
        // The check value of CRC-32C (RFC 3720, appendix B.4).
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
    }

    #[test]
    fn the_request_encodes_range_matchers_and_the_streamed_response_type() {
        let matchers = vec![
            Matcher {
                name: "__name__".into(),
                kind: MatchKind::Equal,
                value: "up".into(),
            },
            Matcher {
                name: "job".into(),
                kind: MatchKind::NotRegex,
                value: "a|b".into(),
            },
        ];
        let request = encode_request(&matchers, 1_000, 2_000);
        let fields: Vec<_> = Fields::of(&request).collect::<Result<_, _>>().expect("ok");
        assert_eq!(fields.len(), 2);
        assert_eq!(fields[1], (2, Field::Bytes(&[1])));
        let (1, Field::Bytes(query)) = fields[0] else {
            panic!("{fields:?}")
        };
        let query: Vec<_> = Fields::of(query).collect::<Result<_, _>>().expect("ok");
        assert_eq!(query[0], (1, Field::Varint(1_000)));
        assert_eq!(query[1], (2, Field::Varint(2_000)));
        let (3, Field::Bytes(second)) = query[3] else {
            panic!("{query:?}")
        };
        let second: Vec<_> = Fields::of(second).collect::<Result<_, _>>().expect("ok");
        assert_eq!(
            second,
            vec![
                (1, Field::Varint(3)),
                (2, Field::Bytes(b"job")),
                (3, Field::Bytes(b"a|b"))
            ]
        );
    }

    fn two_series_stream() -> Vec<u8> {
        let a1: Vec<(i64, f64)> = (0..5).map(|i| (i * 15_000, i as f64)).collect();
        let a2: Vec<(i64, f64)> = (5..9).map(|i| (i * 15_000, i as f64)).collect();
        let b: Vec<(i64, f64)> = vec![(0, 7.0), (60_000, 8.0)];
        let histogram = chunk_message(&[(0, 1.0)], 2);
        let mut body = Vec::new();
        let a = [("__name__", "m"), ("instance", "a")];
        frame(
            &[series_message(&a, &[chunk_message(&a1, ENCODING_XOR)])],
            &mut body,
        );
        frame(
            &[
                series_message(&a, &[chunk_message(&a2, ENCODING_XOR)]),
                series_message(
                    &[("__name__", "m"), ("instance", "b")],
                    &[histogram, chunk_message(&b, ENCODING_XOR)],
                ),
            ],
            &mut body,
        );
        body
    }

    #[test]
    fn a_series_continued_in_the_next_frame_is_one_series_and_histogram_chunks_are_skipped() {
        let series = decode_stream(&two_series_stream(), 1 << 20).expect("decodes");
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].samples.len(), 9);
        assert_eq!(series[0].samples[8], (120_000, 8.0));
        assert_eq!(series[1].samples, vec![(0, 7.0), (60_000, 8.0)]);
        assert_eq!(series[1].labels[1], ("instance".into(), "b".into()));
    }

    #[test]
    fn overlapping_chunks_are_sorted_and_a_repeated_timestamp_kept_once() {
        let mut body = Vec::new();
        let first = chunk_message(&[(0, 1.0), (30_000, 3.0)], ENCODING_XOR);
        let overlapping = chunk_message(&[(15_000, 2.0), (30_000, 3.0)], ENCODING_XOR);
        frame(
            &[series_message(&[("__name__", "m")], &[first, overlapping])],
            &mut body,
        );
        let series = decode_stream(&body, 1 << 20).expect("decodes");
        assert_eq!(
            series[0].samples,
            vec![(0, 1.0), (15_000, 2.0), (30_000, 3.0)]
        );
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_and_the_samples_are_capped() {
        let body = two_series_stream();
        // A cut between frames leaves a shorter valid stream (the HTTP layer reports a body
        // cut short); every cut inside a frame is an error.
        let mut boundaries = vec![0];
        while *boundaries.last().expect("one") < body.len() {
            let mut at = *boundaries.last().expect("one");
            let size = protobuf::read_varint(&body, &mut at).expect("size");
            boundaries.push(at + 4 + size as usize);
        }
        for cut in (1..body.len()).filter(|cut| !boundaries.contains(cut)) {
            assert!(
                decode_stream(&body[..cut], 1 << 20).is_err(),
                "cut at {cut}"
            );
        }
        assert_eq!(boundaries.len(), 3, "two frames");
        for at in 0..body.len() {
            let mut corrupt = body.clone();
            corrupt[at] ^= 0x10;
            // A flipped bit in a length may still frame the bytes some other way; it must then
            // fail the checksum or the framing, never decode into other series.
            if let Ok(series) = decode_stream(&corrupt, 1 << 20) {
                panic!("a flipped bit at {at} decoded {series:?}");
            }
        }
        // The two series hold 11 samples: a cap below that refuses the answer, one at it does not.
        assert_eq!(
            decode_stream(&body, 10),
            Err(RemoteReadError::TooManySamples { limit: 10 })
        );
        assert!(decode_stream(&body, 11).is_ok());
    }

    fn grid(start_ms: i64, end_ms: i64, inclusive: bool) -> Grid {
        Grid {
            start_ms,
            end_ms,
            step_ms: 60_000,
            lookback_ms: 300_000,
            lookback_inclusive: inclusive,
        }
    }

    #[test]
    fn grid_points_take_the_newest_sample_within_the_lookback_and_stop_at_a_staleness_marker() {
        let stale = f64::from_bits(STALE_NAN_BITS);
        let stored = vec![
            (10_000, 1.0),
            (70_000, 2.0),
            (100_000, f64::from_bits(0x7ff8_0000_0000_0001)),
            (130_000, 4.0),
            // Scrapes stop: the last sample fills the lookback, then there is no value.
            (500_000, 5.0),
            (530_000, stale),
            (900_000, 6.0),
        ];
        let points = |inclusive| {
            grid_points(&stored, &grid(0, 1_260_000, inclusive))
                .into_iter()
                .map(|s| (s.timestamp_ms / 1000, s.value))
                .collect::<Vec<_>>()
        };
        let got = points(true);
        let expected = [
            (60, 1.0),
            (120, f64::NAN),
            (180, 4.0),
            (240, 4.0),
            (300, 4.0),
            (360, 4.0),
            (420, 4.0),
            (900, 6.0),
            (960, 6.0),
            (1020, 6.0),
            (1080, 6.0),
            (1140, 6.0),
            (1200, 6.0),
        ];
        assert_eq!(got.len(), expected.len(), "{got:?}");
        for (g, e) in got.iter().zip(expected) {
            assert_eq!(g.0, e.0, "{got:?}");
            assert_eq!(g.1.to_bits(), e.1.to_bits(), "{got:?}");
        }
        // A sample exactly the lookback old counts in Prometheus 2 only.
        let exclusive = points(false);
        assert!(exclusive.iter().all(|p| p.0 != 1200), "{exclusive:?}");
        assert!(got.iter().any(|p| p.0 == 1200));
    }

    #[test]
    fn series_without_points_or_with_unexportable_label_names_are_left_out() {
        let stored = vec![
            StoredSeries {
                labels: vec![("__name__".into(), "m".into()), ("a".into(), "1".into())],
                samples: vec![(0, 1.0)],
            },
            StoredSeries {
                labels: vec![("__name__".into(), "m".into()), ("a".into(), "2".into())],
                samples: vec![(10_000_000, 1.0)],
            },
            StoredSeries {
                labels: vec![
                    ("__name__".into(), "m".into()),
                    ("bad-name".into(), "3".into()),
                ],
                samples: vec![(0, 1.0)],
            },
        ];
        let body = on_grid(stored, &grid(0, 120_000, true));
        assert_eq!(body.series.len(), 1);
        assert_eq!(body.series[0].0.get("a"), Some("1"));
        assert_eq!(body.series[0].1.len(), 3);
        assert_eq!(body.refused.total(), 1);
    }
}
