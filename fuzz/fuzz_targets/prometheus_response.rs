//! Prometheus `query_range` answers: any bytes are decoded into series or a typed error (and
//! excerpted for the log), never a panic. What decodes is safe downstream: every label name is
//! one the exposition can carry (no forged samples), and every timestamp fits a series window
//! without overflow (issue 16, items 1 and 2).
#![no_main]

use foretell_core::labels::check_label_name;
use foretell_core::snapshot::export_labels;
use foretell_core::store::{QueryStore, StoreLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = foretell_core::wire::excerpt(data);
    let Ok(body) = foretell_core::wire::decode_range(data) else {
        return;
    };
    for (labels, _) in &body.series {
        for (name, _) in export_labels("q", labels).iter() {
            assert!(check_label_name(name).is_ok(), "{name:?} exported");
        }
    }
    let newest = body
        .series
        .iter()
        .flat_map(|(_, samples)| samples.iter().map(|s| s.timestamp_ms))
        .max()
        .unwrap_or(0);
    let mut store: QueryStore<()> = QueryStore::new(StoreLimits {
        step_ms: 15_000,
        capacity_points: 64,
        max_series: 16,
        freshness_ms: 300_000,
    });
    store.merge(body.series, newest);
});
