use super::frames::*;
use super::views::*;
use missive_core::conversation::MessageSent;
use missive_core::media::Attachment;
use missive_projections::FeedEntry;
use serde_json::{Value, json};

/// The frame written without a `Value` tree says exactly what the
/// protocol's message object says, with and without optional fields.
#[test]
fn event_frames_carry_the_message_object() {
    use missive_core::{ConvSeq, ConversationId, DeviceId, MessageId, Millis, UserId};
    let plain = MessageSent {
        conversation_id: ConversationId(7),
        conv_seq: ConvSeq(3),
        message_id: MessageId(11),
        from: UserId(1),
        from_device: DeviceId(2),
        members: vec![UserId(1), UserId(5)],
        client_msg_id: "c1".into(),
        content: "hi \"there\"\n".into(),
        reply_to: None,
        sent_at: Millis(1_700_000_000_000),
        withheld_from: Vec::new(),
        forward_count: 0,
        attachment: None,
        session_id: None,
    };
    let rich = MessageSent {
        reply_to: Some(MessageId(9)),
        forward_count: 6,
        attachment: Some(Attachment::Location { latitude: 1.5, longitude: -2.0, name: Some("here".into()) }),
        ..plain.clone()
    };
    for message in [plain, rich.clone()] {
        let text = event_frame_text(42, &FeedEntry::Message(message.clone()), DeviceId(1));
        let parsed: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(parsed, json!({"type": "event", "seq": 42, "event": message_json(&message)}));
        assert_eq!(parsed["event"]["message_id"], "11", "ids are strings");
    }
    let rich =
        serde_json::from_str::<Value>(&event_frame_text(1, &FeedEntry::Message(rich), DeviceId(1))).expect("JSON");
    assert_eq!(
        rich["event"],
        json!({
            "kind": "message", "message_id": "11", "conversation_id": "7", "conv_seq": 3,
            "from": "1", "from_device": "2", "content": "hi \"there\"\n", "sent_at": 1_700_000_000_000u64,
            "reply_to": "9", "forwarded": true, "forward_count": 6, "forwarded_many_times": true,
            "attachment": {"kind": "location", "latitude": 1.5, "longitude": -2.0, "name": "here"},
        })
    );
}

#[test]
fn frames_parse_or_explain() {
    assert!(matches!(parse_client_frame(r#"{"type":"ping"}"#), Ok(ClientFrame::Ping)));
    assert!(matches!(parse_client_frame(r#"{"type":"ack","seq":3}"#), Ok(ClientFrame::Ack { seq: 3 })));
    let error = parse_client_frame("{nope").expect_err("invalid JSON");
    assert_eq!(error.code, "bad_frame");
    let error = parse_client_frame(r#"{"type":"dance","req":"r1"}"#).expect_err("unknown type");
    assert_eq!((error.code, error.req.as_deref()), ("unknown_type", Some("r1")));
    let error = parse_client_frame(r#"{"type":"ack","seq":"three"}"#).expect_err("wrong type");
    assert_eq!(error.code, "bad_frame");
    let error = parse_client_frame(r#"{"type":"send","req":"r2","to":{"user":"1"}}"#).expect_err("missing fields");
    assert_eq!((error.code, error.req.as_deref()), ("bad_frame", Some("r2")));
}
