//! Request bodies of the schema registry's HTTP API.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    missive_registry::http::fuzz_bodies(bytes);
});
