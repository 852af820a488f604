//! Every record type encodes against its `.avsc`, frames in Confluent wire
//! format and decodes back to the same domain value.

use missive_core::conversation::{
    ConversationCommand, ConversationEvent, MarkReceipt, MessageRef, MessageSent, ReceiptStatus, ReceiptsAdvanced,
    SendMessage,
};
use missive_core::delivery::{Delivery, DeliveryItem, Receipt};
use missive_core::groups::{
    Group, GroupChange, GroupChangeKind, GroupChanged, GroupCommand, GroupInfo, GroupInvite, GroupSettings,
};
use missive_core::media::{Attachment, MediaKind, MediaRef, MediaUploaded, Purpose};
use missive_core::operations::{MessageModified, ModifyMessage, Operation};
use missive_core::users::{DeviceRegistered, RegisterDevice, UserCommand, UserEvent};
use missive_core::{ConvSeq, ConversationId, DeviceId, FeedSeq, MessageId, Millis, UserId};
use missive_schemas::convert::*;
use missive_schemas::wire::CommandReply;
use missive_schemas::{Codec, RecordType, WireValue};

fn codec() -> Codec {
    let ids: Vec<(RecordType, u32)> =
        RecordType::ALL.iter().enumerate().map(|(index, t)| (*t, 100 + index as u32)).collect();
    Codec::new(&ids).expect("every .avsc parses")
}

fn message() -> MessageSent {
    MessageSent {
        conversation_id: ConversationId::direct(UserId(1), UserId(2)),
        conv_seq: ConvSeq(3),
        message_id: MessageId::from_parts(1_800_000_000_000, 1, 2),
        from: UserId(1),
        from_device: DeviceId(11),
        members: vec![UserId(1), UserId(2)],
        client_msg_id: "6b1c".into(),
        content: "héllo ✓".into(),
        reply_to: Some(MessageId(77)),
        sent_at: Millis(1_800_000_000_123),
        withheld_from: Vec::new(),
        forward_count: 2,
        attachment: Some(Attachment::Media(MediaRef {
            media_id: "0123456789abcdef0123456789abcdef".into(),
            media_kind: MediaKind::Image,
            size: 123_456,
            content_type: "image/jpeg".into(),
            sha256: "ab".repeat(32),
            key: "media/1/2026-11/0123456789abcdef0123456789abcdef".into(),
            caption: Some("sunset".into()),
            thumbnail: Some("AAEC/w==".into()),
        })),
        session_id: None,
    }
}

fn modified() -> MessageModified {
    MessageModified {
        conversation_id: ConversationId(5),
        conv_seq: ConvSeq(4),
        message_id: MessageId(6),
        target_seq: ConvSeq(1),
        by: UserId(1),
        by_device: DeviceId(2),
        operation: Operation::Edit { content: "fixed".into() },
        audience: vec![UserId(1), UserId(2)],
        at: Millis(12),
        session_id: None,
    }
}

