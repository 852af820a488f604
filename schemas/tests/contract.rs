//! Every wire struct against its `.avsc`: the struct has exactly the
//! schema's fields, encodes with it and decodes back to itself. The sample
//! table is an exhaustive match, so a new record type cannot be added
//! without a sample, and a field added to a struct or a schema alone fails.

use std::collections::BTreeSet;

use missive_core::{ConvSeq, ConversationId, DeviceId, FeedSeq, MessageId, Millis, UserId};
use missive_schemas::wire::*;
use missive_schemas::{Codec, RecordType, WireValue};

const U: UserId = UserId(1);
const D: DeviceId = DeviceId(2);
const C: ConversationId = ConversationId(3);
const M: MessageId = MessageId(4);
const S: ConvSeq = ConvSeq(5);
const AT: Millis = Millis(1_800_000_000_000);

fn attachment() -> Attachment {
    Attachment {
        kind: "image".into(),
        media_id: Some("m".into()),
        size: Some(10),
        content_type: Some("image/png".into()),
        sha256: Some("ab".into()),
        key: Some("k".into()),
        caption: Some("c".into()),
        thumbnail: Some(vec![1, 2]),
        latitude: Some(1.5),
        longitude: Some(-2.5),
        name: Some("n".into()),
        vcard: Some("v".into()),
    }
}

fn message_sent() -> MessageSent {
    MessageSent {
        conversation_id: C,
        conv_seq: S,
        message_id: M,
        from: U,
        from_device: D,
        members: vec![U, UserId(9)],
        client_msg_id: "x".into(),
        content: "y".into(),
        reply_to: Some(MessageId(8)),
        sent_at: AT,
        withheld_from: vec![UserId(9)],
        forward_count: 1,
        attachment: Some(attachment()),
        session_id: Some("megolm-session".into()),
    }
}

fn message_modified() -> MessageModified {
    MessageModified {
        conversation_id: C,
        conv_seq: S,
        message_id: M,
        target_seq: ConvSeq(1),
        by: U,
        by_device: D,
        kind: OperationKind::Edit,
        text: "t".into(),
        audience: vec![U],
        at: AT,
        session_id: Some("megolm-session".into()),
    }
}

fn group_changed() -> GroupChanged {
    GroupChanged {
        conversation_id: C,
        conv_seq: S,
        by: U,
        kind: GroupChangeKind::Invited,
        subjects: vec![UserId(7)],
        members: vec![U],
        admins: vec![U],
        name: "n".into(),
        description: "d".into(),
        icon: "i".into(),
        only_admins_send: true,
        only_admins_edit_info: false,
        history_for_new_members: true,
        max_members: 256,
        created_by: U,
        at: AT,
        invites: vec![GroupInvite { user: UserId(7), by: U, at: AT }],
    }
}

fn signed_key() -> SignedKey {
    SignedKey { key_id: "k1".into(), key: "pub".into(), signature: "sig".into() }
}

