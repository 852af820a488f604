//! The JSON body of every HTTP route that takes one.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    missive_gateway::fuzzing::http_bodies(bytes);
});