#[test]
fn every_domain_value_round_trips_through_its_schema() {
    let codec = codec();
    let commands = [
        ConversationCommand::Send(SendMessage {
            conversation_id: ConversationId(5),
            message_id: MessageId(6),
            from: UserId(1),
            from_device: DeviceId(2),
            to: UserId(3),
            client_msg_id: "x".into(),
            content: "y".into(),
            reply_to: None,
            forward_count: 1,
            attachment: Some(Attachment::Location { latitude: 48.8584, longitude: -2.2945, name: Some("here".into()) }),
            session_id: None,
        }),
        ConversationCommand::Send(SendMessage {
            conversation_id: ConversationId(5),
            message_id: MessageId(7),
            from: UserId(1),
            from_device: DeviceId(2),
            to: UserId(3),
            client_msg_id: "z".into(),
            content: String::new(),
            reply_to: None,
            forward_count: 0,
            attachment: Some(Attachment::Contact { vcard: "BEGIN:VCARD\nFN:Ann\nEND:VCARD".into() }),
            session_id: None,
        }),
        ConversationCommand::Modify(ModifyMessage {
            conversation_id: ConversationId(5),
            by: UserId(1),
            by_device: DeviceId(2),
            message_id: MessageId(6),
            target_seq: ConvSeq(1),
            operation: Operation::React { emoji: "👍".into() },
            session_id: None,
        }),
        ConversationCommand::Receipt(MarkReceipt {
            conversation_id: ConversationId(5),
            by: UserId(3),
            status: ReceiptStatus::Read,
            up_to: ConvSeq(9),
            notify: false,
        }),
        ConversationCommand::Group(GroupCommand {
            conversation_id: ConversationId(8),
            by: UserId(1),
            change: GroupChange::Create {
                info: GroupInfo { name: "team".into(), description: "d".into(), icon: "media:i".into() },
                settings: GroupSettings {
                    only_admins_send: true,
                    only_admins_edit_info: false,
                    history_for_new_members: true,
                },
                members: vec![UserId(2), UserId(3)],
                max_members: 300,
            },
        }),
        ConversationCommand::Group(GroupCommand {
            conversation_id: ConversationId(8),
            by: UserId(1),
            change: GroupChange::SetAdmin { user: UserId(2), admin: true },
        }),
        ConversationCommand::Group(GroupCommand {
            conversation_id: ConversationId(8),
            by: UserId(2),
            change: GroupChange::UpdateInfo { name: None, description: Some("new".into()), icon: None },
        }),
    ];
    for command in commands {
        let bytes = codec.encode_value(&WireValue::from(&command)).expect("encode");
        assert_eq!(bytes[0], 0, "magic byte");
        let back = ConversationCommand::try_from(codec.decode(&bytes).expect("decode")).expect("convert");
        assert_eq!(back, command);
    }
    let events = [
        ConversationEvent::MessageSent(message()),
        ConversationEvent::MessageSent(MessageSent { attachment: None, ..message() }),
        ConversationEvent::MessageModified(modified()),
        ConversationEvent::ReceiptsAdvanced(ReceiptsAdvanced {
            conversation_id: ConversationId(5),
            by: UserId(2),
            status: ReceiptStatus::Delivered,
            up_to: ConvSeq(3),
            at: Millis(9),
            messages: vec![MessageRef {
                message_id: MessageId(1),
                conv_seq: ConvSeq(3),
                from: UserId(1),
                count: 2,
                of: 7,
            }],
        }),
        ConversationEvent::GroupChanged(GroupChanged {
            conversation_id: ConversationId(8),
            conv_seq: ConvSeq(4),
            by: UserId(1),
            kind: GroupChangeKind::MemberRemoved,
            subjects: vec![UserId(3)],
            members: vec![UserId(1), UserId(2)],
            group: Group {
                info: GroupInfo { name: "team".into(), description: String::new(), icon: String::new() },
                settings: GroupSettings::default(),
                admins: [UserId(1)].into_iter().collect(),
                max_members: 256,
                created_by: UserId(1),
                invites: vec![GroupInvite { user: UserId(5), by: UserId(1), at: Millis(9) }],
            },
            at: Millis(10),
        }),
    ];
    for event in events {
        let bytes = codec.encode_value(&WireValue::from(&event)).expect("encode");
        assert_eq!(ConversationEvent::try_from(codec.decode(&bytes).expect("decode")).expect("convert"), event);
    }
    let command = UserCommand::RegisterDevice(RegisterDevice {
        user_id: UserId(1),
        device_id: DeviceId(2),
        device_name: "phone".into(),
    });
    let bytes = codec.encode_value(&WireValue::from(&command)).expect("encode");
    assert_eq!(UserCommand::try_from(codec.decode(&bytes).expect("decode")).expect("convert"), command);
    let event = UserEvent::DeviceRegistered(DeviceRegistered {
        user_id: UserId(1),
        device_id: DeviceId(2),
        device_name: "phone".into(),
        new_account: true,
        at: Millis(4),
    });
    let bytes = codec.encode_value(&WireValue::from(&event)).expect("encode");
    assert_eq!(UserEvent::try_from(codec.decode(&bytes).expect("decode")).expect("convert"), event);
    let items = [
        DeliveryItem::Message(message()),
        DeliveryItem::Receipt(Receipt {
            conversation_id: ConversationId(1),
            message_id: MessageId(2),
            status: ReceiptStatus::Read,
            by: UserId(3),
            at: Millis(4),
            count: 1,
            of: 3,
            up_to: ConvSeq(2),
        }),
        DeliveryItem::Modified(modified()),
        DeliveryItem::ReadSync { conversation_id: ConversationId(1), up_to: ConvSeq(2) },
        DeliveryItem::DeviceAdded { device_id: DeviceId(8) },
        DeliveryItem::DeviceAcked { device_id: DeviceId(8), seq: FeedSeq(12) },
    ];
    for item in items {
        let delivery = Delivery { recipient: UserId(42), item };
        let bytes = codec.encode_value(&WireValue::from(&delivery)).expect("encode");
        assert_eq!(Delivery::try_from(codec.decode(&bytes).expect("decode")).expect("convert"), delivery);
    }
    let reply = CommandReply {
        gateway: "g".into(),
        request: 1,
        outcome: "accepted".into(),
        detail: String::new(),
        user_id: None,
        device_id: None,
        conversation_id: Some(ConversationId(3)),
        message_id: Some(MessageId(4)),
        conv_seq: None,
        claimed_key: None,
        at: Millis(5),
    };
    let bytes = codec.encode(&reply).expect("encode");
    assert_eq!(codec.decode(&bytes).expect("decode"), WireValue::CommandReply(reply));
}