/// One value of every record type, every optional field set.
fn sample(record_type: RecordType) -> WireValue {
    let value = match record_type {
        RecordType::SendMessage => WireValue::SendMessage(SendMessage {
            conversation_id: C,
            message_id: M,
            from: U,
            from_device: D,
            to: UserId(9),
            client_msg_id: "x".into(),
            content: "y".into(),
            reply_to: Some(MessageId(8)),
            forward_count: 2,
            attachment: Some(attachment()),
            session_id: Some("megolm-session".into()),
        }),
        RecordType::MarkReceipt => WireValue::MarkReceipt(MarkReceipt {
            conversation_id: C,
            by: U,
            status: ReceiptStatus::Read,
            up_to: S,
            notify: false,
        }),
        RecordType::ApplyBlock => {
            WireValue::ApplyBlock(ApplyBlock { conversation_id: C, blocker: U, target: UserId(9), blocked: true })
        }
        RecordType::ChangeGroup => WireValue::ChangeGroup(ChangeGroup {
            conversation_id: C,
            by: U,
            kind: GroupCommandKind::Create,
            users: vec![UserId(9)],
            admin: Some(true),
            name: Some("n".into()),
            description: Some("d".into()),
            icon: Some("i".into()),
            only_admins_send: Some(true),
            only_admins_edit_info: Some(false),
            history_for_new_members: Some(true),
            max_members: Some(256),
        }),
        RecordType::ModifyMessage => WireValue::ModifyMessage(ModifyMessage {
            conversation_id: C,
            by: U,
            by_device: D,
            message_id: M,
            target_seq: S,
            kind: OperationKind::React,
            text: "👍".into(),
            session_id: Some("megolm-session".into()),
        }),
        RecordType::MessageSent => WireValue::MessageSent(message_sent()),
        RecordType::ReceiptsAdvanced => WireValue::ReceiptsAdvanced(ReceiptsAdvanced {
            conversation_id: C,
            by: U,
            status: ReceiptStatus::Delivered,
            up_to: S,
            at: AT,
            messages: vec![MessageRef { message_id: M, conv_seq: S, from: UserId(9), count: 1, of: 2 }],
        }),
        RecordType::GroupChanged => WireValue::GroupChanged(group_changed()),
        RecordType::MessageModified => WireValue::MessageModified(message_modified()),
        RecordType::RegisterDevice => {
            WireValue::RegisterDevice(RegisterDevice { user_id: U, device_id: D, device_name: "phone".into() })
        }
        RecordType::RemoveDevice => {
            WireValue::RemoveDevice(RemoveDevice { user_id: U, device_id: D, reason: "logout".into() })
        }
        RecordType::UpdateProfile => WireValue::UpdateProfile(UpdateProfile {
            user_id: U,
            display_name: Some("Ann".into()),
            about: Some("a".into()),
            picture: Some("p".into()),
        }),
        RecordType::SetPrivacy => WireValue::SetPrivacy(SetPrivacy {
            user_id: U,
            last_seen: Some(Audience::Contacts),
            photo: Some(Audience::Nobody),
            about: Some(Audience::Everyone),
            read_receipts: Some(false),
            groups: Some(Audience::Contacts),
        }),
        RecordType::BlockUser => WireValue::BlockUser(BlockUser { user_id: U, target: UserId(9), blocked: true }),
        RecordType::UpdateContacts => {
            WireValue::UpdateContacts(UpdateContacts { user_id: U, added: vec![UserId(9)], removed: vec![UserId(8)] })
        }
        RecordType::SetPin => WireValue::SetPin(SetPin { user_id: U, pin_hash: Some("h".into()) }),
        RecordType::RecordLastSeen => WireValue::RecordLastSeen(RecordLastSeen { user_id: U, at: AT }),
        RecordType::DeviceRegistered => WireValue::DeviceRegistered(DeviceRegistered {
            user_id: U,
            device_id: D,
            device_name: "phone".into(),
            new_account: true,
            at: AT,
        }),
        RecordType::DeviceRemoved => {
            WireValue::DeviceRemoved(DeviceRemoved { user_id: U, device_id: D, reason: "r".into(), at: AT })
        }
        RecordType::ProfileUpdated => WireValue::ProfileUpdated(ProfileUpdated {
            user_id: U,
            display_name: "Ann".into(),
            about: "a".into(),
            picture: "p".into(),
            at: AT,
        }),
        RecordType::PrivacyChanged => WireValue::PrivacyChanged(PrivacyChanged {
            user_id: U,
            last_seen: Audience::Contacts,
            photo: Audience::Nobody,
            about: Audience::Everyone,
            read_receipts: true,
            groups: Audience::Contacts,
            at: AT,
        }),
        RecordType::BlockChanged => {
            WireValue::BlockChanged(BlockChanged { user_id: U, target: UserId(9), blocked: false, at: AT })
        }
        RecordType::ContactsChanged => WireValue::ContactsChanged(ContactsChanged {
            user_id: U,
            added: vec![UserId(9)],
            removed: vec![UserId(8)],
            at: AT,
        }),
        RecordType::PinChanged => WireValue::PinChanged(PinChanged { user_id: U, pin_hash: Some("h".into()), at: AT }),
        RecordType::LastSeen => WireValue::LastSeen(LastSeen { user_id: U, at: AT }),
        RecordType::UploadKeys => WireValue::UploadKeys(UploadKeys {
            user_id: U,
            device_id: D,
            identity_curve25519: "curve".into(),
            identity_ed25519: "ed".into(),
            one_time_keys: vec![signed_key()],
            fallback_key: Some(signed_key()),
        }),
        RecordType::KeysUploaded => WireValue::KeysUploaded(KeysUploaded {
            user_id: U,
            device_id: D,
            identity_curve25519: "curve".into(),
            identity_ed25519: "ed".into(),
            one_time_keys: vec![signed_key()],
            fallback_key: Some(signed_key()),
            at: AT,
        }),
        RecordType::ClaimKey => {
            WireValue::ClaimKey(ClaimKey { user_id: U, device_id: D, by: UserId(9), by_device: DeviceId(8) })
        }
        RecordType::AnnounceDevices => WireValue::AnnounceDevices(AnnounceDevices { conversation_id: C, user: U }),
        RecordType::DeliverDevicesChanged => WireValue::DeliverDevicesChanged(DeliverDevicesChanged {
            recipient: UserId(9),
            conversation_id: C,
            user: U,
        }),
        RecordType::ShareKeys => WireValue::ShareKeys(ShareKeys {
            user_id: U,
            from: UserId(9),
            from_device: DeviceId(8),
            messages: vec![DeviceMessage { device_id: D, olm_type: 0, body: "b2xt".into() }],
            group: Some(C),
        }),
        RecordType::DeliverToDevice => WireValue::DeliverToDevice(DeliverToDevice {
            recipient: U,
            device_id: D,
            from: UserId(9),
            from_device: DeviceId(8),
            olm_type: 1,
            body: "b2xt".into(),
            sent_at: AT,
        }),
        RecordType::KeyClaimed => WireValue::KeyClaimed(KeyClaimed {
            user_id: U,
            device_id: D,
            key: signed_key(),
            fallback: false,
            by: UserId(9),
            by_device: DeviceId(8),
            remaining: 19,
            at: AT,
        }),
        RecordType::DeliverMessage => WireValue::DeliverMessage(DeliverMessage {
            recipient: U,
            message: message_sent(),
            more_recipients: vec![UserId(9)],
        }),
        RecordType::DeliverReceipt => WireValue::DeliverReceipt(DeliverReceipt {
            recipient: U,
            conversation_id: C,
            message_id: M,
            status: ReceiptStatus::Read,
            by: UserId(9),
            at: AT,
            count: 1,
            of: 2,
            up_to: S,
        }),
        RecordType::ReadSync => WireValue::ReadSync(ReadSync { recipient: U, conversation_id: C, up_to: S }),
        RecordType::DeviceAdded => WireValue::DeviceAdded(DeviceAdded { recipient: U, device_id: D }),
        RecordType::DeliverKeysLow => {
            WireValue::DeliverKeysLow(DeliverKeysLow { recipient: U, device_id: D, remaining: 9 })
        }
        RecordType::DeviceAcked => WireValue::DeviceAcked(DeviceAcked { recipient: U, device_id: D, seq: FeedSeq(6) }),
        RecordType::DeviceDropped => WireValue::DeviceDropped(DeviceDropped { recipient: U, device_id: D }),
        RecordType::DeliverGroupChange => {
            WireValue::DeliverGroupChange(DeliverGroupChange { recipient: U, change: group_changed() })
        }
        RecordType::DeliverModification => {
            WireValue::DeliverModification(DeliverModification { recipient: U, modified: message_modified() })
        }
        RecordType::CommandReply => WireValue::CommandReply(CommandReply {
            gateway: "g".into(),
            request: 7,
            outcome: "accepted".into(),
            detail: "d".into(),
            user_id: Some(U),
            device_id: Some(D),
            conversation_id: Some(C),
            message_id: Some(M),
            conv_seq: Some(S),
            at: AT,
            claimed_key: Some(ClaimedKey {
                key_id: "k1".into(),
                key: "pub".into(),
                signature: "sig".into(),
                fallback: true,
            }),
        }),
        RecordType::Typing => WireValue::Typing(Typing {
            conversation_id: C,
            from: U,
            from_device: D,
            state: TypingState::Recording,
            recipients: vec![UserId(9)],
            expires_at: AT,
        }),
        RecordType::PresenceHeartbeat => {
            WireValue::PresenceHeartbeat(PresenceHeartbeat { instance: "i".into(), online: vec![U], at: AT })
        }
        RecordType::PresenceChanged => {
            WireValue::PresenceChanged(PresenceChanged { instance: "i".into(), user: U, online: true, at: AT })
        }
        RecordType::PushJob => WireValue::PushJob(PushJob {
            user: U,
            conversation_id: C,
            group: true,
            count: 3,
            message_ids: vec![M],
            senders: vec![UserId(9)],
            first_at: AT,
            at: AT,
        }),
        RecordType::MediaUploaded => WireValue::MediaUploaded(MediaUploaded {
            media_id: "m".into(),
            owner: U,
            kind: "image".into(),
            purpose: "message".into(),
            content_type: "image/png".into(),
            size: 10,
            sha256: "ab".into(),
            key: "k".into(),
            at: AT,
        }),
    };
    assert_eq!(value.record_type(), record_type, "the sample of {record_type:?} is of another type");
    value
}

