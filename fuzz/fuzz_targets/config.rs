//! Any text through the configuration parser (the file format, and every line as a command-line
//! `--name value`). Must never panic. Seeds: scanban.conf.example and fuzz/corpus/config.
//! The parser lives in the binary crate; its two modules are compiled in here as they are.
#![no_main]

#[allow(dead_code)]
#[path = "../../src/duration.rs"]
mod duration;
#[allow(dead_code)]
#[path = "../../src/settings.rs"]
mod settings;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = settings::Settings::default().apply_file(text, "fuzz.conf");
    for line in text.lines() {
        let (name, value) = line.split_once(' ').unwrap_or((line, ""));
        let _ = settings::Settings::default().apply(name, Some(value));
        let _ = settings::Settings::default().apply(name, None);
    }
});
