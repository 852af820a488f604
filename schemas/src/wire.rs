//! Wire types: one struct per Avro record in `schemas/avro/`, field for
//! field. They change only with a schema version; domain types convert to
//! and from them in `convert.rs`.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReceiptStatus {
    #[serde(rename = "DELIVERED")]
    Delivered,
    #[serde(rename = "READ")]
    Read,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SendMessage {
    pub conversation_id: i64,
    pub message_id: i64,
    pub from: i64,
    pub from_device: i64,
    pub to: i64,
    pub client_msg_id: String,
    pub content: String,
    pub reply_to: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MarkReceipt {
    pub conversation_id: i64,
    pub by: i64,
    pub status: ReceiptStatus,
    pub up_to: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageSent {
    pub conversation_id: i64,
    pub conv_seq: i64,
    pub message_id: i64,
    pub from: i64,
    pub from_device: i64,
    pub members: Vec<i64>,
    pub client_msg_id: String,
    pub content: String,
    pub reply_to: Option<i64>,
    pub sent_at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageRef {
    pub message_id: i64,
    pub conv_seq: i64,
    pub from: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReceiptsAdvanced {
    pub conversation_id: i64,
    pub by: i64,
    pub status: ReceiptStatus,
    pub up_to: i64,
    pub at: i64,
    pub messages: Vec<MessageRef>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegisterDevice {
    pub user_id: i64,
    pub device_id: i64,
    pub device_name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceRegistered {
    pub user_id: i64,
    pub device_id: i64,
    pub device_name: String,
    pub new_account: bool,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliverMessage {
    pub recipient: i64,
    pub message: MessageSent,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliverReceipt {
    pub recipient: i64,
    pub conversation_id: i64,
    pub message_id: i64,
    pub status: ReceiptStatus,
    pub by: i64,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadSync {
    pub recipient: i64,
    pub conversation_id: i64,
    pub up_to: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceAdded {
    pub recipient: i64,
    pub device_id: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceAcked {
    pub recipient: i64,
    pub device_id: i64,
    pub seq: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommandReply {
    pub gateway: String,
    pub request: i64,
    pub outcome: String,
    pub detail: String,
    pub user_id: Option<i64>,
    pub device_id: Option<i64>,
    pub conversation_id: Option<i64>,
    pub message_id: Option<i64>,
    pub conv_seq: Option<i64>,
    pub at: i64,
}

/// Every record type Missive writes, with its topic and Avro full name.
macro_rules! record_types {
    ($($variant:ident => $topic:literal),* $(,)?) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum RecordType { $($variant),* }

        impl RecordType {
            pub const ALL: &'static [RecordType] = &[$(RecordType::$variant),*];

            pub fn topic(self) -> &'static str {
                match self { $(RecordType::$variant => $topic),* }
            }

            pub fn short_name(self) -> &'static str {
                match self { $(RecordType::$variant => stringify!($variant)),* }
            }

            /// The `.avsc` text from `schemas/avro/`.
            pub fn schema_text(self) -> &'static str {
                match self {
                    $(RecordType::$variant => include_str!(concat!("../avro/", $topic, "-missive.v1.", stringify!($variant), ".avsc"))),*
                }
            }
        }

        /// A decoded record of any Missive type.
        #[derive(Clone, Debug, PartialEq)]
        pub enum WireValue { $($variant($variant)),* }

        impl WireValue {
            pub fn record_type(&self) -> RecordType {
                match self { $(WireValue::$variant(_) => RecordType::$variant),* }
            }

            pub(crate) fn write_with(&self, writer: &apache_avro::writer::datum::GenericDatumWriter<'_>) -> Result<Vec<u8>, apache_avro::Error> {
                match self { $(WireValue::$variant(record) => writer.write_ser_to_vec(record)),* }
            }
        }

        $(
            impl WireRecord for $variant {
                const TYPE: RecordType = RecordType::$variant;
                fn into_value(self) -> WireValue { WireValue::$variant(self) }
            }
        )*

        pub(crate) fn decode_as(
            record_type: RecordType,
            reader: &apache_avro::reader::datum::GenericDatumReader<'_>,
            body: &mut &[u8],
        ) -> Result<WireValue, apache_avro::Error> {
            match record_type {
                $(RecordType::$variant => reader.read_deser::<$variant>(body).map(WireValue::$variant)),*
            }
        }
    };
}

/// A wire struct that has an Avro schema.
pub trait WireRecord: Serialize + Sized {
    const TYPE: RecordType;
    fn into_value(self) -> WireValue;
}

record_types! {
    SendMessage => "commands.conversation",
    MarkReceipt => "commands.conversation",
    MessageSent => "events.conversation",
    ReceiptsAdvanced => "events.conversation",
    RegisterDevice => "commands.user",
    DeviceRegistered => "events.user",
    DeliverMessage => "deliveries",
    DeliverReceipt => "deliveries",
    ReadSync => "deliveries",
    DeviceAdded => "deliveries",
    DeviceAcked => "deliveries",
    CommandReply => "replies",
}

impl RecordType {
    pub fn full_name(self) -> String {
        format!("missive.v1.{}", self.short_name())
    }

    /// Confluent subject under TopicRecordNameStrategy: `<topic>-<full name>`.
    pub fn subject(self) -> String {
        format!("{}-{}", self.topic(), self.full_name())
    }
}
