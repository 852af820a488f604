//! The operations of a history: what test clients sent and saw.

/// A device, as `user/device`.
pub type Device = String;

/// One operation of the history, in the order the recorder got it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A device sent a message saying `content` (test messages say
    /// something unique, which links a delivery to its send even when the
    /// `sent` answer was lost to a crash).
    Send { device: Device, req: String, content: String },
    /// The server acknowledged the send `req` of this device: durable and ordered.
    Sent { device: Device, req: String, message_id: String, conversation_id: String, conv_seq: u64 },
    /// A device was welcomed: `recovered` false allows a jump in its feed.
    Welcome { device: Device, recovered: bool },
    /// A feed entry a device saw.
    Entry { device: Device, seq: u64, message: Option<Delivered> },
    /// A device acked its feed up to `seq`.
    Ack { device: Device, seq: u64 },
    /// A receipt watermark a device saw: `by` reached `status` up to `up_to` in the conversation.
    Receipt { device: Device, conversation_id: String, by: String, status: String, up_to: u64 },
    /// Which devices must get the conversation's messages (members' devices that stay or come back).
    Expect { conversation_id: String, devices: Vec<Device> },
    /// The server acknowledged a change that takes a place in a
    /// conversation without being a message (an edit's `done`, a group
    /// change's answer): its entry, [`entry_id`], must reach the expected
    /// devices like a message.
    Changed { device: Device, id: String, conversation_id: String },
}

/// The id the history gives a conversation entry that is not a message (an
/// edit's `modified` entry, a group change): its place in the conversation.
pub fn entry_id(conversation_id: &str, conv_seq: u64) -> String {
    format!("{conversation_id}@{conv_seq}")
}

/// A conversation entry as a feed showed it: a message, or an edit's
/// `modified` entry or a group change (whose `message_id` is [`entry_id`]
/// and whose `content` is the new text or the group's name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    pub message_id: String,
    pub conversation_id: String,
    pub conv_seq: u64,
    pub content: String,
}
