//! The binary layouts the embedded log and processor outboxes store:
//! length-prefixed fields, big-endian integers. Shared by both so a record's
//! key, value and headers are written and read by one piece of code.

use crate::log::{Header, OutRecord};

/// Reads length-prefixed fields; every read returns `None` past the end.
pub(crate) struct ByteReader<'a> {
    bytes: &'a [u8],
}

impl<'a> ByteReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> ByteReader<'a> {
        ByteReader { bytes }
    }

    pub(crate) fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < count {
            return None;
        }
        let (head, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Some(head)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|bytes| bytes[0])
    }

    pub(crate) fn u16(&mut self) -> Option<usize> {
        self.take(2).map(|bytes| u16::from_be_bytes([bytes[0], bytes[1]]) as usize)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.take(4).and_then(|bytes| bytes.try_into().ok()).map(u32::from_be_bytes)
    }

    pub(crate) fn i64(&mut self) -> Option<i64> {
        self.take(8).and_then(|bytes| bytes.try_into().ok()).map(i64::from_be_bytes)
    }

    /// A field prefixed with its u32 length.
    pub(crate) fn field(&mut self) -> Option<Vec<u8>> {
        let len = self.u32()? as usize;
        self.take(len).map(<[u8]>::to_vec)
    }

    pub(crate) fn headers(&mut self) -> Option<Vec<Header>> {
        let count = self.u16()?;
        let mut headers = Vec::with_capacity(count);
        for _ in 0..count {
            let name_len = self.u16()?;
            let key = String::from_utf8(self.take(name_len)?.to_vec()).ok()?;
            headers.push(Header { key, value: self.field()? });
        }
        Some(headers)
    }
}

pub(crate) fn put_field(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u32).to_be_bytes());
    out.extend_from_slice(field);
}

pub(crate) fn put_headers(out: &mut Vec<u8>, headers: &[Header]) {
    out.extend_from_slice(&(headers.len() as u16).to_be_bytes());
    for header in headers {
        out.extend_from_slice(&(header.key.len() as u16).to_be_bytes());
        out.extend_from_slice(header.key.as_bytes());
        put_field(out, &header.value);
    }
}

pub(crate) fn encoded_len(key: &[u8], value: &[u8], headers: &[Header]) -> usize {
    16 + key.len() + value.len() + headers.iter().map(|h| 6 + h.key.len() + h.value.len()).sum::<usize>()
}

/// Compact binary form of an [`OutRecord`], used by processor outboxes.
pub fn encode_out_record(record: &OutRecord) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(16 + record.topic.len() + encoded_len(&record.key, &record.value, &record.headers));
    out.extend_from_slice(&(record.topic.len() as u16).to_be_bytes());
    out.extend_from_slice(record.topic.as_bytes());
    match record.partition {
        Some(partition) => {
            out.push(1);
            out.extend_from_slice(&partition.to_be_bytes());
        }
        None => out.push(0),
    }
    match record.timestamp {
        Some(timestamp) => {
            out.push(1);
            out.extend_from_slice(&timestamp.to_be_bytes());
        }
        None => out.push(0),
    }
    put_field(&mut out, &record.key);
    put_field(&mut out, &record.value);
    put_headers(&mut out, &record.headers);
    out
}

/// Inverse of [`encode_out_record`]; `None` for bytes it did not write.
pub fn decode_out_record(bytes: &[u8]) -> Option<OutRecord> {
    let mut reader = ByteReader::new(bytes);
    let topic_len = reader.u16()?;
    let topic = String::from_utf8(reader.take(topic_len)?.to_vec()).ok()?;
    let partition = match reader.u8()? {
        1 => Some(reader.u32()?),
        _ => None,
    };
    let timestamp = match reader.u8()? {
        1 => Some(reader.i64()?),
        _ => None,
    };
    let key = reader.field()?;
    let value = reader.field()?;
    let headers = reader.headers()?;
    Some(OutRecord { topic, partition, key, value, headers, timestamp })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_records_round_trip_and_truncation_is_detected() {
        let record = OutRecord {
            topic: "deliveries".into(),
            partition: Some(3),
            key: b"42".to_vec(),
            value: vec![0, 1, 2],
            headers: vec![Header { key: "missive-src".into(), value: b"inbox-1".to_vec() }],
            timestamp: Some(-5),
        };
        let bytes = encode_out_record(&record);
        assert_eq!(decode_out_record(&bytes), Some(record));
        assert_eq!(decode_out_record(&bytes[..bytes.len() - 1]), None);
    }
}
