//! The configuration loader (`foretell check-config`, startup, reload): any text is a
//! configuration or an error that names the file, never a panic.
#![no_main]

use std::path::Path;

use foretell::config::{parse, Environment};
use libfuzzer_sys::fuzz_target;

/// No environment variables and no readable files: loading stays a pure function of the text.
struct Nothing;

impl Environment for Nothing {
    fn var(&self, _name: &str) -> Option<String> {
        None
    }

    fn read_file(&self, _path: &Path) -> std::io::Result<Vec<u8>> {
        Err(std::io::ErrorKind::NotFound.into())
    }
}

fuzz_target!(|data: &[u8]| {
    // Files are read as bytes and refused as invalid UTF-8 before parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse(text, Path::new("fuzz.yml"), &Nothing) {
        Ok(config) => assert!(!config.queries.is_empty(), "a config without queries"),
        Err(error) => {
            let message = error.to_string();
            assert!(message.contains("fuzz.yml"), "{message}");
        }
    }
});
