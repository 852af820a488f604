//! Refresh tokens and access tokens (JWTs) as a client presents them.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    missive_gateway::fuzzing::tokens(bytes);
});
