//! Decoding Prometheus' `query_range` answers: `cargo bench -p foretell-core --bench wire`.
//!
//! One answer of 100 series of two days at one minute (2,880 samples each, node-exporter-like
//! labels, values with Prometheus' shortest round-trip digits), about 9.6 MB: the batch the
//! sidecar's cold load asks for. foretell's decoder (`wire::decode_range`, labels checked,
//! samples converted) against serde_json parsing the same text into its generic `Value` (the
//! reference: what reading the JSON at all costs with the same parser). Median of several
//! decodes on one core; the machine's other core should be idle.

// A benchmark is a stopwatch around the core: it reads the clock the core itself never does.
#![allow(clippy::disallowed_methods)]
// A benchmark binary: a failed decode is a failed run, which is what `expect` reports.
#![allow(clippy::expect_used)]

use std::fmt::Write;
use std::hint::black_box;
use std::time::{Duration, Instant};

use foretell_core::wire::decode_range;

const SERIES: usize = 100;
const POINTS: usize = 2_880;
const RUNS: usize = 9;

fn body() -> String {
    let mut out = String::from(r#"{"status":"success","data":{"resultType":"matrix","result":["#);
    for s in 0..SERIES {
        if s > 0 {
            out.push(',');
        }
        write!(
            out,
            r#"{{"metric":{{"__name__":"node_network_receive_bytes_total","device":"eth{}","instance":"node-{s}.example.internal:9100","job":"node"}},"values":["#,
            s % 4
        )
        .expect("string");
        for i in 0..POINTS {
            if i > 0 {
                out.push(',');
            }
            let t = 1_700_000_000 + 60 * i as i64;
            let value =
                1000.0 + 250.0 * ((i + s) as f64 / 229.0).sin() + (i * 7919 % 101) as f64 / 7.0;
            write!(out, r#"[{t},"{value}"]"#).expect("string");
        }
        out.push_str("]}");
    }
    out.push_str("]}}");
    out
}

fn median(mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[RUNS / 2]
}

fn main() {
    let body = body();
    let mb = body.len() as f64 / 1e6;
    println!("one answer: {SERIES} series x {POINTS} samples, {mb:.1} MB");
    let decoded = decode_range(body.as_bytes()).expect("decodes");
    assert_eq!(decoded.series.len(), SERIES);
    assert!(decoded.series.iter().all(|(_, s)| s.len() == POINTS));
    let reference = median(|| {
        black_box(serde_json::from_slice::<serde_json::Value>(black_box(body.as_bytes())).ok());
    });
    let foretell = median(|| {
        black_box(decode_range(black_box(body.as_bytes())).ok());
    });
    for (label, time) in [
        ("serde_json into a generic Value (reference)", reference),
        ("foretell decode_range (labels checked, samples)", foretell),
    ] {
        println!(
            "{label:<50} {:>8.2} ms  {:>7.0} MB/s",
            time.as_secs_f64() * 1e3,
            mb / time.as_secs_f64()
        );
    }
    println!(
        "foretell's time against the reference: {:.2} x",
        foretell.as_secs_f64() / reference.as_secs_f64()
    );
}
