//! Prometheus remote read answers (streamed frames of XOR chunks): any bytes are read into
//! series or a typed error, never a panic, and at most the samples allowed (2^20) are held; what
//! is read lands on the grid inside the range, on grid points, with exportable label names.
#![no_main]

use foretell_core::labels::check_label_name;
use foretell_core::wire::remote_read::{decode_stream, on_grid, Grid};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(stored) = decode_stream(data, 1 << 20) else {
        return;
    };
    let held: usize = stored.iter().map(|s| s.samples.len()).sum();
    assert!(held <= 1 << 20, "{held} samples held");
    let grid = Grid {
        start_ms: -600_000,
        end_ms: 3_600_000,
        step_ms: 60_000,
        lookback_ms: 300_000,
        lookback_inclusive: true,
    };
    let body = on_grid(stored, &grid);
    for (labels, samples) in &body.series {
        for (name, _) in labels.iter() {
            assert!(check_label_name(name).is_ok(), "{name:?} kept");
        }
        for sample in samples {
            assert!(sample.timestamp_ms >= grid.start_ms && sample.timestamp_ms <= grid.end_ms);
            assert_eq!((sample.timestamp_ms - grid.start_ms) % grid.step_ms, 0);
        }
    }
});
