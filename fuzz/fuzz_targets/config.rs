//! Bytes (skipped unless UTF-8) into `Config::parse`: never a panic, every
//! problem inside the text, and an accepted config builds a snapshot that
//! answers (see `meridian_fuzz::check_config`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    meridian_fuzz::check_config(data);
});
