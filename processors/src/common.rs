//! Helpers shared by the handlers: decoding inputs, building outputs and replies.

use std::sync::Arc;

use missive_infra::{Header, OutRecord, Record};
use missive_schemas::wire::CommandReply;
use missive_schemas::{Codec, WireValue};

use crate::runtime::HandleError;
use crate::topics::{REPLIES, headers};
use crate::tx::Tx;

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

/// Command outcomes for a gateway running in this process (embedded mode):
/// handed over in memory once the deciding batch is committed, instead of
/// written to the `replies` topic and read back. A gateway in another
/// process (Kafka mode) still gets a `replies` record.
#[derive(Clone, Default)]
pub struct LocalReplies {
    gateway: Arc<parking_lot::RwLock<Option<LocalGateway>>>,
}

type Deliver = Arc<dyn Fn(CommandReply) + Send + Sync>;

struct LocalGateway {
    id: String,
    deliver: Deliver,
}

impl LocalReplies {
    /// Routes outcomes for `gateway_id` to `deliver` from now on.
    pub fn attach(&self, gateway_id: &str, deliver: impl Fn(CommandReply) + Send + Sync + 'static) {
        *self.gateway.write() = Some(LocalGateway { id: gateway_id.to_string(), deliver: Arc::new(deliver) });
    }

    fn local(&self, gateway: &str) -> Option<Deliver> {
        self.gateway.read().as_ref().filter(|local| local.id == gateway).map(|local| local.deliver.clone())
    }
}

/// How a decider answers commands someone waits for: in memory after the
/// commit when the waiting gateway is in this process, else as a record.
pub struct Replier {
    codec: Arc<Codec>,
    local: LocalReplies,
    /// Outcomes for local gateways, delivered after the batch commits.
    pending: Vec<(Deliver, CommandReply)>,
}

impl Replier {
    pub fn new(codec: Arc<Codec>, local: LocalReplies) -> Replier {
        Replier { codec, local, pending: Vec::new() }
    }

    /// Answers the command `cause`, if it carries a reply address.
    pub fn answer(
        &mut self,
        tx: &mut Tx<'_>,
        cause: &Record,
        fill: impl FnOnce(&mut CommandReply),
    ) -> Result<(), HandleError> {
        let Some((gateway, request)) = reply_address(cause) else { return Ok(()) };
        let mut reply = CommandReply {
            gateway,
            request,
            outcome: String::new(),
            detail: String::new(),
            user_id: None,
            device_id: None,
            conversation_id: None,
            message_id: None,
            conv_seq: None,
            claimed_key: None,
            at: missive_core::Millis(cause.timestamp),
        };
        fill(&mut reply);
        if let Some(deliver) = self.local.local(&reply.gateway) {
            self.pending.push((deliver, reply));
            return Ok(());
        }
        let value =
            self.codec.encode(&reply).map_err(|error| HandleError::Storage(format!("cannot encode reply: {error}")))?;
        tx.emit(OutRecord {
            topic: REPLIES.into(),
            partition: None,
            key: reply.gateway.into_bytes(),
            value,
            headers: vec![Header { key: headers::CAUSATION_ID.into(), value: causation(cause) }],
            timestamp: Some(cause.timestamp),
        });
        Ok(())
    }

    /// Hands the committed batch's outcomes to their local gateways.
    pub fn deliver(&mut self) {
        for (deliver, reply) in self.pending.drain(..) {
            deliver(reply);
        }
    }
}
