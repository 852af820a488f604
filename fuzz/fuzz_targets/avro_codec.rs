//! A record value as the log holds it: Confluent framing (magic byte and
//! schema id) and an Avro body, decoded to a typed value and to JSON.
#![no_main]

use std::sync::LazyLock;

use missive_schemas::Codec;
use missive_schemas::wire::RecordType;

static CODEC: LazyLock<Codec> = LazyLock::new(|| {
    let ids: Vec<(RecordType, u32)> =
        RecordType::ALL.iter().enumerate().map(|(index, record_type)| (*record_type, index as u32 + 1)).collect();
    Codec::new(&ids).expect("every schema parses")
});

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let _ = CODEC.decode(bytes);
    let _ = CODEC.decode_json(bytes);
});
