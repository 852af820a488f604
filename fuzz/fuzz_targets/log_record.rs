//! The embedded log's stored forms: an outbox record and a log record.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let _ = missive_infra::codec::decode_out_record(bytes);
    missive_infra::embedded::fuzz_decode_record(bytes);
});
