//! Device-addressed messages: what one device sends another directly,
//! Olm-encrypted for it (the Megolm session keys of end-to-end encrypted
//! chats). The server relays them; it cannot read them.
//!
//! A share is a command on `commands.user`, keyed by the recipient, so the
//! users processor decides it against the recipient's account: entries for
//! devices the account no longer has are dropped (their ids come back as
//! `stale`), and a recipient who blocked the sender gets none (as with
//! messages, the sender is not told) unless the keys are for a group they
//! share, whose messages from the sender the recipient still sees. Each kept entry becomes one delivery
//! to the recipient's inbox, which only the addressed device is shown.

use crate::delivery::{Delivery, DeliveryItem};
use crate::ids::{ConversationId, DeviceId, Millis, UserId};
use crate::users::UserState;

/// Entries in one share frame.
pub const MAX_SHARE_ENTRIES: usize = 1024;
/// Longest entry body: an Olm pre-key message carrying a Megolm session key, in base64.
pub const MAX_SHARE_BODY_BYTES: usize = 8192;

/// One Olm message for one device: `olm_type` 0 is a pre-key message (it
/// opens a session), 1 a normal one.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeviceMessage {
    pub device_id: DeviceId,
    pub olm_type: u8,
    pub body: String,
}

/// A device's messages to some devices of one user.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShareKeys {
    /// The recipient (the record's key).
    pub user_id: UserId,
    pub from: UserId,
    pub from_device: DeviceId,
    pub messages: Vec<DeviceMessage>,
    /// The group these keys are for, when the gateway checked that the
    /// sender and the recipient are both its members: a recipient who
    /// blocked the sender still gets them (it still sees the sender's
    /// messages in a group they share, as in WhatsApp).
    pub group: Option<ConversationId>,
}

/// A device-addressed entry as the recipient's inbox keeps it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ToDevice {
    pub device_id: DeviceId,
    pub from: UserId,
    pub from_device: DeviceId,
    pub olm_type: u8,
    pub body: String,
    pub sent_at: Millis,
}

/// What a share decided: the deliveries, and the addressed devices the
/// recipient does not have (any more).
#[derive(Debug, PartialEq, Eq)]
pub struct Shared {
    pub deliveries: Vec<Delivery>,
    pub stale: Vec<DeviceId>,
}

/// Decides a share against the recipient's account.
pub fn decide_share(recipient: &UserState, share: &ShareKeys, now: Millis) -> Shared {
    let blocked = recipient.blocked.contains(&share.from) && share.group.is_none();
    let mut shared = Shared { deliveries: Vec::new(), stale: Vec::new() };
    for message in &share.messages {
        if !recipient.has_device(message.device_id) {
            shared.stale.push(message.device_id);
            continue;
        }
        if blocked {
            continue;
        }
        let entry = ToDevice {
            device_id: message.device_id,
            from: share.from,
            from_device: share.from_device,
            olm_type: message.olm_type,
            body: message.body.clone(),
            sent_at: now,
        };
        shared.deliveries.push(Delivery { recipient: share.user_id, item: DeliveryItem::ToDevice(entry) });
    }
    shared
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::DeviceInfo;

    fn account(devices: &[u64], blocked: &[u64]) -> UserState {
        UserState {
            user_id: UserId(2),
            devices: devices
                .iter()
                .map(|id| DeviceInfo {
                    device_id: DeviceId(*id),
                    name: String::new(),
                    added_at: Millis(0),
                    identity: None,
                })
                .collect(),
            blocked: blocked.iter().map(|id| UserId(*id)).collect(),
            ..UserState::default()
        }
    }

    fn share(devices: &[u64]) -> ShareKeys {
        ShareKeys {
            user_id: UserId(2),
            from: UserId(1),
            from_device: DeviceId(10),
            messages: devices
                .iter()
                .map(|id| DeviceMessage { device_id: DeviceId(*id), olm_type: 0, body: format!("k{id}") })
                .collect(),
            group: None,
        }
    }

    #[test]
    fn each_current_device_gets_its_own_entry_and_removed_ones_come_back_stale() {
        let shared = decide_share(&account(&[20, 21], &[]), &share(&[20, 21, 22]), Millis(5));
        let addressed: Vec<DeviceId> = shared
            .deliveries
            .iter()
            .map(|delivery| match &delivery.item {
                DeliveryItem::ToDevice(entry) => entry.device_id,
                other => panic!("a device entry, got {other:?}"),
            })
            .collect();
        assert_eq!(addressed, vec![DeviceId(20), DeviceId(21)]);
        assert_eq!(shared.stale, vec![DeviceId(22)]);
    }

    #[test]
    fn a_recipient_who_blocked_the_sender_gets_nothing() {
        let shared = decide_share(&account(&[20], &[1]), &share(&[20]), Millis(5));
        assert!(shared.deliveries.is_empty());
        assert!(shared.stale.is_empty());
    }

    #[test]
    fn keys_for_a_group_both_are_in_reach_a_recipient_who_blocked_the_sender() {
        let in_group = ShareKeys { group: Some(ConversationId(77)), ..share(&[20]) };
        let shared = decide_share(&account(&[20], &[1]), &in_group, Millis(5));
        assert_eq!(shared.deliveries.len(), 1, "group messages of a blocked member stay readable");
    }
}
