//! How processor state values are stored: MessagePack, structs as arrays
//! (no field names), behind a one-byte format tag.
//!
//! State is derived from the log, so its encoding is no wire contract; it is
//! chosen for the cost of the hot path (a delivered message rewrites a dozen
//! values). Values written before this encoding are JSON and stay readable:
//! [`decode`] tells the two apart by the first byte ([`BINARY`] is not
//! ASCII, and a JSON text always starts with an ASCII character).
//!
//! Evolving a state type: append new fields at the end with
//! `#[serde(default)]` (a shorter array decodes, the missing fields take
//! their defaults); never reorder or remove fields, and never use
//! `skip_serializing_if` on a struct encoded as an array. A change that
//! cannot follow these rules needs `missive rebuild` of the projections it
//! touches.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// First byte of a binary value: MessagePack's "never used" marker, so no
/// MessagePack value and no JSON text starts with it.
pub const BINARY: u8 = 0xc1;

#[derive(Debug, thiserror::Error)]
pub enum StateValueError {
    #[error("state value does not encode: {0}")]
    Encode(String),
    #[error("corrupt state value: {0}")]
    Decode(String),
}

/// Encodes a state value.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, StateValueError> {
    let mut out = Vec::with_capacity(128);
    out.push(BINARY);
    value
        .serialize(&mut rmp_serde::Serializer::new(&mut out))
        .map_err(|error| StateValueError::Encode(error.to_string()))?;
    Ok(out)
}

/// Decodes a state value written by [`encode`] or, before it, as JSON.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StateValueError> {
    match bytes.split_first() {
        Some((&BINARY, rest)) => {
            rmp_serde::from_slice(rest).map_err(|error| StateValueError::Decode(error.to_string()))
        }
        _ => serde_json::from_slice(bytes).map_err(|error| StateValueError::Decode(error.to_string())),
    }
}

/// A value as a person reads it (tools, diffs): JSON text as it is, a binary
/// value as MessagePack's text form (arrays for structs), anything else as
/// a lossy string.
pub fn render(bytes: &[u8]) -> String {
    match bytes.split_first() {
        Some((&BINARY, mut rest)) => match rmpv::decode::read_value(&mut rest) {
            Ok(value) => value.to_string(),
            Err(_) => format!("<{} undecodable bytes>", bytes.len()),
        },
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use missive_core::conversation::{ConversationState, MessageSent, StoredMessage};
    use missive_core::media::{Attachment, MediaKind, MediaRef};
    use missive_core::{ConvSeq, ConversationId, DeviceId, MessageId, Millis, UserId};
    use missive_projections::conversations::ConversationSummary;
    use missive_projections::feed::{FeedEntry, FeedState};
    use missive_projections::history::HistoryMessage;
    use proptest::prelude::*;

    use super::*;

    fn message(content: String, attachment: Option<Attachment>, withheld: Vec<u64>) -> MessageSent {
        let (me, peer) = (UserId(7), UserId(9));
        MessageSent {
            conversation_id: ConversationId::direct(me, peer),
            conv_seq: ConvSeq(3),
            message_id: MessageId(1 << 40),
            from: me,
            from_device: DeviceId(2),
            members: vec![me, peer],
            client_msg_id: "c-1".into(),
            content,
            reply_to: Some(MessageId(5)),
            sent_at: Millis(1_700_000_000_000),
            withheld_from: withheld.into_iter().map(UserId).collect(),
            forward_count: 1,
            attachment,
            session_id: None,
        }
    }

    fn attachments() -> impl Strategy<Value = Option<Attachment>> {
        prop_oneof![
            Just(None),
            (any::<f64>().prop_filter("finite", |x| x.is_finite()), proptest::option::of(".{0,8}"))
                .prop_map(|(latitude, name)| Some(Attachment::Location { latitude, longitude: -latitude, name })),
            ".{0,20}".prop_map(|vcard| Some(Attachment::Contact { vcard })),
        ]
    }

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
        let binary = encode(value).expect("encodes");
        assert_eq!(binary[0], BINARY);
        assert_eq!(&decode::<T>(&binary).expect("binary decodes"), value);
        // Values written before stay readable, exactly as JSON reads them
        // (serde_json may round an extreme float's last digit; binary never does).
        let json = serde_json::to_vec(value).expect("json");
        let as_json_reads = serde_json::from_slice::<T>(&json).expect("json");
        assert_eq!(decode::<T>(&json).expect("json decodes"), as_json_reads);
    }

    proptest! {
        #[test]
        fn state_values_round_trip_in_both_encodings(
            content in ".{0,40}",
            attachment in attachments(),
            withheld in proptest::collection::vec(any::<u64>(), 0..3),
            unread in any::<u64>(),
        ) {
            let sent = message(content, attachment, withheld);
            round_trip(&sent);
            round_trip(&FeedEntry::Message(sent.clone()));
            let mut summary = ConversationSummary::new(UserId(9), &sent);
            summary.apply_message(UserId(9), &sent);
            summary.unread = unread;
            round_trip(&summary);
            round_trip(&StoredMessage::of(&sent));
            round_trip(&HistoryMessage::new(sent));
        }
    }

    #[test]
    fn media_attachments_and_maps_round_trip() {
        let media = Attachment::Media(MediaRef {
            media_id: "m1".into(),
            media_kind: MediaKind::Image,
            size: 10,
            content_type: "image/png".into(),
            sha256: "00".into(),
            key: "k/1".into(),
            caption: Some("a cat".into()),
            thumbnail: None,
        });
        round_trip(&message("hi".into(), Some(media), Vec::new()));
        round_trip(&FeedState::default());
        round_trip(&ConversationState::default());
        let mut map = BTreeMap::new();
        map.insert(UserId(1), ConvSeq(2));
        round_trip(&map);
    }

    #[test]
    fn binary_is_smaller_and_renders_readably() {
        let sent = message("hello".into(), None, Vec::new());
        let binary = encode(&sent).expect("encodes");
        let json = serde_json::to_vec(&sent).expect("json");
        assert!(binary.len() * 2 < json.len(), "{} vs {} bytes", binary.len(), json.len());
        assert!(render(&binary).contains("\"hello\""));
        assert_eq!(render(&json), String::from_utf8(json).expect("utf-8"));
        assert!(decode::<MessageSent>(&[BINARY, 0x93]).is_err(), "a truncated value is an error, not a default");
    }

    #[test]
    fn missing_trailing_fields_take_their_defaults() {
        #[derive(Serialize)]
        struct Before {
            a: u64,
        }
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct After {
            a: u64,
            #[serde(default)]
            b: Vec<u64>,
        }
        let old = encode(&Before { a: 5 }).expect("encodes");
        assert_eq!(decode::<After>(&old).expect("decodes"), After { a: 5, b: Vec::new() });
    }
}