#[test]
fn one_message_record_stands_for_every_recipient_it_names() {
    let codec = codec();
    let recipients = [UserId(42), UserId(7), UserId(99)];
    let bytes = codec.encode_value(&message_fanout_to_wire(&recipients, &message())).expect("encode");
    let deliveries = deliveries_from_wire(codec.decode(&bytes).expect("decode")).expect("convert");
    let expected: Vec<Delivery> = recipients
        .iter()
        .map(|recipient| Delivery { recipient: *recipient, item: DeliveryItem::Message(message()) })
        .collect();
    assert_eq!(deliveries, expected);
    // A record of one recipient (and any written before the field) is one delivery.
    let single = Delivery { recipient: UserId(42), item: DeliveryItem::Message(message()) };
    let bytes = codec.encode_value(&WireValue::from(&single)).expect("encode");
    assert_eq!(deliveries_from_wire(codec.decode(&bytes).expect("decode")).expect("convert"), vec![single]);
}

#[test]
fn framing_errors_are_reported_not_guessed() {
    let codec = codec();
    assert!(codec.decode(&[1, 0, 0, 0, 100, 0]).is_err(), "wrong magic byte");
    assert!(codec.decode(&[0, 0, 0]).is_err(), "too short");
    assert!(codec.decode(&[0, 0, 0, 0, 9, 0]).is_err(), "unknown schema id");
    let (record_type, json) = codec
        .decode_json(&codec.encode_value(&WireValue::from(&ConversationEvent::MessageSent(message()))).expect("encode"))
        .expect("decode json");
    assert_eq!(record_type, RecordType::MessageSent);
    assert_eq!(json["content"], "héllo ✓");
}

/// A `ReadSync` record as another writer could frame it, ids as raw longs.
fn framed_read_sync(codec_id: u32, recipient: i64) -> Vec<u8> {
    use apache_avro::types::Value;
    let schema = apache_avro::Schema::parse_str(RecordType::ReadSync.schema_text()).expect("schema");
    let record = Value::Record(vec![
        ("recipient".into(), Value::Long(recipient)),
        ("conversation_id".into(), Value::Long(1)),
        ("up_to".into(), Value::Long(1)),
    ]);
    let mut bytes = vec![0];
    bytes.extend(codec_id.to_be_bytes());
    let writer = apache_avro::writer::datum::GenericDatumWriter::builder(&schema).build().expect("writer");
    bytes.extend(writer.write_value_to_vec(record).expect("encode"));
    bytes
}

#[test]
fn negative_ids_on_the_wire_are_refused_when_decoding() {
    let codec = codec();
    let index = RecordType::ALL.iter().position(|t| *t == RecordType::ReadSync).expect("listed");
    let id = 100 + index as u32;
    let valid = codec.decode(&framed_read_sync(id, 5)).expect("a valid record decodes");
    let WireValue::ReadSync(sync) = valid else { panic!("a ReadSync, got {valid:?}") };
    assert_eq!((sync.recipient, sync.conversation_id, sync.up_to), (UserId(5), ConversationId(1), ConvSeq(1)));
    let error = codec.decode(&framed_read_sync(id, -1)).expect_err("a negative id is refused");
    assert!(error.to_string().contains("an id"), "the error names what was expected: {error}");
}

#[test]
fn completed_uploads_round_trip_through_their_schema() {
    let codec = codec();
    let uploaded = MediaUploaded {
        media_id: "0123456789abcdef0123456789abcdef".into(),
        owner: UserId(42),
        kind: MediaKind::Image,
        purpose: Purpose::ProfilePicture,
        content_type: "image/png".into(),
        size: 1000,
        sha256: "cd".repeat(32),
        key: "media/42/2026-11/0123456789abcdef0123456789abcdef".into(),
        at: Millis(1_800_000_000_000),
    };
    let bytes = codec.encode_value(&WireValue::from(&uploaded)).expect("encode");
    let back = MediaUploaded::try_from(codec.decode(&bytes).expect("decode")).expect("convert");
    assert_eq!(back, uploaded);
}
