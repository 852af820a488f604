use super::state::*;
use crate::log::*;

fn record(offset: u64, bytes: usize) -> Record {
    Record::from(RecordData {
        topic: "t".into(),
        partition: 0,
        offset: Offset(offset),
        timestamp: 0,
        key: Vec::new(),
        value: vec![0; bytes],
        headers: Vec::new(),
    })
}

fn offsets(records: &[Record]) -> Vec<u64> {
    records.iter().map(|record| record.offset.0).collect()
}

#[test]
fn the_tail_serves_what_it_holds_and_sends_older_reads_to_the_store() {
    let mut tail = Tail::default();
    assert!(tail.read(0, 1, 10).is_none(), "an empty tail serves nothing");
    for offset in 5..10 {
        tail.push(record(offset, 10));
    }
    assert_eq!(offsets(&tail.read(5, 10, 100).expect("held")), vec![5, 6, 7, 8, 9]);
    assert_eq!(offsets(&tail.read(7, 10, 2).expect("held")), vec![7, 8], "at most max records");
    assert_eq!(offsets(&tail.read(8, 9, 100).expect("held")), vec![8], "not past the high watermark");
    assert!(tail.read(4, 10, 100).is_none(), "older than the tail: read the store");
    assert!(tail.read(10, 11, 100).is_none(), "newer than the tail: read the store");
}

#[test]
fn the_tail_stays_bounded_and_contiguous() {
    let mut tail = Tail::default();
    for offset in 0..(TAIL_RECORDS as u64 + 10) {
        tail.push(record(offset, 1));
    }
    assert_eq!(tail.records.len(), TAIL_RECORDS);
    assert!(tail.read(9, 20, 100).is_none(), "the oldest records were dropped");
    let big = TAIL_BYTES / 4;
    for offset in (TAIL_RECORDS as u64 + 10)..(TAIL_RECORDS as u64 + 20) {
        tail.push(record(offset, big));
    }
    assert!(tail.bytes <= TAIL_BYTES, "bytes bounded: {}", tail.bytes);
    // A gap (never expected from the single writer) restarts the tail.
    tail.push(record(1_000_000, 1));
    assert_eq!(offsets(&tail.read(1_000_000, 1_000_001, 10).expect("held")), vec![1_000_000]);
    assert_eq!(tail.records.len(), 1);
}
