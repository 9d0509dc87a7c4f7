//! The Prometheus remote-write 1.0 payload: a protobuf `WriteRequest` of foretell's present-time
//! predictions (compression and sending are the caller's).
//!
//! The message is small enough to encode by hand (`prometheus/prompb/remote.proto`,
//! `types.proto`):
//!
//! ```text
//! WriteRequest { repeated TimeSeries timeseries = 1; }
//! TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
//! Label        { string name = 1; string value = 2; }
//! Sample       { double value = 1; int64 timestamp = 2; }
//! ```
//!
//! Labels are sorted by name with `__name__` among them, as receivers require.

use crate::exposition::for_each_sample;
use crate::labels::METRIC_NAME;
use crate::protobuf::{put_bytes, put_key, put_varint, WIRE_FIXED64, WIRE_VARINT};
use crate::snapshot::{QueryOutput, HORIZON_LABEL};

/// One sample of one series, labels sorted by name.
#[derive(Clone, Debug, PartialEq)]
pub struct WriteSeries {
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub timestamp_ms: i64,
}

/// Every sample the first `max_series` series of `output` export, stamped `timestamp_ms` (the
/// time of the push, as a scrape would stamp them), in the series' and families' order.
pub fn series_of(output: &QueryOutput, timestamp_ms: i64, max_series: usize) -> Vec<WriteSeries> {
    let mut written = Vec::new();
    for series in output.series.iter().take(max_series) {
        for_each_sample(series, &output.horizons, |family, horizon, value| {
            let mut labels: Vec<(String, String)> = Vec::with_capacity(series.labels().len() + 2);
            labels.push((METRIC_NAME.to_owned(), family.to_owned()));
            labels.extend(
                series
                    .labels()
                    .iter()
                    .map(|(name, value)| (name.to_owned(), value.to_owned())),
            );
            if let Some(horizon) = horizon {
                labels.push((HORIZON_LABEL.to_owned(), horizon.to_owned()));
            }
            labels.sort();
            written.push(WriteSeries {
                labels,
                value,
                timestamp_ms,
            });
        });
    }
    written
}

/// The protobuf encoding of a `WriteRequest` holding `series`, one sample each.
pub fn encode(series: &[WriteSeries]) -> Vec<u8> {
    let mut out = Vec::with_capacity(series.len() * 128);
    let mut message = Vec::new();
    let mut field = Vec::new();
    for one in series {
        message.clear();
        for (name, value) in &one.labels {
            field.clear();
            put_bytes(&mut field, 1, name.as_bytes());
            put_bytes(&mut field, 2, value.as_bytes());
            put_bytes(&mut message, 1, &field);
        }
        field.clear();
        put_key(&mut field, 1, WIRE_FIXED64);
        field.extend_from_slice(&one.value.to_bits().to_le_bytes());
        put_key(&mut field, 2, WIRE_VARINT);
        put_varint(&mut field, one.timestamp_ms as u64);
        put_bytes(&mut message, 2, &field);
        put_bytes(&mut out, 1, &message);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Labels;
    use crate::model::{Band, Excursion};
    use crate::snapshot::{export_labels, SeriesOutput, SeriesState};

    fn output() -> QueryOutput {
        let band = Band {
            expected: 10.0,
            lower: 8.0,
            upper: 12.0,
        };
        let source = Labels::from_pairs([("__name__", "load"), ("instance", "a")]);
        QueryOutput {
            query: "q".into(),
            evaluated_at_ms: 1_700_000_000_000,
            horizons: vec!["1h".into()],
            series: vec![
                SeriesOutput::new(
                    export_labels("q", &source),
                    SeriesState::Ready {
                        band,
                        score: Some(0.5),
                        probability: 0.1,
                        forecasts: vec![band],
                        threshold_eta_seconds: None,
                        excursion: Excursion::default(),
                    },
                ),
                SeriesOutput::new(
                    export_labels("q", &Labels::from_pairs([("instance", "b")])),
                    SeriesState::NotReady,
                ),
            ],
        }
    }

    #[test]
    fn every_exported_sample_becomes_a_series_with_sorted_labels_at_evaluation_time() {
        let written = series_of(&output(), 1_700_000_030_000, usize::MAX);
        let names: Vec<&str> = written
            .iter()
            .map(|s| {
                s.labels
                    .iter()
                    .find(|(n, _)| n == "__name__")
                    .map(|(_, v)| v.as_str())
            })
            .map(Option::unwrap_or_default)
            .collect();
        assert_eq!(
            names,
            vec![
                "foretell_baseline",
                "foretell_baseline_lower",
                "foretell_baseline_upper",
                "foretell_anomaly_score",
                "foretell_anomaly_probability",
                "foretell_model_ready",
                "foretell_forecast",
                "foretell_forecast_lower",
                "foretell_forecast_upper",
                "foretell_model_ready",
            ]
        );
        assert!(written.iter().all(|s| s.timestamp_ms == 1_700_000_030_000));
        for series in &written {
            assert!(
                series.labels.windows(2).all(|w| w[0].0 < w[1].0),
                "{series:?}"
            );
        }
        // The cap on exported series holds here too: only the first series is pushed.
        let capped = series_of(&output(), 1_700_000_030_000, 1);
        assert_eq!(capped, written[..9]);
        assert!(series_of(&output(), 1_700_000_030_000, 0).is_empty());
        let forecast = &written[6];
        assert_eq!(
            forecast.labels,
            vec![
                ("__name__".to_owned(), "foretell_forecast".to_owned()),
                ("horizon".to_owned(), "1h".to_owned()),
                ("instance".to_owned(), "a".to_owned()),
                ("query".to_owned(), "q".to_owned()),
                ("source_metric".to_owned(), "load".to_owned()),
            ]
        );
        assert_eq!(written[9].value, 0.0, "not ready");
    }

    #[test]
    fn the_encoding_is_protobuf_wire_format() {
        let bytes = encode(&[WriteSeries {
            labels: vec![("__name__".into(), "m".into())],
            value: 1.5,
            timestamp_ms: 300,
        }]);
        let mut expected = vec![
            0x0a, 29, // timeseries, 29 bytes
            0x0a, 13, // label, 13 bytes
            0x0a, 8, // name
        ];
        expected.extend_from_slice(b"__name__");
        expected.extend_from_slice(&[0x12, 1, b'm']); // value
        expected.extend_from_slice(&[0x12, 12, 0x09]); // sample, 12 bytes; value: fixed64
        expected.extend_from_slice(&1.5f64.to_bits().to_le_bytes());
        expected.extend_from_slice(&[0x10, 0xac, 0x02]); // timestamp 300 as a varint
        assert_eq!(bytes, expected);
        assert!(encode(&[]).is_empty());
    }
}
