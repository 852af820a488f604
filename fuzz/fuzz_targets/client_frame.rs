//! A WebSocket text frame from a client: parsed, or refused with a code.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    missive_gateway::fuzzing::client_frame(bytes);
});
