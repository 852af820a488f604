//! Wire types: one struct per Avro record in `schemas/avro/`, field for
//! field. They change only with a schema version; domain types convert to
//! and from them in `convert/`.
//! Grouped by subject; this module lists every record type (the
//! `record_types!` table) and gives each its topic, name and schema.

use serde::Serialize;

mod conversation;
mod delivery;
mod groups;
pub mod ids;
mod keys;
mod media;
mod signals;
mod users;

pub use conversation::*;
pub use delivery::*;
pub use groups::*;
pub use keys::*;
pub use media::*;
pub use signals::*;
pub use users::*;

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
                    $(RecordType::$variant => include_str!(concat!("../../avro/", $topic, "-missive.v1.", stringify!($variant), ".avsc"))),*
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

            /// The record as serde writes it (field names as in its schema).
            pub fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
                match self { $(WireValue::$variant(record) => serde_json::to_value(record)),* }
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

        /// A record read as a generic Avro value (resolved from another
        /// version of its schema) as the wire struct of its type.
        pub(crate) fn decode_value_as(
            record_type: RecordType,
            value: &apache_avro::types::Value,
        ) -> Result<WireValue, apache_avro::Error> {
            match record_type {
                $(RecordType::$variant => apache_avro::from_value::<$variant>(value).map(WireValue::$variant)),*
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
    ApplyBlock => "commands.conversation",
    ChangeGroup => "commands.conversation",
    ModifyMessage => "commands.conversation",
    AnnounceDevices => "commands.conversation",
    MessageSent => "events.conversation",
    ReceiptsAdvanced => "events.conversation",
    GroupChanged => "events.conversation",
    MessageModified => "events.conversation",
    RegisterDevice => "commands.user",
    RemoveDevice => "commands.user",
    UpdateProfile => "commands.user",
    SetPrivacy => "commands.user",
    BlockUser => "commands.user",
    UpdateContacts => "commands.user",
    SetPin => "commands.user",
    RecordLastSeen => "commands.user",
    UploadKeys => "commands.user",
    ClaimKey => "commands.user",
    ShareKeys => "commands.user",
    DeviceRegistered => "events.user",
    DeviceRemoved => "events.user",
    ProfileUpdated => "events.user",
    PrivacyChanged => "events.user",
    BlockChanged => "events.user",
    ContactsChanged => "events.user",
    PinChanged => "events.user",
    LastSeen => "events.user",
    KeysUploaded => "events.user",
    KeyClaimed => "events.user",
    DeliverMessage => "deliveries",
    DeliverReceipt => "deliveries",
    ReadSync => "deliveries",
    DeviceAdded => "deliveries",
    DeviceAcked => "deliveries",
    DeviceDropped => "deliveries",
    DeliverGroupChange => "deliveries",
    DeliverModification => "deliveries",
    DeliverKeysLow => "deliveries",
    DeliverToDevice => "deliveries",
    DeliverDevicesChanged => "deliveries",
    CommandReply => "replies",
    Typing => "ephemeral",
    PresenceHeartbeat => "presence",
    PresenceChanged => "presence",
    PushJob => "notifications",
    MediaUploaded => "events.media",
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
