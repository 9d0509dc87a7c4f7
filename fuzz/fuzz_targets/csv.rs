//! The offline commands' CSV reader: any text is rows or an error naming its line, never a
//! panic; rows are numbered in file order.
#![no_main]

use foretell_core::csv::{parse, Disorder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The reader takes text; invalid UTF-8 is the file loader's error, before it.
    let text = String::from_utf8_lossy(data);
    for disorder in [Disorder::Reject, Disorder::Tolerate] {
        if let Ok(rows) = parse(&text, disorder) {
            assert!(rows.windows(2).all(|w| w[0].line < w[1].line));
            let _ = foretell_core::csv::infer_step_ms(&rows);
        }
    }
});
