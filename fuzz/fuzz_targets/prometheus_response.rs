//! Prometheus `query_range` answers: any bytes are decoded into series or a typed error (and
//! excerpted for the log), never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = foretell_core::wire::decode_range(data);
    let _ = foretell_core::wire::excerpt(data);
});
