//! Request bytes into `meridian::dns::answer`, over UDP and TCP, from a
//! source address the input picks, against the shipped example plus extra
//! records (see `meridian_fuzz::check_request` for the invariants).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    meridian_fuzz::check_request(data);
});