/// The field names of a record schema, in order.
fn schema_fields(record_type: RecordType) -> Vec<String> {
    let schema: serde_json::Value = serde_json::from_str(record_type.schema_text()).expect("the .avsc is JSON");
    schema["fields"]
        .as_array()
        .expect("a record schema")
        .iter()
        .map(|field| field["name"].as_str().expect("a named field").to_string())
        .collect()
}

/// The field names a wire value serializes, with serde (as the codec does).
fn struct_fields(value: &WireValue) -> BTreeSet<String> {
    let json = value.to_json().expect("a wire struct serializes");
    json.as_object().expect("a struct").keys().cloned().collect()
}

#[test]
fn every_wire_struct_has_exactly_its_schemas_fields() {
    for record_type in RecordType::ALL {
        let schema: BTreeSet<String> = schema_fields(*record_type).into_iter().collect();
        let fields = struct_fields(&sample(*record_type));
        assert_eq!(fields, schema, "{record_type:?}: the wire struct's fields against {}", record_type.subject());
    }
}

#[test]
fn every_wire_struct_encodes_with_its_schema_and_decodes_to_itself() {
    let ids: Vec<(RecordType, u32)> =
        RecordType::ALL.iter().enumerate().map(|(index, t)| (*t, 1 + index as u32)).collect();
    let codec = Codec::new(&ids).expect("every .avsc parses");
    for record_type in RecordType::ALL {
        let value = sample(*record_type);
        let bytes = codec.encode_value(&value).unwrap_or_else(|error| panic!("{record_type:?} encodes: {error}"));
        let back = codec.decode(&bytes).unwrap_or_else(|error| panic!("{record_type:?} decodes: {error}"));
        assert_eq!(back, value, "{record_type:?} round-trips");
        let (decoded_type, json) = codec.decode_json(&bytes).expect("decodes as JSON");
        assert_eq!(decoded_type, *record_type);
        let ids_are_numbers = ["recipient", "user_id", "conversation_id", "by"]
            .iter()
            .filter_map(|field| json.get(*field))
            .all(|id| id.is_i64() || id.is_null());
        assert!(ids_are_numbers, "{record_type:?}: ids are Avro longs, not fixed bytes: {json}");
    }
}
