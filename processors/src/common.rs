//! Helpers shared by the handlers: decoding inputs, building outputs and replies.

use std::sync::Arc;

use missive_infra::{Header, OutRecord, Record};
use missive_schemas::wire::CommandReply;
use missive_schemas::{Codec, WireValue};

use crate::runtime::HandleError;
use crate::topics::{REPLIES, headers};

pub fn decode(codec: &Codec, record: &Record) -> Result<WireValue, HandleError> {
    codec.decode(&record.value).map_err(|error| HandleError::Poison(format!("undecodable value: {error}")))
}

fn causation(record: &Record) -> Vec<u8> {
    match record.header(headers::EVENT_ID) {
        Some(id) => id.to_vec(),
        None => format!("{}/{}@{}", record.topic, record.partition, record.offset).into_bytes(),
    }
}

/// An output record caused by `cause`, stamped with its timestamp.
pub fn output(
    codec: &Codec,
    cause: &Record,
    topic: &str,
    key: u64,
    value: &WireValue,
) -> Result<OutRecord, HandleError> {
    let value =
        codec.encode_value(value).map_err(|error| HandleError::Storage(format!("cannot encode output: {error}")))?;
    Ok(OutRecord {
        topic: topic.to_string(),
        partition: None,
        key: key.to_string().into_bytes(),
        value,
        headers: vec![Header { key: headers::CAUSATION_ID.into(), value: causation(cause) }],
        timestamp: Some(cause.timestamp),
    })
}

/// Where to send the outcome of a command: `(gateway, request)`.
pub fn reply_address(record: &Record) -> Option<(String, i64)> {
    let text = std::str::from_utf8(record.header(headers::REPLY_TO)?).ok()?;
    let (gateway, request) = text.rsplit_once('/')?;
    Some((gateway.to_string(), request.parse().ok()?))
}

/// Builds the reply record for a command, if someone waits for it.
pub fn reply(
    codec: &Arc<Codec>,
    cause: &Record,
    fill: impl FnOnce(&mut CommandReply),
) -> Result<Option<OutRecord>, HandleError> {
    let Some((gateway, request)) = reply_address(cause) else { return Ok(None) };
    let mut reply = CommandReply {
        gateway: gateway.clone(),
        request,
        outcome: String::new(),
        detail: String::new(),
        user_id: None,
        device_id: None,
        conversation_id: None,
        message_id: None,
        conv_seq: None,
        at: cause.timestamp,
    };
    fill(&mut reply);
    let value = codec.encode(&reply).map_err(|error| HandleError::Storage(format!("cannot encode reply: {error}")))?;
    Ok(Some(OutRecord {
        topic: REPLIES.into(),
        partition: None,
        key: gateway.into_bytes(),
        value,
        headers: vec![Header { key: headers::CAUSATION_ID.into(), value: causation(cause) }],
        timestamp: Some(cause.timestamp),
    }))
}

pub fn long(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
