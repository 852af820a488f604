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
    #[serde(default)]
    pub forward_count: i32,
    #[serde(default)]
    pub attachment: Option<Attachment>,
}

/// A media reference, location or contact card: one flat record whose
/// `kind` says which fields are set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    pub kind: String,
    #[serde(default)]
    pub media_id: Option<String>,
    #[serde(default)]
    pub size: Option<i64>,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub caption: Option<String>,
    #[serde(default, with = "apache_avro::serde::bytes_opt")]
    pub thumbnail: Option<Vec<u8>>,
    #[serde(default)]
    pub latitude: Option<f64>,
    #[serde(default)]
    pub longitude: Option<f64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub vcard: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MediaUploaded {
    pub media_id: String,
    pub owner: i64,
    pub kind: String,
    #[serde(default = "message_purpose")]
    pub purpose: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub key: String,
    pub at: i64,
}

fn message_purpose() -> String {
    "message".into()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MarkReceipt {
    pub conversation_id: i64,
    pub by: i64,
    pub status: ReceiptStatus,
    pub up_to: i64,
    #[serde(default = "yes")]
    pub notify: bool,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Audience {
    #[serde(rename = "EVERYONE")]
    Everyone,
    #[serde(rename = "CONTACTS")]
    Contacts,
    #[serde(rename = "NOBODY")]
    Nobody,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GroupCommandKind {
    Create,
    AddMembers,
    RemoveMember,
    Leave,
    SetAdmin,
    UpdateInfo,
    UpdateSettings,
    Invite,
    AcceptInvite,
    DeclineInvite,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GroupChangeKind {
    Created,
    MembersAdded,
    MemberRemoved,
    MemberLeft,
    AdminsChanged,
    InfoUpdated,
    SettingsUpdated,
    Invited,
    Joined,
    InviteDeclined,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeGroup {
    pub conversation_id: i64,
    pub by: i64,
    pub kind: GroupCommandKind,
    pub users: Vec<i64>,
    pub admin: Option<bool>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub icon: Option<String>,
    pub only_admins_send: Option<bool>,
    pub only_admins_edit_info: Option<bool>,
    pub history_for_new_members: Option<bool>,
    pub max_members: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupChanged {
    pub conversation_id: i64,
    pub conv_seq: i64,
    pub by: i64,
    pub kind: GroupChangeKind,
    pub subjects: Vec<i64>,
    pub members: Vec<i64>,
    pub admins: Vec<i64>,
    pub name: String,
    pub description: String,
    pub icon: String,
    pub only_admins_send: bool,
    pub only_admins_edit_info: bool,
    pub history_for_new_members: bool,
    pub max_members: i32,
    pub created_by: i64,
    pub at: i64,
    #[serde(default)]
    pub invites: Vec<GroupInvite>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupInvite {
    pub user: i64,
    pub by: i64,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliverGroupChange {
    pub recipient: i64,
    pub change: GroupChanged,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TypingState {
    Typing,
    Recording,
    Paused,
}

impl TypingState {
    pub fn as_str(self) -> &'static str {
        match self {
            TypingState::Typing => "typing",
            TypingState::Recording => "recording",
            TypingState::Paused => "paused",
        }
    }

    pub fn parse(text: &str) -> Option<TypingState> {
        match text {
            "typing" => Some(TypingState::Typing),
            "recording" => Some(TypingState::Recording),
            "paused" => Some(TypingState::Paused),
            _ => None,
        }
    }
}

/// A live indicator on the `ephemeral` topic (no domain twin: nothing folds it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Typing {
    pub conversation_id: i64,
    pub from: i64,
    pub from_device: i64,
    pub state: TypingState,
    pub recipients: Vec<i64>,
    pub expires_at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApplyBlock {
    pub conversation_id: i64,
    pub blocker: i64,
    pub target: i64,
    pub blocked: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RemoveDevice {
    pub user_id: i64,
    pub device_id: i64,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateProfile {
    pub user_id: i64,
    pub display_name: Option<String>,
    pub about: Option<String>,
    pub picture: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SetPrivacy {
    pub user_id: i64,
    pub last_seen: Option<Audience>,
    pub photo: Option<Audience>,
    pub about: Option<Audience>,
    pub read_receipts: Option<bool>,
    #[serde(default)]
    pub groups: Option<Audience>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockUser {
    pub user_id: i64,
    pub target: i64,
    pub blocked: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateContacts {
    pub user_id: i64,
    pub added: Vec<i64>,
    pub removed: Vec<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SetPin {
    pub user_id: i64,
    pub pin_hash: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordLastSeen {
    pub user_id: i64,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceRemoved {
    pub user_id: i64,
    pub device_id: i64,
    pub reason: String,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProfileUpdated {
    pub user_id: i64,
    pub display_name: String,
    pub about: String,
    pub picture: String,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrivacyChanged {
    pub user_id: i64,
    pub last_seen: Audience,
    pub photo: Audience,
    pub about: Audience,
    pub read_receipts: bool,
    #[serde(default = "everyone")]
    pub groups: Audience,
    pub at: i64,
}

fn everyone() -> Audience {
    Audience::Everyone
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockChanged {
    pub user_id: i64,
    pub target: i64,
    pub blocked: bool,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContactsChanged {
    pub user_id: i64,
    pub added: Vec<i64>,
    pub removed: Vec<i64>,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PinChanged {
    pub user_id: i64,
    pub pin_hash: Option<String>,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LastSeen {
    pub user_id: i64,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceDropped {
    pub recipient: i64,
    pub device_id: i64,
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
    #[serde(default)]
    pub withheld_from: Vec<i64>,
    #[serde(default)]
    pub forward_count: i32,
    #[serde(default)]
    pub attachment: Option<Attachment>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageRef {
    pub message_id: i64,
    pub conv_seq: i64,
    pub from: i64,
    #[serde(default)]
    pub count: i32,
    #[serde(default)]
    pub of: i32,
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
    /// Further recipients of this same copy, all in `recipient`'s inbox partition.
    #[serde(default)]
    pub more_recipients: Vec<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliverReceipt {
    pub recipient: i64,
    pub conversation_id: i64,
    pub message_id: i64,
    pub status: ReceiptStatus,
    pub by: i64,
    pub at: i64,
    #[serde(default)]
    pub count: i32,
    #[serde(default)]
    pub of: i32,
    /// The receipt covers the sender's messages up to this conv_seq (0: the named message only).
    #[serde(default)]
    pub up_to: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperationKind {
    Edit,
    DeleteForEveryone,
    DeleteForMe,
    React,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModifyMessage {
    pub conversation_id: i64,
    pub by: i64,
    pub by_device: i64,
    pub message_id: i64,
    pub target_seq: i64,
    pub kind: OperationKind,
    #[serde(default)]
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageModified {
    pub conversation_id: i64,
    pub conv_seq: i64,
    pub message_id: i64,
    pub target_seq: i64,
    pub by: i64,
    pub by_device: i64,
    pub kind: OperationKind,
    #[serde(default)]
    pub text: String,
    pub audience: Vec<i64>,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliverModification {
    pub recipient: i64,
    pub modified: MessageModified,
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PresenceHeartbeat {
    pub instance: String,
    pub online: Vec<i64>,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PresenceChanged {
    pub instance: String,
    pub user: i64,
    pub online: bool,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PushJob {
    pub user: i64,
    pub conversation_id: i64,
    pub group: bool,
    pub count: i32,
    pub message_ids: Vec<i64>,
    pub senders: Vec<i64>,
    pub first_at: i64,
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
    DeviceRegistered => "events.user",
    DeviceRemoved => "events.user",
    ProfileUpdated => "events.user",
    PrivacyChanged => "events.user",
    BlockChanged => "events.user",
    ContactsChanged => "events.user",
    PinChanged => "events.user",
    LastSeen => "events.user",
    DeliverMessage => "deliveries",
    DeliverReceipt => "deliveries",
    ReadSync => "deliveries",
    DeviceAdded => "deliveries",
    DeviceAcked => "deliveries",
    DeviceDropped => "deliveries",
    DeliverGroupChange => "deliveries",
    DeliverModification => "deliveries",
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
