//! Alertmanager webhook bodies: any bytes are a notification or an error naming the field,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = foretell_core::alerts::webhook::parse(data);
});
